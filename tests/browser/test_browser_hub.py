"""The app downloading a catalogue model from a hub, in a real browser: a progress bar with bytes done of the
total, one download for two sessions. The hub is ``tests/_localhub.py`` on 127.0.0.1 (never the internet); the
library's side of the same downloads is in ``tests/unit/test_hub_download.py``."""
from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests._browser import SCREENSHOTS, streamlit_server
from tests._localhub import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_app_shows_download_progress_and_a_second_session_joins_it(catalogue_hub, hub_env, window, tmp_path):
    """``streamlit run app.py`` against the local hub: opening ViT-Ti/16 shows a progress bar with bytes done
    of the total; a second browser session opened meanwhile shows the same download (one GET), then both
    show the model with hub weights."""
    local = catalogue_hub(throttle_s=0.2)  # held slow until both sessions show the download
    progress = re.compile(r"Downloading ViT-Ti/16 \(AugReg\) from 127\.0\.0\.1:\d+: model\.safetensors: "
                          rf"\d+(\.\d)? k?M?B of {len(local._repos[REPO]['model.safetensors'].data) / 1e6:.1f} MB")
    # online, against this test's hub and an empty cache: a server of its own (the session's is offline)
    with streamlit_server(tmp_path, offline=False, HF_ENDPOINT=local.endpoint, HF_HUB_CACHE=str(hub_env)) as url:
        tabs = []
        for _ in range(2):
            tab = window(1400, 1000)
            tab.goto(f"{url}/?model={quote('ViT-Ti/16 (AugReg)')}")
            tab.get_by_text(progress).wait_for(timeout=180_000)
            tabs.append(tab)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        tabs[1].get_by_text(progress).scroll_into_view_if_needed()
        tabs[1].screenshot(path=str(SCREENSHOTS / "hub_download_progress.png"))
        local.throttle_s = 0.0  # let it finish
        for tab in tabs:  # the sidebar's weights line: "Weights: pretrained, from the Hugging Face hub"
            tab.get_by_text("pretrained, from the Hugging Face hub").wait_for(timeout=180_000)
            assert tab.locator("[data-testid=stException]").count() == 0
            assert tab.get_by_text(progress).count() == 0  # the bar is gone once done
        tabs[0].screenshot(path=str(SCREENSHOTS / "hub_download_done.png"))
    assert len(local.seen("GET", "cdn")) == 1  # the second session joined the first one's download
