"""The browser-side explorers in Chinese (``?lang=zh``), in a real browser: their labels, titles, status line
and the tooltips a pointer raises are the catalogue's, with the numbers filled in by the page's script."""
from __future__ import annotations

import re

import pytest
from test_explorer_browser import EXPLORER, _hover, _idle, _open, _server, browser, chromium  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

_ENGLISH = re.compile(r"\b(row|column|layer|head|patch|attention|click|loading|share)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with _server(tmp_path_factory.mktemp("server")) as url:
        yield url


def _text(page, selector: str) -> str:
    return page.locator(selector).first.text_content() or ""


def test_the_attention_explorer_speaks_chinese(browser, server):
    page, _ = _open(browser, f"{server}/attention?lang=zh")
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
    assert grid_tip.startswith("第 0 层，") and grid_tip.endswith("点击打开"), grid_tip
    shown = page.locator(".vv-explorer").first.inner_text()
    assert not _ENGLISH.search(shown), shown


def test_the_tile_explorer_speaks_chinese(browser, server):
    page = browser.new_page()
    page.goto(f"{server}/position_embeddings?lang=zh", timeout=240_000)
    page.locator(".vt-big").wait_for(state="attached", timeout=240_000)
    page.locator(".vt-big").scroll_into_view_if_needed()
    page.wait_for_function("() => window.__vitvizTiles && window.__vitvizTiles.draw_count > 0", timeout=240_000)
    _idle(page)
    gh, gw = page.evaluate("() => window.__vitvizTiles.grid")
    box = page.locator(".vt-big").bounding_box()
    page.mouse.move(box["x"] + 2.5 * box["width"] / gw, box["y"] + 1.5 * box["height"] / gh)  # cell (1, 2)
    tip = _text(page, ".vt-tip")
    assert tip.startswith("第 1 行，第 2 列："), tip
    assert re.fullmatch(r"位置（\d+, \d+）：与每个位置的相似度", _text(page, ".vt-title"))
    assert _text(page, ".vt-note").startswith("颜色：")
    assert _text(page, ".vt-caption").startswith("悬停在小图上")
    assert not _ENGLISH.search(page.locator(".vt-explorer").first.inner_text())
