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


def test_the_wait_on_the_wire_is_split_between_the_page_and_the_server_from_the_sessions_own_messages():
    """Each step ends at the first event of its kind after the step before; another session's messages, an
    earlier run's and a page message before the upload event never count."""
    marks = _marks(
        "99.5 0.1 A ws-in type=rerun_script",  # before the upload: not this wait
        "100.05 0.2 B ws-in type=file_urls_request",  # another session
        "100.10 0.2 A ws-in type=file_urls_request",
        "100.12 0.2 A ws-out type=file_urls_response",
        "100.33 0.3 B upload-head ",  # another session's upload
        "100.35 0.3 A upload-head ",
        "100.37 0.3 A upload-body ",
        "100.40 0.3 A upload-in ",
        "100.70 0.4 A ws-in type=rerun_script",
        "100.75 1.00 A run  ",
        "100.80 1.01 A image key=mine",
        "100.90 1.02 A ticket key=mine",
        "100.95 1.03 A told ahead=3",
        "100.96 0.5 A ws-out type=new_session",  # not the notice
        "101.05 0.5 A ws-out type=notice",
    )
    probe = {"t0": 100_000.0, "upload": [100_300.0, 100_500.0], "t_informed": 101_400.0,
             "ws": {"sent": [100_020.0, 100_600.0, 101_200.0], "got": [100_200.0, 100_990.0, 101_100.0]}}
    steps = _trace.wire_steps(marks, "mine", probe)
    expected = {"urls asked": 0.02, "urls read": 0.08, "urls answered": 0.02, "urls received": 0.08,
                "upload started": 0.1, "upload reached": 0.05, "upload read": 0.02, "upload stored": 0.03,
                "upload done": 0.1, "rerun asked": 0.1,
                "rerun read": 0.1, "run started": 0.05, "joined the line": 0.15, "notice made": 0.05,
                "notice on the wire": 0.1, "notice received": 0.05, "notice drawn": 0.3}
    assert steps == pytest.approx(expected)
    assert list(steps) == [name for name, _whose, _what in _trace.WIRE_STEPS]
    table = _trace.table([steps], "a class", wire=True)
    assert {row[0]: row[1] for row in table.rows}["rerun read"] == "server"
    assert _trace.whose_sums([steps, {"urls asked": 1.0}]) == {  # the incomplete session is left out
        "page": pytest.approx([0.02 + 0.08 + 0.1 + 0.1 + 0.1 + 0.05 + 0.3]),
        "both": pytest.approx([0.05 + 0.02]),
        "server": pytest.approx([0.08 + 0.02 + 0.03 + 0.1 + 0.05 + 0.15 + 0.05 + 0.1])}
    assert "the server's steps: median 0.58 s, max 0.58 s" in table.notes[-1]


def test_without_the_wire_trace_only_the_steps_with_both_ends_known_are_timed():
    probe = {"t0": 100_000.0, "upload": [100_300.0, 100_500.0], "t_informed": 101_400.0,
             "ws": {"sent": [100_020.0], "got": []}}
    assert _trace.wire_steps([], "mine", probe) == pytest.approx({"urls asked": 0.02})  # the rest ends or starts
    # at a server event


def test_the_event_loops_lag_is_weighted_by_its_wakes_within_the_span():
    marks = _marks("99.0 0 - lag max_ms=900.0 mean_ms=900.0 n=1",  # before the span
                   "100.5 0 - lag max_ms=30.0 mean_ms=10.0 n=30",
                   "101.0 0 - lag max_ms=400.0 mean_ms=100.0 n=10")
    lag = _trace.loop_lag(marks, 100.0, 101.0)
    assert lag == pytest.approx({"mean ms": (10 * 30 + 100 * 10) / 40, "max ms": 400.0, "windows": 2})
    assert _trace.loop_lag([], 100.0, 101.0) is None


def test_the_first_estimate_is_set_against_the_real_wait_from_its_notice_to_the_map():
    from bench._class_report import estimate_ratios

    rows = [
        {"notices": ["Running ViT-B/16 on your image… · 3 ahead of you · about 8 s", "… · about 6 s"],
         "t_informed": 1_000.0, "t1": 5_000.0},  # promised 8 s, waited 4 s
        {"notices": ["Running ViT-B/16 on your image… · next in line · about 2 s"], "t_informed": 0.0,
         "t1": 4_000.0},  # promised 2 s, waited 4 s
        {"notices": ["Running ViT-B/16 on your image… · almost done"], "t_informed": 0.0, "t1": 900.0},  # no time
        {"notices": [], "t_informed": None, "t1": 3_000.0},  # never waited
        {"notices": ["Running ViT-B/16 on your image… · 12 ahead of you · about 9 s"], "t_informed": 0.0,
         "t1": None},  # no map
    ]
    assert estimate_ratios(rows) == [0.5, 2.0]
    later = [{"notices": ["… · 29 ahead of you", "… · 28 ahead of you · about 21 s", "… · about 20 s"],
              "notice_at": [1_000.0, 2_000.0, 3_000.0], "t_informed": 1_000.0, "t1": 23_000.0},  # 21 s of 21 s
             {"notices": ["… · 3 ahead of you", "… · almost done"], "notice_at": [0.0, 500.0], "t1": 900.0}]
    assert estimate_ratios(later) == [1.0]  # the first notice with a time, from its own frame


def test_the_wire_knows_an_upload_request_and_its_session_from_the_path_alone():
    from bench import _wire

    put = {"type": "http", "method": "PUT", "path": "/_stcore/upload_file/sess-1/file-9"}
    assert _wire.upload_session(put) == "sess-1"
    assert _wire.upload_session({**put, "path": "/base/_stcore/upload_file/sess-2/f"}) == "sess-2"  # a base path
    assert _wire.upload_session({**put, "method": "DELETE"}) is None
    assert _wire.upload_session({**put, "path": "/_stcore/upload_file/"}) is None
    assert _wire.upload_session({**put, "type": "websocket"}) is None
    assert _wire.upload_session({**put, "path": "/_stcore/health"}) is None


def test_every_bench_percentile_interpolates_between_ranks_as_statistics_and_numpy_do():
    import statistics

    import numpy as np

    from bench._timing import quantile, quantiles

    assert quantile([4.0, 1.0, 2.0, 3.0], 0.5) == 2.5  # by hand: halfway between the 2nd and 3rd
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.9) == pytest.approx(4.6)  # 0.9 × 4 = 3.6: 4 + 0.6 × (5 - 4)
    assert quantile([7.0], 0.95) == 7.0 and quantiles([7.0]) == (7.0, 7.0, 7.0)
    values = list(np.random.default_rng(0).gamma(2.0, size=37))
    for q, n, k in [(0.9, 10, 8), (0.95, 20, 18), (0.1, 10, 0), (0.25, 4, 0)]:
        assert quantile(values, q) == pytest.approx(statistics.quantiles(values, n=n, method="inclusive")[k])
        assert quantile(values, q) == pytest.approx(np.percentile(values, 100 * q))
    assert not hasattr(bench, "_quantile") and not hasattr(bench, "_p95")  # the class bench has no helper of its own
    with pytest.raises(ValueError):
        quantile([], 0.5)
    with pytest.raises(ValueError):
        quantile([1.0], 1.5)


def test_a_class_of_pages_and_students_without_a_browser_is_told_apart_in_the_report():
    from bench._class_report import tables

    def row(client: str, told_ms: float, notices: list[str]) -> dict:
        start = 1_000.0  # epoch ms, as a page's clock gives them
        return {"client": client, "t0": start, "t_informed": start + told_ms if notices else None,
                "t1": start + 5_000.0, "notices": notices, "notice_at": [start + told_ms] * len(notices),
                "verdict": "own", "replicas": []}

    wait = ["… · 3 ahead of you · about 5 s"]
    rows = [row("browser", 900.0, wait), row("browser", 1_200.0, wait), row("protocol", 400.0, wait),
            row("protocol", 600.0, []), row("protocol", 800.0, wait)]
    run = {"results": rows, "server_cpu_s": 3.0, "client_cpu_s": 0.5, "load_before": [0, 0, 0]}
    _summary, waiting, _per = tables(run, "a mixed class")
    by_kind = {r[0]: r for r in waiting.rows}
    assert list(by_kind) == ["all", "browser pages only", "without a browser only"]
    assert by_kind["all"][1:3] == [4, 3]  # told their place; informed within 1 s (one page at 1.2 s; one never told)
    assert by_kind["browser pages only"][1:5] == [2, 1, 1.05, 1.2]  # told, ≤ 1 s, median and max seconds
    assert by_kind["without a browser only"][1:3] == [2, 2]  # the one never told counts its map, 5 s after
    single = tables({**run, "results": rows[:2]}, "pages alone")[1]
    assert [r[0] for r in single.rows] == ["browser pages"]  # one kind: one row, named by its kind
