"""Tests for vitviz.images: decoding every mode right, refusing every bad upload, and geometry that
matches what timm's eval transform really does (checked with markers found in the model input)."""

from __future__ import annotations

import dataclasses
import io
import time
import tracemalloc

import numpy as np
import pytest
import timm
import timm.data
import torch
from PIL import Image, ImageFile

from tests import _imagefactory as factory
from vitviz.images import (
    MAX_PIXELS,
    ImageError,
    InputGeometry,
    input_geometry,
    input_image,
    load_image,
    prepare_input,
    to_rgb,
)

HALF = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def pixels(source, **kwargs) -> np.ndarray:
    """load_image as an (H, W, 3) int array, checking the mode on the way."""
    image = load_image(source, **kwargs)
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)  # (H, W, 3)


def config(size=(64, 64), crop_pct=0.875, crop_mode="center", interpolation="bicubic", norm=HALF, **extra):
    """A timm data config as resolve_model_data_config returns it."""
    return {"input_size": (3, *size), "interpolation": interpolation, "crop_pct": crop_pct, "crop_mode": crop_mode,
            **norm, **extra}


# ----------------------------------------------------------------------------------- good formats


@pytest.mark.parametrize(
    ("make", "tolerance"),
    [(factory.make_png, 0), (factory.make_webp, 0), (factory.make_bmp, 0), (factory.make_gif, 0),
     (factory.make_tiff, 0), (factory.make_jpeg, 3), (factory.make_mpo, 3)],
)
def test_each_format_decodes_to_its_colour(make, tolerance):
    out = pixels(make(size=(20, 30), color=(200, 30, 60)))
    assert out.shape == (20, 30, 3)
    assert np.abs(out - (200, 30, 60)).max() <= tolerance


def test_every_kind_of_source_gives_the_same_pixels(tmp_path):
    data = factory.make_png(size=(5, 7), color=(1, 2, 3))
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    already_read = io.BytesIO(data)
    already_read.read()  # an upload widget that was read once is at its end
    with open(path, "rb") as handle:
        handle.read(10)
        sources = [data, bytearray(data), memoryview(data), str(path), path, already_read, handle]
        for source in sources:
            assert (pixels(source) == (1, 2, 3)).all(), type(source)


def test_result_is_independent_of_the_file(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(factory.make_png(size=(4, 4), color=(9, 8, 7)))
    image = load_image(path)
    path.unlink()
    assert np.asarray(image)[3, 3].tolist() == [9, 8, 7]


# ----------------------------------------------------------------------------------------- modes


def test_gray_l_is_copied_to_all_channels():
    out = pixels(factory.make_png(color=(77, 77, 77), mode="L"))
    assert (out == 77).all()


def test_one_bit_checkerboard_is_black_and_white():
    expected = (np.indices((4, 4)).sum(axis=0) % 2 == 0) * 255  # (4, 4)
    out = pixels(factory.make_1bit_png())
    assert (out == expected[..., None]).all()


def test_palette_without_transparency_keeps_its_colours():
    out = pixels(factory.make_palette_png())
    assert out[0].tolist() == [[255, 0, 0]] * 2 + [[0, 255, 0]] * 2 + [[0, 0, 255]] * 2


def test_palette_transparent_index_composites_to_white():
    out = pixels(factory.make_palette_png(transparent_index=1))
    assert out[:, 2:4].tolist() == [[[255, 255, 255]] * 2] * 4  # index 1 (green) was transparent
    assert (out[:, :2] == (255, 0, 0)).all() and (out[:, 4:] == (0, 0, 255)).all()


@pytest.mark.parametrize(("rgba", "expected"), [
    ((255, 0, 0, 255), (255, 0, 0)),  # opaque: unchanged
    ((255, 0, 0, 0), (255, 255, 255)),  # fully transparent: white
    ((255, 0, 0, 128), (255, 127, 127)),  # half: 0 * 128/255 + 255 * 127/255 = 127
    ((0, 0, 0, 64), (191, 191, 191)),  # 255 * (1 - 64/255) = 191
])
def test_rgba_composites_on_white(rgba, expected):
    out = pixels(factory.make_rgba_png(rgba))
    assert np.abs(out - expected).max() <= 1


@pytest.mark.parametrize(("gray", "alpha", "expected"), [(0, 255, 0), (0, 0, 255), (0, 128, 127), (100, 255, 100)])
def test_gray_alpha_composites_on_white(gray, alpha, expected):
    out = pixels(factory.make_la_png(gray, alpha))
    assert np.abs(out - expected).max() <= 1


@pytest.mark.parametrize(("cmyk", "expected"), [
    ((0, 255, 255, 0), (255, 0, 0)),  # magenta + yellow ink: red
    ((255, 0, 0, 0), (0, 255, 255)),  # cyan ink: cyan
    ((0, 0, 0, 255), (0, 0, 0)),  # black ink
    ((0, 0, 0, 0), (255, 255, 255)),  # no ink: paper white
])
def test_cmyk_jpeg_gives_the_right_colour(cmyk, expected):
    out = pixels(factory.make_cmyk_jpeg(cmyk))
    assert np.abs(out - expected).max() <= 3


# 16-bit samples scale by 255 / 65535 and round: 65535 -> 255, 32768 -> 127.5 -> 128, 257 -> 1, 1000 -> 4
SIXTEEN_BIT = [[65535, 32768, 257, 1000, 0]]
SIXTEEN_BIT_EXPECTED = [255, 128, 1, 4, 0]


@pytest.mark.parametrize("make", [
    factory.make_16bit_gray_png,
    factory.make_16bit_gray_tiff,
    lambda values: factory.make_16bit_gray_tiff(values, big_endian=True),
    factory.make_int32_tiff,
], ids=["png I;16", "tiff I;16", "tiff I;16B", "tiff I"])
def test_16bit_gray_is_scaled_not_clipped(make):
    data = make(SIXTEEN_BIT)
    assert Image.open(io.BytesIO(data)).mode in ("I;16", "I;16B", "I")
    out = pixels(data)
    assert out[0, :, 0].tolist() == SIXTEEN_BIT_EXPECTED
    assert (out == out[..., :1]).all()


def test_16bit_rgb_png_keeps_colour():
    rgb16 = np.array([[[65535, 32768, 0], [0, 65535, 4096]]])  # (1, 2, 3)
    out = pixels(factory.make_16bit_rgb_png(rgb16))
    assert np.abs(out - rgb16 / 257).max() <= 1  # 8-bit value is the 16-bit one / 257


def test_float_gray_is_stretched_to_its_range():
    def converted(values):
        return np.asarray(to_rgb(Image.fromarray(np.array(values, np.float32))))  # (H, W, 3)

    assert converted([[0.0, 0.5, 1.0]])[0, :, 0].tolist() == [0, 128, 255]  # 0.5 -> 127.5 -> 128
    assert converted([[10.0, 20.0, 30.0]])[0, :, 1].tolist() == [0, 128, 255]
    flat = to_rgb(Image.fromarray(np.full((2, 2), 7.0, np.float32)))
    assert flat.mode == "RGB" and (np.asarray(flat) == 0).all()


def test_gif_transparency_composites_to_white():
    indices = np.array([[0, 1]], dtype=np.uint8)  # (1, 2)
    gif = Image.fromarray(indices, "P")
    gif.putpalette([255, 0, 0, 0, 0, 255])
    out = pixels(factory.encode(gif, "GIF", transparency=1))
    assert out[0].tolist() == [[255, 0, 0], [255, 255, 255]]


def test_animated_gif_gives_its_first_frame():
    out = pixels(factory.make_animated_gif(colors=((255, 0, 0), (0, 255, 0), (0, 0, 255))))
    assert (out == (255, 0, 0)).all()


def test_one_pixel_image_is_accepted():
    assert pixels(factory.make_png(size=(1, 1), color=(10, 200, 30))).tolist() == [[[10, 200, 30]]]


# ----------------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    # An upright 40x64 scene with a red block whose centre is at (y, x) = (10, 13): no symmetry maps it elsewhere.
    upright = factory.make_marker_image((40, 64), markers=[(5, 8)], marker_size=10, background=(0, 0, 0),
                                        color=(255, 0, 0))
    out = pixels(factory.make_oriented_jpeg(upright, orientation))
    assert out.shape == (40, 64, 3)
    red = (out[..., 0] > 128) & (out[..., 1] < 100)  # (H, W)
    rows, cols = np.nonzero(red)
    assert abs(rows.mean() + 0.5 - 10) < 1 and abs(cols.mean() + 0.5 - 13) < 1


def test_oriented_factory_really_stores_rotated_pixels():
    upright = factory.make_marker_image((40, 64), markers=[(5, 8)], marker_size=10)
    stored = Image.open(io.BytesIO(factory.make_oriented_jpeg(upright, 6)))
    assert stored.size == (40, 64)  # PIL (width, height): stored sideways, 64 rows by 40 columns


# ------------------------------------------------------------------------------------ bad uploads


@pytest.mark.parametrize("name", sorted(factory.BAD_UPLOADS))
def test_bad_upload_raises_image_error_with_reason(name):
    make, reason = factory.BAD_UPLOADS[name]
    with pytest.raises(ImageError) as caught:
        load_image(make())
    assert caught.value.reason == reason
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "Traceback" not in message and "BytesIO" not in message and "Error" not in message
    assert message[0].isupper() and message.endswith(".")


@pytest.mark.parametrize(("make", "fmt", "word"), [
    (factory.make_heic, "HEIC", "HEIC"), (factory.make_svg, "SVG", "SVG"), (factory.make_pdf, "PDF", "PDF"),
    (factory.make_ico, "ICO", "icon"),
])
def test_unsupported_format_is_named(make, fmt, word):
    with pytest.raises(ImageError, match=word) as caught:
        load_image(make())
    assert caught.value.detected_format == fmt
    assert "Supported formats: JPEG, PNG, WebP, BMP, GIF, TIFF." in str(caught.value)


def test_not_an_image_lists_supported_formats():
    with pytest.raises(ImageError) as caught:
        load_image(b"just some words, definitely not pixels")
    assert str(caught.value) == (
        "This file is not an image (or not one we can read). Supported formats: JPEG, PNG, WebP, BMP, GIF, TIFF."
    )


def test_damaged_header_of_a_supported_format_is_called_damaged():
    with pytest.raises(ImageError, match="This JPEG file is damaged") as caught:
        load_image(b"\xff\xd8\xff" + b"\x00" * 40)
    assert caught.value.reason == "corrupt" and caught.value.detected_format == "JPEG"


def test_text_that_starts_like_a_bmp_is_not_called_a_bmp():
    with pytest.raises(ImageError) as caught:
        load_image(b"BMW and other cars, a list\n" * 3)
    assert caught.value.reason == "not_image" and caught.value.detected_format is None


def test_html_renamed_png_is_called_a_web_page():
    with pytest.raises(ImageError, match="web page") as caught:
        load_image(factory.make_html())
    assert caught.value.reason == "not_image"


def test_message_never_shows_the_path(tmp_path):
    path = tmp_path / "secret_folder" / "cat.png"
    path.parent.mkdir()
    path.write_bytes(factory.make_truncated_png())
    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert "secret_folder" not in str(caught.value) and "cat.png" not in str(caught.value)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, 0.99])
def test_truncated_files_are_refused_not_half_decoded(keep):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    for make in (factory.make_truncated_jpeg, factory.make_truncated_png):
        with pytest.raises(ImageError) as caught:
            load_image(make(keep=keep))
        assert caught.value.reason == "truncated"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_message_names_the_format():
    with pytest.raises(ImageError, match="This JPEG file is incomplete"):
        load_image(factory.make_truncated_jpeg())


def test_pil_global_state_is_untouched():
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    for make, _ in factory.BAD_UPLOADS.values():
        with pytest.raises(ImageError):
            load_image(make())
    with pytest.raises(ImageError):
        load_image(factory.make_png(size=(10, 10)), max_pixels=50)
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


# ------------------------------------------------------------------------------------------ bombs


class LoadSpy:
    """Counts calls of PIL's ImageFile.load, the method that decodes pixels."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = ImageFile.ImageFile.load

        def spy(image, *args, **kwargs):
            self.calls += 1
            return original(image, *args, **kwargs)

        monkeypatch.setattr(ImageFile.ImageFile, "load", spy)


@pytest.mark.parametrize(("height", "width", "valid_data"), [
    (100_000, 100_000, False),  # beyond PIL's own hard limit
    (7_000, 7_000, True),  # 49 MP: below PIL's limit, above ours; its 1-bit zero data really decodes
    (60_000, 700, True),  # 42 MP strip
])
def test_bomb_is_refused_from_the_header(monkeypatch, height, width, valid_data):
    data = factory.make_bomb_png(height, width, valid_data=valid_data)
    assert len(data) < 7_000_000
    spy = LoadSpy(monkeypatch)
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(ImageError) as caught:
        load_image(data)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert caught.value.reason == "too_large"
    assert "too large" in str(caught.value) and "megapixels" in str(caught.value)
    assert spy.calls == 0  # no pixel was decoded
    assert elapsed < 2.0  # generous bound; typically a few milliseconds
    assert peak < len(data) + 2_000_000  # the file itself plus small change, never the pixels


def test_control_decoding_a_valid_image_does_call_load(monkeypatch):
    spy = LoadSpy(monkeypatch)  # proves the spy above would have seen a decode
    load_image(factory.make_png())
    assert spy.calls >= 1


def test_max_pixels_is_inclusive_and_configurable():
    data = factory.make_png(size=(100, 100))
    assert load_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ImageError, match="100×100 pixels") as caught:
        load_image(data, max_pixels=9_999)
    assert caught.value.reason == "too_large"
    assert load_image(data, max_pixels=None).size == (100, 100)
    assert MAX_PIXELS == 40_000_000


# --------------------------------------------------------------------------------- geometry basics


def test_hand_checked_center_crop_geometry():
    # 100x200 image, 50x50 input, crop_pct 0.5: Resize(100) keeps 100x200, centre crop 50x50 at (25, 75).
    geometry = input_geometry((100, 200), config(size=(50, 50), crop_pct=0.5))
    assert geometry == InputGeometry((100, 200), (50, 50), (25.0, 75.0, 50.0, 50.0))
    assert geometry.input_to_original([[0, 0], [50, 50], [25, 25]]).tolist() == [[25, 75], [75, 125], [50, 100]]


def test_hand_checked_squash_geometry():
    # 300x420 -> Resize((60, 100)) -> CenterCrop((48, 80)) at (6, 10); scales 0.2 and 100/420.
    geometry = input_geometry((300, 420), config(size=(48, 80), crop_pct=0.8, crop_mode="squash"))
    assert geometry.crop_box == pytest.approx((30.0, 42.0, 240.0, 336.0))
    assert geometry.scale == pytest.approx((0.2, 100 / 420))


def test_hand_checked_border_geometry():
    # 100x200 -> longest side to 40 (crop_pct 1): 20x40 -> pad to 40x40 by 10 rows on top.
    geometry = input_geometry((100, 200), config(size=(40, 40), crop_pct=1.0, crop_mode="border"))
    assert geometry.crop_box == pytest.approx((-50.0, 0.0, 200.0, 200.0))


def test_geometry_round_trips():
    geometry = InputGeometry((300, 420), (48, 80), (12.5, -7.25, 240.0, 336.0))
    points = np.random.default_rng(0).uniform(-50, 500, size=(4, 5, 2))  # (..., 2)
    assert np.allclose(geometry.original_to_input(geometry.input_to_original(points)), points)
    assert np.allclose(geometry.input_to_original(geometry.original_to_input(points)), points)
    assert geometry.input_to_original([48, 80]).tolist() == [252.5, 328.75]  # bottom-right corner
    with pytest.raises(ValueError):
        geometry.input_to_original([1, 2, 3])


def test_geometry_is_frozen():
    geometry = InputGeometry((2, 2), (2, 2), (0.0, 0.0, 2.0, 2.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        geometry.input_size = (3, 3)


# --------------------------------------------------------------------- geometry against timm itself

TIMM_CONFIGS = {
    "center 0.875 square": config(),
    "center 1.0 square": config(crop_pct=1.0),
    "center 0.9 wide input": config(size=(48, 80), crop_pct=0.9, interpolation="bilinear", norm=IMAGENET),
    "center 0.95 tall input": config(size=(80, 48), crop_pct=0.95),
    "squash 0.8": config(size=(48, 80), crop_pct=0.8, crop_mode="squash"),
    "squash 1.0": config(crop_pct=1.0, crop_mode="squash", norm=IMAGENET),
    "border 1.0": config(crop_pct=1.0, crop_mode="border", norm=IMAGENET),
    "border 0.9 wide input": config(size=(48, 80), crop_pct=0.9, crop_mode="border"),
    "center with trimmed border": config(crop_pct=0.9, crop_border_pixels=7),
}
SHAPES = {"landscape": (300, 420), "portrait": (420, 300), "square": (256, 256)}


@pytest.mark.parametrize("name", sorted(TIMM_CONFIGS))
def test_prepare_input_is_exactly_timms_transform(name):
    cfg = TIMM_CONFIGS[name]
    image = factory.make_marker_image((300, 420), markers=[(100, 150)])
    x, geometry = prepare_input(image, cfg)
    expected = timm.data.create_transform(**cfg)(image).unsqueeze(0)  # (1, 3, H, W)
    assert x.shape == (1, 3, *cfg["input_size"][1:]) and x.dtype == torch.float32
    assert torch.equal(x, expected)
    assert geometry == input_geometry((300, 420), cfg)


def find_marker(x: torch.Tensor, cfg: dict, background) -> np.ndarray:
    """Centre (y, x) of the one bright blob in a model input, in continuous input pixels.

    A first moment of (value - background): resampling with a symmetric, normalised kernel keeps it.
    """
    diff = (input_image(x, cfg).astype(float) - np.asarray(background, float)).sum(axis=2)  # (H, W)
    weights = np.where(np.abs(diff) > 12, diff, 0.0)
    rows, cols = np.indices(weights.shape)
    return np.array([(weights * (rows + 0.5)).sum(), (weights * (cols + 0.5)).sum()]) / weights.sum()


def fill_colour(cfg: dict) -> tuple[int, int, int]:
    """The colour timm pads with in 'border' mode (the mean); used as background so padding is invisible."""
    return tuple(int(round(255 * m)) for m in cfg["mean"])


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("name", sorted(TIMM_CONFIGS))
def test_marker_maps_back_to_where_it_was_drawn(name, shape):
    cfg, size = TIMM_CONFIGS[name], SHAPES[shape]
    for rel_y, rel_x in [(0.35, 0.3), (0.5, 0.5), (0.62, 0.68)]:  # inside every crop used here
        top, left = round(rel_y * size[0]), round(rel_x * size[1])
        background = fill_colour(cfg)
        image = factory.make_marker_image(size, markers=[(top, left)], marker_size=8, background=background)
        x, geometry = prepare_input(image, cfg)
        seen = find_marker(x, cfg, background)
        found = geometry.input_to_original(seen)
        drawn = np.array([top + 4.0, left + 4.0])  # centre of the 8x8 square
        assert np.abs(found - drawn).max() < 1.5, (rel_y, rel_x, found, drawn)
        assert np.abs(geometry.original_to_input(drawn) - seen).max() < 1.5 * max(geometry.scale)


@pytest.mark.parametrize("name", ["border 1.0", "border 0.9 wide input"])
def test_border_padding_lies_outside_the_image(name):
    cfg = TIMM_CONFIGS[name]
    image = factory.make_marker_image((300, 420), markers=[], background=(0, 200, 0))
    x, geometry = prepare_input(image, cfg)
    seen = input_image(x, cfg).astype(int)  # (H, W, 3)
    height, width = geometry.input_size
    centres = np.stack(np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij"), -1)  # (H, W, 2)
    original = geometry.input_to_original(centres)  # (H, W, 2)
    outside = (original[..., 0] < -2) | (original[..., 0] > 302) | (original[..., 1] < -2) | (original[..., 1] > 422)
    inside = (original[..., 0] > 2) & (original[..., 0] < 298) & (original[..., 1] > 2) & (original[..., 1] < 418)
    fill = np.round(255 * np.array(cfg["mean"]))
    assert outside.any() and inside.any()
    assert np.abs(seen[outside] - fill).max() <= 1
    assert np.abs(seen[inside] - (0, 200, 0)).max() <= 1


def test_real_model_config_from_timm():
    model = timm.create_model("test_vit", pretrained=False)
    cfg = timm.data.resolve_model_data_config(model)
    image = factory.make_marker_image((90, 140), markers=[(40, 60)], marker_size=6, background=(100, 100, 100))
    x, geometry = prepare_input(image, cfg)
    assert x.shape == (1, 3, 160, 160) and geometry.input_size == (160, 160)
    assert torch.equal(x, timm.data.create_transform(**cfg)(image).unsqueeze(0))
    found = geometry.input_to_original(find_marker(x, cfg, background=(100, 100, 100)))
    assert np.abs(found - (43, 63)).max() < 1.0  # upscaled ~1.8x: sub-pixel


# ------------------------------------------------------------------------------------- keep aspect


@pytest.mark.parametrize("size", [(300, 420), (420, 300), (256, 256), (120, 400)])
def test_keep_aspect_shape_and_geometry(size):
    cfg = config(size=(64, 64))
    marker = (size[0] // 2, size[1] // 3)
    image = factory.make_marker_image(size, markers=[marker], marker_size=8, background=(100,) * 3)
    x, geometry = prepare_input(image, cfg, keep_aspect=True, patch_size=16)
    height, width = x.shape[-2:]
    assert height % 16 == 0 and width % 16 == 0
    assert abs(min(height, width) - 64) <= 8  # shorter side about the config's, to half a patch
    assert abs(width / height - size[1] / size[0]) <= 16 / min(height, width)  # aspect kept to within a patch
    assert geometry.crop_box == (0.0, 0.0, float(size[0]), float(size[1]))  # the whole image, no crop
    found = geometry.input_to_original(find_marker(x, cfg, background=(100, 100, 100)))
    assert np.abs(found - (marker[0] + 4, marker[1] + 4)).max() < 2.0


def test_keep_aspect_with_rectangular_patches_and_input():
    x, geometry = prepare_input(factory.make_marker_image((300, 420), markers=[]), config(size=(48, 80)),
                                keep_aspect=True, patch_size=(8, 16))
    assert x.shape == (1, 3, 48, 64)  # short side 48; 420 * 48/300 = 67.2 -> 4 patches of 16
    assert geometry.input_size == (48, 64)


def test_keep_aspect_default_budget_is_four_times_the_config_patches():
    image = factory.make_marker_image((90, 500), markers=[])  # short side to 64: 4 x 22 = 88 patches > 64
    x, geometry = prepare_input(image, config(size=(64, 64)), keep_aspect=True, patch_size=16)
    assert x.shape == (1, 3, 48, 288)  # shrunk by sqrt(64 / 88): 3 x 18 = 54 patches
    assert geometry.crop_box == (0.0, 0.0, 90.0, 500.0)


def test_keep_aspect_shrinks_to_the_patch_budget():
    image = factory.make_marker_image((300, 420), markers=[])
    x, _ = prepare_input(image, config(size=(64, 64)), keep_aspect=True, patch_size=16, max_patches=12)
    rows, cols = x.shape[-2] // 16, x.shape[-1] // 16
    assert rows * cols <= 12 and (rows, cols) == (2, 4)  # 4x6 = 24 shrunk by sqrt(1/2), floored


def test_keep_aspect_needs_patch_size():
    with pytest.raises(ValueError, match="patch_size"):
        prepare_input(Image.new("RGB", (10, 10)), config(), keep_aspect=True)


# ----------------------------------------------------------------------------------- degenerate sizes

STRIP = Image.new("RGB", (5000, 3), (255, 0, 0))  # 3 rows x 5000 columns


def test_strip_works_when_squashed():
    x, geometry = prepare_input(STRIP, config(crop_mode="squash"))
    assert x.shape == (1, 3, 64, 64) and torch.isfinite(x).all()
    assert torch.allclose(x[0, :, 20:40, 20:40].mean(dim=(1, 2)), torch.tensor([1.0, -1.0, -1.0]), atol=0.02)
    # Resize((73, 73)) (73 = floor(64 / 0.875)), then CenterCrop(64) at round(9 / 2) = 4 (round half to even).
    assert geometry.crop_box == pytest.approx((4 * 3 / 73, 4 * 5000 / 73, 64 * 3 / 73, 64 * 5000 / 73))


@pytest.mark.parametrize("strip", [STRIP, STRIP.transpose(Image.Transpose.TRANSPOSE)], ids=["wide", "tall"])
@pytest.mark.parametrize("mode", ["center", "border", "keep_aspect"])
def test_strip_gives_a_clear_message(strip, mode):
    start = time.perf_counter()
    with pytest.raises(ImageError, match="too long and thin") as caught:
        if mode == "keep_aspect":
            prepare_input(strip, config(), keep_aspect=True, patch_size=16)
        else:
            prepare_input(strip, config(size=(224, 224), crop_mode=mode))
    assert caught.value.reason == "extreme_aspect"
    assert time.perf_counter() - start < 2.0  # refused from the plan, nothing huge was resized


@pytest.mark.parametrize("mode", ["center", "squash", "border", "keep_aspect"])
def test_one_pixel_image_fills_the_input(mode):
    image = Image.new("RGB", (1, 1), (255, 0, 0))
    if mode == "keep_aspect":
        x, geometry = prepare_input(image, config(), keep_aspect=True, patch_size=16)
    else:
        x, geometry = prepare_input(image, config(crop_mode=mode, crop_pct=1.0))
    assert x.shape == (1, 3, 64, 64)
    assert torch.allclose(x[0], torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1), atol=1e-6)
    assert geometry.original_size == (1, 1)


def test_non_rgb_input_is_converted_like_load_image():
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # fully transparent: white
    x, _ = prepare_input(rgba, config(crop_pct=1.0))
    assert (input_image(x, config()) == 255).all()


def test_input_image_undoes_the_normalisation():
    image = Image.new("RGB", (50, 40), (12, 130, 250))
    for cfg in (config(norm=HALF), config(norm=IMAGENET)):
        x, _ = prepare_input(image, cfg)
        seen = input_image(x, cfg)
        assert seen.shape == (64, 64, 3) and seen.dtype == np.uint8
        assert np.abs(seen.astype(int) - (12, 130, 250)).max() <= 1
        assert np.array_equal(input_image(x[0], cfg), seen)


def test_unknown_transform_step_is_refused():
    from torchvision import transforms

    from vitviz.images.preprocess import _plan

    with pytest.raises(ValueError, match="cannot follow"):
        _plan([transforms.RandomHorizontalFlip()], (10, 10), 100)
