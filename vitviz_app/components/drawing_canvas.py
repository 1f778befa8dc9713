"""The drawing canvas: a square sketch pad (mouse, pen or finger) whose sketch becomes the image.

The browser keeps the strokes and sends the whole sketch as a PNG when a stroke ends, after undo or clear, or
when the background changes (never on a pointer move). What it sent comes from the browser, so its handler
checks it first (:func:`read_drawing`: a PNG of a sensible size, well-formed strokes and colours); a value it
refuses is ignored with a log line and the pad keeps its last good sketch. That sketch is kept in a plain
session-state key (:func:`kept_key`), so it survives page switches and a detour through another image source;
it is handed back to the pad when it mounts again. :func:`drawing_canvas` returns its PNG bytes, which the
sidebar decodes like an upload.
"""
from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Mapping
from typing import Any

import streamlit as st

from ._contract import Refused, as_number, mount_data, read_or_none
from ._registry import component

__all__ = ["DrawingError", "DRAWING_SIZE", "MAX_DRAWING_BYTES", "MAX_DRAWING_SIDE", "MAX_POINTS", "MAX_STROKES",
           "drawing_canvas", "drawing_png", "kept_key", "read_drawing"]

DRAWING_SIZE = 256
"""Side of the PNG the pad sends, in pixels (the model resizes it to its own input, e.g. 96 px)."""
MAX_DRAWING_BYTES = 2_000_000
"""Largest PNG accepted from the pad (a 256 px sketch is a few kB; the rest is not a sketch)."""
MAX_DRAWING_SIDE = 2048
"""Largest width or height accepted, read from the PNG header before anything is decoded."""
MAX_STROKES = 500
"""Strokes the pad keeps (``VD_MAX_STROKES`` in ``drawing_canvas.js``)."""
MAX_POINTS = 20_000
"""Points the pad keeps in all strokes (``VD_MAX_POINTS``); each stroke started at the limit adds its first one."""
MAX_PEN = 64
"""Widest stroke the pad draws, in PNG pixels."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_DATA_URL = "data:image/png;base64,"
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")

_pad = component("drawing_canvas")


class DrawingError(ValueError):
    """The pad's payload is not a sketch this app can use; the message says why (for the server log)."""


def kept_key(key: str) -> str:
    """Session-state key where the pad's last good value is kept (a plain key: it outlives the widget)."""
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
        raise DrawingError("the drawing is not an object")
    encoded = value.get("png")
    if encoded is None or encoded == "":
        return None
    if not isinstance(encoded, str):
        raise DrawingError("the drawing is not a PNG image")
    if len(encoded) > (MAX_DRAWING_BYTES * 4) // 3 + len(_DATA_URL) + 4:
        raise DrawingError(_too_large(len(encoded) * 3 // 4))
    if encoded.startswith("data:"):
        if not encoded.startswith(_DATA_URL):
            kind = encoded[5:].split(";", 1)[0].split(",", 1)[0][:40] or "unknown"
            raise DrawingError(f"the drawing is not a PNG image (it says {kind})")
        encoded = encoded[len(_DATA_URL):]
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise DrawingError("the drawing is not valid base64") from None
    return _checked_png(data)


def _too_large(size: int) -> str:
    return f"the drawing is too large ({size / 1e6:.1f} MB; at most {MAX_DRAWING_BYTES / 1e6:.0f} MB)"


def _checked_png(data: bytes) -> bytes:
    """``data`` if it starts like a PNG of at most :data:`MAX_DRAWING_SIDE` pixels a side (header only)."""
    if not data.startswith(_PNG_SIGNATURE):
        raise DrawingError("the drawing is not a PNG image")
    if len(data) > MAX_DRAWING_BYTES:
        raise DrawingError(_too_large(len(data)))
    if len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])  # the first chunk: IHDR, width then height
        if max(width, height) > MAX_DRAWING_SIDE:
            raise DrawingError(f"the drawing is too large ({width}×{height} px; at most {MAX_DRAWING_SIDE} px a side)")
    return data


def _colour(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _COLOUR.fullmatch(value):
        raise Refused(f"the {what} is not a colour #rrggbb")
    return value


def _strokes(value: Any) -> list[dict[str, Any]]:
    """The pad's strokes ``[{'c': colour, 'w': width, 'p': [x0, y0, x1, y1, ...]}, ...]``, checked and copied."""
    if not isinstance(value, list) or len(value) > MAX_STROKES:
        raise Refused(f"the strokes are not a list of at most {MAX_STROKES}")
    strokes, total = [], 0
    for stroke in value:
        if not isinstance(stroke, Mapping) or not isinstance(stroke.get("p"), list):
            raise Refused("a stroke is not an object with a list of points")
        points = stroke["p"]
        total += len(points)
        if len(points) < 2 or len(points) % 2 or total > 2 * (MAX_POINTS + MAX_STROKES):
            raise Refused("a stroke's points are not pairs, or there are too many")
        strokes.append({"c": _colour(stroke.get("c"), "stroke's colour"),
                        "w": as_number(stroke.get("w"), "stroke width", 1, MAX_PEN),
                        "p": [as_number(v, "point", 0, DRAWING_SIZE) for v in points]})
    return strokes


def read_drawing(value: Any) -> dict[str, Any]:
    """A value sent by the pad, checked: its PNG (:func:`drawing_png`), strokes, colours and pen width.

    Returns:
        A copy with the keys the pad sends (``png``, ``strokes``, ``background``, ``pen``, ``width``; the last three
        only when sent) and nothing else.

    Raises:
        Refused: Anything else: wrong types, malformed or too many strokes, a PNG that is not one or too large.
    """
    if not isinstance(value, Mapping) or "png" not in value or "strokes" not in value:
        raise Refused("the drawing is not an object with a png and strokes")
    try:
        drawing_png(value)
    except DrawingError as exc:
        raise Refused(str(exc)) from None
    clean: dict[str, Any] = {"png": value["png"] or None, "strokes": _strokes(value["strokes"])}
    for name in ("background", "pen"):
        if name in value:
            clean[name] = _colour(value[name], name)
    if "width" in value:
        clean["width"] = as_number(value["width"], "pen width", 1, MAX_PEN)
    return clean


def drawing_canvas(*, key: str, text: Mapping[str, str], pen: str = "#000000", width: int = 12,
                   background: str = "#ffffff") -> bytes | None:
    """Mount the pad; returns the PNG of the sketch kept in this session (None while the pad is empty).

    Args:
        key: Widget key; the last good value is kept under :func:`kept_key` ``(key)``.
        text: Words shown on the pad: ``pen``, ``width``, ``background``, ``undo``, ``clear``, ``canvas``
            (the pad's accessible name).
        pen, width, background: Pen colour, pen width (in PNG pixels) and background colour of a new pad.
    """
    kept = kept_key(key)

    def keep() -> None:
        state = st.session_state.get(key)
        value = state.get("drawing") if isinstance(state, Mapping) else None
        drawing = None if value is None else read_or_none(read_drawing, value, "drawing pad")
        if drawing is not None:
            st.session_state[kept] = drawing

    value = st.session_state.get(kept)
    sketch = None if value is None else read_or_none(read_drawing, value, "drawing pad")
    shown = {"size": DRAWING_SIZE, "strokes": [], "pen": pen, "width": int(width), "background": background}
    shown.update({name: sketch[name] for name in shown if sketch and name in sketch})  # all but its PNG and size
    _pad(data=mount_data(committed=shown, text=text), key=key, on_drawing_change=keep)
    return drawing_png(sketch)
