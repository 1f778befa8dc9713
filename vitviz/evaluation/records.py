"""What an evaluation run leaves on disk, and how an interrupted run picks up where it stopped.

An output folder holds:

``vitviz-manifest.json``
    the files this tool wrote there. ``--overwrite`` deletes those and nothing else, and a run refuses to
    start where a file it would write already exists without being listed (a file of the user's).
``run.json``
    the settings that decide every number (model, patch size, data set, target rule, fractions). A run
    resumed in the same folder with other settings stops with a message instead of mixing two tables.
    The number of images and the list of methods are not part of it: a run may be extended to more
    images or more methods, and only the missing (image, method) pairs are computed.
``rows-r<rank>.jsonl``
    one JSON object per (image, method), appended as soon as the image is done and flushed to disk, one
    file per rank so that processes never write to the same file.
``skipped-r<rank>.jsonl``
    one JSON object per image that could not be evaluated (its id and the reason); a resumed run does not
    try it again unless asked.
``quarantine-r<rank>.jsonl``
    lines of the logs above that could not be read back (a line cut short by a crash, or edited by hand),
    moved aside with their file, line number and problem, so that no result is silently lost.
``results.csv``, ``summary.json``
    the table, one row per (image, method), and the per-method summary (see
    :mod:`vitviz.evaluation.summary`), written by rank 0 at the end (each written whole, then renamed).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "OutputFolder", "RowStore", "RunMismatch", "check_run_record", "output_names",
           "write_csv", "write_text"]

MANIFEST = "vitviz-manifest.json"
_TOOL = "vitviz.evaluate"
_LOG_NAME = re.compile(r"(rows|skipped)-r(\d+)\.jsonl")

Check = Callable[[Any], "str | None"]
"""A row checker: None for a good row, else what is wrong with it."""


class RunMismatch(ValueError):
    """The output folder holds results made with other settings, or files this tool did not write."""


def output_names(world_size: int) -> list[str]:
    """Every file a run of ``world_size`` processes may write in its output folder."""
    per_rank = [f"{kind}-r{rank}.jsonl" for rank in range(world_size) for kind in ("rows", "skipped", "quarantine")]
    return ["run.json", *per_rank, "results.csv", "summary.json"]


class OutputFolder:
    """An output folder and the manifest of the files this tool wrote in it.

    Args:
        path: The folder (created by :meth:`claim` when missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest = self.path / MANIFEST

    def written(self) -> list[str]:
        """The names the manifest lists (none when there is no manifest).

        Raises:
            RunMismatch: the manifest is not one of this tool's.
        """
        if not self.manifest.exists():
            return []
        try:
            data = json.loads(self.manifest.read_text(encoding="utf-8"))
            names = data["files"] if isinstance(data, dict) and data.get("tool") == _TOOL else None
        except (OSError, ValueError, KeyError) as exc:
            raise RunMismatch(f"{self.manifest} cannot be read ({exc}): use another --out folder") from exc
        if not isinstance(names, list) or not all(isinstance(n, str) and _plain_name(n) for n in names):
            raise RunMismatch(f"{self.manifest} is not a manifest of {_TOOL}: use another --out folder")
        return names

    def claim(self, names: Sequence[str]) -> None:
        """Record ``names`` as this tool's before writing them.

        Raises:
            RunMismatch: ``--out`` is a file, or one of ``names`` exists there without being in the manifest
                (a file of the user's, or one an older version wrote).
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunMismatch(f"--out {self.path} is a file, not a folder")
        known = self.written()
        foreign = [n for n in names if n not in known and os.path.lexists(self.path / n)]
        if foreign:
            raise RunMismatch(
                f"{self.path} already holds {', '.join(foreign)}, which {_TOOL} did not write (not in {MANIFEST}): "
                "use another --out folder, or move those files away")
        self.path.mkdir(parents=True, exist_ok=True)
        files = known + [n for n in names if n not in known]
        write_text(self.manifest, json.dumps({"tool": _TOOL, "files": files}, indent=1) + "\n")

    def remove_written(self) -> list[str]:
        """Delete the files the manifest lists (never a folder, never through a link), then the manifest;
        return the names deleted."""
        removed = []
        for name in self.written():
            target = self.path / name
            if os.path.islink(target) or target.is_file():
                target.unlink()
                removed.append(name)
        self.manifest.unlink(missing_ok=True)
        return removed


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


def check_run_record(out_dir: Path, settings: Mapping[str, Any], *, write: bool) -> None:
    """Compare ``settings`` with the folder's ``run.json``; write it when absent and ``write`` is True.

    Raises:
        RunMismatch: the folder's run used other settings, or its ``run.json`` is damaged.
    """
    path = Path(out_dir) / "run.json"
    fresh = json.loads(json.dumps(settings))  # as it reads back (tuples become lists)
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RunMismatch(f"{path} is damaged ({exc}): use another --out folder, or --overwrite") from exc
        if not isinstance(old, dict):
            raise RunMismatch(f"{path} is damaged (not a JSON object): use another --out folder, or --overwrite")
        changed = sorted(k for k in set(old) | set(fresh) if old.get(k) != fresh.get(k))
        if changed:
            details = "; ".join(f"{k}: {old.get(k)!r} there, {fresh.get(k)!r} now" for k in changed)
            raise RunMismatch(f"{out_dir} holds results of a run with other settings ({details}). Use another "
                              "--out folder, or --overwrite to start again.")
    elif write:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(fresh, indent=2) + "\n")


class RowStore:
    """The append-only result logs of an output folder.

    Reads every ``rows-r*.jsonl`` and ``skipped-r*.jsonl`` there (whatever world size wrote them) and
    appends to this rank's own. Lines that cannot be read back are moved to ``quarantine-r<rank>.jsonl``
    from the logs this rank owns (its own, and on rank 0 those of ranks beyond the world size, which no
    process writes now); in other ranks' logs they are left for their owner and ignored.

    Args:
        out_dir: The output folder (created if needed).
        rank: This process's rank.
        world_size: Number of processes (decides which logs rank 0 cleans up).
        check: Row checker: None for a good row, else the problem (a row must at least have a string ``id``
            and ``method`` and an integer ``index``).

    Attributes:
        rows: ``(image id, method) -> row``.
        skipped: ``image id -> {'id', 'index', 'reason'}``.
        quarantined: ``(log name, lines moved aside)`` for each log cleaned up now.
        ignored: ``(log name, lines ignored)`` for other ranks' logs with unreadable lines.
    """

    def __init__(self, out_dir: str | Path, rank: int = 0, world_size: int = 1, check: Check | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.rank = rank
        self.path = self.out_dir / f"rows-r{rank}.jsonl"
        self.skip_path = self.out_dir / f"skipped-r{rank}.jsonl"
        self.quarantine_path = self.out_dir / f"quarantine-r{rank}.jsonl"
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.skipped: dict[str, dict[str, Any]] = {}
        self.quarantined: list[tuple[str, int]] = []
        self.ignored: list[tuple[str, int]] = []
        for log in sorted(self.out_dir.glob("*-r*.jsonl")):
            found = _LOG_NAME.fullmatch(log.name)
            if found is None:
                continue
            kind, owner = found[1], int(found[2])
            checker = _row_problem(check) if kind == "rows" else _skip_problem
            owned = owner == rank or (rank == 0 and owner >= world_size)
            good = self._read(log, checker, owned)
            if kind == "rows":
                for row in good:
                    self.rows.setdefault((row["id"], row["method"]), row)
            else:
                for record in good:  # the latest word on an image counts
                    self.skipped[record["id"]] = record

    def _read(self, log: Path, check: Check, owned: bool) -> list[dict[str, Any]]:
        good, bad = [], []
        lines = log.read_bytes().split(b"\n")
        for number, raw in enumerate(lines, 1):
            if not raw and number == len(lines):
                continue  # after the last newline
            problem = "cut short (no newline at the end)" if number == len(lines) else None
            row = None
            if problem is None:
                try:
                    row = json.loads(raw.decode("utf-8"))
                except ValueError as exc:
                    problem = f"not JSON ({exc})"
            problem = problem or check(row)
            if problem is None:
                good.append(row)
            else:
                bad.append({"file": log.name, "line": number, "problem": problem,
                            "text": raw.decode("utf-8", "surrogateescape")})
        if bad and owned:
            self._quarantine(log, bad, lines)
        elif bad:
            self.ignored.append((log.name, len(bad)))
        return good

    def _quarantine(self, log: Path, bad: list[dict[str, Any]], lines: list[bytes]) -> None:
        """Append the bad lines to this rank's quarantine, then rewrite the log without them."""
        dropped = {entry["line"] for entry in bad}
        kept = [raw for number, raw in enumerate(lines, 1) if number not in dropped and number < len(lines)]
        _append(self.quarantine_path, "".join(json.dumps(entry) + "\n" for entry in bad))
        temporary = log.with_name(log.name + ".tmp")
        temporary.write_bytes(b"".join(raw + b"\n" for raw in kept))
        os.replace(temporary, log)
        self.quarantined.append((log.name, len(bad)))

    def done(self, image_id: str, method: str) -> bool:
        return (image_id, method) in self.rows

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add rows and flush them to this rank's log at once (one image's rows in one write)."""
        rows = [dict(r) for r in rows]
        _append(self.path, "".join(json.dumps(_jsonable(r), allow_nan=True) + "\n" for r in rows))
        for row in rows:
            self.rows[(row["id"], row["method"])] = row

    def skip(self, image_id: str, index: int, reason: str) -> None:
        """Record an image that cannot be evaluated, with the reason."""
        record = {"id": image_id, "index": int(index), "reason": reason}
        _append(self.skip_path, json.dumps(record) + "\n")
        self.skipped[image_id] = record

    def select(self, ids: Iterable[str], methods: Sequence[str]) -> list[dict[str, Any]]:
        """The stored rows of these images and methods (those that exist)."""
        return [self.rows[i, m] for i in ids for m in methods if (i, m) in self.rows]


def _row_problem(check: Check | None) -> Check:
    def problem(row: Any) -> str | None:
        if not isinstance(row, dict):
            return "not a JSON object"
        if not (isinstance(row.get("id"), str) and isinstance(row.get("method"), str)):
            return "no text 'id' and 'method'"
        if not isinstance(row.get("index"), int) or isinstance(row.get("index"), bool) or row["index"] < 0:
            return "no 'index' (a whole number >= 0)"
        return check(row) if check is not None else None

    return problem


def _skip_problem(record: Any) -> str | None:
    if not isinstance(record, dict) or not isinstance(record.get("id"), str) or \
            not isinstance(record.get("reason"), str) or not isinstance(record.get("index"), int):
        return "not a record of a skipped image ('id', 'index', 'reason')"
    return None


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays as plain Python values."""
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def write_text(path: str | Path, text: str) -> None:
    """Write a whole file under a temporary name, then rename it: an interruption never leaves half a file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """The rows as CSV, in ``columns`` order (a missing value or None is an empty cell); written whole, then
    renamed. Text that cannot be encoded as UTF-8 (a lone surrogate) is written as an escape."""

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None or (isinstance(row.get(c), float) and math.isnan(row[c]))
                         else _encodable(row[c]) for c in columns])
    write_text(path, buffer.getvalue())


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value
