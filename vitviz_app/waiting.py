"""Waiting in line, visibly: a session whose pass waits behind other sessions' sees its place and the time left.

``vitviz_app.loaders.pass_for`` hands a queued pass's ``vitviz.serving.Ticket`` to :func:`wait_for`, which
shows "Running ViT-B/16 on your image… · 3 ahead of you · about 4 s" and redraws it as the line moves, until
the pass is done. The wait is cooperative: every poll is a point where Streamlit may stop the run (the visitor
went to another page, clicked, or uploaded another photo). The ticket is then withdrawn, so a pass that has not
started is not run for a visitor who left; a rerun that asks for the same pass rejoins it in its place.

A server with a line is one process in which Streamlit's event loop (every page's messages, uploads and notices)
shares the GIL with every session's script thread and the model's worker, so whatever holds the GIL long holds up
every page. In a class of 30 (bench/README.md §18) two things did:

* the garbage collector's full passes, which walked the half million objects of torch, timm, Plotly, Streamlit
  and the model every second or so, 250–430 ms each with the GIL held;
* CPython's thread switching: a thread that asks for the GIL gets it only after ``sys.getswitchinterval()``
  (5 ms), and among 30 busy script threads the event loop may wait that long again and again.

:func:`serve_promptly`, called when a model's line starts on a served app (``loaders.passes``), freezes the
objects alive then (``gc.freeze``: the imports and the loaded model, which live as long as the server, are never
walked again) and shortens the switch interval.
"""
from __future__ import annotations

import gc
import math
import os
import sys
from collections.abc import Mapping

import streamlit as st

from vitviz.i18n import _, ngettext
from vitviz.serving import Place, Ticket

from . import trace

__all__ = ["POLL_S", "QUIET_S", "SWITCH_INTERVAL_MS", "describe", "serve_promptly", "served", "wait_for"]

POLL_S = 0.2
"""How often the place is read again (and the run may be stopped) while waiting."""
QUIET_S = 0.15
"""A pass at the front of the line that is done within this time shows nothing (no flicker for a small model on an
idle server); one behind others is shown at once."""
ICON = ":material/hourglass_top:"
SWITCH_INTERVAL_MS = 1.0
"""CPython's thread switch interval (ms) on a server with a line, instead of Python's 5 ms
(``VITVIZ_SWITCH_INTERVAL_MS``)."""
_SWITCH_RANGE_MS = (0.1, 100.0)


def served() -> bool:
    """Whether this process is a real Streamlit server (not AppTest, which mocks the runtime, nor a bare import)."""
    from streamlit import runtime

    # AppTest installs a spec'd MagicMock in place of the runtime, so only its exact type tells
    return runtime.exists() and type(runtime.Runtime.instance()) is runtime.Runtime


def serve_promptly(env: Mapping[str, str] | None = None) -> float:
    """Keep the server's event loop from waiting long for the GIL while sessions wait in line.

    Freezes the objects alive now (``gc.freeze``; ``VITVIZ_GC_FREEZE=0`` does not): the collector's full passes
    then skip them. Frozen objects are never collected as cycles; they are the imports and models a server keeps
    anyway. Sets CPython's switch interval to ``VITVIZ_SWITCH_INTERVAL_MS`` (default :data:`SWITCH_INTERVAL_MS`;
    ``off`` leaves Python's own); a value that is not a number between 0.1 and 100 ms is ignored (the default
    holds). Returns the switch interval in effect, seconds.
    """
    env = os.environ if env is None else env
    if (env.get("VITVIZ_GC_FREEZE") or "").strip().lower() not in ("0", "off", "no", "false"):
        gc.freeze()
    text = (env.get("VITVIZ_SWITCH_INTERVAL_MS") or "").strip().lower()
    if text not in ("off", "none", "no", "false"):
        try:
            ms = float(text) if text else SWITCH_INTERVAL_MS
        except ValueError:
            ms = SWITCH_INTERVAL_MS
        low, high = _SWITCH_RANGE_MS
        sys.setswitchinterval((ms if low <= ms <= high else SWITCH_INTERVAL_MS) / 1000)  # NaN fails the test too
    return sys.getswitchinterval()


def describe(place: Place, doing: str) -> str:
    """What a waiting visitor reads: what runs, the place in line, and the time left when it can be estimated.

    Args:
        place: The ticket's place.
        doing: What the pass does, e.g. "Running ViT-B/16 on your image…".
    """
    parts = [doing]
    if not place.started:
        parts.append(ngettext("{count} ahead of you", "{count} ahead of you", place.ahead).format(count=place.ahead)
                     if place.ahead else _("next in line"))
    if place.blocked:
        parts.append(_("the model is busy with another computation"))
    if place.seconds_left is not None:
        if place.started and place.seconds_left < 0.5:
            parts.append(_("almost done"))
        else:  # whole seconds, never "about 0 s"
            parts.append(_("about {seconds} s").format(seconds=max(1, math.ceil(place.seconds_left - 0.25))))
    return " · ".join(parts)


def _behind_others(place: Place) -> bool:
    """Whether the pass waits for other passes to end first (it has not started and one is running or queued
    before it)."""
    return not place.done and not place.started and place.ahead > 0


def _yield_point() -> None:
    """Let Streamlit stop or restart this run here if it was asked to (as its own element calls do)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    check = getattr(ctx, "yield_check", None)
    if check is not None:
        check()


def wait_for(ticket: Ticket, doing: str, *, poll_s: float = POLL_S, quiet_s: float = QUIET_S) -> None:
    """Block until ``ticket`` is done, showing its place and updating it every ``poll_s``.

    A pass with others ahead of it is shown at once: it will wait, and a class that uploads together should see
    where it stands straight away. One at the front of the line is shown only if it is not done within
    ``quiet_s``. If Streamlit stops the run meanwhile (its exception passes through here), the ticket is withdrawn.
    """
    if not _behind_others(ticket.place()) and ticket.wait(quiet_s):
        return
    box, shown = st.empty(), None
    try:
        while True:
            place = ticket.place()
            text = describe(place, doing)
            if text != shown:
                box.info(text, icon=ICON)
                if shown is None:
                    trace.mark("told", ahead=place.ahead)
                shown = text
            _yield_point()
            if ticket.wait(poll_s):
                break
    except BaseException:  # Streamlit's stop or rerun, or an error: nobody waits for this ticket here any more
        ticket.withdraw()
        raise
    box.empty()
