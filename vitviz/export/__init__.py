"""Arrays prepared for the browser: compact payloads that browser components redraw from.

Pure: numpy and a Capture in, bytes out. Nothing here imports streamlit; the components that read these
payloads live in ``vitviz_app/components/``.
"""
from ._codec import QuantisedRows, pack, quantise_rows, unpack
from .attention import (DEFAULT_BUDGET, FUSIONS, TIERS, AttentionPayload, PayloadReader, attention_payload,
                        input_view_jpeg, payload_tier, query_rows_payload)

__all__ = [
    "AttentionPayload",
    "DEFAULT_BUDGET",
    "FUSIONS",
    "PayloadReader",
    "QuantisedRows",
    "TIERS",
    "attention_payload",
    "input_view_jpeg",
    "pack",
    "payload_tier",
    "quantise_rows",
    "query_rows_payload",
    "unpack",
]
