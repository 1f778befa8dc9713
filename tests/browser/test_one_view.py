"""One source of truth per view, in a real browser (issue 22): the Attention page's explorer and the Rollout page's
scrubber are each page's one set of controls, and the page (heading, caption, URL) agrees with them after a hover,
a grid click and a scrub; a touch screen reads "tap", not "hover" and "Shift"."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from tests._browser import wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 240_000
EXPLORER = "() => window.__vitvizExplorer || null"


def _url(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def _heading(page) -> str:
    return page.locator(".st-key-attn-query h3").inner_text()


def _settled(page, predicate_js: str) -> None:
    page.wait_for_function(predicate_js, timeout=TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=TIMEOUT_MS)
    page.wait_for_timeout(400)


@pytest.fixture
def tab(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    yield page
    context.close()


def test_the_attention_page_follows_its_explorer_after_a_hover_a_grid_click_and_a_scrub(tab, server):
    tab.goto(f"{server}/attention?lang=en", timeout=TIMEOUT_MS)
    wait_until_idle(tab)
    _settled(tab, "() => window.__vitvizExplorer && window.__vitvizExplorer.draw_count > 0")
    state = tab.evaluate(EXPLORER)
    (gh, gw), P, committed = state["grid"], state["num_prefix"], state["committed"]["token"]
    assert committed == 0 and "Class token" in _heading(tab)

    # a hover previews another query; leaving the map goes back to the committed one
    box = tab.locator(".vv-map").bounding_box()
    tab.mouse.move(box["x"] + 1.5 * box["width"] / gw, box["y"] + 1.5 * box["height"] / gh)
    tab.wait_for_function(f"() => window.__vitvizExplorer.query === {P + gw + 1}", timeout=10_000)
    tab.mouse.move(box["x"] + box["width"] + 40, box["y"] - 40)
    tab.wait_for_function(f"() => window.__vitvizExplorer.query === {committed}", timeout=10_000)
    assert "Class token" in _heading(tab), "a hover commits nothing"

    # a click on a tile of the layers × heads grid commits its layer and head: the page and the URL follow
    state = tab.evaluate(EXPLORER)
    g, grid = state["grid_geometry"], tab.locator(".vv-grid").bounding_box()
    column = 1
    x = (g["left"] + column * g["pitch_x"] + 2) * grid["width"] / g["width"]
    y = (g["top"] + 0 * g["pitch_y"] + 2) * grid["height"] / g["height"]
    tab.mouse.click(grid["x"] + x, grid["y"] + y)
    head = state["grid_columns"][column]
    _settled(tab, "() => document.querySelector('.st-key-attn-query h3').innerText.includes('layer 0 ·')")
    assert _heading(tab).endswith(f"layer 0 · Head {head}"), _heading(tab)
    assert (_url(tab).get("attn_layer"), _url(tab).get("attn_head")) == ("0", head), tab.url
    assert tab.evaluate(EXPLORER)["committed"]["layer"] == 0

    # a scrub: letting go of the layer slider commits the layer
    slider = tab.locator(".vv-layer")  # in the component's shadow root: a locator reaches it
    slider.evaluate("(s) => { s.value = s.max; s.dispatchEvent(new Event('input')); "
                    "s.dispatchEvent(new Event('change')); }")
    last = int(slider.evaluate("(s) => s.max"))
    _settled(tab, f"() => document.querySelector('.st-key-attn-query h3').innerText.includes('layer {last} ·')")
    assert "attn_layer" not in _url(tab), "the last layer is the default: a clean URL"
    assert tab.evaluate(EXPLORER)["committed"]["layer"] == last

    # a click on a patch commits it as the query
    box = tab.locator(".vv-map").bounding_box()
    tab.mouse.click(box["x"] + 2.5 * box["width"] / gw, box["y"] + 1.5 * box["height"] / gh)
    _settled(tab, "() => document.querySelector('.st-key-attn-query h3').innerText.includes('patch (1, 2)')")
    assert (_url(tab)["attn_query"], _url(tab)["attn_row"], _url(tab)["attn_col"]) == ("patch", "1", "2")
    assert tab.evaluate(EXPLORER)["committed"]["token"] == P + gw + 2
    assert _url(tab)["lang"] == "en"


def test_the_rollout_page_follows_its_scrubber(tab, server):
    tab.goto(f"{server}/rollout?lang=en", timeout=TIMEOUT_MS)
    wait_until_idle(tab)
    _settled(tab, "() => window.__vitvizRollout && window.__vitvizRollout.draw_count > 0")
    tab.locator(".vr-fusion", has_text="Max").click()
    _settled(tab, "() => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]"
                  ".some(c => c.innerText.includes('Committed view: Max fusion'))")
    assert _url(tab).get("ro_fusion") == "max", tab.url
    tab.locator(".vr-layer").evaluate("(s) => { s.value = 0; s.dispatchEvent(new Event('input')); "
                                      "s.dispatchEvent(new Event('change')); }")
    _settled(tab, "() => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]"
                  ".some(c => c.innerText.includes('through layer 0.'))")
    assert _url(tab)["ro_layer"] == "0"
    probe = tab.evaluate("() => window.__vitvizRollout")
    assert (probe["fusion"], probe["layer"]) == ("max", 0)


def test_a_touch_screen_reads_tap_not_hover_or_shift(chromium, server):
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(f"{server}/attention?lang=en", timeout=TIMEOUT_MS)
        wait_until_idle(page)
        _settled(page, "() => window.__vitvizExplorer && window.__vitvizExplorer.draw_count > 0")
        assert page.evaluate("() => matchMedia('(hover: none)').matches")
        words = page.locator("[data-testid=stMain]").inner_text()  # visible text only
        assert re.search(r"\btap\b", words), "a touch screen is told to tap"
        assert not re.search(r"\bhover\b|\bShift\b", words), "no hover or Shift on a touch screen"
        assert page.locator(".vv-status").inner_text().startswith("The browser holds every layer, head and query: "
                                                                   "tap a patch")
        page.goto(f"{server}/?lang=en", timeout=TIMEOUT_MS)
        wait_until_idle(page)
        intro = page.locator("[data-testid=stMain]").inner_text()
        assert "Open the sidebar" in intro and "Pick an image and a model in the sidebar" not in intro
    finally:
        context.close()
