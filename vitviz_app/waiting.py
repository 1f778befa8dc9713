"""Waiting in line, visibly: a session whose pass waits behind other sessions' sees its place and the time left.

``vitviz_app.loaders.pass_for`` hands a queued pass's ``vitviz.serving.Ticket`` to :func:`wait_for`, which
shows "Running ViT-B/16 on your image… · 3 ahead of you · about 4 s" and redraws it as the line moves, until
the pass is done. The wait is cooperative: every poll is a point where Streamlit may stop the run (the visitor
went to another page, clicked, or uploaded another photo). The ticket is then withdrawn, so a pass that has not
started is not run for a visitor who left; a rerun that asks for the same pass rejoins it in its place.
"""
from __future__ import annotations

import math

import streamlit as st

from vitviz.i18n import _, ngettext
from vitviz.serving import Place, Ticket

from . import trace

__all__ = ["POLL_S", "QUIET_S", "describe", "wait_for"]

POLL_S = 0.2
"""How often the place is read again (and the run may be stopped) while waiting."""
QUIET_S = 0.15
"""A pass at the front of the line that is done within this time shows nothing (no flicker for a small model on an
idle server); one behind others is shown at once."""
ICON = ":material/hourglass_top:"


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
