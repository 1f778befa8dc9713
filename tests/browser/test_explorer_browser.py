"""The attention and tile explorers in a real browser: hovering redraws in the page with nothing sent to the
server, the drawn values equal the Capture's (the page's own download) to within the quantisation step, a click
commits the query to the page, their texts are the catalogue's in Chinese, and with a lowered size budget the
page says so and falls back to clicks."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tests._browser import TIMEOUT_MS, Frames, download_from, idle, streamlit_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EXPLORER = "() => window.__vitvizExplorer || null"
_ENGLISH = re.compile(r"\b(row|column|layer|head|patch|attention|click|loading|share)\b", re.IGNORECASE)


def _open(window, url: str):
    page = window(1500, 1400)
    frames = Frames(page)
    page.goto(url, timeout=TIMEOUT_MS)
    page.locator(".vv-map").wait_for(state="attached", timeout=TIMEOUT_MS)
    page.locator(".vv-map").scroll_into_view_if_needed()
    page.wait_for_function("() => window.__vitvizExplorer && window.__vitvizExplorer.draw_count > 0",
                           timeout=TIMEOUT_MS)
    idle(page)
    page.locator(".vv-map").scroll_into_view_if_needed()
    return page, frames


def _hover(page, row: int, col: int) -> dict:
    """Move the pointer over patch (row, col) of the explorer's map; return what it then drew."""
    state = page.evaluate(EXPLORER)
    gh, gw = state["grid"]
    box = page.locator(".vv-map").bounding_box()
    page.mouse.move(box["x"] + (col + 0.5) * box["width"] / gw, box["y"] + (row + 0.5) * box["height"] / gh)
    token = state["num_prefix"] + row * gw + col
    page.wait_for_function(f"() => window.__vitvizExplorer.query === {token}", timeout=10_000)
    return page.evaluate(EXPLORER)


def _download(page) -> tuple[dict, dict]:
    return download_from(page, ".st-key-attn-download")


def _half_steps(rows: np.ndarray) -> np.ndarray:
    return (rows.max(-1) - rows.min(-1)) / 255 / 2  # the payload's per-row quantisation, half a step


def _commit_click(page, row: int, col: int) -> None:
    state = page.evaluate(EXPLORER)
    gh, gw = state["grid"]
    box = page.locator(".vv-map").bounding_box()
    page.mouse.click(box["x"] + (col + 0.5) * box["width"] / gw, box["y"] + (row + 0.5) * box["height"] / gh)
    token = state["num_prefix"] + row * gw + col
    page.wait_for_function(f"() => window.__vitvizExplorer.committed.token === {token}", timeout=TIMEOUT_MS)
    idle(page)


def test_hovering_a_position_tile_shows_it_large_without_a_rerun(window, server):
    page = window(1500, 1400)
    frames = Frames(page)
    page.goto(f"{server}/position_embeddings", timeout=TIMEOUT_MS)
    page.locator(".vt-tiles").wait_for(state="attached", timeout=TIMEOUT_MS)
    page.locator(".vt-tiles").scroll_into_view_if_needed()
    page.wait_for_function("() => window.__vitvizTiles && window.__vitvizTiles.draw_count > 0", timeout=TIMEOUT_MS)
    idle(page)
    gh, gw = page.evaluate("() => window.__vitvizTiles.grid")
    sent = frames.sent
    drawn = {}
    for row, col in ((1, 2), (5, 3)):
        box = page.locator(".vt-tiles").bounding_box()
        page.mouse.move(box["x"] + (col + 0.5) * box["width"] / gw, box["y"] + (row + 0.5) * box["height"] / gh)
        page.wait_for_function(f"() => window.__vitvizTiles.index === {row * gw + col}", timeout=10_000)
        drawn[row, col] = np.asarray(page.evaluate("() => window.__vitvizTiles.values")).reshape(gh, gw)
    page.wait_for_timeout(300)
    assert frames.sent == sent  # nothing went to the server
    assert not np.allclose(drawn[1, 2], drawn[5, 3])
    arrays, _ = download_from(page, ".st-key-pos-download")
    sim = arrays["position_similarity"].astype(np.float64)  # (gh, gw, gh, gw), the page's own values
    for (row, col), values in drawn.items():
        ref = sim[row, col]
        assert np.all(np.abs(values - ref) <= (ref.max() - ref.min()) / 255 / 2 + 1e-6)


def test_hovering_redraws_in_the_browser_and_matches_the_capture(window, server):
    page, frames = _open(window, f"{server}/attention")
    first = page.evaluate(EXPLORER)
    assert first["tier"] == "heads"  # the bundled model is small: every head of every query is sent

    sent = frames.sent
    a = _hover(page, 1, 1)
    b = _hover(page, 5, 6)
    assert a["query"] != b["query"] and a["draw_count"] < b["draw_count"]
    assert not np.allclose(a["values"], b["values"])  # two different maps drawn
    page.wait_for_timeout(300)
    assert frames.sent == sent, "hovering sent something to the server"
    layer_input = page.locator(".vv-layer")
    layer_input.focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => window.__vitvizExplorer.layer === {b['layer'] - 1}", timeout=10_000)
    page.locator(".vv-head").select_option("2")
    page.wait_for_function("() => window.__vitvizExplorer.head === '2'", timeout=10_000)
    c = page.evaluate(EXPLORER)
    assert c["query"] == b["query"] and not np.allclose(c["values"], b["values"])
    page.wait_for_timeout(300)
    # the explorer is the page's one set of controls: a new layer and a new head each commit once to the page
    assert frames.sent - sent <= 2, "more than one message per change of the explorer's layer or head"

    # a click commits: the page's query, layer and head follow; its download is the Capture's row
    _commit_click(page, 5, 6)
    arrays, settings = _download(page)
    assert settings["query"] == [5, 6] and settings["layer"] == c["layer"] and settings["head"] == "2"
    heads = arrays["attention_heads"].astype(np.float64)  # (H, N) from the Capture, full precision
    drawn = page.evaluate(EXPLORER)
    assert drawn["query"] == c["query"] and drawn["head"] == "2"
    assert np.all(np.abs(np.asarray(drawn["values"]) - heads[2]) <= _half_steps(heads[2]) + 1e-6)
    page.locator(".vv-head").select_option("mean")
    page.wait_for_function("() => window.__vitvizExplorer.head === 'mean'", timeout=10_000)
    mean = np.asarray(page.evaluate(EXPLORER)["values"])
    assert np.all(np.abs(mean - heads.mean(0)) <= _half_steps(heads).max() + 1e-6)
    # hover values of another query against the Capture too: the class token's row, via its button
    page.locator(".vv-token").first.click()
    page.wait_for_function("() => window.__vitvizExplorer.committed.token === 0", timeout=TIMEOUT_MS)
    idle(page)
    arrays, settings = _download(page)
    assert settings["query"] == "cls"
    cls_heads = arrays["attention_heads"].astype(np.float64)
    page.locator(".vv-head").select_option("max")
    page.wait_for_function("() => window.__vitvizExplorer.head === 'max'", timeout=10_000)
    drawn = np.asarray(page.evaluate(EXPLORER)["values"])
    assert np.all(np.abs(drawn - cls_heads.max(0)) <= _half_steps(cls_heads).max() + 1e-6)


_WIDENED = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
    const box = gd.closest('[class*=st-key-fig]'), size = gd._fullLayout._size, margin = gd._fullLayout.margin;
    return [box ? [...box.classList].find(c => c.startsWith('st-key-fig')) : '?',
            ['l', 'r', 'b'].filter(side => size[side] > margin[side] + 0.5)];
})"""


def _query_heading(page) -> str:
    """The "page's query" heading."""
    return page.locator(".st-key-attn-query").inner_text()


def test_a_committed_click_updates_the_page_and_its_figures_are_drawn_once(window, server):
    """After a click the explorer (the page's map) holds it and the URL, the heading and the table follow
    (one fragment rerun) with no Plotly figure to redraw. With the page's Plotly figures on, their map follows
    too, and Plotly did not have to widen any figure's margins (which draws a figure twice)."""
    page, _frames = _open(window, f"{server}/attention")
    assert page.locator("[data-testid=stMain] .js-plotly-plot").count() == 0  # the explorer is the map
    table = page.locator("[data-testid=stTable]").inner_text()
    draws = _hover(page, 2, 3)["draw_count"]  # the pointer is on the patch: the click itself draws once
    _commit_click(page, 2, 3)
    # one draw at the click, one when the rerun hands the explorer the committed state (its photo is decoded
    # once per payload: no second draw when that promise resolves)
    assert page.evaluate(EXPLORER)["draw_count"] - draws == 2
    assert "attn_row=2" in page.url and "attn_col=3" in page.url
    assert "patch (2, 3)" in _query_heading(page)
    assert page.locator("[data-testid=stTable]").count() == 1  # the top patches: a static table, not a data grid
    assert page.locator("[data-testid=stTable]").inner_text() != table
    assert page.locator("[data-testid=stMain] .js-plotly-plot").count() == 0
    # the shares are said once, by the explorer under its map (tests/app/test_explorer_app.py checks them)
    page.locator(".vv-head").select_option("max")  # then commit the head-max view of the same patch
    state = page.evaluate(EXPLORER)
    box, (gh, gw) = page.locator(".vv-map").bounding_box(), state["grid"]
    page.mouse.click(box["x"] + 3.5 * box["width"] / gw, box["y"] + 2.5 * box["height"] / gh)
    page.wait_for_function("() => window.__vitvizExplorer.committed.head === 'max'", timeout=TIMEOUT_MS)
    idle(page)
    assert "Max over heads" in _query_heading(page)

    page, _frames = _open(window, f"{server}/attention?attn_figures=true")
    _commit_click(page, 2, 3)
    title = page.evaluate("() => document.querySelector('.st-key-fig-attn-map .js-plotly-plot').layout.title.text")
    assert "(row 2, col 3)" in title
    widened = page.evaluate(_WIDENED)
    assert len(widened) == 2 and all(not sides for _key, sides in widened), widened
    # the fragment's rerun skips app.py, which sets the language: a click on a Chinese page stays Chinese
    page, _frames = _open(window, f"{server}/attention?lang=zh")
    _commit_click(page, 4, 1)
    heading = _query_heading(page)
    assert "view" not in heading and "本页固定的视图：图像块（4, 1）" in heading, heading
    assert "注意力" in page.locator("[data-testid=stTable]").inner_text()  # the table's header, translated


def _text(page, selector: str) -> str:
    return page.locator(selector).first.text_content() or ""


def test_the_attention_explorer_speaks_chinese(window, server):
    """Its labels, titles, status line and the tooltips a pointer raises are the catalogue's (``?lang=zh``),
    with the numbers filled in by the component's script."""
    page, _ = _open(window, f"{server}/attention?lang=zh")
    state = _hover(page, 1, 2)
    tip = _text(page, ".vv-tip")
    assert tip.startswith("第 1 行，第 2 列 · 对自身："), tip
    value = float(re.search(r"对自身：([-0-9.e]+)", tip).group(1))
    assert value == pytest.approx(state["values"][state["query"]], rel=5e-3)  # the drawn value, to 3 significant digits
    assert _text(page, ".vv-map-title").startswith("图像块（1, 2）的注意力 · 第 ")
    assert _text(page, ".vv-layer-label") == "层" and _text(page, ".vv-head-label") == "注意力头"
    assert "各注意力头的平均" in [o.strip() for o in page.locator(".vv-head option").all_text_contents()]
    assert _text(page, ".vv-shares").startswith("该查询的注意力分配：")
    grid = page.locator(".vv-grid").bounding_box()
    page.mouse.move(grid["x"] + 30, grid["y"] + 20)  # over the first tile of the layers × heads grid
    grid_tip = page.locator(".vv-tip").nth(1).text_content() or ""
    assert grid_tip.startswith("第 0 层，") and grid_tip.endswith("点击固定为本页查询"), grid_tip
    shown = page.locator(".vv-explorer").first.inner_text()
    assert not _ENGLISH.search(shown), shown


def test_the_tile_explorer_speaks_chinese(window, server):
    page = window(1500, 1400)
    page.goto(f"{server}/position_embeddings?lang=zh")
    page.locator(".vt-big").wait_for(state="attached")
    page.locator(".vt-big").scroll_into_view_if_needed()
    page.wait_for_function("() => window.__vitvizTiles && window.__vitvizTiles.draw_count > 0")
    idle(page)
    gh, gw = page.evaluate("() => window.__vitvizTiles.grid")
    box = page.locator(".vt-big").bounding_box()
    page.mouse.move(box["x"] + 2.5 * box["width"] / gw, box["y"] + 1.5 * box["height"] / gh)  # cell (1, 2)
    tip = _text(page, ".vt-tip")
    assert tip.startswith("第 1 行，第 2 列："), tip
    assert re.fullmatch(r"位置（\d+, \d+）：与每个位置的相似度", _text(page, ".vt-title"))
    assert _text(page, ".vt-note").startswith("颜色：")
    assert _text(page, ".vt-caption").startswith("悬停在小图上")
    assert not _ENGLISH.search(page.locator(".vt-explorer").first.inner_text())


def test_a_huge_grid_falls_back_to_clicks_and_the_page_says_so(window, tmp_path):
    # the size budget is read from the server's environment, one for every session: this test needs a server
    # of its own (the page's caption for each budget is checked in AppTest, tests/app/test_explorer_app.py)
    with streamlit_server(tmp_path, VITVIZ_BROWSER_BUDGET="12000") as url:
        page, frames = _open(window, f"{url}/attention")
        state = page.evaluate(EXPLORER)
        assert state["tier"] == "prefix"
        assert page.get_by_text("too many to send every query").count() >= 1  # the page's caption
        assert state["query"] == 0 and state["values"] is not None  # the class token's rows are in the browser

        sent = frames.sent
        hovered = _hover(page, 4, 1)
        assert hovered["values"] is None  # not in the browser: the canvas says to click
        assert frames.sent == sent

        _commit_click(page, 4, 1)  # the patch's rows come with the rerun
        drawn = page.evaluate(EXPLORER)
        assert drawn["values"] is not None and drawn["query"] == hovered["query"]
        arrays, settings = _download(page)
        assert settings["query"] == [4, 1]
        heads = arrays["attention_heads"].astype(np.float64)
        head = drawn["head"]
        ref = getattr(heads, head)(0) if head in ("mean", "max", "min") else heads[int(head)]
        assert np.all(np.abs(np.asarray(drawn["values"]) - ref) <= _half_steps(heads).max() + 1e-6)
