"""What the tokens themselves carry: principal components of patch features, and token norms.

``feature_pca`` shows a layer's patch tokens as colour: their first three principal components as RGB
(Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers" (DINO), and Oquab et al.
2023, DINOv2, Fig. 1), so that patches of the same part of an object get the same colour.

``token_norms`` gives every token's L2 norm after every block: Darcet et al. 2024, "Vision Transformers
Need Registers", found a few high-norm patch tokens in background regions that the model recycles as
global storage; registers absorb them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._convert import is_capture, to_numpy

if TYPE_CHECKING:
    from vitviz.capture import Capture
    from vitviz.layout import TokenLayout

    from ._convert import Array


__all__ = ["feature_pca", "token_norm_map", "token_norms"]


def _hidden_states(source: Capture | Array, item: int) -> Array:
    """Tokens of one image (L+1, N, D) from a Capture or an array with or without a batch axis."""
    if is_capture(source):
        return source.hidden_states[item]  # (L+1, N, D)
    return source[item] if source.ndim == 4 else source


def _layer_tokens(tokens: Capture | Array, layer: int | None, item: int) -> np.ndarray:
    """One layer's tokens (N, D) from (N, D), (L+1, N, D), (B, L+1, N, D) or a Capture."""
    if is_capture(tokens) or tokens.ndim >= 3:
        if layer is None:
            raise ValueError("hidden states (L+1, N, D) need a layer (0: block 0's input, L: last block's output)")
        tokens = _hidden_states(tokens, item)[layer]  # (N, D)
    tokens = to_numpy(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"expected tokens (N, D), got shape {tokens.shape}")
    return tokens


def _sign_fix(scores: np.ndarray) -> np.ndarray:
    """Flip each column so that its largest-magnitude entry is positive."""
    peak = scores[np.abs(scores).argmax(axis=0), np.arange(scores.shape[1])]  # (k,)
    return scores * np.where(peak < 0, -1.0, 1.0)


def _unit_range(values: np.ndarray) -> np.ndarray:
    """Min-max scale each column to [0, 1]; a constant column becomes 0.5."""
    low, high = values.min(axis=0), values.max(axis=0)  # (k,) each
    span = high - low
    scaled = (values - low) / np.where(span > 0, span, 1.0)
    return np.where(span > 0, scaled, 0.5)


def feature_pca(tokens: Capture | Array, layout: TokenLayout, layer: int | None = None, item: int = 0) -> np.ndarray:
    """The first three principal components of a layer's patch tokens, as an RGB image over the patch grid.

    The patch tokens are centred and decomposed by SVD; component ``k``'s scores become channel ``k``,
    min-max scaled to [0, 1]. Each component's sign is fixed so that its largest-magnitude score is
    positive, so the colours do not flip between runs or under ``tokens -> -tokens``. Prefix tokens are left
    out of the decomposition. Tokens with NaN or infinity give an all-NaN image.

    Args:
        tokens: One layer's tokens (N, D) (all N tokens or just the patches), hidden states (L+1, N, D) or
            (B, L+1, N, D), or a Capture.
        layout: Token layout.
        layer: Hidden-state index for (L+1, N, D) input: 0 enters block 0, ``i`` leaves block ``i-1``.
        item: Batch item for batched input or a Capture.

    Returns:
        float64 array (gh, gw, 3) in [0, 1].
    """
    tokens = _layer_tokens(tokens, layer, item)  # (N, D)
    if tokens.shape[0] == layout.num_tokens:
        tokens = tokens[layout.patch_slice]  # (Np, D)
    elif tokens.shape[0] != layout.num_patches:
        raise ValueError(f"{tokens.shape[0]} tokens do not match {layout.describe()}")
    if not np.isfinite(tokens).all():  # poisoned weights or overflow: no decomposition, no exception
        return np.full((*layout.grid_size, 3), np.nan)
    centred = tokens - tokens.mean(axis=0, keepdims=True)  # (Np, D)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)  # u: (Np, K)
    k = min(3, len(s))
    scores = _sign_fix(u[:, :k] * s[:k])  # (Np, k)
    rgb = np.full((len(scores), 3), 0.5)  # missing components stay neutral grey
    rgb[:, :k] = _unit_range(scores)
    return rgb.reshape(*layout.grid_size, 3)  # (gh, gw, 3)


def token_norms(hidden_states: Capture | Array, item: int = 0) -> np.ndarray:
    """L2 norm of every token after every block (Darcet et al. 2024).

    Args:
        hidden_states: (L+1, N, D), (B, L+1, N, D) or a Capture.
        item: Batch item for batched input or a Capture.

    Returns:
        float64 array (L+1, N): row 0 is block 0's input, row ``i`` block ``i-1``'s output.
    """
    states = to_numpy(_hidden_states(hidden_states, item))  # (L+1, N, D)
    if states.ndim != 3:
        raise ValueError(f"expected hidden states (L+1, N, D), got shape {states.shape}")
    return np.linalg.norm(states, axis=-1)  # (L+1, N)


def token_norm_map(norms: Array, layout: TokenLayout, layer: int | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """One layer's token norms on the patch grid, with the prefix tokens' norms apart.

    Args:
        norms: (L+1, N) from :func:`token_norms`, or one layer's (N,).
        layout: Token layout.
        layer: Row of ``norms`` for (L+1, N) input (negative counts from the end).

    Returns:
        ``(grid (gh, gw), {prefix name: norm})``.
    """
    norms = to_numpy(norms)
    if norms.ndim == 2:
        if layer is None:
            raise ValueError("norms (L+1, N) need a layer")
        norms = norms[layer]  # (N,)
    prefix, grid = layout.split(norms)  # (P,), (gh, gw)
    return grid, dict(zip(layout.prefix_names, prefix.tolist()))
