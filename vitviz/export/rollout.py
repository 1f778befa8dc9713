"""Rollout for the browser: the read-out map after every layer, for every head fusion, in one small payload.

Scrubbing through the layers and switching the head fusion only change which of a few precomputed maps is
drawn, so the browser holds them all: for the page's discard ratio and start layer, the read-out row after
each layer (``RolloutResult.maps``) for each fusion in :data:`FUSIONS`, F·L'·N values (ViT-B/16 at 224:
3·12·196 bytes, 7 KB; DINOv2 at 518: 50 KB). Changing the discard ratio or the start layer needs new
rollouts, computed on the server.

Each map (over the patches) is one 8-bit row with its own offset and step (``vitviz.export._codec``), so a
decoded value is within half a step of the rollout's; the read-out row's prefix-token entries (a few per
map) are float32. When the maps do not fit the byte budget the payload holds none (tier ``'none'``) and the
page draws the server's figure only.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._codec import Payload, pack, quantise_rows, unpack
from .attention import FUSIONS

if TYPE_CHECKING:
    from vitviz.analysis import RolloutResult


__all__ = ["RolloutPayload", "read_rollout", "rollout_payload", "rollout_payload_bytes"]


@dataclass(frozen=True)
class RolloutPayload(Payload):
    """Container bytes, content id and tier (``'maps'`` or ``'none'``)."""


def rollout_payload_bytes(num_fusions: int, num_maps: int, num_patches: int, num_prefix: int) -> int:
    """Bytes the maps take: uint8 codes plus float32 offset and step per map, float32 prefix entries."""
    return num_fusions * num_maps * (num_patches + 8 + 4 * num_prefix)


def rollout_payload(results: Mapping[str, RolloutResult], *, prefix_names: list[str] | tuple[str, ...] = (),
                    image_jpeg: bytes | None = None, image_size: tuple[int, int] | None = None,
                    budget: int = 2_000_000) -> RolloutPayload:
    """The payload of one rollout setting, for each head fusion.

    Args:
        results: ``{fusion: RolloutResult}`` (or any object with ``maps`` (L', gh, gw), ``prefix`` (L', P),
            ``layers`` and ``readout``), the same discard ratio and start layer for each; fusions in
            :data:`FUSIONS` order are kept.
        prefix_names: Names of the prefix tokens (the columns of ``prefix``).
        image_jpeg: The model-input view as JPEG bytes (``input_view_jpeg``), drawn under the maps.
        image_size: (height, width) of that view in pixels.
        budget: Most bytes the payload may take, image included.
    """
    fusions = [f for f in FUSIONS if f in results]
    if not fusions:
        raise ValueError(f"no rollout for any of the fusions {FUSIONS}")
    first = results[fusions[0]]
    if any(tuple(results[f].layers) != tuple(first.layers) for f in fusions):
        raise ValueError("every fusion's rollout must cover the same layers")
    maps = np.stack([np.asarray(results[f].maps, dtype=np.float64) for f in fusions])  # (F, L', gh, gw)
    prefix = np.stack([np.asarray(results[f].prefix, dtype=np.float64) for f in fusions])  # (F, L', P)
    num_fusions, num_maps, gh, gw = maps.shape
    extra = len(image_jpeg or b"")
    fits = rollout_payload_bytes(num_fusions, num_maps, gh * gw, prefix.shape[-1]) + extra + 4096 <= budget
    header = {"kind": "rollout", "version": 1, "tier": "maps" if fits else "none", "budget": int(budget),
              "fusions": fusions, "layers": [int(v) for v in first.layers], "grid": [gh, gw],
              "prefix_names": list(prefix_names), "readout": first.readout}
    sections: dict[str, np.ndarray | bytes] = {}
    if fits:
        rows = quantise_rows(maps.reshape(num_fusions, num_maps, gh * gw))  # (F, L', gh*gw)
        sections = {"maps": rows.codes, "maps_lo": rows.lo, "maps_step": rows.step,
                    "prefix": prefix.astype(np.float32)}
        if image_jpeg and image_size:
            sections["image"] = image_jpeg
            header["image"] = {"mime": "image/jpeg", "height": int(image_size[0]), "width": int(image_size[1])}
    digest = hashlib.sha1(pack(header, sections)).hexdigest()[:16]
    return RolloutPayload(pack({**header, "id": digest}, sections), digest, header["tier"])


def read_rollout(blob: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """``{fusion: (maps (L', gh, gw), prefix (L', P))}`` float32 decoded as the browser decodes them, or None
    for tier ``'none'``."""
    header, sections = unpack(blob)
    if header["tier"] != "maps":
        return None
    gh, gw = header["grid"]
    lo, step = sections["maps_lo"], sections["maps_step"]  # (F, L')
    maps = lo[..., None] + sections["maps"].astype(np.float32) * step[..., None]  # (F, L', gh*gw)
    return {f: (maps[i].reshape(-1, gh, gw), sections["prefix"][i]) for i, f in enumerate(header["fusions"])}
