"""Where a class's wait to be told its place goes: the app's trace lines lined up with what each page saw.

A server started with ``VITVIZ_TRACE=1`` logs each step of a session's run (``vitviz_app.trace``: ``run``,
``image``, ``ticket``, ``told``, ``pass``) with the epoch and the thread's CPU time. :func:`read` parses a log;
:func:`steps` finds, for one photo, the run that read it and times each step from the page's upload event (all on
one machine, so the page's ``performance.timeOrigin`` clock and the server's agree); :func:`table` summarises a
class.

With ``bench/_wire.py`` (the bench's launcher, ``--trace``) the server also logs its websocket's side (``ws-in``,
``ws-out``, ``upload-head``, ``upload-body``, ``upload-in``) and its event loop's lateness (``lag``), and each page
records when it sent and got websocket messages: :func:`wire_steps` splits the same wait finer, into what the page
did, what the server did and the upload's way in between them (:func:`whose_sums` adds them up per session), and
:func:`loop_lag` says how late the server's event loop ran meanwhile.
"""
from __future__ import annotations

import hashlib
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from bench._timing import Table, quantile

__all__ = ["Mark", "STEPS", "WIRE_STEPS", "digest", "loop_lag", "read", "steps", "table", "whose_sums", "wire_steps"]

_LINE = re.compile(r"vitviz-trace (?P<epoch>\d+\.\d+) (?P<cpu>\d+\.\d+) (?P<session>\S+) (?P<step>\S+) ?(?P<words>.*)$")

STEPS = (
    ("upload sent", "the upload event → the browser starts the file's upload request"),
    ("upload answered", "→ the server has answered that request"),
    ("run started", "→ the session's script run starts (the server's ``run`` mark)"),
    ("joined the line", "→ its pass is queued (``ticket``)"),
    ("notice sent", "→ the first notice of its place is handed to Streamlit (``told``)"),
    ("notice drawn", "→ the first animation frame that shows it (the page's \"informed\")"),
)
"""The steps from the upload event to being told, in order, each timed from the one before."""

WIRE_STEPS = (
    ("urls asked", "page", "the upload event → the page sends its upload box's file_urls_request"),
    ("urls read", "server", "→ the server's event loop hands it to the session (ws-in)"),
    ("urls answered", "server", "→ the answer is handed to the websocket (ws-out file_urls_response)"),
    ("urls received", "page", "→ the page's main thread gets a message back"),
    ("upload started", "page", "→ the page starts the upload request (resource timing)"),
    ("upload reached", "both", "→ the request reaches the server's app (upload-head: the page's network process "
     "sent it, the server's event loop accepted it and read its headers)"),
    ("upload read", "both", "→ its body's last bytes reach the app (upload-body)"),
    ("upload stored", "server", "→ the server has parsed and stored the file (upload-in)"),
    ("upload done", "page", "→ the page has the answer (resource timing)"),
    ("rerun asked", "page", "→ the page sends its next message (the rerun)"),
    ("rerun read", "server", "→ the server's event loop hands it to the session (ws-in rerun_script)"),
    ("run started", "server", "→ the session's script run starts (run)"),
    ("joined the line", "server", "→ its pass is queued (ticket)"),
    ("notice made", "server", "→ the notice is handed to Streamlit (told)"),
    ("notice on the wire", "server", "→ the event loop hands it to the websocket (ws-out notice)"),
    ("notice received", "page", "→ the page's main thread gets a message at or after that"),
    ("notice drawn", "page", "→ the first animation frame that shows it"),
)
"""The same wait, finer: each step timed from the one before, and whose work it is (the page's or the server's)."""


@dataclass(frozen=True)
class Mark:
    """One trace line: epoch seconds, the thread's CPU seconds, the session id, the step and its words."""

    epoch: float
    cpu: float
    session: str
    step: str
    words: dict[str, str]


def digest(data: bytes) -> str:
    """The app's cache key of image bytes (``vitviz_app.loaders.digest``), written in the ``image`` mark."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def read(log: Path) -> list[Mark]:
    """Every trace line of a server log, in order (none for an app without ``vitviz_app.trace``)."""
    marks = []
    for line in Path(log).read_text(errors="replace").splitlines():
        found = _LINE.search(line)
        if found:
            words = dict(word.split("=", 1) for word in found["words"].split() if "=" in word)
            marks.append(Mark(float(found["epoch"]), float(found["cpu"]), found["session"], found["step"], words))
    return marks


def steps(marks: list[Mark], image_key: str, probe: dict) -> dict[str, float]:
    """The seconds of each of :data:`STEPS` that can be timed for the session that uploaded the photo
    ``image_key`` (its page's ``probe``: ``t0``, ``upload``, ``t_informed``, epoch ms), plus ``"run CPU ms"``: the
    run's own CPU time from its start to the notice. The server's steps need its trace of the run that read this
    photo after the upload; the browser's are there without it."""
    t0 = (probe.get("t0") or 0) / 1e3
    image = next((m for m in marks if m.step == "image" and m.words.get("key") == image_key and m.epoch >= t0), None)
    own = [m for m in marks if image is not None and m.session == image.session]
    run = max((m for m in own if m.step == "run" and m.epoch <= image.epoch), key=lambda m: m.epoch, default=None)
    ticket = next((m for m in own if m.step == "ticket" and m.epoch >= image.epoch), None)
    told = next((m for m in own if m.step == "told" and ticket and m.epoch >= ticket.epoch), None)
    upload = probe.get("upload") or [None, None]
    informed = probe.get("t_informed")
    points = [t0 or None, upload[0] and upload[0] / 1e3, upload[1] and upload[1] / 1e3, run and run.epoch,
              ticket and ticket.epoch, told and told.epoch, informed and informed / 1e3]
    result: dict[str, float] = {}
    for (name, _what), before, after in zip(STEPS, points, points[1:]):
        if before and after:
            result[name] = after - before
    if run and told:
        result["run CPU ms"] = (told.cpu - run.cpu) * 1e3
    return result


def _first(values, after: float | None) -> float | None:
    """The first of ``values`` (sorted epoch seconds) at or after ``after``, or None."""
    return None if after is None else next((v for v in values if v >= after), None)


def wire_steps(marks: list[Mark], image_key: str, probe: dict) -> dict[str, float]:
    """The seconds of each of :data:`WIRE_STEPS` that can be timed for the session that uploaded ``image_key``
    (its page's ``probe`` with ``ws``: ``sent`` and ``got``, epoch ms of its websocket's messages after the upload
    event). A step is timed only when both its ends are known."""
    t0 = (probe.get("t0") or 0) / 1e3 or None
    ws = probe.get("ws") or {}
    sent, got = (sorted(v / 1e3 for v in ws.get(k) or []) for k in ("sent", "got"))
    upload = [v and v / 1e3 for v in (probe.get("upload") or [None, None])]
    image = next((m for m in marks if m.step == "image" and m.words.get("key") == image_key and t0
                  and m.epoch >= t0), None)
    own = [m for m in marks if image is not None and m.session == image.session]

    def server(step: str, after: float | None, kind: str | None = None) -> float | None:
        return _first([m.epoch for m in own if m.step == step and (kind is None or m.words.get("type") == kind)],
                      after)

    points = {"start": t0, "urls asked": _first(sent, t0)}
    points["urls read"] = server("ws-in", t0, "file_urls_request")
    points["urls answered"] = server("ws-out", points["urls read"], "file_urls_response")
    points["urls received"] = _first(got, points["urls answered"])
    points["upload started"], points["upload done"] = upload
    points["upload reached"] = server("upload-head", upload[0])
    points["upload read"] = server("upload-body", points["upload reached"])
    points["upload stored"] = server("upload-in", points["upload read"])
    points["rerun asked"] = _first(sent, upload[1])
    points["rerun read"] = server("ws-in", upload[1], "rerun_script")
    points["run started"] = max((m.epoch for m in own if m.step == "run" and image and m.epoch <= image.epoch),
                                default=None)
    points["joined the line"] = server("ticket", image and image.epoch)
    points["notice made"] = server("told", points["joined the line"])
    points["notice on the wire"] = server("ws-out", points["notice made"], "notice")
    points["notice received"] = _first(got, points["notice on the wire"])
    points["notice drawn"] = (probe.get("t_informed") or 0) / 1e3 or None
    names = ["start", *(name for name, _whose, _what in WIRE_STEPS)]
    return {after: points[after] - points[before] for before, after in zip(names, names[1:])
            if points[before] and points[after]}


def whose_sums(per_session: list[dict[str, float]]) -> dict[str, list[float]]:
    """Per session with every one of :data:`WIRE_STEPS` timed, the seconds of its steps summed by whose they are
    (``page``, ``both``, ``server``): empty when no session has them all."""
    complete = [s for s in per_session if all(name in s for name, _whose, _what in WIRE_STEPS)]
    if not complete:
        return {}
    return {w: [sum(s[name] for name, v, _what in WIRE_STEPS if v == w) for s in complete]
            for w in ("page", "both", "server")}


def loop_lag(marks: list[Mark], start: float, end: float) -> dict[str, float] | None:
    """How late the server's event loop woke (``bench/_wire.py``'s ``lag`` lines) between epoch ``start`` and
    ``end``: the mean and the largest, ms, and the windows counted; None without such lines."""
    windows = [m for m in marks if m.step == "lag" and start <= m.epoch <= end + 0.5]
    if not windows:
        return None
    wakes = sum(int(m.words["n"]) for m in windows)
    mean = sum(float(m.words["mean_ms"]) * int(m.words["n"]) for m in windows) / wakes
    return {"mean ms": mean, "max ms": max(float(m.words["max_ms"]) for m in windows), "windows": len(windows)}


def table(per_session: list[dict[str, float]], label: str, wire: bool = False,
          lag: dict[str, float] | None = None) -> Table:
    """Median, p90 and max of each step over the sessions told their place (of :data:`WIRE_STEPS` if ``wire``,
    with the event loop's ``lag`` (:func:`loop_lag`) in a note)."""
    found = [s for s in per_session if s]
    if wire:
        out = Table(f"The wait to be told, on the wire: {label}",
                    ["step", "whose", "sessions", "median s", "p90 s", "max s"])
        for name, whose, _what in WIRE_STEPS:
            values = sorted(s[name] for s in found if name in s)
            if values:
                out.add(name, whose, len(values), *_spread(values))
        out.notes += [
            "Each step is timed from the one before: " + "; ".join(f"{n}: {what}" for n, _w, what in WIRE_STEPS)
            + ".",
            "Page times are the page's own (its websocket's send and message events, resource timing, animation "
            "frames); server times are bench/_wire.py's and vitviz_app.trace's lines: one clock on one machine. "
            "A step marked server that takes long while the server's CPU time does not is the server waiting for "
            "the cores or the GIL.",
        ]
        if not found:
            out.notes.append("No page recorded its websocket (or no --trace): nothing to split.")
        sums = whose_sums(found)
        if sums:
            names = {"page": "the page's own steps", "both": "the upload's way in (both)",
                     "server": "the server's steps"}
            out.notes.append(f"Summed per session, over the {len(sums['server'])} with every step timed: "
                             + "; ".join(f"{names[who]}: median {statistics.median(v):.2f} s, max {max(v):.2f} s"
                                         for who, v in sums.items()) + ".")
        if lag:
            out.notes.append(f"The server's event loop, from the first upload to the last notice drawn, woke from "
                             f"its 10 ms sleeps {lag['mean ms']:.1f} ms late on average, {lag['max ms']:.0f} ms at "
                             "worst.")
        return out
    out = Table(f"Where the wait to be told goes: {label}", ["step", "sessions", "median s", "p90 s", "max s"])
    for name, _what in [*STEPS, ("run CPU ms", "")]:
        values = sorted(s[name] for s in found if name in s)
        if values:
            out.add(name, len(values), *_spread(values))
    out.notes += [
        "Each step is timed from the one before: " + "; ".join(f"{name}: {what}" for name, what in STEPS) + ".",
        "The upload request's times are the page's resource timing; run, joined and sent are the server's trace "
        "lines (VITVIZ_TRACE=1, vitviz_app.trace), one clock on one machine. run CPU ms: the session's script "
        "thread's own CPU time from its start to the notice (the rest of its wall time it waited for the GIL "
        "and the cores).",
    ]
    if not any("run started" in s for s in found):
        out.notes.append("No trace lines matched these sessions (an app without vitviz_app.trace, or no --trace): "
                         "only the browser's side is known.")
    return out


def _spread(values: list[float]) -> tuple[float, float, float]:
    """Median, p90 and max of sorted ``values``."""
    return statistics.median(values), quantile(values, 0.9), values[-1]
