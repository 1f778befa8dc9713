"""Mean attention distance: how far, in pixels, each head looks.

Dosovitskiy et al. 2021 ("An Image is Worth 16x16 Words"), Sec. 4.5, Fig. 7 right and Fig. 11: "the
average distance in image space across which information is integrated, based on the attention
weights", analogous to a CNN's receptive field size. For each head, every patch query's attention-weighted
mean distance from its own centre to the key patches' centres, averaged over the patch queries.

Only patch-to-patch attention counts: prefix tokens (class, registers) have no position. Each query's
attention over the patch keys is re-normalised to sum to 1 before weighting, so the distance is the
average over where the head looks *in the image*, independent of how much it attends to prefix tokens
(a query attending only to prefix tokens contributes distance 0).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ._convert import is_capture, to_numpy

if TYPE_CHECKING:
    from vitviz.layout import TokenLayout

    from ._convert import Array, AttentionSource


__all__ = ["mean_attention_distance", "patch_distances"]


def patch_distances(layout: TokenLayout) -> np.ndarray:
    """Euclidean distance between every pair of patch centres, in model-input pixels: (Np, Np)."""
    centres = np.asarray(layout.patch_centers(), dtype=np.float64)  # (Np, 2) as (y, x)
    return np.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=-1)  # (Np, Np)


def _layer_distance(attn: np.ndarray, distances: np.ndarray, layout: TokenLayout) -> np.ndarray:
    """Mean attention distance per head of one layer's attention (H, N, N): (H,)."""
    if attn.ndim != 3 or attn.shape[-1] != layout.num_tokens or attn.shape[-2] != layout.num_tokens:
        raise ValueError(f"attention of shape {attn.shape} does not match {layout.describe()}")
    out = np.empty(attn.shape[0])
    for head, weights in enumerate(attn):  # one head at a time, no (Np, Np) copies
        patches = weights[layout.patch_slice, layout.patch_slice]  # (Np, Np) view
        mass = patches.sum(axis=1, dtype=np.float64)  # (Np,) attention on patch keys
        weighted = np.einsum("qk,qk->q", patches, distances, dtype=np.float64)  # (Np,) sum_k a_qk d_qk
        out[head] = (weighted / np.where(mass > 0, mass, 1.0)).mean()  # rows re-normalised over patch keys
    return out


def mean_attention_distance(source: AttentionSource, layout: TokenLayout | None = None, item: int = 0) -> np.ndarray:
    """Mean attention distance of every head in every layer, in pixels of the model input.

    Args:
        source: A Capture (read one layer at a time), or one image's attention (L, H, N, N) or a list of L
            arrays (H, N, N).
        layout: Token layout; taken from the Capture when omitted. Patch centres come from its patch grid,
            so non-square grids and non-square patches are measured correctly.
        item: Batch item of a Capture.

    Returns:
        float64 array (L, H).
    """
    if is_capture(source):
        layout = source.layout if layout is None else layout
        layers = (source.attention(i)[item] for i in range(source.num_layers))  # (H, N, N) each
    elif layout is None:
        raise ValueError("attention arrays need a layout (vitviz.layout.TokenLayout)")
    else:
        if hasattr(source, "ndim") and source.ndim != 4:
            raise ValueError(f"expected one image's attention (L, H, N, N), got shape {tuple(source.shape)}")
        layers = iter(source)
    distances = patch_distances(layout)  # (Np, Np)
    return np.stack([_layer_distance(_native(a), distances, layout) for a in layers])  # (L, H)


def _native(attn: Array) -> np.ndarray:
    """A layer's attention as numpy without widening it (float32 stays float32; sums run in float64)."""
    if hasattr(attn, "detach"):
        return to_numpy(attn, np.float64 if attn.dtype == torch.float64 else np.float32)
    attn = np.asarray(attn)
    return attn if np.issubdtype(attn.dtype, np.floating) else attn.astype(np.float64)
