"""Patch grid geometry and patch extraction match what a ViT's patch embedding really does."""
import numpy as np
import pytest
import torch
from timm.layers import PatchEmbed

from vitviz.analysis import patch_grid, patch_tiles, patchify


def test_exact_grid_has_no_crop_or_pad():
    grid = patch_grid((224, 224), 16)
    assert grid.grid_size == (14, 14) and grid.num_patches == 196
    assert grid.crop == (0, 0) and grid.pad == (0, 0) and grid.exact
    assert grid.covered_size == (224, 224)


@pytest.mark.parametrize(
    "mode, grid_size, crop, pad, covered",
    [("crop", (14, 6), (6, 4), (0, 0), (224, 96)), ("pad", (15, 7), (0, 0), (10, 12), (240, 112))],
)
def test_non_dividing_patch_size_reports_crop_or_pad(mode, grid_size, crop, pad, covered):
    grid = patch_grid((230, 100), 16, mode=mode)
    assert grid.grid_size == grid_size
    assert grid.crop == crop and grid.pad == pad and not grid.exact
    assert grid.covered_size == covered
    # covered = image - crop + pad, for each side
    assert tuple(s - c + p for s, c, p in zip((230, 100), crop, pad)) == covered
    rows, cols = crop if mode == "crop" else pad
    assert f"{rows} px rows and {cols} px columns" in grid.describe()
    assert ("cropped" if mode == "crop" else "padded") in grid.describe()


def test_non_square_patches_and_boxes_tile_the_covered_area_once():
    grid = patch_grid((50, 70), (8, 12), mode="pad")  # 7 rows x 6 cols, 6 px rows and 2 px cols of pad
    assert grid.grid_size == (7, 6) and grid.pad == (6, 2)
    boxes = grid.boxes()
    assert boxes.shape == (42, 4)
    # row-major: patch k sits at row k // cols, col k % cols
    k = 13
    assert tuple(boxes[k]) == ((k // 6) * 8, (k % 6) * 12, 8, 12)
    coverage = np.zeros(grid.covered_size, dtype=int)
    for top, left, h, w in boxes:
        coverage[top : top + h, left : left + w] += 1
    assert (coverage == 1).all()


def test_image_smaller_than_a_patch():
    with pytest.raises(ValueError, match="smaller than one"):
        patch_grid((10, 40), 16, mode="crop")
    grid = patch_grid((10, 40), 16, mode="pad")
    assert grid.grid_size == (1, 3) and grid.pad == (6, 8)
    with pytest.raises(ValueError):
        patch_grid((32, 32), 16, mode="resize")


def test_patchify_hand_checked_order():
    x = np.arange(2 * 4 * 4).reshape(2, 4, 4)  # (C, H, W)
    flat = patchify(x, 2)
    assert flat.shape == (4, 8)
    # channel-major, then patch rows, then patch columns: the layout of conv.weight.reshape(D, -1)
    np.testing.assert_array_equal(flat[0], [0, 1, 4, 5, 16, 17, 20, 21])
    np.testing.assert_array_equal(flat[1], [2, 3, 6, 7, 18, 19, 22, 23])
    np.testing.assert_array_equal(flat[2], [8, 9, 12, 13, 24, 25, 28, 29])


def test_patchify_equals_conv_patch_embedding_with_crop():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 10, kernel_size=(8, 12), stride=(8, 12))
    x = torch.randn(3, 45, 62)  # neither side divisible: the conv drops 5 rows and 2 columns
    with torch.no_grad():
        tokens = conv(x[None]).flatten(2).transpose(1, 2)[0].double().numpy()  # (N, D)
    weight = conv.weight.detach().double().numpy().reshape(10, -1)
    expected = patchify(x, (8, 12)) @ weight.T + conv.bias.detach().double().numpy()
    assert tokens.shape == expected.shape == (5 * 5, 10)
    np.testing.assert_allclose(tokens, expected, rtol=1e-5, atol=1e-5)


def test_patchify_equals_timm_patch_embed_with_dynamic_pad():
    torch.manual_seed(1)
    embed = PatchEmbed(img_size=(48, 60), patch_size=(8, 12), in_chans=3, embed_dim=6,
                       strict_img_size=False, dynamic_img_pad=True)
    x = torch.randn(2, 3, 37, 50)  # pads to 40 x 60
    with torch.no_grad():
        tokens = embed(x).double().numpy()  # (B, N, D)
    weight = embed.proj.weight.detach().double().numpy().reshape(6, -1)
    flat = patchify(x, (8, 12), mode="pad")  # batched input keeps the batch axis
    assert flat.shape == (2, 5 * 5, 3 * 8 * 12)
    expected = flat @ weight.T + embed.proj.bias.detach().double().numpy()
    np.testing.assert_allclose(tokens, expected, rtol=1e-5, atol=1e-5)


def test_patch_tiles_match_image_crops_and_patchify():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(30, 44, 3), dtype=np.uint8)
    tiles = patch_tiles(image, (8, 12), mode="pad")  # 4 x 4 grid
    assert tiles.shape == (16, 8, 12, 3) and tiles.dtype == np.uint8
    np.testing.assert_array_equal(tiles[5], image[8:16, 12:24])  # row 1, col 1
    last = tiles[-1]  # row 3, col 3: 6 image rows and 8 image columns, the rest zero padding
    np.testing.assert_array_equal(last[:6, :8], image[24:30, 36:44])
    assert (last[6:] == 0).all() and (last[:, 8:] == 0).all()
    flat = patchify(image.transpose(2, 0, 1), (8, 12), mode="pad")  # (N, C*ph*pw)
    np.testing.assert_array_equal(flat.reshape(16, 3, 8, 12).transpose(0, 2, 3, 1), tiles)
    assert patch_tiles(image[..., 0], 4).shape == (7 * 11, 4, 4)
