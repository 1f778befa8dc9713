"""A class bench's report (``bench/classroom.py``): how long each student waited for its own map, whether any saw
another's, when each was told its place in line and how true the first time it read was, per replica and per kind
of student (a browser page, or one without a browser: ``bench/_student.py``).

The steps of the wait to be told, from the server's trace, are ``bench/_trace.py``'s.
"""
from __future__ import annotations

import re
import statistics

from bench._timing import Table, quantile

__all__ = ["KINDS", "estimate_ratios", "tables"]


_ESTIMATE = re.compile(r"(\d+) s\b")


def estimate_ratios(rows: list[dict]) -> list[float]:
    """Per session told a time: the seconds of the first notice that gave one ("about N s") over the real wait
    from the frame that showed it to the session's own map, sorted. A notice without seconds (the place alone,
    while the model's pass has not been timed; "almost done") is passed over; a session whose notices never gave
    seconds counts for none. Without the frames of each notice (``notice_at``, reports before 2026-12-07 §22) only
    the first notice counts, shown at ``t_informed``."""
    ratios = []
    for r in rows:
        notices, drawn = r.get("notices") or [], r.get("t1")
        shown_at = r.get("notice_at") or [r.get("t_informed")]
        for text, at in zip(notices, shown_at):
            found = _ESTIMATE.search(text.rsplit("·", 1)[-1])
            if found:
                if at is not None and drawn is not None and drawn > at:
                    ratios.append(int(found.group(1)) / ((drawn - at) / 1e3))
                break
    return sorted(ratios)


KINDS = {"browser": "browser pages", "protocol": "without a browser"}
"""What the reports call each kind of student (``client`` in a result): a Chromium page, or ``bench/_student.py``."""


def _waiting_row(waiting: Table, name: str, rows: list[dict]) -> None:
    """One row of the "informed while waiting" table for the students ``rows``."""
    informed = sorted(((r["t_informed"] if r.get("t_informed") else r["t1"]) - r["t0"]) / 1e3
                      for r in rows if r.get("t0") and (r.get("t_informed") or r.get("t1")))
    if not informed:
        return
    told = [r for r in rows if r.get("notices")]
    example = max(told, key=lambda r: len(r["notices"]), default=None)
    ratios = estimate_ratios(rows)
    waiting.add(name, len(told), sum(t <= 1.0 for t in informed), statistics.median(informed), informed[-1],
                statistics.median(len(r["notices"]) for r in told) if told else 0,
                f"{statistics.median(ratios):.2f} ({quantile(ratios, 0.1):.2f}–{quantile(ratios, 0.9):.2f}), "
                f"{len(ratios)} sessions" if ratios else "—",
                f"{example['notices'][0]!r} … {example['notices'][-1]!r}" if example else "—")


def tables(run: dict, label: str) -> list[Table]:
    rows = run["results"]
    times = sorted((r["t1"] - r["t0"]) / 1e3 for r in rows if r.get("t0") and r.get("t1"))
    own = sum(r["verdict"] == "own" for r in rows)
    mixups = sum(r["verdict"].startswith(("mix-up", "unrecognised")) for r in rows)
    moved = sum(len(r["replicas"]) > 1 for r in rows)
    starts = [r["t0"] for r in rows if r.get("t0")]
    cpu = run["server_cpu_s"]
    summary = Table(f"A class of {len(rows)} uploading at once: {label}",
                    ["sessions", "own map", "mix-ups", "no map", "moved replica", "median s", "p95 s", "max s",
                     "uploads spread ms", "server CPU-s", "server CPU-s / upload", "browser CPU-s"])
    summary.add(len(rows), own, mixups, len(rows) - own - mixups, moved,
                statistics.median(times) if times else None, quantile(times, 0.95) if times else None,
                times[-1] if times else None, max(starts) - min(starts) if starts else None,
                *((cpu, cpu / len(rows)) if cpu is not None else ("no --pids", "—")), run["client_cpu_s"])
    waiting = Table(f"Informed while waiting: {label}",
                    ["students", "sessions told their place", "informed ≤ 1 s", "median s to informed",
                     "max s to informed", "median texts seen", "first estimate ÷ real wait, median (p10–p90)",
                     "example (first, last)"])
    kinds = {r.get("client", "browser") for r in rows}
    groups = [("all", rows)] + ([(f"{KINDS[k]} only", [r for r in rows if r.get("client", "browser") == k])
                                 for k in sorted(kinds)] if len(kinds) > 1 else [])
    for name, group in groups:
        _waiting_row(waiting, name if len(groups) > 1 else KINDS[next(iter(kinds))], group)
    waiting.notes += [
        "Informed: from the upload event to the first frame that shows the session's place in line (the app's "
        "hourglass notice, vitviz_app.waiting) or, for a session that never waited in line, its map. Texts seen: "
        "how many different texts of its place (position, time left) a session saw while it waited.",
        "First estimate ÷ real wait: the seconds the first notice with a time promised (\"about N s\") over the "
        "seconds from the frame that showed it to the frame with the session's own map (which also holds "
        "drawing the page, so a true estimate of the pass reads a little under 1).",
    ]
    summary.notes += [
        f"Load average (1, 5, 15 min) just before the uploads: {run.get('load_before')}.",
        "Time to own map: from the page's upload event to the first animation frame that draws the Overview's "
        "rollout figure, measured inside each page (one clock). Mix-up: that map, its caption or its heatmap "
        "belongs to another session's photo.",
        "Server CPU-s: user + system time of the server processes (/proc/<pid>/stat) from just before the "
        "uploads to the last map; browser CPU-s: this script's Chromium over the same span (same machine).",
    ]
    if any(r.get("client") == "protocol" for r in rows):
        summary.notes.append("Students without a browser (bench/_student.py) speak Streamlit's protocol as a page "
                             "does: their times end when the message arrived, with no page to draw it. Browser "
                             "CPU-s: the Chromium pages' and these clients' own.")
    by_replica: dict[str, list[float]] = {}
    for r in rows:
        if r.get("t1") and r.get("t0"):
            by_replica.setdefault(",".join(r["replicas"]) or "—", []).append((r["t1"] - r["t0"]) / 1e3)
    per = Table("Time to own map per replica (s)", ["replica", "sessions", "median", "max"])
    for name, values in sorted(by_replica.items()):
        per.add(name, len(values), statistics.median(values), max(values))
    return [summary, waiting, per]
