"""Eight people on one server at once, on one cached model: each downloads exactly its own maps.

AppTest cannot run from several threads at once (each run creates and tears down Streamlit's process-wide
Runtime singleton: "Runtime hasn't been created!"), so this drives eight headless Chromium sessions against the
session's `streamlit run app.py` server, which is what strangers reach anyway. Each session uploads its own
photo, some open the Rollout page with their own settings, and downloads the page's arrays (.npz); those must
equal the library's maps for that photo and those settings. Threads on one model are in
``tests/unit/test_concurrency.py``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests import _imagefactory as factory
from tests._browser import CHROMIUM, CHROMIUM_ARGS
from vitviz.analysis import rollout
from vitviz.capture import capture
from vitviz.images import load_image, prepare_input
from vitviz.models import load_model

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SESSIONS = 8
DEADLINE_S = 180.0  # per session: far beyond the seconds this takes; only a deadlock reaches it


def _browser_session_plan(i: int) -> dict[str, Any]:
    """Session i's page, URL settings and the download that holds its maps."""
    if i % 2 == 0:
        return dict(path="", query="source=Upload", download="overview-download", fusion="mean", discard=0.0)
    fusion, discard = [("max", 0.5), ("min", 0.0), ("mean", 0.75), ("max", 0.0)][i // 2]
    return dict(path="rollout", query=f"source=Upload&ro_fusion={fusion.capitalize()}&ro_discard={discard}",
                download="ro-download", fusion=fusion, discard=discard)


def _photo_bytes(i: int) -> bytes:
    return factory.encode(factory.make_marker_image(
        (120 + 8 * i, 160), markers=((10 + 9 * i, 12 + 15 * i),), marker_size=24,
        background=(20 * i, 90, 200 - 20 * i)), "PNG")


async def _browse(browser, url: str, i: int) -> bytes:
    """Open the app, upload session i's photo, wait for the page to finish, download its arrays."""
    plan = _browser_session_plan(i)
    context = await browser.new_context(accept_downloads=True)
    try:
        page = await context.new_page()
        await page.goto(f"{url}/{plan['path']}?{plan['query']}", timeout=180_000)
        uploader = page.locator('.st-key-upload input[type="file"]')
        await uploader.wait_for(state="attached", timeout=180_000)
        await uploader.set_input_files(files=[{"name": f"session{i}.png", "mimeType": "image/png",
                                               "buffer": _photo_bytes(i)}])
        button = page.locator(f".st-key-{plan['download']}").get_by_role("button", name="Download arrays (.npz)")
        await button.wait_for(timeout=180_000)
        # The button is on the page before the upload's rerun starts: a click in between downloads the sample's
        # arrays, or is cancelled when that rerun replaces the file. Download until it is this upload's.
        from playwright.async_api import Error as PlaywrightError

        from vitviz_app.downloads import read_npz

        data = b""
        for _attempt in range(6):
            await page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=180_000)
            try:
                async with page.expect_download(timeout=180_000) as download_info:
                    await button.click()
                download = await download_info.value
                data = Path(await download.path()).read_bytes()
            except PlaywrightError as exc:  # "Download.path: canceled": a rerun replaced the file
                if "canceled" not in str(exc):
                    raise
            else:
                if read_npz(data)[1].get("image") == f"upload: session{i}.png":
                    return data
            await page.wait_for_timeout(1_000)
        return data
    finally:
        await context.close()


def _browse_all(url: str, n: int) -> list[bytes]:
    """Run the n sessions at once with Playwright's async API, on a thread of their own: the session's sync
    Chromium (``tests/conftest.py``) keeps its event loop marked as running on the test's thread."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from playwright.async_api import async_playwright

    async def main() -> list[bytes]:
        async with async_playwright() as playwright:
            # Playwright's async API, to drive eight pages at once: a Chromium of its own (the session's is sync)
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                return await asyncio.wait_for(asyncio.gather(*(_browse(browser, url, i) for i in range(n))),
                                              timeout=DEADLINE_S * 2)
            finally:
                await browser.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def test_eight_browser_sessions_at_once_each_see_their_own_maps(server, app_model):
    """Eight people on one server at once, on one cached model: each downloads exactly its own maps."""
    pytest.importorskip("playwright.async_api", reason="Playwright for Python is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from vitviz.analysis import gradient_rollout
    from vitviz_app.downloads import read_npz

    downloads = _browse_all(server, SESSIONS)
    loaded = load_model("vitviz-shapes")  # what the server loads by default offline (app_model: the same)
    for i, data in enumerate(downloads):
        plan = _browser_session_plan(i)
        arrays, settings = read_npz(data)
        assert settings["image"] == f"upload: session{i}.png"
        x, _ = prepare_input(load_image(_photo_bytes(i)), loaded.data_config)
        cap = capture(loaded.model, x)
        expected = rollout(cap, head_fusion=plan["fusion"], discard_ratio=plan["discard"]).maps
        np.testing.assert_allclose(arrays["rollout_maps"], expected, rtol=1e-4, atol=1e-6, err_msg=f"session {i}")
        assert settings.get("head_fusion") == plan["fusion"] and settings.get("discard_ratio") == plan["discard"]
        if plan["path"] == "rollout":  # test_vit has a classifier: the class-specific map is there too
            target = int(torch.argmax(cap.output[0]))
            assert settings["gradient_target"] == target
            grad = gradient_rollout(capture(loaded.model, x, target=target)).maps
            np.testing.assert_allclose(arrays["gradient_rollout_maps"], grad, rtol=1e-4, atol=1e-6)
        if plan["path"] == "":
            probabilities = torch.softmax(cap.output[0].double(), -1).numpy()
            np.testing.assert_allclose(arrays["probabilities"], probabilities, rtol=1e-5, atol=1e-9)
