"""A stack of maps over the patch grid for the browser: hover an index, see its map, with no round trip.

Used for the position-embedding similarity tiles: ``maps[k]`` is the map of grid position ``k`` (row-major).
Each map is one uint8 row with its own offset and step (``vitviz.export._codec``), so a decoded value is
within half a step of the original. When the stack does not fit the byte budget, the payload holds no maps
(tier ``'none'``) and the page falls back to clicks.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._codec import Payload, pack, quantise_rows, unpack

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


__all__ = ["MapsPayload", "maps_payload", "read_maps"]


@dataclass(frozen=True)
class MapsPayload(Payload):
    """Container bytes, content id and tier (``'maps'`` or ``'none'``)."""


def maps_payload(maps: ArrayLike, *, value_range: tuple[float, float] | None = None, budget: int = 2_000_000,
                 kind: str = "maps") -> MapsPayload:
    """The payload of ``maps`` (K, gh, gw).

    Args:
        maps: One map per index, over the patch grid.
        value_range: Fixed colour range for every map; None means each map's own range.
        budget: Most bytes allowed.
        kind: Written into the header (e.g. ``'position_similarity'``).
    """
    maps = np.asarray(maps, dtype=np.float64)
    k, gh, gw = maps.shape
    fits = k * (gh * gw + 8) + 4096 <= budget
    header = {"kind": kind, "version": 1, "tier": "maps" if fits else "none", "count": k, "grid": [gh, gw],
              "value_range": list(value_range) if value_range else None, "budget": int(budget)}
    sections = {}
    if fits:
        rows = quantise_rows(maps.reshape(k, gh * gw))  # (K, gh*gw)
        sections = {"maps": rows.codes, "maps_lo": rows.lo, "maps_step": rows.step}
    digest = hashlib.sha1(pack(header, sections)).hexdigest()[:16]
    return MapsPayload(pack({**header, "id": digest}, sections), digest, header["tier"])


def read_maps(blob: bytes) -> np.ndarray | None:
    """The maps (K, gh, gw) float32 decoded as the browser decodes them, or None for tier ``'none'``."""
    header, sections = unpack(blob)
    if header["tier"] != "maps":
        return None
    gh, gw = header["grid"]
    maps = sections["maps_lo"][:, None] + sections["maps"].astype(np.float32) * sections["maps_step"][:, None]
    return maps.reshape(header["count"], gh, gw)
