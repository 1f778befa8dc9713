"""The order in which a perturbation test removes patches or pixels: a map's ranking, its ties broken at random.

A map ranks the patches (token dropping) or the pixels (Chefer's pixel protocol, after bilinear upsampling of a
patch map) from most to least relevant. Where several values are equal, the map says nothing about their order,
so no fixed rule may decide it: breaking ties in raster order (``argsort(kind='stable')``) would remove the
top-left pixels of a tied group first, which favours or penalises a map by where its ties lie (Grad-CAM's zero
patches tie 2,016 of 9,216 pixels of a 96-pixel image). Here ties are broken by a seeded random key, and the
test is averaged over ``tie_orders`` such orders (:data:`DEFAULT_TIE_ORDERS`). Only a tie that straddles one
of the test's step boundaries can change a removed set; a map without such a tie gets one order, since every
random order would remove the same sets.

A NaN ranks as least relevant. The orders are deterministic functions of the map, the seed and the order index
(``numpy.random.default_rng((seed, k))``), the same in every process.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vitviz.attribution import Relevance

__all__ = ["DEFAULT_TIE_ORDERS", "ORDERS", "check_order", "map_scores", "pixel_ranking", "removal_order",
           "removal_orders", "straddling_ties"]

ORDERS = ("most", "least")
DEFAULT_TIE_ORDERS = 4
"""Random tie-breaking orders a perturbation test averages over, where a map has ties that matter."""


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(map(repr, ORDERS))}, not {order!r}")
    return order


def map_scores(relevance: Relevance | np.ndarray) -> np.ndarray:
    """(gh, gw) float64 scores from a ``Relevance`` or an array; NaN ranks as least relevant."""
    patches = getattr(relevance, "patches", relevance)
    scores = np.asarray(patches, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"a relevance map must be (grid_h, grid_w), got shape {scores.shape}")
    return np.where(np.isfinite(scores), scores, -np.inf)


def _keys(scores: np.ndarray, order: str) -> np.ndarray:
    """Flat sort keys: ascending key = removed first."""
    flat = np.asarray(scores, dtype=np.float64).reshape(-1)
    flat = np.where(np.isnan(flat), -np.inf, flat)
    return -flat if check_order(order) == "most" else flat


def removal_order(scores: np.ndarray, order: str, *, seed: int | None = None, tie_order: int = 0) -> np.ndarray:
    """Flat indices of ``scores`` in the order they are removed.

    Args:
        scores: Relevance of each patch or pixel (any shape; flattened row-major, the token order).
        order: ``'most'`` removes the highest score first, ``'least'`` the lowest first.
        seed: Seed of the random tie-breaking; None breaks ties by index (lower first).
        tie_order: Which of the random tie-breaking orders (0, 1, …) of ``seed``.
    """
    key = _keys(scores, order)
    if seed is None:
        return np.argsort(key, kind="stable")
    tiebreak = np.random.default_rng((int(seed), int(tie_order))).random(key.size)
    return np.lexsort((tiebreak, key))  # by key, ties by the random draw


def straddling_ties(scores: np.ndarray, order: str, counts: Sequence[int]) -> bool:
    """Whether a group of equal scores crosses one of the step boundaries ``counts`` (patches or pixels removed
    so far): only then does the tie order change what a step removes."""
    key = np.sort(_keys(scores, order))
    inner = [int(c) for c in counts if 0 < int(c) < key.size]
    return any(key[c - 1] == key[c] for c in inner)


def removal_orders(scores: np.ndarray, order: str, counts: Sequence[int], *, tie_orders: int = DEFAULT_TIE_ORDERS,
                   seed: int | None = 0) -> np.ndarray:
    """(K, n) removal orders of one map: ``tie_orders`` random tie-breaking orders where ties straddle a step
    boundary (see :func:`straddling_ties`), else one (K = 1). ``seed=None`` breaks ties by index instead (one
    order: the rule of a stable sort, for comparing with code that uses it)."""
    if isinstance(tie_orders, bool) or int(tie_orders) != tie_orders or tie_orders < 1:
        raise ValueError(f"tie_orders must be a whole number >= 1, not {tie_orders!r}")
    count = int(tie_orders) if seed is not None and straddling_ties(scores, order, counts) else 1
    return np.stack([removal_order(scores, order, seed=seed, tie_order=k) for k in range(count)])


def pixel_ranking(relevance: Relevance | np.ndarray, input_size: tuple[int, int], *,
                  pooled: bool = False) -> np.ndarray:
    """(H, W) per-pixel scores for Chefer's pixel removal.

    A method's own per-pixel map (``Relevance.pixels``) is used as it is, unless ``pooled``; a (gh, gw) map (or
    the per-pixel map summed over each patch, ``Relevance.patches``) is upsampled bilinearly
    (``align_corners=False``, as ``torch.nn.functional.interpolate`` in Chefer's code).
    """
    import torch  # torch: heavy; vitviz.evaluation imports without it (the CLI's summary)
    import torch.nn.functional as F

    pixels = None if pooled else getattr(relevance, "pixels", None)
    if pixels is not None and tuple(np.shape(pixels)) == tuple(input_size):
        return np.asarray(pixels, dtype=np.float64)
    scores = torch.as_tensor(map_scores(relevance))
    finite = torch.isfinite(scores)
    scores = torch.nan_to_num(scores, neginf=float(scores[finite].min()) if finite.any() else 0.0)
    up = F.interpolate(scores[None, None], size=tuple(input_size), mode="bilinear", align_corners=False)
    return up[0, 0].numpy()  # (H, W)
