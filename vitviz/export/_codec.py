"""A small binary container for arrays sent to the browser, and per-row 8-bit quantisation.

The container is what a browser component decodes with a few typed-array views, no library:

    b"VVZ1" | uint32 LE header length | header (UTF-8 JSON) | zero padding to 4 | sections, each 4-aligned

The header's ``sections`` maps a name to ``{"offset", "nbytes", "dtype", "shape"}`` (offset from the end of
the header's padding; dtype ``'uint8'``, ``'float32'`` or ``'bytes'``). Everything is little-endian.

Rows are quantised affinely, each with its own offset and step: ``value = lo + code * step`` with
``code`` in 0..255, ``lo`` the row's minimum and ``step = (max - min) / 255``. Decoding is off by at most
half a step (plus float32 rounding of ``lo`` and ``step``).

An attention row mixes two scales: a class token may take 0.98 of it while the patches share the rest, so one
step over the whole row (0.98 / 255) is larger than every patch's value and all patches would decode to the
same level. :func:`quantise_prefixed` keeps the row's first ``P`` entries (the prefix tokens) as float32 and
quantises the patches on their own range, so a decoded patch is within ``(max - min) / 510`` of the patches'
own ``max - min`` (plus float32 rounding, below ``1e-6`` of their largest magnitude), whatever the prefix holds.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


__all__ = ["MAGIC", "Payload", "PrefixedRows", "QuantisedRows", "quantise_prefixed", "quantise_rows", "pack",
           "unpack"]

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


@dataclass(frozen=True)
class PrefixedRows:
    """Rows whose first ``P`` entries are kept as float32 and whose others are quantised on their own scale.

    Attributes:
        prefix: (..., P) float32, the prefix tokens' entries as they are.
        patches: The other entries, (..., N - P), as :class:`QuantisedRows` (their own ``lo`` and ``step``).
    """

    prefix: np.ndarray
    patches: QuantisedRows

    def decode(self) -> np.ndarray:
        """float32 rows (..., N) as the browser decodes them: the prefix, then ``lo + code * step``."""
        return np.concatenate([self.prefix, self.patches.decode()], axis=-1)

    @property
    def nbytes(self) -> int:
        return self.prefix.nbytes + self.patches.nbytes

    def sections(self, name: str) -> dict[str, np.ndarray]:
        """The container sections: ``name`` (codes), ``name_lo``, ``name_step`` and ``name_prefix``."""
        rows = self.patches
        return {name: rows.codes, f"{name}_lo": rows.lo, f"{name}_step": rows.step, f"{name}_prefix": self.prefix}


def prefixed_row_bytes(num_tokens: int, num_prefix: int) -> int:
    """Bytes of one row in :class:`PrefixedRows`: uint8 patch codes, float32 lo and step, float32 prefix."""
    return (num_tokens - num_prefix) + 8 + 4 * num_prefix


def quantise_prefixed(values: ArrayLike, num_prefix: int) -> PrefixedRows:
    """Split each row of ``values`` (..., N) after ``num_prefix`` entries: the prefix as float32, the rest
    quantised on its own range (:func:`quantise_rows`).

    A decoded entry after the prefix is within half a step of the value, i.e. ``(max - min) / 510`` of the
    row's own entries after the prefix, plus float32 rounding of ``lo`` and ``step``; the prefix is exact to
    float32.
    """
    values = np.asarray(values, dtype=np.float64)
    return PrefixedRows(np.ascontiguousarray(values[..., :num_prefix], dtype=np.float32),
                        quantise_rows(values[..., num_prefix:]))


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
