"""Attention for the browser: a compact payload, made once per capture, that a page can redraw from.

A browser explorer redraws a query's map on every pointer move, so it must hold the rows it draws. Every
layer's and head's full attention is L·H·N² values (ViT-B/16 at 224: 12·12·197² = 5.6 M, 5.6 MB as uint8),
too much to send with a page. So the payload holds the richest of these *tiers* that fits a byte budget:

``'heads'``
    every query's row in every layer and head (L·H·N² bytes): any query, layer, head or head fusion and the
    layers × heads grid follow the pointer.
``'fused'``
    every query's row in every layer with the heads fused by mean, max and min (3·L·N² bytes), plus every
    head's rows of the prefix tokens: fused maps follow the pointer; single heads only for prefix queries.
``'prefix'``
    every layer's and head's rows of the prefix tokens only (class, distillation, registers): patches are
    chosen by a click, and their rows are sent then (:func:`query_rows_payload`).
``'none'``
    nothing fits: clicks only.

Each row keeps its prefix-token entries as float32 and quantises its patches to 8 bits on their own range
(``vitviz.export._codec.quantise_prefixed``): a decoded patch value is within half a step, ``(max - min) / 510``
of that row's patch values, of the Capture's (plus float32 rounding), even when the class token takes 0.98 of
the row. :class:`PayloadReader` decodes exactly as the browser component does, so tests can check what the
browser draws against the Capture.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from vitviz.images import InputGeometry
from vitviz.images.encode import encode_jpeg

from ._codec import Payload, PrefixedRows, QuantisedRows, pack, prefixed_row_bytes, quantise_prefixed, unpack

if TYPE_CHECKING:
    from vitviz.capture import Capture


__all__ = ["AttentionPayload", "FUSIONS", "PayloadReader", "TIERS", "attention_payload", "input_view_jpeg",
           "payload_tier", "query_rows_payload", "DEFAULT_BUDGET"]

FUSIONS = ("mean", "max", "min")
TIERS = ("heads", "fused", "prefix", "none")
DEFAULT_BUDGET = 2_000_000  # bytes per capture, image included


@dataclass(frozen=True)
class AttentionPayload(Payload):
    """What the browser receives once per capture.

    Attributes:
        blob: The container bytes (``vitviz.export._codec`` format).
        id: Content hash; the page uses it to pair an explorer with its data.
        tier: One of :data:`TIERS`.
        nbytes: ``len(blob)``.
    """




def payload_tier(num_layers: int, num_heads: int, num_tokens: int, num_prefix: int, budget: int,
                 extra: int = 0) -> str:
    """The richest tier whose rows, plus ``extra`` bytes (the image), fit ``budget`` bytes."""
    row = prefixed_row_bytes(num_tokens, num_prefix)
    prefix = num_prefix * num_layers * num_heads * row
    sizes = {"heads": num_tokens * num_layers * num_heads * row,
             "fused": num_tokens * num_layers * len(FUSIONS) * row + prefix,
             "prefix": prefix}
    for tier, size in sizes.items():
        if size + extra + 4096 <= budget and (tier != "prefix" or num_prefix):
            return tier
    return "prefix" if num_prefix == 0 and 4096 + extra <= budget else "none"


def _layer_rows(capture: Capture, layer: int, item: int) -> np.ndarray:
    return capture.attention(layer)[item].detach().float().cpu().numpy()  # (H, N, N)


def _heads_section(capture: Capture, queries: Sequence[int], item: int) -> PrefixedRows:
    """Per-head rows of ``queries`` in every layer: prefix (Q, L, H, P), codes (Q, L, H, N - P)."""
    rows = np.stack([
        capture.attention_row(layer, q)[item].detach().float().cpu().numpy()  # (H, N)
        for q in queries for layer in range(capture.num_layers)
    ]) if len(queries) else np.zeros((0, capture.num_heads, capture.num_tokens), np.float32)
    rows = rows.reshape(len(queries), capture.num_layers, capture.num_heads, capture.num_tokens)  # (Q, L, H, N)
    return quantise_prefixed(rows, capture.layout.num_prefix_tokens)


def _all_heads_section(capture: Capture, item: int) -> PrefixedRows:
    """Every query's per-head rows in every layer: prefix (N, L, H, P), codes (N, L, H, N - P)."""
    num_prefix = capture.layout.num_prefix_tokens
    per_layer = [quantise_prefixed(_layer_rows(capture, layer, item).transpose(1, 0, 2), num_prefix)  # (N, H, N)
                 for layer in range(capture.num_layers)]
    patches = [p.patches for p in per_layer]
    return PrefixedRows(np.stack([p.prefix for p in per_layer], axis=1),  # (N, L, H, P)
                        QuantisedRows(np.stack([p.codes for p in patches], axis=1),  # (N, L, H, N - P)
                                      np.stack([p.lo for p in patches], axis=1),
                                      np.stack([p.step for p in patches], axis=1)))


def _fused_section(capture: Capture, item: int) -> PrefixedRows:
    """Every query's fused rows in every layer: prefix (N, L, 3, P), codes (N, L, 3, N - P), fusions in
    :data:`FUSIONS` order."""
    layers = []
    for layer in range(capture.num_layers):
        attn = _layer_rows(capture, layer, item)  # (H, N, N)
        layers.append(np.stack([attn.mean(0), attn.max(0), attn.min(0)], axis=1))  # (N, 3, N)
    return quantise_prefixed(np.stack(layers, axis=1), capture.layout.num_prefix_tokens)  # (N, L, 3, N)


def _sections(name: str, rows: PrefixedRows) -> dict[str, np.ndarray]:
    return rows.sections(name)


def _geometry_header(capture: Capture) -> dict[str, Any]:
    layout = capture.layout
    return {"num_layers": capture.num_layers, "num_heads": capture.num_heads, "num_tokens": capture.num_tokens,
            "grid": list(layout.grid_size), "prefix_names": list(layout.prefix_names), "fusions": list(FUSIONS)}


def _with_id(header: dict[str, Any], sections: dict[str, np.ndarray | bytes]) -> tuple[bytes, str]:
    digest = hashlib.sha1(pack(header, sections)).hexdigest()[:16]
    return pack({**header, "id": digest}, sections), digest


def attention_payload(capture: Capture, *, image_jpeg: bytes | None = None, budget: int = DEFAULT_BUDGET,
                      item: int = 0) -> AttentionPayload:
    """The attention payload of one capture (see the module docstring for the tiers).

    Args:
        capture: A ``vitviz.capture.Capture``.
        image_jpeg: The model-input view as JPEG bytes (:func:`input_view_jpeg`), shown under the maps.
        budget: Most bytes the payload may take, image included.
        item: Batch item.
    """
    layout = capture.layout
    prefix = list(range(layout.num_prefix_tokens))
    extra = len(image_jpeg or b"")
    tier = payload_tier(capture.num_layers, capture.num_heads, capture.num_tokens, len(prefix), budget, extra)
    header = {"kind": "attention", "version": 2, "tier": tier, "budget": int(budget), **_geometry_header(capture),
              "head_queries": [], "fused_queries": []}
    sections: dict[str, np.ndarray | bytes] = {}
    if tier == "heads":
        header["head_queries"] = list(range(capture.num_tokens))
        sections.update(_sections("heads", _all_heads_section(capture, item)))
    elif tier in ("fused", "prefix"):
        header["head_queries"] = prefix
        sections.update(_sections("heads", _heads_section(capture, prefix, item)))
        if tier == "fused":
            header["fused_queries"] = list(range(capture.num_tokens))
            sections.update(_sections("fused", _fused_section(capture, item)))
    if image_jpeg and (tier != "none" or extra + 4096 <= budget):
        sections["image"] = image_jpeg
        header["image"] = {"mime": "image/jpeg", "height": layout.input_size[0], "width": layout.input_size[1]}
    blob, digest = _with_id(header, sections)
    return AttentionPayload(blob, digest, tier)


def query_rows_payload(capture: Capture, queries: Sequence[int], item: int = 0) -> bytes:
    """Every layer's and head's rows of a few queries (the committed one), in the same container."""
    header = {"kind": "attention-rows", "version": 2, **_geometry_header(capture),
              "head_queries": [int(q) for q in queries], "fused_queries": []}
    return pack(header, _sections("heads", _heads_section(capture, list(queries), item)))


def input_view_jpeg(image: Image.Image, geometry: InputGeometry, quality: int = 85) -> bytes:
    """JPEG of what the model saw: ``geometry.crop_box`` of the photo, resampled to the input size."""
    top, left, height, width = (float(v) for v in geometry.crop_box)
    out_h, out_w = (int(v) for v in geometry.input_size)
    view = image.convert("RGB").transform((out_w, out_h), Image.Transform.EXTENT,
                                          (left, top, left + width, top + height), Image.Resampling.BILINEAR)
    return encode_jpeg(view, quality=quality)


class PayloadReader:
    """Decodes attention rows from payload blobs exactly as the browser component does (float32).

    Args:
        blobs: The capture's payload and any :func:`query_rows_payload` blobs; later ones add queries.
    """

    def __init__(self, *blobs: bytes) -> None:
        self.header, _ = unpack(blobs[0])
        self._heads: dict[int, tuple[np.ndarray, ...]] = {}
        self._fused: dict[int, tuple[np.ndarray, ...]] = {}
        for blob in blobs:
            header, sections = unpack(blob)
            for store, name, queries in ((self._heads, "heads", "head_queries"),
                                         (self._fused, "fused", "fused_queries")):
                for i, q in enumerate(header[queries]):
                    store[q] = tuple(sections[f"{name}{part}"][i] for part in ("", "_lo", "_step", "_prefix"))

    @property
    def head_queries(self) -> list[int]:
        return sorted(self._heads)

    @property
    def fused_queries(self) -> list[int]:
        return sorted(self._fused) if self._fused else sorted(self._heads)

    def row(self, query: int, layer: int, head: int | str) -> np.ndarray | None:
        """The decoded row (N,) float32 of ``query`` in ``layer`` for a head index or a fusion, or None."""
        if isinstance(head, str):
            if query in self._fused:
                codes, lo, step, prefix = self._fused[query]
                f = FUSIONS.index(head)
                patches = lo[layer, f] + codes[layer, f].astype(np.float32) * step[layer, f]  # (N - P,)
                return np.concatenate([prefix[layer, f], patches])
            if query not in self._heads:
                return None
            heads = self._decoded_heads(query, layer)  # (H, N)
            if head == "mean":  # the browser sums in float32, head by head, then divides
                total = np.zeros(heads.shape[1], np.float32)
                for h in heads:
                    total += h
                return total / np.float32(len(heads))
            return heads.max(0) if head == "max" else heads.min(0)
        if query not in self._heads:
            return None
        return self._decoded_heads(query, layer)[head]

    def _decoded_heads(self, query: int, layer: int) -> np.ndarray:
        codes, lo, step, prefix = self._heads[query]
        patches = lo[layer][:, None] + codes[layer].astype(np.float32) * step[layer][:, None]  # (H, N - P)
        return np.concatenate([prefix[layer], patches], axis=-1)  # (H, N)
