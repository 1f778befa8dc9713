"""The library's images are checked like uploads: ``explain`` and ``read_image`` take PIL images through the same
``to_rgb`` as ``load_image``, and refuse empty and non-finite arrays with a message (issue 20, item 5)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import vitviz
from tests import _imagefactory as factory
from vitviz.images import ImageError, as_rgb_array, load_image, read_image


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return timm.create_model("test_vit", pretrained=False, img_size=64).eval()


def _opened(data: bytes) -> Image.Image:
    """The file as a notebook user holds it: ``Image.open``, nothing converted."""
    return Image.open(io.BytesIO(data))


def test_a_16_bit_pil_image_is_what_its_upload_is(model):
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)  # dark to bright, full 16-bit range
    data = factory.make_16bit_gray_png(ramp)
    held = _opened(data)
    assert held.mode.startswith("I")
    assert np.array_equal(np.asarray(read_image(held)), np.asarray(load_image(data)))
    assert np.asarray(read_image(held)).mean() == pytest.approx(127.5, abs=1)  # a ramp, not clipped to white
    as_upload, as_pil = vitviz.explain(model, data), vitviz.explain(model, held)
    torch.testing.assert_close(as_pil.capture.output, as_upload.capture.output)
    assert as_pil.predictions == as_upload.predictions


@pytest.mark.parametrize("data", [
    factory.make_cmyk_jpeg(),
    factory.make_palette_png(transparent_index=1),
    factory.make_rgba_png((255, 0, 0, 128)),
    factory.make_la_png(0, 0),
], ids=["cmyk", "palette with a transparent colour", "rgba", "gray + alpha"])
def test_other_modes_of_a_pil_image_are_converted_as_an_upload_is(data):
    assert np.array_equal(np.asarray(read_image(_opened(data))), np.asarray(load_image(data)))


def test_an_rgb_pil_image_is_used_as_it_is():
    image = Image.new("RGB", (5, 4), (1, 2, 3))
    assert read_image(image) is image


@pytest.mark.parametrize("array, reason, words", [
    (np.full((8, 8, 3), np.nan), "not_finite", "not numbers"),
    (np.where(np.eye(8)[..., None] > 0, np.inf, 0.5).repeat(3, -1), "not_finite", "24 values"),  # 8 pixels × 3 channels
    (np.zeros((0, 0, 3)), "empty", "no pixels"),
    (np.zeros((0, 7)), "empty", "no pixels"),
    (np.zeros((4, 4, 5)), "not_image", "(height, width, 3 or 4)"),
    (np.array([["a", "b"], ["c", "d"]]), "not_image", "numbers"),
], ids=["all NaN", "some infinite", "0x0", "0x7 gray", "five channels", "strings"])
def test_arrays_that_are_no_picture_are_refused_with_a_message(model, array, reason, words):
    for call in (lambda: read_image(array), lambda: vitviz.explain(model, array)):
        with pytest.raises(ImageError, match=words.replace("(", r"\(").replace(")", r"\)")) as caught:
            call()
        assert caught.value.reason == reason


def test_an_empty_pil_image_is_refused(model):
    with pytest.raises(ImageError, match="no pixels") as caught:
        vitviz.explain(model, Image.new("RGB", (0, 0)))
    assert caught.value.reason == "empty"


def test_a_figure_draws_what_a_broken_model_gives_instead_of_refusing_it():
    """Drawing is not input: the features of a model with NaN weights still make a (black) picture."""
    assert as_rgb_array(np.full((2, 2, 3), np.nan)).shape == (2, 2, 3)
    with pytest.raises(ImageError):  # but nothing shaped like no image at all
        as_rgb_array(np.zeros((0, 0, 3)))


def test_arrays_keep_their_meaning():
    floats = np.full((2, 3), 0.5)
    assert (as_rgb_array(floats) == 128).all() and as_rgb_array(floats).shape == (2, 3, 3)
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert as_rgb_array(rgba).shape == (2, 2, 3)
    assert (as_rgb_array(np.full((2, 2, 3), 300)) == 255).all()
    assert np.asarray(read_image(np.full((4, 4, 3), 7, np.uint8))).max() == 7
