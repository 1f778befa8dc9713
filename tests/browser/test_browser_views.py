"""What the browser really draws and links to: heat-map colours, shared links after a click, click areas.

Uses the server and Chromium fixtures of ``test_browser.py`` (one ``streamlit run app.py`` per module).
"""
from __future__ import annotations

import json

import pytest
from test_browser import (  # noqa: F401  (fixtures)
    _plot,
    browser,
    click_cell,
    figure_state,
    open_page,
    page,
    server,
    wait_for_change,
    wait_for_figure,
    wait_until_idle,
)

pytestmark = pytest.mark.browser


def _rgb(colour: str) -> tuple[float, ...]:
    if colour.startswith("#"):
        return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(float(v) for v in colour[colour.index("(") + 1:colour.index(")")].split(",")[:3])


def test_zero_is_drawn_near_black_in_the_browser(page, server):
    open_page(page, server, "attention?attn_figures=true", ("attn.map", "attn.grid"))
    for key in ("attn.map", "attn.grid"):
        scale = page.evaluate(
            "(sel) => document.querySelector(sel)._fullData.find(t => t.type === 'heatmap').colorscale",
            _plot(key))
        assert max(_rgb(scale[0][1])) < 16, f"{key}: zero is drawn as {scale[0][1]}"
        assert _rgb(scale[-1][1]) == _rgb("#fcffa4"), "inferno's top colour"


def _click_at(page, key: str, x: float, y: float) -> None:
    """Click at data coordinates (x, y) of the figure's first axes."""
    point = page.evaluate(
        """([sel, x, y]) => {
            const gd = document.querySelector(sel), L = gd._fullLayout, box = gd.getBoundingClientRect();
            const px = L.xaxis.d2p ? L.xaxis.d2p(x) : L.xaxis.l2p(x);
            return [box.left + L.xaxis._offset + px, box.top + L.yaxis._offset + L.yaxis.d2p(y)];
        }""",
        [_plot(key), x, y],
    )
    page.mouse.move(point[0], point[1])
    page.wait_for_timeout(300)
    page.mouse.click(point[0], point[1])


def test_first_click_with_the_class_token_query_is_shared_by_the_url(page, server, browser):
    open_page(page, server, "attention?attn_figures=true", ("attn.map",))
    before = figure_state(page, "attn.map")
    assert "attention of cls" in json.loads(before)[0]
    click_cell(page, "attn.map", 1, 2)
    after = wait_for_change(page, "attn.map", before)
    assert "patch (row 1, col 2)" in json.loads(after)[0].replace("<br>", " ")
    page.wait_for_function("() => location.search.includes('attn_row=1')", timeout=30_000)
    url = page.url
    assert "attn_row=1" in url and "attn_col=2" in url and "attn_query=A+patch" in url, url

    other = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
    try:
        other.goto(url)
        wait_until_idle(other)
        wait_for_figure(other, "attn.map")
        assert figure_state(other, "attn.map") == after, "the link opens the same map"
    finally:
        other.context.close()


def test_a_click_near_a_tiles_corner_selects_that_tile(page, server):
    open_page(page, server, "position_embeddings")
    before = figure_state(page, "pos.tile")
    # the top-left cell of tile (row 1, col 2): far from the tile's centre, where its marker sits
    point = page.evaluate(
        """(sel) => {
            const gd = document.querySelector(sel), L = gd._fullLayout, box = gd.getBoundingClientRect();
            const heat = gd._fullData.find(t => t.type === 'heatmap');
            const gw = heat.x.filter(v => v.startsWith('col 0 ')).length;
            const gh = heat.y.filter(v => v.startsWith('row 0 ')).length;
            const x = heat.x[2 * (gw + 1)], y = heat.y[1 * (gh + 1)];
            const targets = gd._fullData.find(t => t.name === 'click targets');
            const i = Array.from(targets.customdata).findIndex(c => c[0] === 1 && c[1] === 2);
            const px = (v, ax) => ax._offset + ax.d2p(v);
            return {x: box.left + px(x, L.xaxis), y: box.top + px(y, L.yaxis),
                    cx: box.left + px(targets.x[i], L.xaxis), cy: box.top + px(targets.y[i], L.yaxis)};
        }""",
        _plot("pos.tiles"))
    assert abs(point["x"] - point["cx"]) + abs(point["y"] - point["cy"]) > 20, point
    page.mouse.move(point["x"], point["y"])
    page.wait_for_timeout(300)
    page.mouse.click(point["x"], point["y"])
    after = wait_for_change(page, "pos.tile", before)
    assert "(row 1, col 2)" in json.loads(after)[0].replace("<br>", " ")
