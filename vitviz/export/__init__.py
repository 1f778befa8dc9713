"""Arrays prepared for the browser: compact payloads that browser components redraw from.

Pure: numpy and a Capture in, bytes out. Nothing here imports streamlit; the components that read these
payloads live in ``vitviz_app/components/``.
"""
from ._codec import PrefixedRows, QuantisedRows, pack, quantise_prefixed, quantise_rows, unpack
from .attention import (
                        DEFAULT_BUDGET,
                        FUSIONS,
                        TIERS,
                        AttentionPayload,
                        PayloadReader,
                        attention_payload,
                        input_view_jpeg,
                        payload_tier,
                        query_rows_payload,
)
from .colours import colour_at, colour_stops
from .maps import MapsPayload, maps_payload, read_maps
from .rollout import RolloutPayload, read_rollout, rollout_payload, rollout_payload_bytes
from .walkthrough import PARTS, PatchStepsPayload, patch_steps_payload, read_patch_steps

__all__ = [
    "AttentionPayload",
    "DEFAULT_BUDGET",
    "FUSIONS",
    "MapsPayload",
    "PARTS",
    "PatchStepsPayload",
    "PayloadReader",
    "PrefixedRows",
    "QuantisedRows",
    "RolloutPayload",
    "TIERS",
    "attention_payload",
    "colour_at",
    "colour_stops",
    "input_view_jpeg",
    "maps_payload",
    "pack",
    "patch_steps_payload",
    "payload_tier",
    "quantise_prefixed",
    "quantise_rows",
    "read_maps",
    "read_patch_steps",
    "read_rollout",
    "rollout_payload",
    "rollout_payload_bytes",
    "query_rows_payload",
    "unpack",
]
