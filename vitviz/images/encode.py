"""Encoding: the one JPEG encoder of vitviz, data URIs for figures, and the photo cache.

A figure carries the photo as a downscaled JPEG data URI, encoded once per image and kept (a PIL image by
identity, an array by content), so a figure rebuilt for another layer or setting does not scale and encode
the photo again. The browser components' payloads take their JPEG from :func:`encode_jpeg` too.
"""
from __future__ import annotations

import base64
import hashlib
import io
import threading
import weakref
from collections import OrderedDict

import numpy as np
from PIL import Image

from .decode import as_rgb_array

__all__ = ["JPEG_QUALITY", "MAX_PHOTO_SIDE", "PHOTO_CACHE_SIZE", "encode_jpeg", "image_data_uri", "photo_data_uri"]

MAX_PHOTO_SIDE = 512


JPEG_QUALITY = 70  # under a 60 % opaque map; 80 made the photo ~1.4x the bytes for no visible gain


PHOTO_CACHE_SIZE = 16


def encode_jpeg(image: Image.Image, *, quality: int = JPEG_QUALITY, optimize: bool = False) -> bytes:
    """``image`` as JPEG bytes (converted to RGB first when it is not).

    Args:
        image: a PIL image.
        quality: JPEG quality, 1..95.
        optimize: let PIL compute optimal Huffman tables (smaller file, same pixels, a little more time).
    """
    buffer = io.BytesIO()
    (image if image.mode == "RGB" else image.convert("RGB")).save(buffer, format="JPEG", quality=int(quality),
                                                                  optimize=optimize)
    return buffer.getvalue()


def image_data_uri(image: Image.Image | np.ndarray, *, max_side: int | None = MAX_PHOTO_SIDE, fmt: str = "JPEG") -> str:
    """Encode an image as a data URI, downscaled so its longest side is at most ``max_side``.

    Args:
        image: PIL image or uint8 array.
        max_side: longest side after downscaling; ``None`` keeps the size.
        fmt: ``"JPEG"`` for photos, ``"PNG"`` for small exact tiles (filters, patch sequences).
    """
    pil = image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(as_rgb_array(image))
    if max_side is not None and max(pil.size) > max_side:
        pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if fmt.upper() == "JPEG":
        data, mime = encode_jpeg(pil, quality=JPEG_QUALITY, optimize=True), "image/jpeg"
    else:
        buf = io.BytesIO()
        pil.save(buf, format="PNG", optimize=True)
        data, mime = buf.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


_PHOTO_URIS: OrderedDict[tuple, tuple[weakref.ref | None, str]] = OrderedDict()  # key → (weak ref or None, data URI)


_PHOTO_LOCK = threading.Lock()


def _photo_key(image: Image.Image | np.ndarray, max_side: int | None) -> tuple[tuple, weakref.ref | None]:
    """A cache key for the photo's data URI and, for a PIL image, a weak reference that proves it is alive.

    A PIL image is keyed by identity (the app keeps one decoded image per upload); an array by a digest of
    its bytes, since arrays are often rebuilt or changed in place.
    """
    if isinstance(image, Image.Image):
        return ("pil", id(image), image.size, image.mode, max_side), weakref.ref(image)
    arr = np.ascontiguousarray(image)
    digest = hashlib.blake2b(arr.view(np.uint8).reshape(-1), digest_size=16).hexdigest()
    return ("array", arr.shape, str(arr.dtype), digest, max_side), None


def photo_data_uri(image: Image.Image | np.ndarray, *, max_side: int | None = MAX_PHOTO_SIDE) -> str:
    """:func:`image_data_uri` of a photo (JPEG), encoded once per image and reused (a small LRU cache)."""
    key, ref = _photo_key(image, max_side)
    with _PHOTO_LOCK:
        hit = _PHOTO_URIS.get(key)
        if hit is not None and (hit[0] is None or hit[0]() is image):
            _PHOTO_URIS.move_to_end(key)
            return hit[1]
    uri = image_data_uri(image, max_side=max_side)
    with _PHOTO_LOCK:
        _PHOTO_URIS[key] = (ref, uri)
        while len(_PHOTO_URIS) > PHOTO_CACHE_SIZE:
            _PHOTO_URIS.popitem(last=False)
    return uri
