"""The server warm-up (vitviz_app/warmup.py): it fills the same cache entries the first Overview reads."""
from __future__ import annotations

import pytest

from vitviz_app import loaders, warmup


@pytest.fixture
def fresh_warmup(monkeypatch):
    """Warm-up state of a process that has not started one, restored afterwards."""
    monkeypatch.setattr(warmup, "STEPS", {})
    monkeypatch.setattr(warmup, "_THREAD", [])
    monkeypatch.setattr(warmup, "_EPOCH", [0.0])
    loaders.load.clear()
    loaders.forward.clear()
    yield
    loaders.forward.clear()


def test_no_warmup_outside_a_server(fresh_warmup, monkeypatch, open_app):
    assert warmup.start() is None  # a bare import has no Streamlit runtime: nothing starts
    open_app()  # AppTest puts a mock runtime in place; the warm-up must not take it for a server
    assert warmup.start() is None and not warmup.STEPS
    assert warmup.done("capture")  # nothing to wait for
    monkeypatch.setattr(warmup, "_enabled", lambda: True)
    monkeypatch.setenv("VITVIZ_WARMUP", "0")
    monkeypatch.setattr(warmup, "_run", lambda: None)
    thread = warmup.start()
    assert thread is not None and warmup.start() is thread  # once per process
    thread.join()


def test_warmup_fills_the_caches_the_first_overview_reads(fresh_warmup, open_app):
    """After the warm-up's default view, opening the Overview runs no forward pass of its own."""
    warmup._default_view()  # the thread's work, run here synchronously
    assert set(warmup.STEPS) == {"model", "image", "capture", "figures"}
    passes = loaders.forward_passes()
    at = open_app()
    assert not at.exception and not at.error
    assert loaders.forward_passes() == passes  # the page found the warm-up's pass under its own key
    assert at.get("plotly_chart")  # and drew the Overview from it


def test_progress_waits_until_the_imports_are_done(fresh_warmup):
    from streamlit.testing.v1 import AppTest

    def script():
        import threading

        from vitviz_app import warmup

        warmup._THREAD[:] = [threading.Thread(target=lambda: None)]
        warmup._THREAD[0].is_alive = lambda: True  # a warm-up still running
        warmup.STEPS.clear()
        warmup.STEPS["model"] = 1.5  # not the awaited step yet
        calls = []

        def sleep(_seconds):  # the warm-up "finishes" the imports while the page waits
            calls.append(1)
            warmup.STEPS["imports"] = 2.0

        warmup.show_progress("imports", sleep=sleep)
        import streamlit as st

        st.write(f"waited {len(calls)}")

    at = AppTest.from_function(script).run()
    assert not at.exception
    assert "waited 1" in [m.value for m in at.markdown]
