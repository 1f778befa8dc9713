"""Position-embedding similarity: how a ViT's learned position embeddings encode 2-D distance.

Dosovitskiy et al. 2021 ("An Image is Worth 16x16 Words"), Fig. 7 centre: for every patch position, the
cosine similarity of its position embedding to the embedding of every other position. Closer patches get
more similar embeddings, and row/column structure appears, although the model was only ever given a 1-D
sequence of embeddings.

Only models with a learned (or fixed) absolute position embedding have such a picture. Models that encode
position inside attention (rotary embeddings, relative position bias) or not at all raise
``PositionEmbeddingUnavailable`` with the reason, rather than showing noise. Models with both kinds (EVA-02:
absolute embedding plus RoPE) show their absolute embedding, which is real but not the whole story.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from timm.layers import resample_abs_pos_embed, resample_abs_pos_embed_nhwc
from torch import nn

from ..i18n import _
from ._convert import to_numpy

if TYPE_CHECKING:
    from vitviz.layout import TokenLayout

    from ._convert import Array


__all__ = ["PositionEmbeddingUnavailable", "patch_position_embeddings", "position_similarity",
           "PositionLocality", "position_locality"]


class PositionEmbeddingUnavailable(ValueError):
    """The model has no absolute position embedding to compare (RoPE, relative position bias, none)."""


def _why_missing(model: nn.Module) -> str:
    name = type(model).__name__
    kinds = {type(m).__name__.lower() for m in model.modules()}
    if getattr(model, "rope", None) is not None or any("rotary" in k or "rope" in k for k in kinds):
        why = _("{model} encodes position with rotary embeddings (RoPE) that rotate queries and keys inside every "
                "attention layer; it has no learned absolute position embedding per patch, so there is no "
                "position-embedding similarity to show")
    elif any("relpos" in k or "relativeposition" in k for k in kinds) or any(
        n.endswith("rel_pos") for n, _module in model.named_modules()
    ):
        why = _("{model} encodes position with a relative position bias added inside every attention layer; it "
                "has no learned absolute position embedding per patch, so there is no position-embedding "
                "similarity to show")
    else:
        why = _("{model} has no position embedding at all (pos_embed is None); it has no learned absolute "
                "position embedding per patch, so there is no position-embedding similarity to show")
    return why.format(model=name)


def _model_patch_embeddings(model: nn.Module, grid_size: tuple[int, int]) -> torch.Tensor:
    """The position embeddings a timm model adds to its patch tokens at ``grid_size``: (1, gh*gw, D)."""
    pos_embed = getattr(model, "pos_embed", None)
    if not isinstance(pos_embed, torch.Tensor):
        raise PositionEmbeddingUnavailable(_why_missing(model))
    old_grid = tuple(int(g) for g in model.patch_embed.grid_size)
    with torch.no_grad():
        if pos_embed.ndim == 4:  # (1, gh, gw, D), channels-last grid (no prefix entries)
            grid = resample_abs_pos_embed_nhwc(pos_embed, list(grid_size))  # (1, gh, gw, D)
            return grid.reshape(1, -1, grid.shape[-1])  # (1, gh*gw, D)
        # timm's rule: no_embed_class models hold entries for patches only, others for every prefix token
        num_prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 0))
        expected = num_prefix + old_grid[0] * old_grid[1]
        if pos_embed.shape[1] != expected:
            raise ValueError(
                f"pos_embed has {pos_embed.shape[1]} entries but {type(model).__name__} expects {expected} "
                f"({num_prefix} prefix + {old_grid[0]}x{old_grid[1]} patches)"
            )
        # exactly what VisionTransformer._pos_embed does at another grid (dynamic_img_size)
        pos_embed = resample_abs_pos_embed(
            pos_embed, new_size=list(grid_size), old_size=list(old_grid), num_prefix_tokens=num_prefix
        )  # (1, num_prefix + gh*gw, D)
        return pos_embed[:, num_prefix:]  # (1, gh*gw, D)


def _square_side(n: int) -> int | None:
    side = math.isqrt(n) if n > 0 else 0
    return side if side > 0 and side * side == n else None


def _array_patch_embeddings(pos_embed: Array, layout: TokenLayout) -> np.ndarray:
    """Patch rows of a bare position-embedding array, resampled from a square grid when needed: (gh*gw, D)."""
    pe = torch.as_tensor(to_numpy(pos_embed))
    grid = tuple(layout.grid_size)
    if pe.ndim == 4 or (pe.ndim == 3 and tuple(pe.shape[:2]) == grid):  # (1, gh', gw', D) or (gh, gw, D)
        pe = pe.reshape(1, *pe.shape[-3:])  # (1, gh', gw', D)
        return resample_abs_pos_embed_nhwc(pe, list(grid)).reshape(-1, pe.shape[-1]).numpy()  # (gh*gw, D)
    if pe.ndim == 2:
        pe = pe[None]  # (1, T, D)
    if pe.ndim != 3 or pe.shape[0] != 1:
        raise ValueError(f"expected a position embedding (1, T, D), (T, D) or (gh, gw, D), got {tuple(pe.shape)}")
    tokens, prefix = pe.shape[1], layout.num_prefix_tokens
    if tokens in (layout.num_patches, layout.num_tokens):
        return pe[0, tokens - layout.num_patches:].numpy()  # (gh*gw, D)
    for num_prefix in (prefix, 0):  # a square grid of another size, with or without prefix entries
        side = _square_side(tokens - num_prefix)
        if side is not None:
            pe = resample_abs_pos_embed(
                pe, new_size=list(grid), old_size=[side, side], num_prefix_tokens=num_prefix
            )  # (1, num_prefix + gh*gw, D)
            return pe[0, num_prefix:].numpy()  # (gh*gw, D)
    raise ValueError(f"cannot place {tokens} position embeddings on {layout.describe()}")


def patch_position_embeddings(model_or_pos_embed: nn.Module | Array, layout: TokenLayout) -> np.ndarray:
    """The absolute position embedding of every patch position, as the model adds it at ``layout``'s grid.

    Prefix entries (class, distillation, register tokens) are dropped following the model: timm's
    ``no_embed_class`` models (DeiT-3, DINOv2 with registers, ...) have none, the others one per prefix
    token. When the layout's grid differs from the grid the embedding was learned at, it is resampled with
    timm's ``resample_abs_pos_embed`` exactly as the model does at run time.

    Args:
        model_or_pos_embed: A timm ViT-family model, or a bare embedding (1, T, D), (T, D) or (gh, gw, D)
            whose T is the layout's patch count, token count, or a square grid (plus the layout's prefix).
        layout: The TokenLayout the model runs at.

    Returns:
        float64 array (gh, gw, D).

    Raises:
        PositionEmbeddingUnavailable: For a model without an absolute position embedding.
    """
    grid = tuple(layout.grid_size)
    if isinstance(model_or_pos_embed, nn.Module):
        patches = to_numpy(_model_patch_embeddings(model_or_pos_embed, grid)[0])  # (gh*gw, D)
    else:
        patches = to_numpy(_array_patch_embeddings(model_or_pos_embed, layout))  # (gh*gw, D)
    return patches.reshape(*grid, -1)  # (gh, gw, D)


def position_similarity(model_or_pos_embed: nn.Module | Array, layout: TokenLayout) -> np.ndarray:
    """Cosine similarity between the position embeddings of every pair of patch positions.

    Dosovitskiy et al. 2021, Fig. 7 centre. ``sim[r, c]`` is the tile for position ``(r, c)``: its
    similarity to every position of the grid. The result is symmetric (``sim[r, c, r', c'] ==
    sim[r', c', r, c]``) with ones on the diagonal; an all-zero embedding has similarity 0 to everything.

    Args:
        model_or_pos_embed: A timm ViT-family model or a bare embedding (see
            :func:`patch_position_embeddings`).
        layout: The TokenLayout the model runs at.

    Returns:
        float64 array (gh, gw, gh, gw) with values in [-1, 1].

    Raises:
        PositionEmbeddingUnavailable: For a model without an absolute position embedding.
    """
    grid = tuple(layout.grid_size)
    emb = patch_position_embeddings(model_or_pos_embed, layout).reshape(grid[0] * grid[1], -1)  # (N, D)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)  # (N, 1)
    unit = emb / np.where(norms > 0, norms, 1.0)  # (N, D)
    sim = np.clip(unit @ unit.T, -1.0, 1.0)  # (N, N)
    return sim.reshape(*grid, *grid)  # (gh, gw, gh, gw)



@dataclass(frozen=True)
class PositionLocality:
    """What a position similarity says about the 2-D layout, in three numbers.

    Attributes:
        neighbours: Mean cosine similarity of a position to its 4-neighbours.
        distance_correlation: Pearson correlation, over all pairs of distinct positions, between their
            similarity and their distance on the grid. Strongly negative (near −1) when similarity falls with
            distance, as in ImageNet ViTs (ViT paper, Fig. 7 centre).
        border_correlation: The same with the difference of the two positions' distances to the grid's
            border: strongly negative when the embeddings mostly encode how far a patch is from the border.
    """

    neighbours: float
    distance_correlation: float
    border_correlation: float


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def position_locality(sim: np.ndarray) -> PositionLocality:
    """Summarise a ``(gh, gw, gh, gw)`` position similarity (:func:`position_similarity`)."""
    sim = np.asarray(sim, dtype=np.float64)
    gh, gw = sim.shape[:2]
    rows, cols = np.indices((gh, gw)).reshape(2, -1)  # (P,) each, P = gh*gw
    dr, dc = np.abs(rows[:, None] - rows[None]), np.abs(cols[:, None] - cols[None])  # (P, P)
    border = np.minimum.reduce([rows, cols, gh - 1 - rows, gw - 1 - cols])  # (P,) steps to the border
    flat = sim.reshape(gh * gw, gh * gw)  # (P, P)
    pairs = ~np.eye(gh * gw, dtype=bool)
    near = flat[(dr + dc) == 1]
    return PositionLocality(
        neighbours=float(near.mean()) if near.size else float("nan"),
        distance_correlation=_correlation(np.hypot(dr, dc)[pairs], flat[pairs]),
        border_correlation=_correlation(np.abs(border[:, None] - border[None])[pairs], flat[pairs]),
    )
