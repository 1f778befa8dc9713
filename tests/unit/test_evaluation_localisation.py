"""Localisation metrics against hand-computed cases: pointing game, top-region IoU, Chefer's segmentation mIoU."""
from __future__ import annotations

import numpy as np
import pytest

from vitviz.evaluation.localisation import (
    patch_coverage,
    pointing_hits,
    segmentation_counts,
    segmentation_miou,
    top_region_iou,
    upsample_map,
)


def test_bilinear_upsampling_by_hand():
    # align_corners=False, 2 -> 4 samples the source at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1):
    # the weight of source cell 0 along an axis is 1, 0.75, 0.25, 0.
    up = upsample_map(np.array([[[1.0, 0.0], [0.0, 0.0]]]), 2)[0]
    w = np.array([1.0, 0.75, 0.25, 0.0])
    np.testing.assert_allclose(up, np.outer(w, w))


def test_segmentation_counts_by_hand():
    maps = np.array([[[1.0, 0.0], [0.0, 0.0]]] * 3)
    maps[2] = 7.0  # a flat map: nothing is above its mean, so no foreground at all
    masks = np.zeros((3, 4, 4), dtype=bool)
    masks[0, :2, :2] = True  # exactly the 4 pixels above the mean (0.25) of the upsampled map above
    masks[1, :3, :3] = True
    masks[2, :3, :3] = True
    counts = segmentation_counts(maps, masks, 2)
    # columns: fg inter, fg union, bg inter, bg union
    assert counts.tolist() == [[4, 4, 12, 12], [4, 9, 7, 12], [0, 9, 7, 16]]
    assert segmentation_miou(counts[0]) == 1.0
    assert segmentation_miou(counts[1]) == pytest.approx((4 / 9 + 7 / 12) / 2)
    # over a data set the counts are summed first (Chefer's total_inter / total_union), not averaged per image
    assert segmentation_miou(counts[1:]) == pytest.approx((4 / 18 + 14 / 28) / 2)


def test_segmentation_is_invariant_to_scaling_the_map():
    rng = np.random.default_rng(0)
    maps = rng.random((2, 3, 3))
    masks = rng.random((2, 12, 12)) > 0.6
    np.testing.assert_array_equal(segmentation_counts(maps, masks, 4), segmentation_counts(5 * maps - 2, masks, 4))


def test_non_square_patches_and_uncovered_border():
    masks = np.zeros((1, 4, 5), dtype=bool)  # width 5: the last column is outside a 4x2 grid of (1, 2) patches
    masks[0, 0, 2:4] = True  # patch (0, 1)
    masks[0, :, 4] = True  # never read by the patch embedding: left out of every score
    cover = patch_coverage(masks, (1, 2))
    assert cover.shape == (1, 4, 2)
    np.testing.assert_allclose(cover[0], [[0, 1], [0, 0], [0, 0], [0, 0]])
    maps = np.zeros((1, 4, 2))
    maps[0, 0, 1] = 1.0
    assert pointing_hits(maps, cover).tolist() == [True]
    np.testing.assert_allclose(top_region_iou(maps, masks, (1, 2)), [1.0])
    assert segmentation_counts(maps, masks, (1, 2)).shape == (1, 4)


def test_top_region_takes_as_many_patches_as_the_object_covers():
    masks = np.zeros((1, 6, 6), dtype=bool)
    masks[0, :4, :2] = True  # 8 pixels = 2 patches of 2x2
    maps = np.zeros((1, 3, 3))
    maps[0, 0, 0], maps[0, 1, 0], maps[0, 2, 2] = 3.0, 2.0, 1.0
    np.testing.assert_allclose(top_region_iou(maps, masks, 2), [1.0])  # top 2 patches = the object
    maps[0, 1, 0] = 0.5  # now the top 2 are (0, 0) and (2, 2): 4 of 12 pixels in common
    np.testing.assert_allclose(top_region_iou(maps, masks, 2), [4 / 12])


def test_masks_smaller_than_the_grid_are_refused():
    with pytest.raises(ValueError, match="smaller than"):
        top_region_iou(np.zeros((1, 3, 3)), np.zeros((1, 4, 4), dtype=bool), 2)
