"""Every map over the photo dims what the model never sees (issue 22: only the Patches page did), the Patches legend
names only what the image has, and the token sequence's short last row has no ghost beside its tiles."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from vitviz.figures import attention_map_figure, feature_pca_figure, patch_grid_figure, rollout_figure
from vitviz.figures.mosaics import mosaic_figure
from vitviz.figures.placement import UNSEEN_FILL
from vitviz.images import input_geometry
from vitviz.layout import TokenLayout

CONFIG = {"input_size": (3, 64, 64), "interpolation": "bilinear", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
          "crop_pct": 1.0, "crop_mode": "center"}
LAYOUT = TokenLayout(prefix_names=("cls",), grid_size=(4, 4), patch_size=(16, 16), input_size=(64, 64),
                     global_pool="token")


def _dimmed(fig) -> list[tuple[float, float, float, float]]:
    """The rectangles (x0, y0, x1, y1) the figure covers with the unseen fill, sorted."""
    return sorted((s.x0, s.y0, s.x1, s.y1) for s in fig.layout.shapes if s.fillcolor == UNSEEN_FILL)


def _maps(image: Image.Image, geometry):
    rng = np.random.default_rng(0)
    row = rng.dirichlet(np.ones(LAYOUT.num_tokens))
    return {
        "attention": attention_map_figure(row, image, geometry, LAYOUT, query=0, layer=0, head=0),
        "rollout": rollout_figure(rng.random((2, 4, 4)), image, geometry, LAYOUT, start_layer=0),
        "feature_pca": feature_pca_figure(rng.random((4, 4, 3)), image, geometry, LAYOUT),
        "patches": patch_grid_figure(image, geometry, LAYOUT),
    }


def test_every_map_dims_the_sides_a_centre_crop_hides():
    strip = Image.new("RGB", (1000, 200), (0, 200, 0))
    geometry = input_geometry((200, 1000), CONFIG)  # the centre 200 × 200
    for name, fig in _maps(strip, geometry).items():
        rects = _dimmed(fig)
        panels = 2 if name == "feature_pca" else 1  # the photo and the PCA colours, side by side
        assert len(rects) == 2 * panels, name
        assert rects[0] == pytest.approx((0.0, 0.0, 400.0, 200.0)), name  # the left 400 px
        assert rects[-1] == pytest.approx((600.0, 0.0, 1000.0, 200.0)), name  # the right 400 px


def test_a_square_photo_dims_nothing_and_its_legend_promises_nothing():
    square = Image.new("RGB", (300, 300), (0, 200, 0))
    for name, fig in _maps(square, input_geometry((300, 300), CONFIG)).items():
        assert _dimmed(fig) == [], name
    assert patch_grid_figure(square, input_geometry((300, 300), CONFIG), LAYOUT).layout.title.subtitle.text == ""


@pytest.mark.parametrize("fit, legend", [("crop", "dark: not seen by the model"), ("letterbox", "orange: padding"),
                                         ("squash", "")])
def test_the_patches_legend_names_only_what_the_image_has(fit, legend):
    strip = Image.new("RGB", (1000, 200), (0, 200, 0))
    fig = patch_grid_figure(strip, input_geometry((200, 1000), CONFIG, fit=fit), LAYOUT)
    assert fig.layout.title.subtitle.text == legend
    assert bool(_dimmed(fig)) == (fit == "crop")


def test_a_short_last_row_of_tiles_is_drawn_without_the_empty_slots():
    tiles = np.random.default_rng(1).integers(0, 255, (7, 8, 8, 3), dtype=np.uint8)  # 3 per row: 3 + 3 + 1
    fig = mosaic_figure(tiles, 3, [f"t{i}" for i in range(7)], fmt="JPEG")
    images = [t for t in fig.data if t.type == "image"]
    assert len(images) == 2
    full, last = (Image.open(io.BytesIO(base64.b64decode(t.source.split(",", 1)[1]))) for t in images)
    assert full.size == (3 * 9 - 1, 2 * 9 - 1)  # two full rows
    assert last.size == (8, 8) and images[1].y0 == pytest.approx(18.5)  # one tile, nothing beside it
    heat = next(t for t in fig.data if t.type == "heatmap")
    assert np.asarray(heat.z).shape == (3, 3) and np.isnan(np.asarray(heat.z, dtype=float)).sum() == 2
