"""Warm the server up: the heavy imports, the default model and its first view, in a background thread.

A fresh server spends most of its first view importing PyTorch and timm, building the model and running it.
:func:`start` does that work once per process, in a daemon thread, as soon as the app's script first runs
(``streamlit run`` runs no user code before a browser connects): the same calls the page makes, so their
results land in the shared caches (``loaders.load``, ``decode``, ``forward``, the Overview's views) and the
page, asking for them, waits on the cache's lock instead of doing the work twice. While the imports are
not done, :func:`show_progress` draws the steps with ``st.status`` so the first visitor sees what happens.

Only under a real Streamlit server (never in ``AppTest`` or a plain import); ``VITVIZ_WARMUP=0`` turns it
off. Each step's time since the thread started is kept in :data:`STEPS` and written to the server log.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from vitviz.i18n import N_, _

__all__ = ["STEPS", "LABELS", "start", "done", "show_progress"]

LABELS = {
    "imports": N_("Loading PyTorch, timm and Plotly"),
    "model": N_("Loading the default model"),
    "image": N_("Decoding the default image"),
    "capture": N_("Running the model on it"),
    "figures": N_("Drawing the Overview"),
}
"""Warm-up steps in order, with what the progress box says about each (in English: shown through ``_()``).
The last one is the Overview's own: opening another page, the box names that page instead."""

STEPS: dict[str, float] = {}
"""Step → seconds after the warm-up started when it finished (``'failed'`` holds the time of an error)."""

_LOCK = threading.Lock()
_THREAD: list[threading.Thread] = []
_EPOCH: list[float] = []


def _enabled() -> bool:
    if os.environ.get("VITVIZ_WARMUP", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    from .server import served

    return served()


def _mark(step: str) -> None:
    from streamlit.logger import get_logger

    STEPS[step] = time.monotonic() - _EPOCH[0]
    get_logger(__name__).info("vitviz warm-up: %s done at %.2f s (epoch %.3f)", step, STEPS[step], time.time())


def _imports() -> None:
    # pandas first, whole: Plotly's validators peek at sys.modules for pandas without importing it, so a figure
    # built while another thread was still importing pandas failed on a half-initialised module (seen with 8
    # sessions at once). Here it is done in half a second, long before any page can build a figure.
    import pandas  # noqa: F401
    import plotly.graph_objects  # noqa: F401  (Plotly's figure classes: ~1 s on their own)
    import timm  # noqa: F401  (imports torch)

    import vitviz.analysis  # noqa: F401
    import vitviz.capture  # noqa: F401
    import vitviz.figures  # noqa: F401


def _default_view() -> None:
    """The first view's work: the default model, the default sample, one captured pass (as the page asks)."""
    from vitviz.models import BUNDLED_MODEL

    from . import loaders
    from .samples import default_sample, read_sample
    from .sidebar import _default_model
    from .views import overview_figures

    name = _default_model()
    loaded = loaders.load(name, None)
    _mark("model")
    sample = default_sample(offline_model=name == BUNDLED_MODEL)
    if sample is None:
        return
    data = read_sample(sample)
    image_key = loaders.digest(data)
    image = loaders.decode(image_key, data)
    _mark("image")
    fwd = loaders.pass_for(f"{name}|default", image_key, None, None, loaded, image)  # queued as a session's pass
    _mark("capture")
    overview_figures(fwd, image)  # also imports the Plotly classes and validators the figures use
    _mark("figures")


def _run() -> None:
    from streamlit.logger import get_logger

    try:
        _imports()
        _mark("imports")
        _default_view()
    except Exception:  # the page will meet the same problem and say it in words; here it is only logged
        STEPS["failed"] = time.monotonic() - _EPOCH[0]
        get_logger(__name__).exception("vitviz warm-up failed (the page loads what it needs itself)")


def start() -> threading.Thread | None:
    """Start the warm-up once per process; later calls return the same thread (None when disabled)."""
    with _LOCK:
        if _THREAD:
            return _THREAD[0]
        if not _enabled():
            return None
        _EPOCH.append(time.monotonic())
        thread = threading.Thread(target=_run, name="vitviz-warmup", daemon=True)
        _THREAD.append(thread)
    thread.start()
    return thread


def done(step: str = "imports") -> bool:
    """Whether the warm-up finished ``step`` (or failed, or never ran: then nothing is worth waiting for)."""
    return step in STEPS or "failed" in STEPS or not _THREAD or not _THREAD[0].is_alive()


def _labels(page: str | None) -> dict[str, str]:
    """The steps the progress box lists (English, shown through ``_()``), the last one naming ``page`` when the
    visitor opened another page than the Overview (whose figures the warm-up draws)."""
    if page is None or page == _("Overview"):
        return dict(LABELS)
    return {**{step: label for step, label in LABELS.items() if step != "figures"}, "page": page}


def show_progress(wait_for: str = "imports", poll_s: float = 0.1, sleep: Callable[[float], None] = time.sleep, *,
                  page: str | None = None) -> None:
    """While the warm-up has not finished ``wait_for``, show its steps in an ``st.status`` box and wait.

    The page needs the imports anyway; waiting here, with the steps on screen, is what the first visitor
    would otherwise spend looking at a blank page. Later steps are not waited for: a visitor who asked for
    another model or image (e.g. through the URL) should not wait for the default one.

    Args:
        wait_for: The step to wait for.
        poll_s, sleep: How often, and how, to wait between redraws.
        page: The title of the page being opened (in the reader's language): the box says it opens that page,
            and lists the Overview's figures only when it is the Overview.
    """
    if done(wait_for):
        return
    import streamlit as st

    labels = _labels(page)
    title = _("Starting vitviz…") if page is None else _("Starting vitviz to open {page}…").format(page=page)
    placeholder = st.empty()
    with placeholder.status(title, expanded=True):
        lines = {step: st.empty() for step in labels}
        drawn: dict[str, bool] = {}
        while True:
            for step, label in labels.items():
                if step == "page":  # drawn by the page itself, once the warm-up lets it run
                    if not drawn.get(step):
                        lines[step].markdown(":material/hourglass_empty: " + _("Opening {page}").format(page=label)
                                             + "…")
                        drawn[step] = True
                    continue
                finished = step in STEPS
                if drawn.get(step) != finished:
                    lines[step].markdown(
                        ":material/check: " + _("{step} ({seconds:.1f} s)").format(step=_(label), seconds=STEPS[step])
                        if finished else f":material/hourglass_empty: {_(label)}…")
                    drawn[step] = finished
            if done(wait_for):
                break
            sleep(poll_s)
    placeholder.empty()  # the page takes its place
