"""Shared helpers for the vitviz benchmarks: the machine, interleaved timing, tables, peak memory.

Every benchmark script measures its cases side by side in one run: after a warm-up, each repetition runs
every case once, in an order rotated from round to round, so slow drifts of a shared machine (other
processes, frequency changes) hit all cases alike. Tables report medians with the interquartile range and,
against a baseline case, the median of the *per-round* ratios (robust to drift).

Peak memory is measured in a process of its own per case (:func:`run_isolated`): a fork of a clean server
that imported torch/timm but never computed anything. Inside it :func:`peak_rss` resets the kernel's
peak-RSS counter (``/proc/self/clear_refs`` ← ``5``), runs the case once, and reads ``VmHWM`` minus the
resident size just before; tracemalloc cannot see torch's allocations.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RATIO_COLUMNS",
    "REPO",
    "Timings",
    "Table",
    "add_common_args",
    "add_ratio_rows",
    "interleaved",
    "machine",
    "machine_lines",
    "median_iqr",
    "paired_ratios",
    "peak_rss",
    "quantile",
    "quantiles",
    "report",
    "run_isolated",
    "setup_threads",
    "status_kib",
]

REPO = Path(__file__).resolve().parents[1]
MIB = 2**20
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _threads_from_argv(argv: Sequence[str]) -> int:
    """The ``--threads`` value on the command line (default 1; 0 = the libraries' defaults)."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return 1


# numpy's OpenBLAS and torch's OpenMP read their thread counts once, when first loaded: set them before
# any benchmark imports numpy or torch (every script imports this module first), so the analyses' numpy
# matrix products run on as many threads as torch does. Child processes inherit the variables.
if _threads_from_argv(sys.argv[1:]) > 0:
    for _var in _THREAD_VARS:
        os.environ.setdefault(_var, str(_threads_from_argv(sys.argv[1:])))


# --------------------------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown CPU"


def _version(module: str) -> str:
    try:
        return getattr(__import__(module), "__version__", "?")
    except Exception:  # a missing optional package is reported, not fatal
        return "not installed"


def machine(device: str = "cpu") -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, load, library versions, threads, accelerator."""
    import torch

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": _version("timm"),
        "numpy": _version("numpy"),
        "torch_threads": torch.get_num_threads(),
        "thread_env": {var: os.environ.get(var, "unset") for var in _THREAD_VARS},
        "device": device,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def machine_lines(info: dict[str, Any]) -> list[str]:
    """The machine as short 'key: value' lines for a printed or markdown header."""
    return [f"{key}: {value}" for key, value in info.items()]


def setup_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count (None keeps torch's default) and return the count in use."""
    import torch

    if threads:  # None or 0 keeps torch's default
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


# --------------------------------------------------------------------------------------------- timing


def quantile(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile (0 ≤ q ≤ 1) of ``values``, interpolated linearly between the two nearest ranks: numpy's
    default, and the "inclusive" method of ``statistics.quantiles`` (which gives only evenly spaced cuts). Every
    report of the benches takes its percentiles here, so a p90 means the same in each."""
    import numpy as np  # here, not at the top: the thread settings above must come before numpy loads

    values = list(values)
    if not values:
        raise ValueError("no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must lie in [0, 1], not {q}")
    return float(np.quantile(values, q))


def quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile); a single value gives it three times."""
    return quantile(values, 0.25), quantile(values, 0.5), quantile(values, 0.75)


def median_iqr(values: Sequence[float]) -> tuple[float, float]:
    """Median and interquartile range (p75 - p25)."""
    q1, q2, q3 = quantiles(values)
    return q2, q3 - q1


@dataclass(frozen=True)
class Timings:
    """Seconds per call of each case, round by round.

    Attributes:
        wall: Wall-clock seconds (what a user waits).
        cpu: Process CPU seconds (user + system, all threads). With one torch thread on a shared machine this
            barely moves when other processes take the CPU away, so its ratios are the steadier ones.
    """

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]

    @property
    def rounds(self) -> int:
        return len(next(iter(self.wall.values())))


def interleaved(
    cases: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
    budget_s: float | None = None,
    min_repeats: int = 5,
) -> Timings:
    """Time every case up to ``repeats`` times, one call of each per round, rotating the order every round.

    Args:
        cases: Name → zero-argument callable. Whatever it returns is dropped before the next call.
        repeats: Most rounds (timed calls per case).
        warmup: Untimed calls per case before the first round.
        sync: Called before reading the clock (e.g. ``torch.cuda.synchronize``).
        budget_s: Stop starting new rounds once this many seconds were spent timing, but never before
            ``min_repeats`` rounds.
        min_repeats: Fewest rounds when a budget is given.

    Returns:
        Wall-clock and process CPU seconds per call, each name → list in round order (round r of every case
        ran in the same round).
    """
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    started = time.perf_counter()
    for r in range(repeats):
        if budget_s is not None and r >= min_repeats and time.perf_counter() - started > budget_s:
            break
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            gc.collect()
            if sync:
                sync()
            start, start_cpu = time.perf_counter(), time.process_time()
            result = cases[name]()
            if sync:
                sync()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            del result
    return Timings(wall, cpu)


RATIO_COLUMNS = ["CPU ms (median)", "wall ms (median)", "wall IQR ms", "× base, CPU time", "CPU p25–p75",
                 "× base, wall", "wall p25–p75"]


def add_ratio_rows(table: Table, timings: Timings, baseline: str, labels: dict[str, str] | None = None) -> None:
    """Append one row per case: median CPU and wall time, and the median [p25–p75] of its per-round ratios
    to the baseline, by CPU time and by wall time. Use with ``[first column] + RATIO_COLUMNS``."""
    cpu_ratios = paired_ratios(timings.cpu, baseline)
    wall_ratios = paired_ratios(timings.wall, baseline)
    for name in timings.wall:
        _, cpu_median, _ = quantiles([t * 1e3 for t in timings.cpu[name]])
        w1, w2, w3 = quantiles([t * 1e3 for t in timings.wall[name]])
        c1, c2, c3 = quantiles(cpu_ratios[name])
        r1, r2, r3 = quantiles(wall_ratios[name])
        table.add((labels or {}).get(name, name), cpu_median, w2, w3 - w1, f"{c2:.3f}", f"{c1:.3f}–{c3:.3f}",
                  f"{r2:.3f}", f"{r1:.3f}–{r3:.3f}")


def paired_ratios(times: dict[str, list[float]], baseline: str) -> dict[str, list[float]]:
    """Per-round ratio of each case to the baseline timed in the same round."""
    base = times[baseline]
    return {name: [t / b for t, b in zip(values, base)] for name, values in times.items()}


# --------------------------------------------------------------------------------------------- tables


@dataclass
class Table:
    """A printable table that can also be written as markdown and JSON.

    Attributes:
        title: Heading.
        columns: Column names.
        rows: Cell lists, one per row (numbers are formatted on output).
        notes: Sentences printed under the table.
    """

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append(list(cells))

    def _text_rows(self) -> list[list[str]]:
        return [[_fmt(c) for c in row] for row in self.rows]

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self._text_rows()]
        lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def text(self) -> str:
        rows = [self.columns] + self._text_rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.columns))]
        out = [self.title, "-" * len(self.title)]
        for k, row in enumerate(rows):
            out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            if k == 0:
                out.append("  ".join("-" * w for w in widths))
        out += [f"  * {note}" for note in self.notes]
        return "\n".join(out) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "notes": self.notes}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "—"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--quick, --repeats, --threads, --out shared by every script."""
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: fewer cases and repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per case (default per script)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads; 0 = torch's default (one per core). Default 1: on a shared "
                        "CPU, OpenMP threads spin at barriers while a sibling is descheduled (10x slowdowns seen)")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the tables to this .md file and a .json next to it")
    return parser


def report(tables: Iterable[Table], info: dict[str, Any], out: Path | None, argv: Sequence[str] | None = None) -> None:
    """Print the machine and the tables; with ``out``, write them as markdown and JSON too."""
    tables = list(tables)
    argv = list(sys.argv if argv is None else argv)
    header = "\n".join(machine_lines(info))
    print(header + "\n")
    for table in tables:
        print(table.text())
    if out is None:
        return
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join([str(Path(argv[0]).relative_to(REPO)) if Path(argv[0]).is_absolute()
                                     and Path(argv[0]).resolve().is_relative_to(REPO) else argv[0]] + argv[1:])
    md = [f"<!-- written by `{command}` -->", "", "Machine: " + "; ".join(machine_lines(info)), ""]
    md += [table.markdown() for table in tables]
    out.write_text("\n".join(md))
    out.with_suffix(".json").write_text(json.dumps(
        {"command": command, "machine": info, "tables": [t.as_dict() for t in tables]}, indent=1, default=str))
    print(f"wrote {out} and {out.with_suffix('.json')}")


# --------------------------------------------------------------------------------------------- memory


def status_kib() -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident since start or last reset) in KiB."""
    text = Path("/proc/self/status").read_text()
    return {key: int(re.search(rf"^{key}:\s+(\d+)", text, re.MULTILINE).group(1)) for key in ("VmRSS", "VmHWM")}


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS


def peak_rss(fn: Callable[[], Any]) -> dict[str, float]:
    """Run ``fn`` once and measure its resident memory in MiB.

    Returns:
        ``peak_mib``: highest resident size while ``fn`` ran (and while its result is held) minus the
        resident size just before; ``retained_mib``: resident size with the result still alive, minus the
        same baseline.
    """
    gc.collect()
    _malloc_trim()
    _reset_peak()
    before = status_kib()["VmRSS"]
    result = fn()
    after = status_kib()
    del result
    return {"peak_mib": (after["VmHWM"] - before) / 1024, "retained_mib": (after["VmRSS"] - before) / 1024}


_EXECUTOR_CONTEXT = None


def _context():
    """A forkserver whose server imported torch and timm but never ran an operator (fork-safe)."""
    global _EXECUTOR_CONTEXT
    if _EXECUTOR_CONTEXT is None:
        import multiprocessing as mp

        _EXECUTOR_CONTEXT = mp.get_context("forkserver")
        _EXECUTOR_CONTEXT.set_forkserver_preload(["torch", "timm", "numpy"])
    return _EXECUTOR_CONTEXT


def run_isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn(*args)`` in a process of its own (a fresh fork of the clean server) and return its result.

    ``fn`` must be a module-level function and its arguments and result picklable.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=_context(), max_tasks_per_child=1) as pool:
        return pool.submit(fn, *args).result()
