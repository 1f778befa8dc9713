"""Principal components of the patch-embedding filters.

Dosovitskiy et al. 2021 ("An Image is Worth 16x16 Words"), Fig. 7 left: the first principal components of
the learned linear patch embedding look like plausible basis functions for a low-dimensional
representation of each patch's fine structure. The embedding is ``D`` filters of ``C x p x p`` weights;
the components here are those of the ``D`` filters seen as points in ``C*p*p`` dimensions, centred on their
mean (standard PCA).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from ._convert import to_numpy

if TYPE_CHECKING:
    from ._convert import Array


__all__ = ["EmbeddingFilters", "embedding_filters"]


@dataclass(frozen=True)
class EmbeddingFilters:
    """Principal components of a patch embedding, ready to show as image tiles.

    Attributes:
        tiles: (n, ph, pw, 3) float64 in [0, 1]: each component scaled by its largest absolute weight so
            that 0.5 is a zero weight (grey); single-channel filters are repeated to grey.
        components: (n, C, ph, pw) float64 unit-norm components, in the weight's own layout.
        explained_variance_ratio: (n,) share of the filters' total variance each component explains.
    """

    tiles: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray

    def first(self, n: int) -> EmbeddingFilters:
        """The first ``n`` components (all when there are fewer): equal to ``embedding_filters(..., n=n)``
        of the same weight, since each component is scaled and sign-fixed on its own."""
        n = max(0, int(n))
        return EmbeddingFilters(self.tiles[:n], self.components[:n], self.explained_variance_ratio[:n])


def _patch_weight(model_or_weight: nn.Module | Array) -> np.ndarray:
    if isinstance(model_or_weight, nn.Module):
        proj = getattr(getattr(model_or_weight, "patch_embed", None), "proj", None)
        if not isinstance(proj, nn.Conv2d):
            raise TypeError(f"{type(model_or_weight).__name__} has no Conv2d patch embedding (patch_embed.proj)")
        model_or_weight = proj.weight
    weight = to_numpy(model_or_weight)
    if weight.ndim != 4:
        raise ValueError(f"expected a patch-embedding weight (D, C, ph, pw), got shape {weight.shape}")
    return weight


def _sign_fix(components: np.ndarray) -> np.ndarray:
    """Flip each row so that its largest-magnitude entry is positive (deterministic PCA signs)."""
    peak = components[np.arange(len(components)), np.abs(components).argmax(axis=1)]  # (n,)
    return components * np.where(peak < 0, -1.0, 1.0)[:, None]


def embedding_filters(model_or_weight: nn.Module | Array, n: int = 28) -> EmbeddingFilters:
    """The first ``n`` principal components of the patch-embedding filters, as RGB tiles.

    Args:
        model_or_weight: A timm ViT-family model (its ``patch_embed.proj.weight`` is used) or a weight
            (D, C, ph, pw) with C of 1 or 3 (RGB, in the channel order the model reads).
        n: Number of components; fewer are returned when the filters span fewer dimensions
            (at most ``min(D, C*ph*pw)``).

    Returns:
        The EmbeddingFilters; all NaN when the weight holds NaN or infinity.
    """
    weight = _patch_weight(model_or_weight)
    d, c, ph, pw = weight.shape
    if c not in (1, 3):
        raise ValueError(f"filters with {c} input channels cannot be shown as RGB tiles")
    flat = weight.reshape(d, c * ph * pw)  # (D, C*ph*pw)
    if not np.isfinite(flat).all():  # poisoned weights: NaN results instead of an SVD error
        n = max(0, min(int(n), d, c * ph * pw))
        nan = np.full((n, c, ph, pw), np.nan)
        return EmbeddingFilters(np.full((n, ph, pw, 3), np.nan), nan, np.full(n, np.nan))
    centred = flat - flat.mean(axis=0, keepdims=True)  # (D, C*ph*pw)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)  # vt: (K, C*ph*pw)
    variance = singular**2
    total = variance.sum()
    n = max(0, min(int(n), len(singular)))
    components = _sign_fix(vt[:n])  # (n, C*ph*pw)
    ratio = variance[:n] / total if total > 0 else np.zeros(n)
    components = components.reshape(n, c, ph, pw)  # (n, C, ph, pw)
    peak = np.abs(components).reshape(n, c * ph * pw).max(axis=1, initial=0.0)  # (n,)
    scaled = components / np.where(peak > 0, peak, 1.0)[:, None, None, None]  # (n, C, ph, pw) in [-1, 1]
    tiles = 0.5 + 0.5 * scaled.transpose(0, 2, 3, 1)  # (n, ph, pw, C)
    if c == 1:
        tiles = np.repeat(tiles, 3, axis=-1)  # (n, ph, pw, 3)
    return EmbeddingFilters(tiles=tiles, components=components, explained_variance_ratio=ratio)
