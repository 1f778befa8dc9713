"""Where a class's wait to be told its place goes: the app's trace lines lined up with what each page saw.

A server started with ``VITVIZ_TRACE=1`` logs each step of a session's run (``vitviz_app.trace``: ``run``,
``image``, ``ticket``, ``told``, ``pass``) with the epoch and the thread's CPU time. :func:`read` parses a log;
:func:`steps` finds, for one photo, the run that read it and times each step from the page's upload event (all on
one machine, so the page's ``performance.timeOrigin`` clock and the server's agree); :func:`table` summarises a
class.
"""
from __future__ import annotations

import hashlib
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from bench._timing import Table

__all__ = ["Mark", "STEPS", "digest", "read", "steps", "table"]

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


def table(per_session: list[dict[str, float]], label: str) -> Table:
    """Median, p90 and max of each step over the sessions told their place."""
    found = [s for s in per_session if s]
    out = Table(f"Where the wait to be told goes: {label}", ["step", "sessions", "median s", "p90 s", "max s"])
    for name, _what in [*STEPS, ("run CPU ms", "")]:
        values = sorted(s[name] for s in found if name in s)
        if values:
            p90 = values[0] if len(values) == 1 else statistics.quantiles(values, n=10, method="inclusive")[8]
            out.add(name, len(values), statistics.median(values), p90, values[-1])
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
