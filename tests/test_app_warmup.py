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


_SERVE = """
import asyncio, sys, threading
import streamlit
import app
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('vitviz', 'vitviz_app', 'torch', 'timm'))
assert isinstance(app.app, streamlit.App), type(app.app)

async def serve():
    async with app.warm_up_at_start(app.app):
        pass

asyncio.run(serve())
for thread in threading.enumerate():
    if thread.name == 'vitviz-warmup-start':
        thread.join(120)
print(loaded, 'vitviz_app.warmup' in sys.modules)
"""


def test_streamlit_run_imports_app_py_light_and_warms_up_from_its_lifespan():
    """Streamlit with ``st.App``: ``streamlit run app.py`` finds ``app`` in the file (static discovery) and imports
    it; the import loads nothing of vitviz, torch or timm (the server answers at once), and the lifespan hook
    starts the warm-up in a thread."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import streamlit

    if not hasattr(streamlit, "App"):
        pytest.skip("this Streamlit has no st.App: the warm-up starts at the first script run")
    from streamlit.web.server.app_discovery import discover_asgi_app

    repo = Path(__file__).resolve().parents[1]
    assert discover_asgi_app(repo / "app.py").import_string == "app:app"
    out = subprocess.run([sys.executable, "-c", _SERVE], cwd=repo, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "VITVIZ_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[] True", out.stdout
