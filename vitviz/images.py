"""Decode, validate and preprocess a photo, and map model-input pixels back onto it.

``load_image`` turns an upload into an upright RGB ``PIL.Image`` or raises ``ImageError`` with a message
a person can act on (no paths, no tracebacks). ``prepare_input`` runs the model's own timm eval transform
and returns the input tensor with the ``InputGeometry`` that says which part of the photo the model saw.

Coordinates: points are ``(y, x)`` in continuous pixel coordinates, ``(0, 0)`` being the top-left corner
of the top-left pixel, so pixel ``(r, c)`` covers ``[r, r + 1) x [c, c + 1)`` and has its centre at
``(r + 0.5, c + 0.5)``. In this frame a resize is a pure scale and a crop a pure shift, which is exactly
how PIL resamples.

torch and timm are imported inside the functions that need them, so ``load_image`` is cheap to import.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vitviz.i18n import N_, _

if TYPE_CHECKING:
    import torch

__all__ = [
    "MAX_PIXELS",
    "SUPPORTED_FORMATS",
    "ImageError",
    "InputGeometry",
    "input_geometry",
    "input_image",
    "load_image",
    "prepare_input",
    "to_rgb",
]

#: Default limit on width * height, checked from the header before any pixel is decoded.
MAX_PIXELS = 40_000_000

#: Formats ``load_image`` accepts, as shown to users.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WebP", "BMP", "GIF", "TIFF")

# PIL plugins tried by Image.open; the JPEG plugin also opens MPO, the multi-picture JPEG of many cameras.
_PIL_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_FORMAT_NAMES = {
    "JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF", "TIFF": "TIFF",
}

# A resize inside the transform may make at most this many times the model input's pixels
# (an extreme strip resized on its short side would otherwise need gigabytes).
_MAX_RESIZE_FACTOR = 256

# Keys of a timm data config that the eval transform uses.
_EVAL_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode", "crop_border_pixels")


class ImageError(ValueError):
    """An image that cannot be used, with a message for the person who supplied it.

    Attributes:
        reason: machine-readable cause, one of ``'empty'``, ``'not_image'``, ``'unsupported_format'``,
            ``'truncated'``, ``'corrupt'``, ``'too_large'``, ``'too_small'``, ``'unsupported_mode'``,
            ``'extreme_aspect'``.
        detected_format: what the file looked like (``'HEIC'``, ``'SVG'``, ``'PNG'`` ...) when known.
    """

    def __init__(self, message: str, reason: str, *, detected_format: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.detected_format = detected_format


# ------------------------------------------------------------------------------------------ decoding


def load_image(source: bytes | str | Path | BinaryIO, *, max_pixels: int | None = MAX_PIXELS) -> Image.Image:
    """Decode an image file into an upright RGB image, refusing anything unsafe or unreadable.

    The whole file is decoded (a truncated file is an error, never a half-grey picture), the EXIF
    orientation is applied, and every mode is converted to 8-bit RGB by ``to_rgb``. An animation gives
    its first frame. The pixel count is checked from the header, before decoding, so a decompression
    bomb costs neither time nor memory.

    Args:
        source: the file's bytes, a path, or a binary file object (read whole, from its start when it
            can seek; a Streamlit ``UploadedFile`` works as is).
        max_pixels: largest width * height accepted; None leaves only PIL's own bomb limit.

    Returns:
        A new RGB image, not tied to any open file.

    Raises:
        ImageError: the file is empty, not an image, in an unsupported format, truncated or damaged,
            too large, or in a colour mode that cannot be converted.
        OSError: ``source`` is a path that cannot be read.
    """
    data = _read_bytes(source)
    if not data:
        raise ImageError(_("The file is empty (0 bytes). Please choose an image file."), "empty")
    image = _open(data, max_pixels)
    try:
        _check_size(image, max_pixels)
        _decode(image)
        _apply_exif_orientation(image)
        return to_rgb(image)
    finally:
        image.close()


def _read_bytes(source: bytes | bytearray | memoryview | str | Path | BinaryIO) -> bytes:
    """All bytes of ``source``; file objects are read from their start when they can seek."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, Path)):
        return Path(source).read_bytes()
    if hasattr(source, "getvalue"):  # io.BytesIO, Streamlit UploadedFile: whatever was read before
        return bytes(source.getvalue())
    if getattr(source, "seekable", lambda: False)():
        source.seek(0)
    return source.read()


def _open(data: bytes, max_pixels: int | None) -> Image.Image:
    """Open ``data`` with the supported PIL plugins only (header parsed, no pixels decoded)."""
    try:
        return Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
    except Image.DecompressionBombError as exc:  # header claims more than twice PIL's own limit
        message = _too_large_message(_pixels_from_bomb_error(exc), limit=max_pixels)
        raise ImageError(message, "too_large") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _unreadable(data) from exc


def _check_size(image: Image.Image, max_pixels: int | None) -> None:
    """Refuse degenerate or absurd sizes using the header alone."""
    width, height = image.size
    fmt = _format_name(image)
    if width < 1 or height < 1:
        message = _("This {format} file says it has no pixels ({width}×{height}).").format(
            format=fmt, width=width, height=height)
        raise ImageError(message, "too_small", detected_format=fmt)
    if max_pixels is not None and width * height > max_pixels:
        message = _too_large_message(width * height, (width, height), max_pixels)
        raise ImageError(message, "too_large", detected_format=fmt)


def _decode(image: Image.Image) -> None:
    """Decode every pixel of the current frame; truncation and damage become ``ImageError``."""
    fmt = _format_name(image)
    try:
        image.load()
    except MemoryError:
        raise
    except Exception as exc:  # PIL's decoders raise OSError, SyntaxError, ValueError, zlib.error, ...
        if "truncated" in str(exc) or isinstance(exc, EOFError):
            message = _(
                "This {format} file is incomplete: it ends before all of its pixels (it was probably cut off "
                "while downloading or copying). Please try the original file again."
            ).format(format=fmt)
            raise ImageError(message, "truncated", detected_format=fmt) from exc
        message = _("This {format} file is damaged and its pixels cannot be decoded. Please try another copy.").format(
            format=fmt)
        raise ImageError(message, "corrupt", detected_format=fmt) from exc


def _format_name(image: Image.Image) -> str:
    """The image's format as shown to users (``'JPEG'``, ``'WebP'``), or "image" in the user's language."""
    return _FORMAT_NAMES.get(image.format or "") or _("image")


def _supported_text() -> str:
    """``"Supported formats: JPEG, PNG, …"`` in the current language."""
    return _("Supported formats: {formats}.").format(formats=", ".join(SUPPORTED_FORMATS))


def _sentences(*parts: str) -> str:
    """Sentences one after the other, as the current language writes them (English: a space between)."""
    text = parts[0]
    for part in parts[1:]:
        # TRANSLATORS: two sentences one after the other; Chinese needs no space between them.
        text = _("{sentence} {next_sentence}").format(sentence=text, next_sentence=part)
    return text


def _apply_exif_orientation(image: Image.Image) -> None:
    """Turn ``image`` upright in place following its EXIF orientation tag (1 to 8), if any."""
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except MemoryError:
        raise
    except Exception:  # unreadable EXIF metadata: the pixels are fine, so show them as stored
        pass


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB the way a viewer would show it.

    Transparency (alpha channel, or a palette / colour key marked transparent) is composited on white;
    CMYK and YCbCr use PIL's conversion (as timm's training data loader does); 16-bit and 32-bit integer
    gray ('I;16', 'I;16B', 'I', ...) is scaled from 0..65535 to 0..255; floating-point gray ('F') has
    no standard range and is stretched from its own minimum to maximum.

    Args:
        image: any PIL image.

    Returns:
        A new RGB image of the same size.

    Raises:
        ImageError: ``image``'s mode has no conversion to RGB (reason ``'unsupported_mode'``).
    """
    mode = image.mode
    if mode.startswith("I"):
        return _gray_to_rgb(_scale_16bit(np.asarray(image)))
    if mode == "F":
        return _gray_to_rgb(_stretch(np.asarray(image)))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as exc:
        message = _("This image uses a colour mode ({mode}) that cannot be shown as RGB.").format(mode=mode)
        raise ImageError(message, "unsupported_mode") from exc


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """Map 16-bit samples 0..65535 to uint8 0..255 (rounded; values outside are clipped)."""
    scaled = np.clip(values.astype(np.float64), 0, 65535) * (255.0 / 65535.0)
    return np.rint(scaled).astype(np.uint8)


def _stretch(values: np.ndarray) -> np.ndarray:
    """Map floats from their finite minimum..maximum to uint8 0..255 (non-finite values become 0)."""
    values = values.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = values[finite].min(), values[finite].max()
    span = high - low if high > low else 1.0
    scaled = np.where(finite, (values - low) / span * 255.0, 0.0)
    return np.rint(scaled).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> Image.Image:
    """An RGB image with ``gray`` (H, W) uint8 in all three channels."""
    return Image.fromarray(np.ascontiguousarray(gray), "L").convert("RGB")


def _too_large_message(pixels: int | None, size: tuple[int, int] | None = None, limit: int | None = None) -> str:
    """Message for an image whose header claims too many pixels."""
    if pixels and size:
        message = _("This image is too large ({width}×{height} pixels, {megapixels:,.0f} megapixels).").format(
            width=size[0], height=size[1], megapixels=pixels / 1e6)
    elif pixels:
        message = _("This image is too large ({megapixels:,.0f} megapixels).").format(megapixels=pixels / 1e6)
    else:
        message = _("This image is too large.")
    if limit:
        message = _sentences(message, _("The limit is {megapixels:g} megapixels.").format(megapixels=limit / 1e6))
    return _sentences(message, _("Please resize it to a smaller copy first."))


def _pixels_from_bomb_error(exc: Exception) -> int | None:
    """The pixel count that PIL's DecompressionBombError reports, when its message has one."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return int(found.group(1)) if found else None


# ----------------------------------------------------------------------------- recognising bad files

# Magic numbers of supported formats: PIL failing on one of these means the file is damaged.
_SUPPORTED_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)

# Magic numbers of formats we recognise but do not accept: (prefix, short name, description).
_OTHER_MAGIC = (
    (b"%PDF-", "PDF", N_("a PDF document")),
    (b"%!PS", "PostScript", N_("a PostScript/EPS document")),
    (b"8BPS", "PSD", N_("a Photoshop (PSD) file")),
    (b"\x00\x00\x01\x00", "ICO", N_("a Windows icon (ICO)")),
    (b"\xff\x0a", "JPEG XL", N_("a JPEG XL image")),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL", N_("a JPEG XL image")),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000", N_("a JPEG 2000 image")),
    (b"\xffO\xffQ", "JPEG 2000", N_("a JPEG 2000 image")),
    (b"PK\x03\x04", "ZIP", N_("a ZIP archive (or an Office document)")),
)

# Sizes of the BMP info header that follows the 14-byte file header (BITMAPCOREHEADER .. BITMAPV5HEADER).
_BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)

# ISO base media file brands (the 'ftyp' box): HEIC/HEIF photos, AVIF images, MP4/QuickTime video.
_FTYP_BRANDS = {
    **dict.fromkeys((b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"),
                    ("HEIC", N_("a HEIC/HEIF photo (the default format of iPhone cameras)"))),
    **dict.fromkeys((b"avif", b"avis"), ("AVIF", N_("an AVIF image"))),
}

# What PIL's other plugins call formats, as shown to users.
_PIL_DESCRIPTIONS = {"ICO": N_("a Windows icon (ICO)"), "PSD": N_("a Photoshop (PSD) file"),
                     "AVIF": N_("an AVIF image")}


def _unreadable(data: bytes) -> ImageError:
    """The most helpful ``ImageError`` for bytes that no supported PIL plugin could open."""
    for prefix, fmt in _SUPPORTED_MAGIC:
        if data.startswith(prefix):
            return _damaged(fmt)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _damaged("WebP")
    if data.startswith(b"BM") and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return _damaged("BMP")
    found = _recognise_other(data)
    if found is not None:
        fmt, description = found
        message = _("This looks like {description}, which is not supported. Please convert it to JPEG or PNG.").format(
            description=description)
        message = _sentences(message, _supported_text())
        return ImageError(message, "unsupported_format", detected_format=fmt)
    if _text_head(data).startswith(("<!doctype html", "<html")):
        message = _("This file is a web page (HTML), not an image. Save the image itself and try again.")
        message = _sentences(message, _supported_text())
        return ImageError(message, "not_image", detected_format="HTML")
    message = _sentences(_("This file is not an image (or not one we can read)."), _supported_text())
    return ImageError(message, "not_image")


def _damaged(fmt: str) -> ImageError:
    """Error for a file that starts like a supported format but cannot be opened."""
    message = _("This {format} file is damaged: its header cannot be read. Please try another copy.").format(
        format=fmt)
    return ImageError(message, "corrupt", detected_format=fmt)


def _recognise_other(data: bytes) -> tuple[str, str] | None:
    """(short name, description in the current language) of a recognisable unsupported format, else None."""
    for prefix, fmt, description in _OTHER_MAGIC:
        if data.startswith(prefix):
            return fmt, _(description)
    if data[4:8] == b"ftyp":
        fmt, description = _FTYP_BRANDS.get(data[8:12], ("video", N_("a video or other media file (MP4/QuickTime)")))
        return fmt, _(description)
    head = _text_head(data)
    if "<svg" in head and not head.startswith(("<!doctype html", "<html")):
        return "SVG", _("an SVG drawing (vector graphics)")
    return _identify_with_pil(data)


def _identify_with_pil(data: bytes) -> tuple[str, str] | None:
    """Name a format that one of PIL's other plugins recognises (header only; nothing is decoded)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or "unknown"
    except Exception:  # not an image PIL knows at all
        return None
    if fmt in _PIL_DESCRIPTIONS:
        return fmt, _(_PIL_DESCRIPTIONS[fmt])
    return fmt, _("a {format} image").format(format=fmt)


def _text_head(data: bytes) -> str:
    """The first kilobyte as lower-case text without BOM and leading blanks (for sniffing markup)."""
    return data[:1024].decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n").lower()


# ------------------------------------------------------------------------------------------ geometry


@dataclass(frozen=True)
class InputGeometry:
    """Which part of the original image the model input shows, and how to map points between them.

    The model input is the axis-aligned box ``crop_box`` of the original, resampled to ``input_size``.
    The box may reach outside the image where the transform padded it. Points are (y, x) in continuous
    pixel coordinates (see the module docstring): pixel (r, c) has its centre at (r + 0.5, c + 0.5), so
    patch (i, j) of size p covers the input box from (i * p, j * p) to ((i + 1) * p, (j + 1) * p).

    Attributes:
        original_size: (height, width) of the decoded, upright image.
        input_size: (height, width) of the model input.
        crop_box: (top, left, height, width) in original pixels (continuous coordinates).
    """

    original_size: tuple[int, int]
    input_size: tuple[int, int]
    crop_box: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        if min(self.original_size) < 1 or min(self.input_size) < 1 or min(self.crop_box[2:]) <= 0:
            raise ValueError(f"degenerate geometry: {self}")

    @property
    def scale(self) -> tuple[float, float]:
        """(y, x) model-input pixels per original pixel."""
        return self.input_size[0] / self.crop_box[2], self.input_size[1] / self.crop_box[3]

    def input_to_original(self, yx: np.ndarray | Sequence) -> np.ndarray:
        """Map (..., 2) points (y, x) from model-input pixels to original pixels."""
        points = _points(yx)
        top_left = np.array(self.crop_box[:2])
        return top_left + points / np.array(self.scale)

    def original_to_input(self, yx: np.ndarray | Sequence) -> np.ndarray:
        """Map (..., 2) points (y, x) from original pixels to model-input pixels."""
        points = _points(yx)
        top_left = np.array(self.crop_box[:2])
        return (points - top_left) * np.array(self.scale)


def _points(yx: np.ndarray | Sequence) -> np.ndarray:
    """``yx`` as a float64 array of shape (..., 2)."""
    points = np.asarray(yx, dtype=np.float64)
    if points.ndim == 0 or points.shape[-1] != 2:
        raise ValueError(f"expected points of shape (..., 2), got {points.shape}")
    return points


# ------------------------------------------------------------------------------------- preprocessing


def prepare_input(
    image: Image.Image,
    data_config: Mapping[str, Any],
    *,
    keep_aspect: bool = False,
    patch_size: int | tuple[int, int] | None = None,
    max_patches: int | None = None,
) -> tuple[torch.Tensor, InputGeometry]:
    """The model input for ``image``, made by timm's own eval transform, and its geometry.

    Default: ``timm.data.create_transform`` with ``data_config`` (from
    ``timm.data.resolve_model_data_config(model)``): resize, centre crop (or squash, or pad with the
    mean colour for ``crop_mode='border'``), to tensor, normalise. The geometry is followed step by step
    through that very transform, so it matches what the model saw.

    ``keep_aspect=True`` (models made with ``dynamic_img_size=True``): no crop; the image is resized so
    its shorter side is about the config's (shorter) input side, both sides are multiples of
    ``patch_size`` and the aspect ratio is kept; the geometry covers the whole image.

    Args:
        image: an RGB image from ``load_image`` (other modes are converted by ``to_rgb``).
        data_config: timm data config with ``input_size``, ``mean``, ``std``, ``interpolation``,
            ``crop_pct``, ``crop_mode``.
        keep_aspect: keep the whole image at its own aspect ratio instead of the config's crop.
        patch_size: the model's patch (height, width) or side; required with ``keep_aspect``.
        max_patches: with ``keep_aspect``, the most patches allowed (the image is shrunk to fit);
            default four times the patches of the config's input size.

    Returns:
        ``x`` of shape (1, 3, H, W), float32, and the ``InputGeometry`` mapping it to ``image``.

    Raises:
        ImageError: the image is so long and thin that no sensible input exists (reason
            ``'extreme_aspect'``).
        ValueError: ``keep_aspect`` without ``patch_size``, or a transform step this module cannot follow.
    """
    if image.mode != "RGB":
        image = to_rgb(image)
    original = (image.height, image.width)
    config = _transform_config(original, data_config, keep_aspect, patch_size, max_patches)
    steps, geometry = _plan(_create_transform(config).transforms, original, _input_area(config))
    x = image
    for step, planned_size in steps:
        x = step(x)
        if isinstance(x, Image.Image) and (x.height, x.width) != planned_size:
            got = (x.height, x.width)
            raise RuntimeError(f"{step!r} gave {got}, expected {planned_size}: timm's transform changed")
    return x.unsqueeze(0).float().contiguous(), geometry  # (1, 3, H, W)


def input_geometry(
    original_size: tuple[int, int],
    data_config: Mapping[str, Any],
    *,
    keep_aspect: bool = False,
    patch_size: int | tuple[int, int] | None = None,
    max_patches: int | None = None,
) -> InputGeometry:
    """The ``InputGeometry`` that ``prepare_input`` gives an image of ``original_size``, without pixels.

    Args:
        original_size: (height, width) of the image.
        data_config: as for ``prepare_input``.
        keep_aspect: as for ``prepare_input``.
        patch_size: as for ``prepare_input``.
        max_patches: as for ``prepare_input``.

    Raises:
        ImageError: as for ``prepare_input``.
    """
    original = (int(original_size[0]), int(original_size[1]))
    config = _transform_config(original, data_config, keep_aspect, patch_size, max_patches)
    _steps, geometry = _plan(_create_transform(config).transforms, original, _input_area(config))
    return geometry


def input_image(x: torch.Tensor, data_config: Mapping[str, Any]) -> np.ndarray:
    """What the model sees: a normalised input tensor back as a uint8 RGB array.

    Args:
        x: (1, 3, H, W) or (3, H, W) tensor normalised with the config's mean and std.
        data_config: timm data config with ``mean`` and ``std``.

    Returns:
        (H, W, 3) uint8 array.
    """
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {x.shape[0]}")
        x = x[0]  # (3, H, W)
    mean = np.asarray(data_config["mean"], dtype=np.float64).reshape(3, 1, 1)  # (3, 1, 1)
    std = np.asarray(data_config["std"], dtype=np.float64).reshape(3, 1, 1)  # (3, 1, 1)
    pixels = x.detach().cpu().double().numpy() * std + mean  # (3, H, W) in 0..1
    return np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8).transpose(1, 2, 0)  # (H, W, 3)


def _transform_config(
    original_size: tuple[int, int],
    data_config: Mapping[str, Any],
    keep_aspect: bool,
    patch_size: int | tuple[int, int] | None,
    max_patches: int | None,
) -> dict[str, Any]:
    """The timm eval-transform config that ``prepare_input`` uses for an image of ``original_size``."""
    if keep_aspect:
        return _keep_aspect_config(original_size, data_config, patch_size, max_patches)
    return _eval_config(data_config)


def _eval_config(data_config: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``data_config`` that timm's eval transform uses."""
    return {key: data_config[key] for key in _EVAL_KEYS if key in data_config}


def _create_transform(config: Mapping[str, Any]):
    """timm's eval transform for ``config`` (a torchvision ``Compose``)."""
    from timm.data import create_transform

    return create_transform(**config, is_training=False)


def _input_area(config: Mapping[str, Any]) -> int:
    """Pixels of the model input that ``config`` asks for."""
    height, width = _pair(config.get("input_size", 224))
    return height * width


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) from a side, a (height, width) pair or a (channels, height, width) triple."""
    if isinstance(value, int):
        return value, value
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value[0], value[0]
    return value[-2], value[-1]


def _keep_aspect_config(
    original_size: tuple[int, int],
    data_config: Mapping[str, Any],
    patch_size: int | tuple[int, int] | None,
    max_patches: int | None,
) -> dict[str, Any]:
    """A squash config (``crop_pct=1``, so no crop) at the aspect-keeping, patch-multiple size."""
    if patch_size is None:
        raise ValueError("keep_aspect=True needs the model's patch_size")
    patch_h, patch_w = _pair(patch_size)
    config_h, config_w = _pair(data_config["input_size"])
    if max_patches is None:
        max_patches = 4 * max(1, config_h // patch_h) * max(1, config_w // patch_w)
    height, width = original_size
    scale = min(config_h, config_w) / min(height, width)  # shorter side -> config's shorter side
    rows = max(1, round(height * scale / patch_h))
    cols = max(1, round(width * scale / patch_w))
    if rows * cols > max_patches:  # shrink uniformly to the patch budget
        shrink = math.sqrt(max_patches / (rows * cols))
        rows = max(1, math.floor(rows * shrink))
        cols = max(1, math.floor(cols * shrink))
    if rows * cols > max_patches:
        raise ImageError(_extreme_aspect_message(original_size), "extreme_aspect")
    config = _eval_config(data_config)
    config.update(input_size=(3, rows * patch_h, cols * patch_w), crop_pct=1.0, crop_mode="squash")
    config.pop("crop_border_pixels", None)
    return config


def _extreme_aspect_message(original_size: tuple[int, int]) -> str:
    """Message for an image too long and thin to preprocess."""
    height, width = original_size
    return _(
        "This image is too long and thin ({width}×{height} pixels) to show to the model. "
        "Please crop it closer to a square and try again."
    ).format(width=width, height=height)


# A step maps its input frame to its output frame by  out = scale * in + offset  on each axis (exact ratios).
@dataclass(frozen=True)
class _Step:
    size: tuple[int, int]  # output (height, width)
    scale: tuple[Fraction, Fraction]  # (y, x)
    offset: tuple[int, int]  # (y, x)


def _plan(transform_steps: Sequence, original_size: tuple[int, int], input_area: int):
    """Follow each transform step's effect on the image size and on coordinates, without pixels.

    Returns:
        ``[(step, planned output size)]`` for every step, and the resulting ``InputGeometry``.

    Raises:
        ImageError: a step would make an empty image, or a resize would exceed
            ``_MAX_RESIZE_FACTOR * input_area`` pixels (an extreme aspect ratio).
        ValueError: a step this function does not know.
    """
    size = tuple(original_size)
    scale, offset = [Fraction(1), Fraction(1)], [Fraction(0), Fraction(0)]  # exact: out = scale * in + offset
    planned = []
    for step in transform_steps:
        effect = _step_effect(step, size)
        if min(effect.size) < 1 or effect.size[0] * effect.size[1] > _MAX_RESIZE_FACTOR * input_area:
            raise ImageError(_extreme_aspect_message(tuple(original_size)), "extreme_aspect")
        scale = [s * k for s, k in zip(scale, effect.scale)]
        offset = [o * k + d for o, k, d in zip(offset, effect.scale, effect.offset)]
        size = effect.size
        planned.append((step, size))
    crop_box = (-offset[0] / scale[0], -offset[1] / scale[1], size[0] / scale[0], size[1] / scale[1])
    geometry = InputGeometry(tuple(original_size), size, tuple(float(v) for v in crop_box))
    return planned, geometry


def _step_effect(step, size: tuple[int, int]) -> _Step:
    """The geometric effect of one step of a timm eval transform on an image of ``size`` (H, W)."""
    from timm.data.transforms import CenterCropOrPad, MaybeToTensor, ResizeKeepRatio, TrimBorder
    from torchvision import transforms

    if isinstance(step, (MaybeToTensor, transforms.ToTensor, transforms.Normalize)):
        return _Step(size, (Fraction(1), Fraction(1)), (0, 0))
    if isinstance(step, transforms.Resize):
        return _resize(size, _resize_size(step, size))
    if isinstance(step, ResizeKeepRatio):
        return _resize(size, _keep_ratio_size(step, size))
    if isinstance(step, (transforms.CenterCrop, CenterCropOrPad)):
        crop = _pair(step.size)
        offset = (_center_offset(size[0], crop[0]), _center_offset(size[1], crop[1]))
        return _Step(crop, (Fraction(1), Fraction(1)), offset)
    if isinstance(step, TrimBorder):
        return _trim_border(size, step.border_size)
    raise ValueError(f"prepare_input cannot follow the transform step {step!r}")


def _resize(size: tuple[int, int], new_size: tuple[int, int]) -> _Step:
    """A resize from ``size`` to ``new_size``: a pure scale in continuous coordinates."""
    return _Step(new_size, (Fraction(new_size[0], size[0]), Fraction(new_size[1], size[1])), (0, 0))


def _resize_size(step, size: tuple[int, int]) -> tuple[int, int]:
    """Output (H, W) of torchvision's ``Resize`` (shorter side to ``size`` when given one number)."""
    target = step.size
    if isinstance(target, int) or len(target) == 1:
        short_target = target if isinstance(target, int) else target[0]
        height, width = size
        short, long = min(height, width), max(height, width)
        new_short, new_long = short_target, int(short_target * long / short)
        if step.max_size is not None and new_long > step.max_size:
            new_short, new_long = int(step.max_size * new_short / new_long), step.max_size
        return (new_long, new_short) if height > width else (new_short, new_long)
    return int(target[0]), int(target[1])


def _keep_ratio_size(step, size: tuple[int, int]) -> tuple[int, int]:
    """Output (H, W) of timm's ``ResizeKeepRatio`` in eval use (no random scale or aspect)."""
    if step.random_scale_prob > 0 or step.random_aspect_prob > 0:
        raise ValueError(f"prepare_input cannot follow the random step {step!r}")
    ratio_h, ratio_w = size[0] / step.size[0], size[1] / step.size[1]
    ratio = max(ratio_h, ratio_w) * step.longest + min(ratio_h, ratio_w) * (1.0 - step.longest)
    return round(size[0] / ratio), round(size[1] / ratio)


def _center_offset(length: int, crop: int) -> int:
    """Shift of a centre crop-or-pad from ``length`` to ``crop`` pixels (torchvision's and timm's rule)."""
    pad = (crop - length) // 2 if crop > length else 0
    padded = max(length, crop)
    return pad - int(round((padded - crop) / 2.0))


def _trim_border(size: tuple[int, int], border: int) -> _Step:
    """timm's ``TrimBorder``: both offsets are ``min(border, height)``, as timm computes them."""
    height, width = size
    top = left = min(border, height)
    new_size = (max(0, height - 2 * border), max(0, width - 2 * border))
    return _Step(new_size, (Fraction(1), Fraction(1)), (-top, -left))
