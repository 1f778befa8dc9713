"""What an evaluation run leaves on disk, and how an interrupted run picks up where it stopped.

An output folder holds:

``run.json``
    the settings that decide every number (model, patch size, data set, target rule, fractions). A run
    resumed in the same folder with other settings stops with a message instead of mixing two tables.
    The number of images and the list of methods are not part of it: a run may be extended to more
    images or more methods, and only the missing (image, method) pairs are computed.
``rows-r<rank>.jsonl``
    one JSON object per (image, method), appended as soon as the image is done and flushed to disk, one
    file per rank so that processes never write to the same file. A line cut short by a crash is dropped
    (and trimmed before the next append).
``results.csv``
    the table, one row per (image, method), written by rank 0 at the end, sorted by image then method.
``summary.json``
    the per-method summary (see :mod:`vitviz.evaluation.summary`).
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["RunMismatch", "RowStore", "check_run_record", "write_csv"]


class RunMismatch(ValueError):
    """The output folder holds results made with other settings."""


def check_run_record(out_dir: Path, settings: Mapping[str, Any], *, write: bool) -> None:
    """Compare ``settings`` with the folder's ``run.json``; write it when absent and ``write`` is True.

    Raises:
        RunMismatch: the folder's run used other settings.
    """
    path = Path(out_dir) / "run.json"
    fresh = json.loads(json.dumps(settings))  # as it reads back (tuples become lists)
    if path.is_file():
        old = json.loads(path.read_text())
        changed = sorted(k for k in set(old) | set(fresh) if old.get(k) != fresh.get(k))
        if changed:
            details = "; ".join(f"{k}: {old.get(k)!r} there, {fresh.get(k)!r} now" for k in changed)
            raise RunMismatch(f"{out_dir} holds results of a run with other settings ({details}). Use another "
                              "--out folder, or --overwrite to start again.")
    elif write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fresh, indent=2) + "\n")


class RowStore:
    """The append-only result logs of an output folder.

    Reads every ``rows-r*.jsonl`` there (whatever world size wrote them) and appends to this rank's own.

    Args:
        out_dir: The output folder (created if needed).
        rank: This process's rank.
    """

    def __init__(self, out_dir: str | Path, rank: int = 0) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / f"rows-r{rank}.jsonl"
        _trim_torn_line(self.path)
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        for log in sorted(self.out_dir.glob("rows-r*.jsonl")):
            for row in _read_rows(log):
                self.rows.setdefault((row["id"], row["method"]), row)

    def done(self, image_id: str, method: str) -> bool:
        return (image_id, method) in self.rows

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add rows and flush them to this rank's log at once (one image's rows in one write)."""
        rows = [dict(r) for r in rows]
        text = "".join(json.dumps(_jsonable(r), allow_nan=True) + "\n" for r in rows)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        for row in rows:
            self.rows[(row["id"], row["method"])] = row

    def select(self, ids: Iterable[str], methods: Sequence[str]) -> list[dict[str, Any]]:
        """The stored rows of these images and methods (those that exist)."""
        return [self.rows[i, m] for i in ids for m in methods if (i, m) in self.rows]


def _trim_torn_line(path: Path) -> None:
    """Cut a last line without its newline (a write interrupted by a crash)."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn line of a crashed writer
    return rows


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays as plain Python values."""
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """The rows as CSV, in ``columns`` order (a missing value or None is an empty cell)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None or (isinstance(row.get(c), float) and math.isnan(row[c]))
                             else row[c] for c in columns])
