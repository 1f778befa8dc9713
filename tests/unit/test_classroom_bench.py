"""The class bench's own parts (``bench/classroom.py``, ``bench/_trace.py``): the browser started below the server's
priority, and the wait to be told taken apart step by step from the server's trace and the page's probe."""
from __future__ import annotations

import os
import subprocess

import pytest

from bench import _trace
from bench import classroom as bench


def test_the_browser_wrapper_starts_the_browser_and_what_it_starts_at_the_nice_value(tmp_path, monkeypatch):
    """Nice 19 and the idle scheduling policy (5, SCHED_IDLE: Chromium resets nice values, not the policy)."""
    monkeypatch.setattr(bench, "CHROMIUM", "/bin/sh")  # stands in for Chromium: prints its nice value and policy
    wrapper = bench.browser_executable(19, tmp_path)
    show = 'cut -d" " -f19,41 /proc/$$/stat'
    out = subprocess.run([wrapper, "-c", f"{show}; sh -c '{show}'"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == [f"{min(19, os.nice(0) + 19)} 5"] * 2  # the browser, and a process it starts
    assert bench.browser_executable(0, tmp_path) == "/bin/sh"  # default: the browser as it is


def _marks(*lines: str) -> list[_trace.Mark]:
    return [_trace.Mark(float(e), float(c), s, step, dict(w.split("=") for w in words.split()))
            for e, c, s, step, words in (line.split(" ", 4) for line in lines)]


def test_each_step_of_the_wait_is_timed_from_the_run_that_read_the_sessions_own_photo():
    marks = _marks(
        "99.0 0.50 A run  ",
        "99.1 0.51 A image key=mine",  # an earlier run of the same photo, before the upload: not this one
        "100.2 0.90 B run  ",
        "100.3 0.91 B image key=theirs",
        "100.4 1.00 A run  ",
        "100.6 1.02 A image key=mine",
        "100.9 1.03 A ticket key=mine",
        "101.0 1.04 B ticket key=theirs",
        "101.1 1.05 A told ahead=3",
    )
    probe = {"t0": 100_000.0, "upload": [100_100.0, 100_300.0], "t_informed": 101_500.0}
    steps = _trace.steps(marks, "mine", probe)
    expected = {"upload sent": 0.1, "upload answered": 0.2, "run started": 0.1, "joined the line": 0.5,
                "notice sent": 0.2, "notice drawn": 0.4, "run CPU ms": 50.0}
    assert steps == pytest.approx(expected)


def test_without_the_servers_trace_only_the_browsers_steps_are_timed():
    probe = {"t0": 100_000.0, "upload": [100_100.0, 100_300.0], "t_informed": 101_500.0}
    assert _trace.steps([], "mine", probe) == pytest.approx({"upload sent": 0.1, "upload answered": 0.2})
    table = _trace.table([_trace.steps([], "mine", probe)], "a class")
    assert [row[0] for row in table.rows] == ["upload sent", "upload answered"]
    assert "only the browser's side is known" in table.notes[-1]
