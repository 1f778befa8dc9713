"""Build test images in memory: good ones in every mode, and every kind of bad upload.

No binary fixtures: each function returns the encoded file as ``bytes`` (or a PIL image for
``make_marker_image``), built from numpy arrays so the expected pixels are known exactly.
Sizes are ``(height, width)`` like the rest of vitviz; colours are ``(R, G, B)`` tuples.

Used by ``tests/unit/test_images.py`` and by other tests (the app's bad-upload tests), e.g.::

    from tests._imagefactory import make_png, make_truncated_jpeg, make_bomb_png
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

__all__ = [
    "BAD_UPLOADS",
    "encode",
    "make_16bit_gray_png",
    "make_16bit_gray_tiff",
    "make_16bit_rgb_png",
    "make_1bit_png",
    "make_animated_gif",
    "make_bmp",
    "make_bomb_png",
    "make_cmyk_jpeg",
    "make_corrupt_png",
    "make_empty",
    "make_gif",
    "make_heic",
    "make_html",
    "make_ico",
    "make_int32_tiff",
    "make_jpeg",
    "make_la_png",
    "make_marker_image",
    "make_mpo",
    "make_oriented_jpeg",
    "make_palette_png",
    "make_pdf",
    "make_png",
    "make_raw_png",
    "make_rgba_png",
    "make_svg",
    "make_text",
    "make_tiff",
    "make_truncated_jpeg",
    "make_truncated_png",
    "make_webp",
    "make_zero_width_png",
    "orient_for_exif",
]

Color = tuple[int, int, int]


def encode(image: Image.Image, fmt: str, **save_kwargs) -> bytes:
    """Encode a PIL image with PIL's own writer and return the file bytes."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_kwargs)
    return buffer.getvalue()


def make_marker_image(
    size: tuple[int, int] = (96, 128),
    markers: Sequence[tuple[int, int]] = ((20, 30),),
    marker_size: int = 6,
    background: Color = (40, 40, 40),
    color: Color = (255, 255, 255),
) -> Image.Image:
    """An RGB image of one colour with bright square markers at known places.

    Args:
        size: (height, width) of the image.
        markers: top-left (row, col) of each square marker.
        marker_size: side of each marker in pixels; marker ``(r, c)`` covers rows ``r .. r+side-1``,
            so its centre in continuous pixel coordinates is ``(r + side / 2, c + side / 2)``.
        background: colour of the rest of the image.
        color: colour of the markers.
    """
    array = np.empty((*size, 3), dtype=np.uint8)  # (H, W, 3)
    array[:] = background
    for row, col in markers:
        array[row : row + marker_size, col : col + marker_size] = color
    return Image.fromarray(array, "RGB")


def make_png(size: tuple[int, int] = (32, 48), color: Color = (200, 30, 60), mode: str = "RGB") -> bytes:
    """A PNG filled with one colour, converted to ``mode`` by PIL before saving ('RGB', 'L', ...)."""
    image = Image.new("RGB", (size[1], size[0]), color)
    return encode(image.convert(mode), "PNG")


def make_jpeg(size: tuple[int, int] = (32, 48), color: Color = (200, 30, 60), quality: int = 95) -> bytes:
    """A baseline JPEG filled with one colour."""
    return encode(Image.new("RGB", (size[1], size[0]), color), "JPEG", quality=quality)


def make_mpo(size: tuple[int, int] = (32, 48), color: Color = (200, 30, 60), second: Color = (0, 0, 255)) -> bytes:
    """A two-picture MPO (the multi-picture JPEG many phones write): ``color`` first, then ``second``."""
    first, other = (Image.new("RGB", (size[1], size[0]), c) for c in (color, second))
    return encode(first, "MPO", save_all=True, append_images=[other], quality=95)


def make_webp(size: tuple[int, int] = (32, 48), color: Color = (200, 30, 60)) -> bytes:
    """A lossless WebP filled with one colour."""
    return encode(Image.new("RGB", (size[1], size[0]), color), "WEBP", lossless=True)


def make_bmp(size: tuple[int, int] = (32, 48), color: Color = (200, 30, 60)) -> bytes:
    """A 24-bit BMP filled with one colour."""
    return encode(Image.new("RGB", (size[1], size[0]), color), "BMP")


def make_gif(size: tuple[int, int] = (32, 48), color: Color = (200, 30, 60)) -> bytes:
    """A single-frame GIF filled with one colour (exactly representable in its palette)."""
    return encode(Image.new("RGB", (size[1], size[0]), color).convert("P", palette=Image.Palette.ADAPTIVE), "GIF")


def make_tiff(size: tuple[int, int] = (32, 48), color: Color = (200, 30, 60), compression: str = "tiff_lzw") -> bytes:
    """An RGB TIFF filled with one colour."""
    return encode(Image.new("RGB", (size[1], size[0]), color), "TIFF", compression=compression)


def make_animated_gif(
    colors: Sequence[Color] = ((255, 0, 0), (0, 255, 0), (0, 0, 255)), size: tuple[int, int] = (16, 16)
) -> bytes:
    """An animated GIF whose frame ``i`` is filled with ``colors[i]``."""
    frames = [Image.new("RGB", (size[1], size[0]), c).convert("P", palette=Image.Palette.ADAPTIVE) for c in colors]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def make_palette_png(
    palette: Sequence[Color] = ((255, 0, 0), (0, 255, 0), (0, 0, 255)),
    indices: np.ndarray | None = None,
    transparent_index: int | None = None,
) -> bytes:
    """A palette ('P') PNG. Default pixels: a 4x6 image, columns 0-1 use index 0, 2-3 index 1, 4-5 index 2.

    Args:
        palette: RGB colour of each palette index.
        indices: (H, W) uint8 array of palette indices; the default layout above when None.
        transparent_index: palette index stored as fully transparent (tRNS chunk), if any.
    """
    if indices is None:
        indices = np.repeat(np.arange(3, dtype=np.uint8), 2)[None, :].repeat(4, axis=0)  # (4, 6)
    image = Image.fromarray(indices.astype(np.uint8), "P")
    image.putpalette([v for color in palette for v in color])
    kwargs = {} if transparent_index is None else {"transparency": transparent_index}
    return encode(image, "PNG", **kwargs)


def make_rgba_png(rgba: tuple[int, int, int, int] = (255, 0, 0, 128), size: tuple[int, int] = (8, 8)) -> bytes:
    """An RGBA PNG filled with one colour and one alpha value."""
    return encode(Image.new("RGBA", (size[1], size[0]), rgba), "PNG")


def make_la_png(gray: int = 0, alpha: int = 0, size: tuple[int, int] = (8, 8)) -> bytes:
    """A gray + alpha ('LA') PNG filled with one value."""
    return encode(Image.new("LA", (size[1], size[0]), (gray, alpha)), "PNG")


def make_1bit_png(pattern: np.ndarray | None = None) -> bytes:
    """A 1-bit PNG; default pattern is a 4x4 checkerboard starting with white at (0, 0)."""
    if pattern is None:
        pattern = (np.indices((4, 4)).sum(axis=0) % 2 == 0)  # (4, 4) True on even squares
    return encode(Image.fromarray(pattern.astype(bool)), "PNG")


def make_16bit_gray_png(values: np.ndarray | Sequence[Sequence[int]]) -> bytes:
    """A 16-bit grayscale PNG holding ``values`` (an (H, W) array of 0..65535)."""
    array = np.asarray(values, dtype=np.uint16)  # (H, W)
    return encode(Image.fromarray(array), "PNG")


def make_16bit_gray_tiff(values: np.ndarray | Sequence[Sequence[int]], big_endian: bool = False) -> bytes:
    """A 16-bit grayscale TIFF (PIL mode 'I;16' or, with ``big_endian``, 'I;16B') holding ``values``."""
    array = np.asarray(values, dtype=np.uint16)  # (H, W)
    height, width = array.shape
    if big_endian:
        image = Image.frombytes("I;16B", (width, height), array.astype(">u2").tobytes())
    else:
        image = Image.frombytes("I;16", (width, height), array.astype("<u2").tobytes())
    return encode(image, "TIFF")


def make_int32_tiff(values: np.ndarray | Sequence[Sequence[int]]) -> bytes:
    """A 32-bit integer TIFF (PIL mode 'I') holding ``values``."""
    array = np.asarray(values, dtype=np.int32)  # (H, W)
    return encode(Image.fromarray(array, "I"), "TIFF")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type + data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def make_raw_png(width: int, height: int, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    """A PNG written by hand: signature, IHDR, one IDAT holding ``idat`` verbatim, IEND.

    Lets tests claim any header size or bit depth, whatever PIL's writer supports.
    ``color_type``: 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA.
    """
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def make_16bit_rgb_png(rgb16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG holding ``rgb16``, an (H, W, 3) array of 0..65535."""
    array = np.asarray(rgb16, dtype=">u2")  # (H, W, 3) big-endian as PNG stores it
    height, width, _ = array.shape
    rows = array.reshape(height, width * 3).tobytes()  # (H, W*3) samples, 2 bytes each
    row_bytes = width * 6
    scanlines = b"".join(b"\x00" + rows[r * row_bytes : (r + 1) * row_bytes] for r in range(height))
    return make_raw_png(width, height, 16, 2, zlib.compress(scanlines))


def make_bomb_png(height: int = 100_000, width: int = 100_000, valid_data: bool = False) -> bytes:
    """A tiny PNG whose header claims ``height`` x ``width`` 1-bit gray pixels.

    Args:
        height: rows claimed by the header.
        width: columns claimed by the header.
        valid_data: when True, IDAT holds a genuine zlib stream of all-zero scanlines (a real
            decompression bomb, built chunk by chunk); when False, a few zero bytes that would fail
            to decode, so any attempt to decode it shows up as a 'corrupt' error instead of 'too_large'.
    """
    if not valid_data:
        return make_raw_png(width, height, 1, 0, zlib.compress(b"\x00" * 64))
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * min(1024, height - start)) for start in range(0, height, 1024)]
    return make_raw_png(width, height, 1, 0, b"".join(parts) + compressor.flush())


def make_zero_width_png() -> bytes:
    """A PNG whose header claims a 0-pixel-wide image (forbidden by the PNG spec)."""
    return make_raw_png(0, 5, 8, 0, zlib.compress(b"\x00" * 5))


def make_cmyk_jpeg(cmyk: tuple[int, int, int, int] = (0, 255, 255, 0), size: tuple[int, int] = (16, 16)) -> bytes:
    """A CMYK JPEG filled with one ink combination (default: magenta + yellow, i.e. red)."""
    return encode(Image.new("CMYK", (size[1], size[0]), cmyk), "JPEG", quality=100)


def orient_for_exif(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels that a viewer shows as ``upright`` after applying EXIF ``orientation``.

    Written independently of PIL from the EXIF 2.3 definitions (tag 0x0112): the value says where
    the stored row 0 / column 0 appear on screen. ``upright`` is (H, W, ...); the result may be (W, H, ...).
    """
    stored_from_upright = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],  # viewer mirrors left-right
        3: lambda a: a[::-1, ::-1],  # viewer rotates 180
        4: lambda a: a[::-1, :],  # viewer mirrors top-bottom
        5: lambda a: np.swapaxes(a, 0, 1),  # viewer transposes (mirror about the main diagonal)
        6: lambda a: np.rot90(a, k=1),  # viewer rotates 90 clockwise, so store it rotated counter-clockwise
        7: lambda a: np.rot90(a, k=2).swapaxes(0, 1),  # viewer mirrors about the anti-diagonal
        8: lambda a: np.rot90(a, k=-1),  # viewer rotates 90 counter-clockwise
    }
    return np.ascontiguousarray(stored_from_upright[orientation](upright))


def make_oriented_jpeg(upright: Image.Image, orientation: int, quality: int = 95) -> bytes:
    """A JPEG whose pixels are stored rotated/mirrored, with the EXIF tag that shows them as ``upright``."""
    stored = orient_for_exif(np.asarray(upright.convert("RGB")), orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(stored, "RGB"), "JPEG", quality=quality, exif=exif.tobytes())


def make_truncated_jpeg(size: tuple[int, int] = (64, 96), keep: float = 0.6) -> bytes:
    """A noisy JPEG cut off after ``keep`` of its bytes (its header is intact, its pixels are not)."""
    noise = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)  # (H, W, 3)
    data = encode(Image.fromarray(noise, "RGB"), "JPEG", quality=90)
    return data[: int(len(data) * keep)]


def make_truncated_png(size: tuple[int, int] = (64, 96), keep: float = 0.6) -> bytes:
    """A noisy PNG cut off after ``keep`` of its bytes, in the middle of its pixel data."""
    noise = np.random.default_rng(1).integers(0, 256, (*size, 3), dtype=np.uint8)  # (H, W, 3)
    data = encode(Image.fromarray(noise, "RGB"), "PNG")
    return data[: int(len(data) * keep)]


def make_corrupt_png(size: tuple[int, int] = (64, 96)) -> bytes:
    """A full-length PNG with one byte of its compressed pixel data flipped."""
    noise = np.random.default_rng(2).integers(0, 256, (*size, 3), dtype=np.uint8)  # (H, W, 3)
    data = bytearray(encode(Image.fromarray(noise, "RGB"), "PNG"))
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


def make_empty() -> bytes:
    """An empty file."""
    return b""


def make_text() -> bytes:
    """A plain-text file (as if a .txt were renamed .png)."""
    return b"name,score\nalice,3\nbob,5\n"


def make_html() -> bytes:
    """A web page saved instead of the image it showed (renamed .png)."""
    return b"<!DOCTYPE html>\n<html><head><title>cat.png</title></head><body><img src='cat.png'></body></html>\n"


def make_svg() -> bytes:
    """A small SVG drawing (XML text)."""
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>\n'
    )


def make_heic() -> bytes:
    """The opening of a HEIC file (ISO-BMFF 'ftyp' box with brand 'heic') followed by filler bytes."""
    ftyp = b"ftyp" + b"heic" + b"\x00\x00\x00\x00" + b"mif1heic"
    return struct.pack(">I", 4 + len(ftyp)) + ftyp + b"\x00" * 64


def make_pdf() -> bytes:
    """The opening of a PDF document."""
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"


def make_ico() -> bytes:
    """A Windows icon, a real image format PIL reads but vitviz does not accept."""
    return encode(Image.new("RGB", (16, 16), (10, 20, 30)), "ICO")


#: Every bad upload with the ``ImageError.reason`` that ``vitviz.images.load_image`` gives it.
BAD_UPLOADS: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (make_empty, "empty"),
    "text renamed .png": (make_text, "not_image"),
    "html renamed .png": (make_html, "not_image"),
    "svg": (make_svg, "unsupported_format"),
    "heic": (make_heic, "unsupported_format"),
    "pdf": (make_pdf, "unsupported_format"),
    "ico": (make_ico, "unsupported_format"),
    "truncated jpeg": (make_truncated_jpeg, "truncated"),
    "truncated png": (make_truncated_png, "truncated"),
    "corrupt png": (make_corrupt_png, "corrupt"),
    "zero-width png": (make_zero_width_png, "corrupt"),
    "bomb png": (make_bomb_png, "too_large"),
}


def decode_data_uri(uri: str) -> np.ndarray:
    """The RGB pixels of a ``data:image/...;base64,`` URI (a figure's photo trace), as a (H, W, 3) array."""
    import base64

    header, payload = uri.split(",", 1)
    assert header.startswith("data:image/") and header.endswith(";base64")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB"))
