"""The app against a hub that fails (AppTest): the sidebar says why in words, never a traceback, and the app
stays usable. The hub is ``tests/_localhub.py`` on 127.0.0.1, serving the catalogue's ``ViT-Ti/16 (AugReg)``."""
from __future__ import annotations

import pytest

from tests._apptest import APP, APP_TIMEOUT_S
from tests._localhub import CATALOGUE_KEY

pytestmark = pytest.mark.slow  # each downloads the 23 MB catalogue model from the local hub


def _open_catalogue_model():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
    at.query_params["model"] = CATALOGUE_KEY
    return at.run()


def test_the_app_says_why_a_download_failed_and_stays_usable(catalogue_hub):
    """A damaged download: the sidebar says so in words (no traceback), and another model still works."""
    catalogue_hub(corrupt={"model.safetensors"})
    at = _open_catalogue_model()
    assert not at.exception, [e.value for e in at.exception]
    messages = [e.value for e in at.error]
    assert any("damaged" in m and "removed from the cache" in m for m in messages), messages
    at.selectbox(key="model").set_value("vitviz-shapes").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.get("plotly_chart")


def test_the_app_gives_up_on_a_trickling_hub_with_a_message(catalogue_hub, monkeypatch):
    """A hub that sends a byte every 0.3 s: the sidebar says the download stalled (after the stall timeout,
    here 1 s), no traceback, and nothing is left half-written."""
    monkeypatch.setenv("VITVIZ_HUB_STALL_TIMEOUT_S", "1")
    catalogue_hub(trickle_s={"model.safetensors": 0.3})
    at = _open_catalogue_model()
    assert not at.exception, [e.value for e in at.exception]
    messages = [e.value for e in at.error]
    assert any("model.safetensors" in m and "stalled: less than 1.0 kB arrived in 1 s" in m for m in messages), messages
