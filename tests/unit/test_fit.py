"""What the model sees of a photo that is not square: the config's centre crop, or the whole photo letterboxed or
squashed (``vitviz.images.FITS``), through ``prepare_input`` and ``vitviz.pipeline.run``; the geometry says which."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vitviz.images import FITS, input_geometry, input_image, prepare_input, sees_whole_image

CONFIG = {"input_size": (3, 64, 64), "interpolation": "bilinear", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
          "crop_pct": 0.875, "crop_mode": "center"}


def _strip() -> Image.Image:
    """A 1000×200 photo: red on its left tenth, blue on its right tenth, green between."""
    pixels = np.zeros((200, 1000, 3), np.uint8)
    pixels[:, :, 1] = 255
    pixels[:, :100] = (255, 0, 0)
    pixels[:, 900:] = (0, 0, 255)
    return Image.fromarray(pixels)


def _colours(x) -> set[str]:
    seen = input_image(x, CONFIG).reshape(-1, 3).astype(int)  # (H·W, 3)
    names = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "grey": (128, 128, 128)}
    return {name for name, rgb in names.items() if (np.abs(seen - rgb).max(-1) < 40).sum() > 20}


def test_the_centre_crop_of_a_strip_hides_both_ends():
    x, geometry = prepare_input(_strip(), CONFIG)
    assert _colours(x) == {"green"}
    assert not sees_whole_image(geometry)
    top, left, height, width = geometry.crop_box
    assert height < 200 and width < 1000 and left > 400  # the centre of a 1000 px wide photo


def test_letterbox_shows_the_whole_strip_with_padding_above_and_below():
    x, geometry = prepare_input(_strip(), CONFIG, fit="letterbox")
    assert x.shape == (1, 3, 64, 64)
    assert _colours(x) == {"red", "green", "blue", "grey"}  # grey: timm pads with the mean colour
    assert sees_whole_image(geometry)
    top, left, height, width = geometry.crop_box
    assert (left, width) == pytest.approx((0.0, 1000.0)) and top < 0 and height > 200  # the box reaches past it
    assert geometry.scale[0] == pytest.approx(geometry.scale[1], rel=0.05)  # about one scale (sides are rounded)


def test_squash_shows_the_whole_strip_without_padding():
    x, geometry = prepare_input(_strip(), CONFIG, fit="squash")
    assert _colours(x) == {"red", "green", "blue"}
    assert geometry.crop_box == pytest.approx((0.0, 0.0, 200.0, 1000.0))
    assert geometry.scale[0] == pytest.approx(5 * geometry.scale[1])  # squashed five times across


@pytest.mark.parametrize("fit", FITS)
def test_the_geometry_alone_matches_the_prepared_input(fit):
    _x, geometry = prepare_input(_strip(), CONFIG, fit=fit)
    assert input_geometry((200, 1000), CONFIG, fit=fit) == geometry


def test_an_unknown_fit_is_refused():
    with pytest.raises(ValueError, match="fit"):
        prepare_input(_strip(), CONFIG, fit="zoom")


def test_the_pipeline_runs_the_model_on_what_the_fit_shows():
    import timm
    import torch

    from vitviz.pipeline import run

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False).eval()
    crop, whole = run(model, _strip()), run(model, _strip(), fit="letterbox")
    assert not sees_whole_image(crop.geometry) and sees_whole_image(whole.geometry)
    assert not torch.equal(crop.x, whole.x)
    assert not torch.allclose(crop.capture.output, whole.capture.output)
