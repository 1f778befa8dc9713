"""Where a session's run spends its time, on request: one server log line per step, with epoch and CPU times.

Off by default (and then a single dictionary lookup per step). With ``VITVIZ_TRACE=1`` in the server's environment
:func:`mark` writes ``vitviz-trace <epoch s> <thread CPU s> <session> <step> [key=value ...]`` to the server log
(Streamlit's logger, level info). The steps of a run that draws a page: ``run`` (the script starts), ``image``
(the sidebar has the photo's bytes; ``key`` is their digest, which ties the session to a photo), ``ticket`` (the
page's pass joined the line; ``ahead``), ``told`` (the first notice of its place was handed to Streamlit),
``pass`` (the pass is there). The epoch is the machine's clock, the browser's too on one machine, so
``bench/classroom.py --trace`` lines these up with each page's upload event; the thread CPU time tells the
run's own work from its waiting for the GIL and the cores.
"""
from __future__ import annotations

import os
import time

__all__ = ["ENV", "enabled", "mark"]

ENV = "VITVIZ_TRACE"


def enabled() -> bool:
    """Whether ``VITVIZ_TRACE`` asks for the lines (read on every call: a test or a server may set it late)."""
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


def mark(step: str, **detail: object) -> None:
    """Log ``step`` of this session's run, with ``detail`` as ``key=value`` words (when tracing is on)."""
    if not enabled():
        return
    from streamlit.logger import get_logger
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    session = "_".join(ctx.session_id.split()) if ctx is not None else "-"  # one word (AppTest's has spaces)
    words = " ".join(f"{key}={value}" for key, value in detail.items())
    get_logger(__name__).info("vitviz-trace %.4f %.4f %s %s %s", time.time(), time.thread_time(), session, step,
                              words)
