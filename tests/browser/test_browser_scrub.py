"""The Rollout page's layer scrubber and head fusion, and the walk-through's patch follower, in a real browser:
scrubbing, switching the fusion and pointing at patches draw different maps with nothing sent to the server
(no script rerun), and what is drawn equals the page's own downloads within the quantisation step."""
from __future__ import annotations

import numpy as np
import pytest

from tests._browser import TIMEOUT_MS, Frames, download_from, idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROLLOUT = "() => window.__vitvizRollout || null"
FOLLOW = "() => window.__vitvizFollow || null"


def _open(window, url: str, selector: str, probe: str):
    page = window(1500, 1400)
    frames = Frames(page)
    page.goto(url, timeout=TIMEOUT_MS)
    page.locator(selector).wait_for(state="attached", timeout=TIMEOUT_MS)
    page.wait_for_function(f"() => ({probe})() && ({probe})().draw_count > 0", timeout=TIMEOUT_MS)
    idle(page)
    page.locator(selector).scroll_into_view_if_needed()
    return page, frames


def _half(rows: np.ndarray) -> np.ndarray:
    return (rows.max(-1) - rows.min(-1)) / 255 / 2


def test_scrubbing_and_switching_fusion_redraw_in_the_browser(window, server):
    page, frames = _open(window, f"{server}/rollout", ".vr-map", ROLLOUT)
    first = page.evaluate(ROLLOUT)
    assert first["tier"] == "maps" and first["fusion"] == "mean"
    assert first["colour_ends"] == [[0, 0, 4], [252, 255, 164]], "Inferno, as the server's maps"
    sent = frames.sent
    drawn = {(first["fusion"], first["step"]): first}
    slider = page.locator(".vr-layer")
    slider.focus()
    page.keyboard.press("Home")  # the first layer of the range
    page.wait_for_function("() => window.__vitvizRollout.step === 0", timeout=60_000)
    drawn["mean", 0] = page.evaluate(ROLLOUT)
    for fusion in ("max", "min"):
        idle(page)  # the last change's commit has rerun the page (its scrubber is mounted once again)
        page.locator(f".vr-fusion[data-fusion={fusion}]").click()
        page.wait_for_function(f"() => window.__vitvizRollout.fusion === '{fusion}'", timeout=60_000)
        drawn[fusion, 0] = page.evaluate(ROLLOUT)
    idle(page)
    slider.focus()
    page.keyboard.press("End")
    last = first["step"]
    page.wait_for_function(f"() => window.__vitvizRollout.step === {last}", timeout=60_000)
    drawn["min", last] = page.evaluate(ROLLOUT)
    page.wait_for_timeout(300)
    # drawn in the browser; the scrubber is also the page's one set of controls, so each of the four changes
    # commits once to the page (its heading, table, URL and downloads follow: tests/browser/test_one_view.py)
    assert frames.sent - sent <= 4, "more than one message to the server per change of the scrubber"
    maps = [np.asarray(d["values"]) for d in drawn.values()]
    assert all(not np.allclose(a, b) for i, a in enumerate(maps) for b in maps[i + 1:]), "five different maps"
    assert drawn["min", last]["title"] != drawn["mean", last]["title"]

    # the drawn values are the page's rollout: commit each fusion on the server and compare with its download
    box = page.locator(".vr-map").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    tip = page.locator(".vr-tip").text_content()
    assert tip.startswith("row ") and "column" in tip and ":" in tip
    for fusion in ("mean", "min"):
        page.goto(f"{server}/rollout?ro_fusion={fusion.capitalize()}", timeout=TIMEOUT_MS)
        page.wait_for_function(
            f"() => window.__vitvizRollout && window.__vitvizRollout.committed.fusion === '{fusion}'",
            timeout=TIMEOUT_MS)
        idle(page)
        arrays, settings = download_from(page, ".st-key-ro-download")
        assert settings["head_fusion"] == fusion
        ref = arrays["rollout_maps"].astype(np.float64).reshape(len(arrays["rollout_maps"]), -1)  # (L', gh*gw)
        for step in (0, last):
            got = np.asarray(drawn[fusion, step]["values"])
            assert np.all(np.abs(got - ref[step]) <= _half(ref[step]) + 1e-6), (fusion, step)


def test_pointing_at_patches_follows_them_without_a_rerun(window, server):
    page, frames = _open(window, f"{server}/how_vit_works", ".vf-image", FOLLOW)
    state = page.evaluate(FOLLOW)
    assert state["tier"] == "patches" and state["attention"] is not None
    gh, gw = state["grid"]
    sent = frames.sent
    seen = {}
    for row, col in ((1, 1), (gh - 2, gw - 3)):
        box = page.locator(".vf-image").bounding_box()
        page.mouse.move(box["x"] + (col + 0.5) * box["width"] / gw, box["y"] + (row + 0.5) * box["height"] / gh)
        page.wait_for_function(f"() => window.__vitvizFollow.patch === {row * gw + col}", timeout=60_000)
        seen[row, col] = page.evaluate(FOLLOW)
    page.wait_for_timeout(300)
    assert frames.sent == sent, "pointing at a patch sent something to the server"
    a, b = seen.values()
    for part in ("pixels", "embedding", "attention", "norms"):
        assert not np.allclose(a[part], b[part]), part
    # a click commits the patch; the page's steps (its download) then show the numbers that were drawn
    row, col = gh - 2, gw - 3
    box = page.locator(".vf-image").bounding_box()
    page.mouse.click(box["x"] + (col + 0.5) * box["width"] / gw, box["y"] + (row + 0.5) * box["height"] / gh)
    page.wait_for_function(f"() => window.__vitvizFollow.committed.row === {row} && "
                           f"window.__vitvizFollow.committed.col === {col}", timeout=TIMEOUT_MS)
    idle(page)
    arrays, settings = download_from(page, ".st-key-how-download")
    assert settings["patch"] == [row, col]
    drawn = seen[row, col]
    for part, name in (("pixels", "patch_pixels"), ("embedding", "patch_embedding"),
                       ("attention", "attention_weights")):
        ref = arrays[name].astype(np.float64)
        assert np.all(np.abs(np.asarray(drawn[part]) - ref) <= _half(ref) + 1e-5 * np.abs(ref).max() + 1e-6), part
    token = drawn["token"]
    np.testing.assert_allclose(drawn["norms"], arrays["token_norms"][:, token], rtol=1e-5)
    # a click on the Chinese page leaves the steps Chinese (the page below its header is a fragment, whose rerun
    # skips app.py, which sets the language: the fragment sets it itself)
    page, _frames = _open(window, f"{server}/how_vit_works?lang=zh", ".vf-image", FOLLOW)
    box = page.locator(".vf-image").bounding_box()
    page.mouse.click(box["x"] + 1.5 * box["width"] / gw, box["y"] + 2.5 * box["height"] / gh)
    page.wait_for_function("() => window.__vitvizFollow.committed.row === 2 && "
                           "window.__vitvizFollow.committed.col === 1", timeout=TIMEOUT_MS)
    idle(page)
    text = page.locator("[data-testid=stMain]").inner_text()
    assert "图像块（2, 1）" in text and "Recomputed by hand" not in text
