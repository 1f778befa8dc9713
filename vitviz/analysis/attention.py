"""Raw attention views: one query token's attention over the image, per layer and head.

The attention probabilities ``softmax(q k^T / sqrt(d))`` of one row are the weights with which the query
token mixes every token's values in that layer (Vaswani et al. 2017; for ViTs, Dosovitskiy et al. 2021,
Sec. 4.5 / Fig. 6 show such maps). A row covers prefix tokens (class, distillation, registers) and patches;
here the patch part is laid out on the patch grid and the prefix part is kept apart, by name, because
prefix tokens have no place in the image.

With a ``Capture`` only the one query row is computed (``capture.attention_row``), so these views never
build a full attention matrix, even with ``'qk'`` storage.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vitviz.layout import TokenLayout

from ._convert import is_capture, to_numpy

if TYPE_CHECKING:
    from ._convert import Array, AttentionSource, Query


__all__ = ["AttentionMap", "attention_grid", "attention_map", "query_index", "split_tokens"]

_HEAD_FUSIONS = ("mean", "max", "min")


@dataclass(frozen=True)
class AttentionMap:
    """One query's attention in one layer, split into the patch grid and the prefix tokens.

    Attributes:
        patches: (gh, gw) attention to each patch.
        prefix: Prefix-token name -> attention to it (``{'cls': 0.31, 'reg0': 0.12}``); empty when the
            model has no prefix tokens. With ``patches`` it sums to 1 for a single head or the head mean.
        layer: Layer index (0-based, non-negative).
        head: Head index, or ``'mean'`` / ``'max'`` / ``'min'`` over heads.
        query: Token index of the query.
    """

    patches: np.ndarray
    prefix: dict[str, float]
    layer: int
    head: int | str
    query: int

    def shares(self) -> dict[str, float]:
        """Each prefix token's and ``'all patches'``' share of the row's total; the shares sum to 1.

        For one head or the head mean these are the attention values themselves (the row sums to 1); a max
        or min over heads does not sum to 1 and is normalised here, so a share never exceeds 100 %. NaN for
        a row without a positive finite total.
        """
        values = {**{name: float(v) for name, v in self.prefix.items()}, "all patches": float(self.patches.sum())}
        total = sum(values.values())
        if not (np.isfinite(total) and total > 0):
            return {name: float("nan") for name in values}
        return {name: value / total for name, value in values.items()}


def query_index(query: Query, layout: TokenLayout) -> int:
    """The sequence index of a query given as ``'cls'`` (or another prefix name), ``(row, col)`` or an index.

    Raises:
        ValueError: For ``'cls'`` on a model without a class token, or an unknown name.
        IndexError: For a patch outside the grid or an index outside the sequence.
    """
    if isinstance(query, str):
        if query not in layout.prefix_names:
            if query == "cls":
                raise ValueError(
                    f"this model has no class token ({layout.describe()}); "
                    "choose a patch (row, col) or a token index"
                )
            raise ValueError(f"unknown query {query!r}; prefix tokens are {layout.prefix_names}")
        return layout.prefix_names.index(query)
    if isinstance(query, (tuple, list)):
        return layout.patch_index(int(query[0]), int(query[1]))
    index = int(query)
    if not 0 <= index < layout.num_tokens:
        raise IndexError(f"token {index} is outside the sequence of {layout.num_tokens} tokens")
    return index


def split_tokens(values: Array, layout: TokenLayout) -> tuple[np.ndarray, np.ndarray]:
    """Deprecated: ``(patches, prefix)``; use ``layout.split(values)``, which gives ``(prefix, patches)``."""
    warnings.warn("vitviz.analysis.split_tokens is deprecated: use TokenLayout.split (prefix first)",
                  DeprecationWarning, stacklevel=2)
    prefix, patches = layout.split(values)
    return patches, prefix


def _num_layers(source: AttentionSource) -> int:
    return int(source.num_layers) if is_capture(source) else len(source)


def _layer_index(layer: int, num_layers: int) -> int:
    if not -num_layers <= layer < num_layers:
        raise IndexError(f"layer {layer} out of range for {num_layers} layers")
    return layer % num_layers


def _query_row(source: AttentionSource, layer: int, query: int, item: int) -> np.ndarray:
    """One query's attention over all tokens for every head: (H, N) float64."""
    if is_capture(source):
        return to_numpy(source.attention_row(layer, query)[item])  # (H, N)
    attn = source[layer]  # (H, N, N)
    if attn.ndim != 3:
        raise ValueError(f"expected attention (L, H, N, N) or a list of (H, N, N), got a layer of {attn.shape}")
    return to_numpy(attn[:, query, :])  # (H, N)


def _fuse_heads(rows: np.ndarray, head: int | str) -> np.ndarray:
    """Select one head or fuse all heads of (H, ...) rows."""
    if isinstance(head, str):
        if head not in _HEAD_FUSIONS:
            raise ValueError(f"head must be an index or one of {_HEAD_FUSIONS}, not {head!r}")
        return getattr(rows, head)(axis=0)
    if not -len(rows) <= head < len(rows):
        raise IndexError(f"head {head} out of range for {len(rows)} heads")
    return rows[head]


def _resolve_layout(source: AttentionSource, layout: TokenLayout | None) -> TokenLayout:
    if layout is None:
        if not is_capture(source):
            raise ValueError("attention arrays need a layout (vitviz.layout.TokenLayout)")
        return source.layout
    return layout


def attention_map(
    source: AttentionSource,
    layer: int,
    head: int | str = "mean",
    query: Query = "cls",
    layout: TokenLayout | None = None,
    item: int = 0,
) -> AttentionMap:
    """One query token's attention in one layer: the map over patches and the prefix tokens' values.

    Args:
        source: A Capture, or one image's attention (L, H, N, N) / a list of L arrays (H, N, N).
        layer: Layer index (negative counts from the end).
        head: Head index, or ``'mean'`` / ``'max'`` / ``'min'`` over heads.
        query: ``'cls'`` (or another prefix name such as ``'reg0'``), a patch ``(row, col)``, or a token index.
        layout: Token layout; taken from the Capture when omitted.
        item: Batch item of a Capture.

    Returns:
        The AttentionMap.
    """
    layout = _resolve_layout(source, layout)
    layer = _layer_index(layer, _num_layers(source))
    index = query_index(query, layout)
    rows = _query_row(source, layer, index, item)  # (H, N)
    prefix, patches = layout.split(_fuse_heads(rows, head))  # (P,), (gh, gw)
    head = head if isinstance(head, str) else int(head) % len(rows)
    return AttentionMap(
        patches=patches,
        prefix=dict(zip(layout.prefix_names, prefix.tolist())),
        layer=layer,
        head=head,
        query=index,
    )


def attention_grid(
    source: AttentionSource,
    query: Query = "cls",
    layout: TokenLayout | None = None,
    item: int = 0,
    layers: Sequence[int] | None = None,
) -> np.ndarray:
    """Every layer's and head's attention map for one query, for a layers x heads overview.

    Args:
        source: A Capture, or one image's attention (L, H, N, N) / a list of L arrays (H, N, N).
        query: As in :func:`attention_map`.
        layout: Token layout; taken from the Capture when omitted.
        item: Batch item of a Capture.
        layers: Layer indices to include (default: all, in order).

    Returns:
        float64 array (L, H, gh, gw) of attention to the patches (prefix tokens left out).
    """
    layout = _resolve_layout(source, layout)
    num_layers = _num_layers(source)
    layers = range(num_layers) if layers is None else [_layer_index(i, num_layers) for i in layers]
    index = query_index(query, layout)
    rows = [_query_row(source, layer, index, item) for layer in layers]  # L × (H, N)
    return layout.split(np.stack(rows))[1]  # (L, H, gh, gw)
