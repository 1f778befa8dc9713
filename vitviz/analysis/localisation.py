"""Does a relevance map point at the object? Scores of one map against the object's mask.

Every function takes maps over the patch grid, ``(B, gh, gw)``, and masks over the model-input pixels,
``(B, H, W)`` bool, batch first; a patch is ``(ph, pw)`` pixels and the grid tiles the top-left
``(gh * ph, gw * pw)`` pixels of the input (the pixels a strided patch embedding never reads, if any, are
left out of every score). Protocols:

pointing game (Zhang et al. 2016, ECCV, "Top-down Neural Attention by Excitation Backprop"; IJCV 2018)
    A hit when the map's maximum falls on the object. The original accepts a maximum within 15 px of the
    object on 224-px images; here the maximum is a patch, and a hit is that patch overlapping the object
    (a 12-px patch on a 96-px shapes image is about the same tolerance). The arg-max of a map with ties
    is its first maximal patch in row-major order. :func:`pointing_hits` with ``min_cover=0.5`` is a
    stricter variant: the object must cover at least half of that patch.
top-region IoU (the shapes model's own evaluation, ``docs/model_card.md``)
    The ``k`` most relevant patches, ``k`` = the object's area in patches (rounded, at least 1), taken as
    a pixel region, against the mask. A map that ranks the object's patches first scores the best IoU that
    whole patches allow; ties are broken by patch order (stable sort), so a flat map takes the first ``k``.
segmentation mIoU (Chefer, Gur & Wolf 2021, CVPR, Sec. 4, ImageNet-segmentation protocol)
    The map is min-max normalised, upsampled to the input pixels bilinearly (``align_corners=False``),
    and thresholded at its own mean: pixels above are foreground. IoU is taken for both classes,
    foreground and background, from intersections and unions summed over the whole data set, and
    averaged over the two classes. :func:`segmentation_counts` returns one image's four counts so that a
    data-set evaluation can sum them (:func:`segmentation_miou`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "SEGMENTATION_COUNTS",
    "as_patch",
    "patch_coverage",
    "pointing_hits",
    "segmentation_counts",
    "segmentation_miou",
    "top_region_iou",
    "upsample_map",
]

SEGMENTATION_COUNTS = ("seg_fg_inter", "seg_fg_union", "seg_bg_inter", "seg_bg_union")


def as_patch(patch_size: int | Sequence[int]) -> tuple[int, int]:
    """``(ph, pw)`` from a side or a pair."""
    if isinstance(patch_size, (int, np.integer)):
        return int(patch_size), int(patch_size)
    ph, pw = patch_size
    return int(ph), int(pw)


def _tiled(masks: np.ndarray, grid: tuple[int, int], patch: tuple[int, int]) -> np.ndarray:
    """The masks' pixels that the patch grid covers, ``(B, gh * ph, gw * pw)``."""
    (gh, gw), (ph, pw) = grid, patch
    if masks.shape[1] < gh * ph or masks.shape[2] < gw * pw:
        raise ValueError(f"masks {masks.shape[1:]} are smaller than a {gh}x{gw} grid of {ph}x{pw} patches")
    return masks[:, : gh * ph, : gw * pw]


def patch_coverage(masks: np.ndarray, patch_size: int | Sequence[int]) -> np.ndarray:
    """Fraction of each patch covered by the object.

    Args:
        masks: ``(B, H, W)`` bool.
        patch_size: patch side, or ``(ph, pw)``, in pixels; the grid is ``(H // ph, W // pw)``.

    Returns:
        ``(B, gh, gw)`` float64 in [0, 1].
    """
    ph, pw = as_patch(patch_size)
    b, h, w = masks.shape
    gh, gw = h // ph, w // pw
    tiles = _tiled(masks, (gh, gw), (ph, pw)).reshape(b, gh, ph, gw, pw)  # (B, gh, ph, gw, pw)
    return tiles.mean(axis=(2, 4), dtype=np.float64)


def pointing_hits(maps: np.ndarray, coverage: np.ndarray, min_cover: float = 0.0) -> np.ndarray:
    """Whether each map's arg-max patch is object: coverage above 0 (default), or at least ``min_cover``.

    Args:
        maps: ``(B, gh, gw)`` relevance.
        coverage: ``(B, gh, gw)`` from :func:`patch_coverage`.
        min_cover: ``0.0`` for overlap (the pointing game), ``0.5`` for the strict variant (``>=``).

    Returns:
        ``(B,)`` bool.
    """
    b = maps.shape[0]
    best = maps.reshape(b, -1).argmax(axis=1)  # (B,)
    cover = coverage.reshape(b, -1)[np.arange(b), best]
    return cover > 0 if min_cover <= 0 else cover >= min_cover


def top_region_iou(maps: np.ndarray, masks: np.ndarray, patch_size: int | Sequence[int]) -> np.ndarray:
    """IoU between the mask and the region of the map's ``k`` top patches (``k`` = object area in patches).

    Args:
        maps: ``(B, gh, gw)`` relevance.
        masks: ``(B, H, W)`` bool.
        patch_size: patch side, or ``(ph, pw)``, in pixels.

    Returns:
        ``(B,)`` float64.
    """
    b, gh, gw = maps.shape
    ph, pw = as_patch(patch_size)
    masks = _tiled(masks, (gh, gw), (ph, pw))  # (B, gh*ph, gw*pw)
    k = np.maximum(1, np.rint(masks.reshape(b, -1).sum(1) / (ph * pw))).astype(int)  # (B,)
    order = np.argsort(-maps.reshape(b, -1), axis=1, kind="stable")  # (B, gh*gw)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(gh * gw)[None].repeat(b, 0), axis=1)
    top = (ranks < k[:, None]).reshape(b, gh, gw)  # (B, gh, gw)
    region = top.repeat(ph, axis=1).repeat(pw, axis=2)  # (B, gh*ph, gw*pw)
    inter = (region & masks).sum(axis=(1, 2))
    union = (region | masks).sum(axis=(1, 2))
    return inter / np.maximum(union, 1)


def upsample_map(maps: np.ndarray, patch_size: int | Sequence[int]) -> np.ndarray:
    """Patch maps upsampled to pixels as Chefer et al. do: bilinear, ``align_corners=False``.

    Args:
        maps: ``(B, gh, gw)``.
        patch_size: patch side, or ``(ph, pw)``, in pixels.

    Returns:
        ``(B, gh * ph, gw * pw)`` float64.
    """
    import torch  # torch: heavy, and only the segmentation test needs it (the other scores are numpy)
    import torch.nn.functional as F

    ph, pw = as_patch(patch_size)
    b, gh, gw = maps.shape
    grid = torch.as_tensor(np.asarray(maps, dtype=np.float64))[:, None]  # (B, 1, gh, gw)
    pixels = F.interpolate(grid, size=(gh * ph, gw * pw), mode="bilinear", align_corners=False)
    return pixels[:, 0].numpy()  # (B, gh*ph, gw*pw)


def segmentation_counts(maps: np.ndarray, masks: np.ndarray, patch_size: int | Sequence[int]) -> np.ndarray:
    """Per image: foreground intersection and union, background intersection and union, in pixels.

    The map is min-max normalised (a flat map stays flat), upsampled by :func:`upsample_map` and
    thresholded at its mean (foreground: strictly above), as in Chefer et al.'s segmentation test.

    Args:
        maps: ``(B, gh, gw)`` relevance.
        masks: ``(B, H, W)`` bool.
        patch_size: patch side, or ``(ph, pw)``, in pixels.

    Returns:
        ``(B, 4)`` int64, columns in the order of :data:`SEGMENTATION_COUNTS`.
    """
    b, gh, gw = maps.shape
    ph, pw = as_patch(patch_size)
    masks = _tiled(masks, (gh, gw), (ph, pw))  # (B, gh*ph, gw*pw)
    flat = np.asarray(maps, dtype=np.float64).reshape(b, -1)  # (B, gh*gw)
    low, span = flat.min(1, keepdims=True), np.ptp(flat, axis=1, keepdims=True)
    norm = ((flat - low) / np.where(span > 0, span, 1.0)).reshape(b, gh, gw)  # (B, gh, gw) in [0, 1]
    pixels = upsample_map(norm, (ph, pw))  # (B, gh*ph, gw*pw)
    fg = pixels > pixels.reshape(b, -1).mean(1)[:, None, None]  # (B, gh*ph, gw*pw)
    bg, obj_bg = ~fg, ~masks
    counts = [(fg & masks), (fg | masks), (bg & obj_bg), (bg | obj_bg)]
    return np.stack([c.sum(axis=(1, 2)) for c in counts], axis=1).astype(np.int64)  # (B, 4)


def segmentation_miou(counts: np.ndarray) -> float:
    """Mean over foreground and background of IoU from counts summed over a data set.

    Args:
        counts: ``(B, 4)`` from :func:`segmentation_counts` (or one image's ``(4,)``).

    Returns:
        The mIoU in [0, 1].
    """
    total = np.asarray(counts, dtype=np.float64).reshape(-1, 4).sum(0)
    fg = total[0] / max(total[1], 1.0)
    bg = total[2] / max(total[3], 1.0)
    return float((fg + bg) / 2)
