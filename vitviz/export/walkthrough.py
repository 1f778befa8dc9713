"""The numbers "How a ViT works" shows for one patch, for every patch: follow a patch by pointing at it.

The walk-through's steps show, for the followed patch: its pixels (step 1), its flattened vector (step 2), its
embedding (step 3), its attention row in the chosen layer and head (step 5) and its token's length after
each block (step 6). The payload holds these for every patch, so pointing at a patch redraws them in the
browser. Rows are 8-bit with their own offset and step (``vitviz.export._codec``): a decoded value is within
half a step of the page's. Sizes for ViT-B/16 at 224: vectors and embeddings 2 · 196 · 776 bytes, attention
196 · 205, norms 13 · 197 · 4, the image as PNG: about 0.45 MB.

The parts go in while they fit the byte budget, in the order ``norms``, ``pixels``, ``embeddings``,
``attention`` (header ``holds``); a part left out is shown for the committed patch only (the page says so).
Tier ``'patches'`` when at least the vectors are in, else ``'none'`` (the page keeps its click-only figure).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._codec import Payload, pack, quantise_rows, unpack

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from vitviz.layout import TokenLayout


__all__ = ["PatchStepsPayload", "PARTS", "patch_steps_payload", "read_patch_steps"]

PARTS = ("norms", "pixels", "embeddings", "attention")


@dataclass(frozen=True)
class PatchStepsPayload(Payload):
    """Container bytes, content id, tier (``'patches'`` or ``'none'``) and the parts it holds."""

    holds: tuple[str, ...]


def _rows(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    rows = quantise_rows(values)
    return {name: rows.codes, f"{name}_lo": rows.lo, f"{name}_step": rows.step}


def patch_steps_payload(*, pixels: ArrayLike, embeddings: ArrayLike, attention: ArrayLike, norms: ArrayLike,
                        layout: TokenLayout,
                        layer: int, head: int, image_png: bytes | None = None,
                        budget: int = 2_000_000) -> PatchStepsPayload:
    """The payload of every patch's walk-through numbers.

    Args:
        pixels: (Np, C·ph·pw) each patch's flattened, normalised input (``vitviz.analysis.patchify``).
        embeddings: (Np, D) each patch's embedding.
        attention: (Np, N) each patch's attention row (over every token) in ``layer`` and ``head``.
        norms: (L+1, N) every token's length after each block (``[0]`` enters block 0).
        layout: The ``TokenLayout`` (grid, patch size, prefix tokens).
        layer, head: Where ``attention`` comes from.
        image_png: The model input as PNG (drawn, and cut into the enlarged patch).
        budget: Most bytes the payload may take, image included.
    """
    parts = {"norms": np.asarray(norms, dtype=np.float32),  # (L+1, N), small: float32 as is
             "pixels": np.asarray(pixels, dtype=np.float64), "embeddings": np.asarray(embeddings, dtype=np.float64),
             "attention": np.asarray(attention, dtype=np.float64)}
    num_patches = layout.num_patches
    for name in PARTS[1:]:
        if parts[name].ndim != 2 or parts[name].shape[0] != num_patches:
            raise ValueError(f"{name}: expected one row per patch ({num_patches}), got shape {parts[name].shape}")
    used = 4096 + len(image_png or b"")
    sections: dict[str, np.ndarray | bytes] = {}
    holds = []
    for name in PARTS:
        values = parts[name]
        size = values.nbytes if name == "norms" else values.shape[0] * (values.shape[1] + 8)
        if used + size > budget:
            break  # in order: a later part without an earlier one would be of no use
        sections.update({"norms": values} if name == "norms" else _rows(name, values))
        holds.append(name)
        used += size
    tier = "patches" if "pixels" in holds else "none"
    if tier == "none":
        sections, holds = {}, []
    elif image_png:
        sections["image"] = image_png
    header = {"kind": "patch_steps", "version": 1, "tier": tier, "holds": holds, "budget": int(budget),
              "grid": list(layout.grid_size), "patch_size": list(layout.patch_size),
              "input_size": list(layout.input_size), "prefix_names": list(layout.prefix_names),
              "num_tokens": int(layout.num_tokens), "layer": int(layer), "head": int(head),
              "image": {"mime": "image/png"} if "image" in sections else None}
    digest = hashlib.sha1(pack(header, sections)).hexdigest()[:16]
    return PatchStepsPayload(pack({**header, "id": digest}, sections), digest, tier, tuple(holds))


def read_patch_steps(blob: bytes) -> dict[str, np.ndarray]:
    """The parts the payload holds, float32, decoded as the browser decodes them (rows: one per patch)."""
    header, sections = unpack(blob)
    out = {}
    for name in header["holds"]:
        if name == "norms":
            out[name] = np.asarray(sections[name])
        else:
            lo, step = sections[f"{name}_lo"][:, None], sections[f"{name}_step"][:, None]  # (Np, 1) each
            out[name] = lo + sections[name].astype(np.float32) * step
    return out
