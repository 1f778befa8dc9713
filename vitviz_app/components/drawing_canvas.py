"""The drawing canvas: a square sketch pad (mouse, pen or finger) whose sketch becomes the image.

The browser keeps the strokes and sends the whole sketch as a PNG when a stroke ends, after undo or clear, or
when the background changes (never on a pointer move). What it sent is copied to a plain session-state key
(:func:`kept_key`), so the sketch survives page switches and a detour through another image source; it is
handed back to the pad when it mounts again. :func:`drawing_png` turns that value into PNG bytes, which the
sidebar decodes like an upload.
"""
from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from vitviz.i18n import _

from ._registry import RuntimeComponent

__all__ = ["DrawingError", "DRAWING_SIZE", "MAX_DRAWING_BYTES", "MAX_DRAWING_SIDE", "drawing_canvas", "drawing_png",
           "kept_key"]

_HERE = Path(__file__).parent
DRAWING_SIZE = 256
"""Side of the PNG the pad sends, in pixels (the model resizes it to its own input, e.g. 96 px)."""
MAX_DRAWING_BYTES = 2_000_000
"""Largest PNG accepted from the pad (a 256 px sketch is a few kB; the rest is not a sketch)."""
MAX_DRAWING_SIDE = 2048
"""Largest width or height accepted, read from the PNG header before anything is decoded."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_DATA_URL = "data:image/png;base64,"

_pad = RuntimeComponent(
    "vitviz.drawing_canvas",
    js=(_HERE / "drawing_canvas.js").read_text(),
    css=(_HERE / "drawing_canvas.css").read_text(),
)


class DrawingError(ValueError):
    """The pad's payload is not a sketch this app can use; the message says why, in words."""


def kept_key(key: str) -> str:
    """Session-state key where the pad's last value is kept (a plain key: it outlives the widget)."""
    return f"{key}.kept"


def drawing_png(value: Any) -> bytes | None:
    """The PNG bytes of a value sent by the pad, or None when the pad is empty.

    Args:
        value: ``{'png': 'data:image/png;base64,…', 'strokes': [...], ...}`` as the pad sends it, or None.

    Raises:
        DrawingError: The value holds something else than a PNG of a sensible size.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DrawingError(_("The drawing arrived in a form this app does not understand; clear it and draw again."))
    encoded = value.get("png")
    if encoded is None or encoded == "":
        return None
    if not isinstance(encoded, str):
        raise DrawingError(_not_png())
    if len(encoded) > (MAX_DRAWING_BYTES * 4) // 3 + len(_DATA_URL) + 4:
        raise DrawingError(_too_large(len(encoded) * 3 // 4))
    if encoded.startswith("data:"):
        if not encoded.startswith(_DATA_URL):
            kind = encoded[5:].split(";", 1)[0].split(",", 1)[0][:40] or "unknown"
            raise DrawingError(_("The drawing is not a PNG image (it says {kind}); clear it and draw again.").format(
                kind=kind))
        encoded = encoded[len(_DATA_URL):]
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise DrawingError(_("The drawing arrived damaged (it is not valid base64); clear it and draw again.")) \
            from None
    return _checked_png(data)


def _not_png() -> str:
    return _("The drawing is not a PNG image; clear it and draw again.")


def _too_large(size: int) -> str:
    return _("The drawing is too large ({size:.1f} MB; at most {limit:.0f} MB): clear it and draw again.").format(
        size=size / 1e6, limit=MAX_DRAWING_BYTES / 1e6)


def _checked_png(data: bytes) -> bytes:
    """``data`` if it starts like a PNG of at most :data:`MAX_DRAWING_SIDE` pixels a side (header only)."""
    if not data.startswith(_PNG_SIGNATURE):
        raise DrawingError(_not_png())
    if len(data) > MAX_DRAWING_BYTES:
        raise DrawingError(_too_large(len(data)))
    if len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])  # the first chunk: IHDR, width then height
        if max(width, height) > MAX_DRAWING_SIDE:
            raise DrawingError(_("The drawing is too large ({width}×{height} px; at most {side} px a side): clear "
                                 "it and draw again.").format(width=width, height=height, side=MAX_DRAWING_SIDE))
    return data


def _restorable(kept: Any) -> dict[str, Any]:
    """What the pad needs to redraw a kept sketch: strokes and colours, not the PNG."""
    if not isinstance(kept, Mapping):
        return {}
    return {name: kept[name] for name in ("strokes", "background", "pen", "width") if name in kept}


def drawing_canvas(*, key: str, labels: Mapping[str, str], pen: str = "#000000", width: int = 12,
                   background: str = "#ffffff") -> Any:
    """Mount the pad; returns the last value it sent in this session (None before the first stroke).

    Args:
        key: Widget key; the value is kept under :func:`kept_key` ``(key)``.
        labels: Words shown on the pad: ``pen``, ``width``, ``background``, ``undo``, ``clear``, ``canvas``
            (the pad's accessible name).
        pen, width, background: Pen colour, pen width (in PNG pixels) and background colour of a new pad.
    """
    kept = kept_key(key)

    def keep() -> None:
        st.session_state[kept] = (st.session_state.get(key) or {}).get("drawing")

    _pad(data={"labels": dict(labels), "size": DRAWING_SIZE, "pen": pen, "width": int(width),
               "background": background, "initial": _restorable(st.session_state.get(kept))},
         key=key, on_drawing_change=keep)
    return st.session_state.get(kept)
