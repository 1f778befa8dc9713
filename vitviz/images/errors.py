"""The error every image problem becomes: a message a person can act on, and a machine-readable reason."""
from __future__ import annotations

from vitviz.i18n import _

__all__ = ["SUPPORTED_FORMATS", "ImageError"]

#: Formats ``load_image`` accepts, as shown to users.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WebP", "BMP", "GIF", "TIFF")


class ImageError(ValueError):
    """An image that cannot be used, with a message for the person who supplied it.

    Attributes:
        reason: machine-readable cause, one of ``'empty'``, ``'not_image'``, ``'unsupported_format'``,
            ``'truncated'``, ``'corrupt'``, ``'too_large'``, ``'too_small'``, ``'unsupported_mode'``,
            ``'extreme_aspect'``, ``'not_finite'`` (an array with NaN or infinite values).
        detected_format: what the file looked like (``'HEIC'``, ``'SVG'``, ``'PNG'`` ...) when known.
    """

    def __init__(self, message: str, reason: str, *, detected_format: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.detected_format = detected_format


def _supported_text() -> str:
    """``"Supported formats: JPEG, PNG, …"`` in the current language."""
    return _("Supported formats: {formats}.").format(formats=", ".join(SUPPORTED_FORMATS))
