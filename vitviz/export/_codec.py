"""A small binary container for arrays sent to the browser, and per-row 8-bit quantisation.

The container is what a browser component decodes with a few typed-array views, no library:

    b"VVZ1" | uint32 LE header length | header (UTF-8 JSON) | zero padding to 4 | sections, each 4-aligned

The header's ``sections`` maps a name to ``{"offset", "nbytes", "dtype", "shape"}`` (offset from the end of
the header's padding; dtype ``'uint8'``, ``'float32'`` or ``'bytes'``). Everything is little-endian.

Rows are quantised affinely, each with its own offset and step: ``value = lo + code * step`` with
``code`` in 0..255, ``lo`` the row's minimum and ``step = (max - min) / 255``. Decoding is off by at most
half a step (plus float32 rounding of ``lo`` and ``step``).
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


__all__ = ["MAGIC", "Payload", "QuantisedRows", "quantise_rows", "pack", "unpack"]

MAGIC = b"VVZ1"
LEVELS = 255


@dataclass(frozen=True)
class Payload:
    """What the browser receives: the container bytes (:func:`pack`), their content id (the page pairs a
    component with its data by it) and the tier, i.e. how much of the data fitted the budget."""

    blob: bytes
    id: str
    tier: str

    @property
    def nbytes(self) -> int:
        return len(self.blob)


@dataclass(frozen=True)
class QuantisedRows:
    """Rows over the last axis coded as uint8 with a per-row offset and step.

    Attributes:
        codes: (..., N) uint8.
        lo: (...) float32, each row's minimum.
        step: (...) float32, each row's quantisation step ((max - min) / 255; 0 for a constant row).
    """

    codes: np.ndarray
    lo: np.ndarray
    step: np.ndarray

    def decode(self) -> np.ndarray:
        """float32 rows (..., N), computed as the browser does: ``lo + code * step`` in float32."""
        return self.lo[..., None] + self.codes.astype(np.float32) * self.step[..., None]

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.lo.nbytes + self.step.nbytes


def quantise_rows(values: ArrayLike) -> QuantisedRows:
    """Quantise each row of ``values`` (..., N) to 8 bits with its own offset and step."""
    values = np.asarray(values, dtype=np.float64)
    lo = values.min(axis=-1)  # (...)
    step = (values.max(axis=-1) - lo) / LEVELS  # (...)
    safe = np.where(step > 0, step, 1.0)
    codes = np.rint((values - lo[..., None]) / safe[..., None])  # (..., N)
    return QuantisedRows(np.clip(codes, 0, LEVELS).astype(np.uint8), lo.astype(np.float32),
                         step.astype(np.float32))


def _align(n: int) -> int:
    return (n + 3) // 4 * 4


def pack(header: dict[str, Any], sections: dict[str, np.ndarray | bytes]) -> bytes:
    """One blob: the header (with a ``sections`` table added) followed by each section's bytes.

    Section offsets count from the first byte after the header's padding.
    """
    raw = [(name, bytes(v) if isinstance(v, (bytes, bytearray)) else np.ascontiguousarray(v))
           for name, v in sections.items()]
    table: dict[str, dict[str, Any]] = {}
    offset = 0
    for name, value in raw:
        is_bytes = isinstance(value, bytes)
        nbytes = len(value) if is_bytes else value.nbytes
        table[name] = {"offset": offset, "nbytes": nbytes, "dtype": "bytes" if is_bytes else str(value.dtype),
                       "shape": [] if is_bytes else list(value.shape)}
        offset = _align(offset + nbytes)
    text = json.dumps({**header, "sections": table}, separators=(",", ":")).encode()
    start = _align(8 + len(text))
    out = bytearray(start + offset)
    out[:4] = MAGIC
    out[4:8] = struct.pack("<I", len(text))
    out[8 : 8 + len(text)] = text
    for name, value in raw:
        at = start + table[name]["offset"]
        data = value if isinstance(value, bytes) else value.tobytes()
        out[at : at + len(data)] = data
    return bytes(out)


def unpack(blob: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray | bytes]]:
    """The header and the sections of a blob made by :func:`pack` (read as the browser reads it)."""
    if blob[:4] != MAGIC:
        raise ValueError("not a vitviz payload")
    (length,) = struct.unpack("<I", blob[4:8])
    header = json.loads(blob[8 : 8 + length].decode())
    start = _align(8 + length)
    sections: dict[str, np.ndarray | bytes] = {}
    for name, s in header["sections"].items():
        chunk = blob[start + s["offset"] : start + s["offset"] + s["nbytes"]]
        sections[name] = bytes(chunk) if s["dtype"] == "bytes" else \
            np.frombuffer(chunk, dtype=np.dtype(s["dtype"]).newbyteorder("<")).reshape(s["shape"])
    return header, sections
