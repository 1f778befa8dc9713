"""Shared pytest fixtures, for every tier.

App fixtures (``app_model``, ``open_app``, ``figure``, ``swap_bundled``) drive the Streamlit app in-process with
``streamlit.testing.v1.AppTest``. The app's default model offline is the bundled ``vitviz-shapes``; until its
weights are shipped, ``app_model`` stands in the same network with random weights.

Browser fixtures: ``server`` is the one ``streamlit run app.py`` of the session (offline, the bundled model,
the components' test hooks on), ``chromium`` the one headless Chromium, ``window(...)`` a fresh browser window
of a given size, ``page`` one at the desktop size. Helpers that read pages are in ``tests/_browser.py``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from tests._apptest import APP, APP_TIMEOUT_S, bundled_model_shipped, chart_spec, stand_in_shapes_model


@pytest.fixture
def app_model(monkeypatch) -> str:
    """Make the app's offline default model loadable; returns the name of the network behind it.

    With the shipped weights nothing is patched. Without them, ``vitviz.shapes.load_shapes_model`` returns
    :func:`stand_in_shapes_model` (untrained), so every code path (including the offline fallback) still runs.
    """
    monkeypatch.setenv("VITVIZ_OFFLINE", "1")  # never wait on the hub in tests
    if bundled_model_shipped():
        return "vitviz-shapes"
    import vitviz.shapes

    monkeypatch.setattr(vitviz.shapes, "load_shapes_model", stand_in_shapes_model, raising=False)
    return "vitviz-shapes (untrained stand-in)"


@pytest.fixture
def open_app(app_model) -> Callable[..., Any]:
    """Factory: ``open_app(page=None, query=None)`` runs the app (optionally a page, or a URL query)."""
    from streamlit.testing.v1 import AppTest

    def _open(page: str | None = None, query: dict[str, str] | None = None):
        at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
        for key, value in (query or {}).items():
            at.query_params[key] = value
        if page is not None:  # open the page directly, as a shared link /page?... would
            at.switch_page(page)
        return at.run()

    return _open


@pytest.fixture
def figure() -> Callable[[Any, str], dict]:
    """``figure(at, key)``: the figure dict shown by ``show_figure(..., key=key)`` on the current page."""
    return chart_spec


def _layout_stand_in(name: str, **model_args):
    def load_shapes_model(device: str = "cpu", **_):
        import timm
        import torch

        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False, **model_args).eval()
        classes = [f"shape {i}" for i in range(model.num_classes)] if model.num_classes else []
        return model, {"classes": classes, "patch_sizes": [8, 16], "native_patch_size": 16}

    return load_shapes_model


@pytest.fixture
def swap_bundled(monkeypatch, app_model):
    """Run the app with another network behind the bundled model's name (caches cleared around the test)."""
    import streamlit as st

    import vitviz.shapes

    def swap(name: str, **model_args) -> None:
        monkeypatch.setattr(vitviz.shapes, "load_shapes_model", _layout_stand_in(name, **model_args), raising=False)

    st.cache_resource.clear()
    st.cache_data.clear()
    yield swap
    st.cache_resource.clear()
    st.cache_data.clear()


# ------------------------------------------------------------------------------------------ a local hub


@pytest.fixture(scope="session")
def vit_tiny() -> tuple[bytes, bytes, dict]:
    """The catalogue model's hub files (``tests/_localhub.py``): model.safetensors, config.json, state dict."""
    from tests._localhub import timm_repo_files

    return timm_repo_files("vit_tiny_patch16_224", seed=0)


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """Online, with an empty hub cache in ``tmp_path``; the endpoint is set by :func:`catalogue_hub`."""
    import huggingface_hub.constants

    from vitviz.hub import reachability

    for var in ("VITVIZ_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read when it was imported
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(reachability, "_HUB_CHECK", {})
    return tmp_path / "hub"


@pytest.fixture
def catalogue_hub(hub_env, monkeypatch, vit_tiny):
    """``catalogue_hub(**faults)``: a started ``LocalHub`` holding the catalogue repo, at ``HF_ENDPOINT``."""
    from tests._localhub import REPO, LocalHub

    hubs: list = []

    def _serve(**faults):
        local = LocalHub(**faults).start()
        hubs.append(local)
        weights, config, _ = vit_tiny
        local.add(REPO, "model.safetensors", weights)
        local.add(REPO, "config.json", config)
        monkeypatch.setenv("HF_ENDPOINT", local.endpoint)
        return local

    yield _serve
    for local in hubs:
        local.stop()


# ------------------------------------------------------------------------------------------ browser tier


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[str]:
    """The session's ``streamlit run app.py`` (offline, the bundled model, test hooks on); yields its base URL.

    Started once, by the first test that asks for it; every browser test shares it, each in its own session.
    """
    from tests._browser import streamlit_server

    with streamlit_server(tmp_path_factory.mktemp("server")) as url:
        yield url


@pytest.fixture(scope="session")
def chromium():
    """The session's headless Chromium (Debian's, through Playwright); skips where there is none."""
    from pathlib import Path

    from tests._browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (set VITVIZ_CHROMIUM to a chromium binary)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def window(chromium) -> Iterator[Callable[..., Any]]:
    """Factory: ``window(width=1500, height=1100, phone=False, locale="en-US")`` opens a page in a fresh browser
    context of that size (a phone: mobile and touch); every context is closed after the test."""
    from tests._browser import TIMEOUT_MS

    contexts = []

    def _open(width: int = 1500, height: int = 1100, phone: bool = False, locale: str = "en-US"):
        context = chromium.new_context(viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone,
                                       locale=locale, accept_downloads=True)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield _open
    for context in contexts:
        context.close()


@pytest.fixture
def page(window):
    """A browser page at the desktop size (1500 × 1100)."""
    return window()


@pytest.fixture
def downloads(monkeypatch) -> dict:
    """``{download key: (arrays, settings)}`` each page offers in its last run (vitviz_app.download_arrays)."""
    import vitviz_app

    offered: dict = {}
    real = vitviz_app.download_arrays

    def record(arrays, settings, *, filename, key, **kwargs):
        offered[key] = ({name: np.asarray(value) for name, value in arrays.items()}, dict(settings))
        return real(arrays, settings, filename=filename, key=key, **kwargs)

    monkeypatch.setattr(vitviz_app, "download_arrays", record)
    return offered


# ------------------------------------------------------------------------------------------ the run's time


def pytest_sessionstart(session) -> None:
    import time

    session.config.stash[_STARTED] = time.monotonic()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """One line with the run's wall time and the sum of its tests' own durations (setup, call and teardown).

    On a shared machine the wall time grows with the load; the sum of durations, measured test by test, shows
    how much of it the tests themselves took. ``.ci/run`` holds the default tier to its time budget.
    """
    import time

    reports = [r for kind in ("passed", "failed", "skipped", "error", "xfailed", "xpassed")
               for r in terminalreporter.stats.get(kind, []) if hasattr(r, "duration")]
    tests = {r.nodeid for r in reports}
    wall = time.monotonic() - config.stash.get(_STARTED, time.monotonic())
    tier = config.getoption("markexpr") or "every test"
    terminalreporter.write_line(f"vitviz tests ({tier}): {len(tests)} tests, {wall:.0f} s wall, "
                                f"{sum(r.duration for r in reports):.0f} s in the tests' own durations")


_STARTED = pytest.StashKey[float]()
