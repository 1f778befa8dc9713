"""Recognising bad files: what an unreadable upload most likely is, said so that a person can act on it.

Nothing here decodes pixels: magic numbers, ISO media brands, a look at the first kilobyte as text, and PIL's
other plugins' header parsers name the format (a HEIC photo, a PDF, a web page saved by mistake ...).
"""
from __future__ import annotations

import io
import re

from PIL import Image

from vitviz.i18n import N_, _, sentences

from .errors import ImageError, _supported_text

__all__: list[str] = []  # package-internal: what vitviz.images.load_image raises is made here

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
        message = sentences(message, _supported_text())
        return ImageError(message, "unsupported_format", detected_format=fmt)
    if _text_head(data).startswith(("<!doctype html", "<html")):
        message = _("This file is a web page (HTML), not an image. Save the image itself and try again.")
        message = sentences(message, _supported_text())
        return ImageError(message, "not_image", detected_format="HTML")
    message = sentences(_("This file is not an image (or not one we can read)."), _supported_text())
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
        message = sentences(message, _("The limit is {megapixels:g} megapixels.").format(megapixels=limit / 1e6))
    return sentences(message, _("Please resize it to a smaller copy first."))


def _pixels_from_bomb_error(exc: Exception) -> int | None:
    """The pixel count that PIL's DecompressionBombError reports, when its message has one."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return int(found.group(1)) if found else None
