"""The served process: whether this is a real Streamlit server, and how it keeps its event loop prompt.

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

Streamlit's own full collection after every script run is turned off in ``.streamlit/config.toml``
(``runner.postScriptGC``, bench/README.md §17); the freeze makes Python's own full passes cheap (§19).
"""
from __future__ import annotations

import gc
import os
import sys
from collections.abc import Mapping

__all__ = ["SWITCH_INTERVAL_MS", "serve_promptly", "served"]

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
