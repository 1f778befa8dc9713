"""How a ViT works in a real browser: a click in step 1 commits the patch, and steps 2, 3, 5 and 6, drawn in the
browser from the patch follower's payload, show that patch: the numbers the follower drew for it while pointed at
(which are the page's own within the quantisation step, ``tests/browser/test_browser_scrub.py``); their
tooltips read the drawn values."""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from tests._browser import TIMEOUT_MS, idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FOLLOW = "() => window.__vitvizFollow || null"
STEPS = ("pixels", "embeddings", "attention", "norms")


def _step(page, step: str) -> dict:
    return page.evaluate(f"() => window.__vitvizStep_{step}")


def test_a_committed_patch_is_drawn_by_every_later_step(window, server):
    page = window(1500, 1400)
    page.goto(f"{server}/how_vit_works", timeout=TIMEOUT_MS)
    page.wait_for_function("() => window.__vitvizFollow && window.__vitvizStep_norms && "
                           "window.__vitvizStep_attention", timeout=TIMEOUT_MS)
    idle(page)
    gh, gw = page.evaluate(FOLLOW)["grid"]
    row, col = gh - 2, gw - 3
    image = page.locator(".vf-image")
    image.scroll_into_view_if_needed()
    box = image.bounding_box()
    point = box["x"] + (col + 0.5) * box["width"] / gw, box["y"] + (row + 0.5) * box["height"] / gh
    page.mouse.move(*point)
    page.wait_for_function(f"() => window.__vitvizFollow.patch === {row * gw + col}", timeout=60_000)
    followed = page.evaluate(FOLLOW)
    page.mouse.click(*point)
    page.wait_for_function(
        "([row, col]) => ['pixels', 'embeddings', 'attention', 'norms'].every((s) => { "
        "const v = window['__vitvizStep_' + s]; return v && v.committed.row === row && v.committed.col === col; })",
        arg=[row, col], timeout=TIMEOUT_MS)
    idle(page)
    drawn = {step: _step(page, step) for step in STEPS}
    assert f"(row {row}, col {col})" in drawn["pixels"]["title"] and f"(row {row}, col {col})" in \
        drawn["embeddings"]["title"] and f"(row {row}, col {col})" in drawn["attention"]["title"]
    np.testing.assert_array_equal(np.concatenate(drawn["pixels"]["values"]), followed["pixels"])
    np.testing.assert_array_equal(drawn["embeddings"]["values"][0], followed["embedding"])
    np.testing.assert_array_equal(drawn["attention"]["values"][0], followed["attention"])
    num_prefix = followed["token"] - row * gw - col
    np.testing.assert_array_equal(drawn["norms"]["values"][num_prefix], followed["norms"])
    assert drawn["norms"]["values"][-1] != followed["norms"]  # the mean of all patches, dotted

    view = page.locator(".st-key-how_step_attention .vs-canvas")
    view.scroll_into_view_if_needed()
    box = view.bounding_box()
    page.mouse.move(box["x"] + (col + 0.5) * box["width"] / gw, box["y"] + (row + 0.5) * box["height"] / gh)
    tip = page.locator(".st-key-how_step_attention .vs-tip").text_content()
    weight = followed["attention"][num_prefix + row * gw + col]
    assert tip == f"row {row}, column {col}: {weight:.4f}"

    # the commit reran the page's fragment only; the address bar has the patch all the same, and a link copied
    # from it reopens the page on that patch
    link = urlparse(page.url)
    assert parse_qs(link.query).get("how_row") == [str(row)] and parse_qs(link.query).get("how_col") == [str(col)]
    page.goto(page.url, timeout=TIMEOUT_MS)
    page.wait_for_function("() => window.__vitvizFollow && window.__vitvizStep_pixels", timeout=TIMEOUT_MS)
    assert page.evaluate(FOLLOW)["committed"] == {"row": row, "col": col}
    assert _step(page, "pixels")["committed"] == {"row": row, "col": col}
