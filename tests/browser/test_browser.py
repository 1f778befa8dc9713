"""The real app in a real browser: `streamlit run app.py` driven by headless Chromium through Playwright.

Uploads an image, moves the layer slider, clicks patches and tiles, changes the patch size, shares a link and
downloads arrays, checking each time that the figure really changed. Every page at every width is in
``test_browser_layout.py``; the browser-drawn views in ``test_explorer_browser.py`` and ``test_browser_scrub.py``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests._browser import (
    click_cell,
    download_from,
    figure_state,
    figure_title,
    open_page,
    plot,
    screenshot,
    streamlit_server,
    wait_for_change,
    wait_for_figure,
    wait_until_idle,
)

pytestmark = pytest.mark.browser


def test_uploading_an_image_changes_the_overview(page, server, tmp_path):
    from PIL import Image

    open_page(page, server)
    before = figure_state(page, "overview.rollout")
    pixels = np.zeros((240, 360, 3), dtype=np.uint8)
    pixels[:, :, 2] = np.linspace(0, 255, 360, dtype=np.uint8)  # a blue ramp with a white square
    pixels[60:120, 200:260] = 255
    upload = tmp_path / "ramp.png"
    Image.fromarray(pixels).save(upload)
    page.locator(".st-key-source button", has_text="Upload").click()
    page.locator(".st-key-upload input[type=file]").wait_for(state="attached")
    page.locator(".st-key-upload input[type=file]").set_input_files(str(upload))
    after = wait_for_change(page, "overview.rollout", before)
    assert json.loads(after)[2] != json.loads(before)[2], "the photo in the rollout figure changed"
    assert page.get_by_text("upload: ramp.png · 360×240 px").count() == 1
    screenshot(page, "overview-upload")


def test_a_link_and_a_click_on_the_plotly_map_set_the_attention_view(page, server):
    """The page's one set of controls is its explorer; a link seeds the view and a click on the Plotly map (drawn
    on demand) commits a patch: the map, its title and the downloads follow."""
    open_page(page, f"{server}/attention?attn_figures=true&attn_layer=0", ("attn.map",))  # its Plotly map
    first = figure_state(page, "attn.map")
    assert "Layer 0" in json.loads(first)[0], "the link's layer"

    click_cell(page, "attn.map", 1, 2)
    after_click = wait_for_change(page, "attn.map", first)
    assert "patch (row 1, col 2)" in figure_title(after_click)
    screenshot(page, "attention-clicked")

    arrays, settings = download_from(page, ".st-key-attn-download")
    assert settings["layer"] == 0 and settings["query"] == [1, 2] and settings["view"] == "attention"
    assert arrays["attention_map"].shape == tuple(settings["grid_size"])
    z = np.asarray(json.loads(json.loads(after_click)[1]))
    np.testing.assert_allclose(arrays["attention_map"], z, rtol=1e-4, atol=1e-7)


def test_patch_size_changes_the_grid_and_predictions(page, server):
    open_page(page, f"{server}/patches")
    grid = figure_state(page, "patches.grid")
    predictions_before = page.evaluate(
        "(s) => JSON.stringify(document.querySelector(s).data[0].x)", plot("patches.predictions"))
    slider = page.locator(".st-key-patch input[type=range]")
    slider.focus()
    page.keyboard.press("ArrowRight")
    after = wait_for_change(page, "patches.grid", grid)
    assert json.loads(after)[0] != json.loads(grid)[0], "the grid's title names the new patch count"
    assert "patch=" in page.url
    predictions_after = page.evaluate(
        "(s) => JSON.stringify(document.querySelector(s).data[0].x)", plot("patches.predictions"))
    assert predictions_after != predictions_before, "the model was re-run at the new patch size"
    screenshot(page, "patches-resized")


@pytest.mark.slow
def test_position_tiles_over_the_browser_budget_are_the_servers_grid_and_a_click_enlarges_one(page, tmp_path):
    """Within the budget the tiles are drawn in the browser (tests/browser/test_explorer_browser.py); over it, the
    server draws the grid and a click on a tile enlarges it. The budget is the server's: a server of its own."""
    with streamlit_server(tmp_path, VITVIZ_BROWSER_BUDGET="1000") as url:
        open_page(page, f"{url}/position_embeddings", ("pos.tiles",))
        tile = figure_state(page, "pos.tile")
        click_cell(page, "pos.tiles", 0, 1)
        after = wait_for_change(page, "pos.tile", tile)
        assert "(row 0, col 1)" in json.loads(after)[0]
        assert page.locator(".st-key-pos_row input").input_value() == "0"
        assert page.locator(".st-key-pos_col input").input_value() == "1"

        # a click near a tile's corner, far from its centre (where its click marker sits), selects that tile
        before = figure_state(page, "pos.tile")
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
            plot("pos.tiles"))
        assert abs(point["x"] - point["cx"]) + abs(point["y"] - point["cy"]) > 20, point
        page.mouse.move(point["x"], point["y"])
        page.wait_for_timeout(300)
        page.mouse.click(point["x"], point["y"])
        after = wait_for_change(page, "pos.tile", before)
        assert "(row 1, col 2)" in figure_title(after)


def test_first_click_with_the_class_token_query_is_shared_by_the_url(page, server, window):
    open_page(page, f"{server}/attention?attn_figures=true", ("attn.map",))
    before = figure_state(page, "attn.map")
    assert "attention of cls" in json.loads(before)[0]
    click_cell(page, "attn.map", 1, 2)
    after = wait_for_change(page, "attn.map", before)
    assert "patch (row 1, col 2)" in figure_title(after)
    page.wait_for_function("() => location.search.includes('attn_row=1')", timeout=30_000)
    url = page.url
    assert "attn_row=1" in url and "attn_col=2" in url and "attn_query=patch" in url, url

    other = window()
    other.goto(url)
    wait_until_idle(other)
    wait_for_figure(other, "attn.map")
    assert figure_state(other, "attn.map") == after, "the link opens the same map"
