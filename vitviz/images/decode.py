"""Decoding: an upload, a file, a PIL image or an array becomes an upright 8-bit RGB image, or an ImageError.

``load_image`` decodes a file whole (a truncated file is an error, never a half-grey picture), applies the
EXIF orientation and converts every mode with ``to_rgb``; the pixel count is checked from the header first,
so a decompression bomb costs neither time nor memory. ``read_image`` is the notebook's entry: it sends
files through ``load_image``, PIL images through the same ``to_rgb`` and arrays through ``as_rgb_array``,
which refuses empty and non-finite arrays.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vitviz.i18n import _

from .errors import ImageError
from .forensics import _pixels_from_bomb_error, _too_large_message, _unreadable

__all__ = ["MAX_PIXELS", "as_rgb_array", "load_image", "read_image", "to_rgb"]

#: Default limit on width * height, checked from the header before any pixel is decoded.
MAX_PIXELS = 40_000_000

# PIL plugins tried by Image.open; the JPEG plugin also opens MPO, the multi-picture JPEG of many cameras.
_PIL_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")


_FORMAT_NAMES = {
    "JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF", "TIFF": "TIFF",
}


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


def as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """The image as a ``(H, W, 3)`` uint8 array: a PIL image through :func:`to_rgb`; an array in HWC or HW,
    uint8 as it is, other types rounded and clipped to 0..255 (a float array whose maximum is at most 1 is
    read as 0..1); a fourth channel is dropped. For drawing: values that are not finite (the features of a
    model with NaN weights) are drawn as they fall, never refused; :func:`read_image` refuses them as input.

    Raises:
        ImageError: an array without pixels (reason ``'empty'``), not numeric, or not shaped like an image
            (``'not_image'``).
    """
    if isinstance(image, Image.Image):
        return np.asarray(to_rgb(image))
    arr = np.asarray(image)
    _check_shape(arr)
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        arr = np.clip(np.round(arr * 255.0 if arr.max(initial=0) <= 1.0 else arr), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)  # (H, W, 3)
    return np.ascontiguousarray(arr[..., :3])


def _check_shape(arr: np.ndarray) -> None:
    """Refuse an array that is not an image: wrong shape, no pixels, not numbers."""
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        message = _("An image array must be (height, width) or (height, width, 3 or 4), not {shape}.").format(
            shape=tuple(arr.shape))
        raise ImageError(message, "not_image")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        message = _("This image array has no pixels ({width}×{height}).").format(width=arr.shape[1],
                                                                                height=arr.shape[0])
        raise ImageError(message, "empty")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        message = _("An image array must hold numbers, not {dtype}.").format(dtype=arr.dtype)
        raise ImageError(message, "not_image")


def _check_finite(arr: np.ndarray) -> None:
    """Refuse an array with NaN or infinite values (it would silently become a black or white picture)."""
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = int(arr.size - np.isfinite(arr).sum())
        message = _("This image array holds {count} values that are not numbers (NaN) or infinite; "
                    "it cannot be shown as a picture.").format(count=bad)
        raise ImageError(message, "not_finite")


def read_image(source: bytes | str | Path | BinaryIO | Image.Image | np.ndarray) -> Image.Image:
    """An upright RGB image from anything a notebook user may pass, each checked like an upload.

    A path, bytes or binary file object is decoded by :func:`load_image`; a PIL image goes through
    :func:`to_rgb` (16-bit, CMYK, palette and transparency as for uploads; an RGB image is returned as it is);
    an array through :func:`as_rgb_array`, after refusing NaN and infinite values.

    Raises:
        ImageError: as for :func:`load_image`, an image without pixels, an array :func:`as_rgb_array`
            refuses, or one with NaN or infinite values (reason ``'not_finite'``).
        TypeError: ``source`` is none of these.
    """
    if isinstance(source, Image.Image):
        if source.width < 1 or source.height < 1:
            message = _("This image has no pixels ({width}×{height}).").format(width=source.width,
                                                                              height=source.height)
            raise ImageError(message, "empty")
        return source if source.mode == "RGB" else to_rgb(source)
    if isinstance(source, np.ndarray):
        _check_shape(source)
        _check_finite(source)
        return Image.fromarray(as_rgb_array(source))
    if isinstance(source, (str, Path, bytes, bytearray, memoryview)) or hasattr(source, "read"):
        return load_image(source)
    raise TypeError(f"cannot read an image from {type(source).__name__}")
