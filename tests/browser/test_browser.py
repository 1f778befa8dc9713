"""The real app in a real browser: `streamlit run app.py` driven by headless Chromium through Playwright.

Uploads an image, moves the layer slider, clicks a patch, changes the patch size and downloads arrays,
checking each time that the figure really changed; saves a screenshot of every page to
``artifacts/screenshots/`` (git-ignored) for a person to look at.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, bundled_model_shipped

from vitviz_app.components import TEST_HOOKS_ENV

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("VITVIZ_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
PAGES = ["overview", "patches", "position_embeddings", "attention", "rollout", "heads_depth", "how_vit_works"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
START_TIMEOUT_S = 120
RERUN_TIMEOUT_MS = 120_000

if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (set VITVIZ_CHROMIUM to a chromium binary)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")

# Until vitviz-shapes is shipped, the server process gets the same stand-in as the AppTest suite.
STAND_IN = textwrap.dedent('''
    import vitviz.shapes, sys
    sys.path.insert(0, {tests!r})
    from conftest import stand_in_shapes_model
    vitviz.shapes.load_shapes_model = stand_in_shapes_model
''')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``streamlit run app.py`` on a free loopback port; yields its base URL."""
    port = _free_port()
    env = dict(os.environ, VITVIZ_OFFLINE="1", PYTHONUNBUFFERED="1", **{TEST_HOOKS_ENV: "1"})  # probes on
    if not bundled_model_shipped():
        site = tmp_path_factory.mktemp("site")
        (site / "sitecustomize.py").write_text(STAND_IN.format(tests=str(ROOT / "tests")))
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
    tab = context.new_page()
    yield tab
    context.close()


def open_page(page, server: str, path: str = "", figures: tuple[str, ...] = ()) -> None:
    """Open ``path`` and wait for its run, and until each Plotly figure of ``figures`` (keys) is drawn."""
    page.goto(f"{server}/{path}")
    wait_until_idle(page)
    for key in figures:
        wait_for_figure(page, key)


def wait_for_figure(page, key: str) -> None:
    """Until the Plotly figure of ``show_figure(..., key=key)`` is drawn (a page may draw it after others)."""
    page.wait_for_function("(sel) => { const gd = document.querySelector(sel); return gd && gd._fullData; }",
                           arg=_plot(key), timeout=RERUN_TIMEOUT_MS)


def wait_until_idle(page) -> None:
    """Wait for the script run to finish and every figure to be drawn."""
    page.wait_for_selector("[data-testid=stMain] h1", timeout=RERUN_TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')",
                           timeout=RERUN_TIMEOUT_MS)
    page.wait_for_selector(".js-plotly-plot, .vv-map", timeout=RERUN_TIMEOUT_MS)  # the Attention page: the explorer
    page.wait_for_timeout(600)


def _plot(key: str) -> str:
    """CSS selector of the Plotly div of ``vitviz_app.show_figure(..., key=key)``."""
    from vitviz_app.downloads import slug

    return f".st-key-fig-{slug(key)} .js-plotly-plot"


# A fingerprint of what a figure shows: its title, its heatmap's values and the size of its photo.
_FINGERPRINT_JS = """(sel) => {
    const gd = document.querySelector(sel);
    if (!gd || !gd.data) return null;
    const traces = gd._fullData || gd.data;  // _fullData holds typed arrays decoded
    const heat = traces.find(t => t.type === 'heatmap');
    const photo = traces.find(t => t.type === 'image');
    const z = heat ? JSON.stringify(Array.from(heat.z, r => Array.from(r))) : '';
    return JSON.stringify([gd.layout.title && gd.layout.title.text, z, photo ? photo.source.length : 0]);
}"""


def figure_state(page, key: str) -> str:
    return page.evaluate(f"(sel) => ({_FINGERPRINT_JS})(sel)", _plot(key))


def wait_for_change(page, key: str, before: str) -> str:
    """Wait until the figure shows something else than ``before``; return its new fingerprint."""
    page.wait_for_function(
        f"([sel, before]) => {{ const now = ({_FINGERPRINT_JS})(sel); return now !== null && now !== before; }}",
        arg=[_plot(key), before], timeout=RERUN_TIMEOUT_MS,
    )
    wait_until_idle(page)
    return figure_state(page, key)


def screenshot(page, name: str) -> Path:
    """A screenshot of the whole page (the viewport grows to the page's height first)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain] *')].map(e => e.scrollHeight))")
    page.set_viewport_size({"width": 1500, "height": min(int(height) + 80, 12000)})
    page.wait_for_timeout(800)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1500, "height": 1100})
    return path


def click_cell(page, key: str, row: int, col: int) -> None:
    """Click the click target of cell (row, col) (a patch of an overlay, or a tile of a tiled heatmap)."""
    page.locator(_plot(key)).scroll_into_view_if_needed()  # a click outside the window reaches nothing
    point = page.evaluate(
        """([sel, row, col]) => {
            const gd = document.querySelector(sel);
            const t = gd._fullData.find(t => t.name === 'click targets');  // typed arrays decoded
            const i = Array.from(t.customdata).findIndex(c => c[0] === row && c[1] === col);
            const L = gd._fullLayout, box = gd.getBoundingClientRect();
            return [box.left + L.xaxis._offset + L.xaxis.d2p(t.x[i]), box.top + L.yaxis._offset + L.yaxis.d2p(t.y[i])];
        }""",
        [_plot(key), row, col],
    )
    page.mouse.move(point[0], point[1])
    page.wait_for_timeout(300)
    page.mouse.click(point[0], point[1])


def test_every_page_renders_and_is_saved_as_a_screenshot(page, server):
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    for name in PAGES:
        open_page(page, server, "" if name == "overview" else name)
        assert page.locator("[data-testid=stException]").count() == 0, f"{name} shows an exception"
        assert page.locator("[data-testid=stMain] :is(.js-plotly-plot, .vv-map)").count() >= 1
        path = screenshot(page, name)
        assert path.stat().st_size > 20_000


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
    page.locator(".st-key-upload input[type=file]").wait_for(state="attached", timeout=RERUN_TIMEOUT_MS)
    page.locator(".st-key-upload input[type=file]").set_input_files(str(upload))
    after = wait_for_change(page, "overview.rollout", before)
    assert json.loads(after)[2] != json.loads(before)[2], "the photo in the rollout figure changed"
    assert page.get_by_text("upload: ramp.png · 360×240 px").count() == 1
    screenshot(page, "overview-upload")


def test_layer_slider_and_patch_click_change_the_attention_map(page, server):
    open_page(page, server, "attention?attn_figures=true", ("attn.map",))  # its Plotly map (explorer: test_explorer_*)
    first = figure_state(page, "attn.map")
    slider = page.locator(".st-key-attn_layer input[type=range]")
    slider.focus()
    page.keyboard.press("Home")  # layer 0
    after_layer = wait_for_change(page, "attn.map", first)
    assert "Layer 0" in json.loads(after_layer)[0]
    assert "attn_layer=0" in page.url, "the layer is in the URL, ready to share"

    click_cell(page, "attn.map", 1, 2)
    after_click = wait_for_change(page, "attn.map", after_layer)
    assert "patch (row 1, col 2)" in json.loads(after_click)[0].replace("<br>", " ")
    assert page.locator(".st-key-attn_row input").input_value() == "1"
    assert page.locator(".st-key-attn_col input").input_value() == "2"
    screenshot(page, "attention-clicked")

    with page.expect_download(timeout=RERUN_TIMEOUT_MS) as download:
        page.locator(".st-key-attn-download").get_by_role("button", name="Download arrays (.npz)").click()
    from vitviz_app.downloads import read_npz

    arrays, settings = read_npz(Path(download.value.path()).read_bytes())
    assert settings["layer"] == 0 and settings["query"] == [1, 2] and settings["view"] == "attention"
    assert arrays["attention_map"].shape == tuple(settings["grid_size"])
    z = np.asarray(json.loads(json.loads(after_click)[1]))
    np.testing.assert_allclose(arrays["attention_map"], z, rtol=1e-4, atol=1e-7)


def test_patch_size_changes_the_grid_and_predictions(page, server):
    open_page(page, server, "patches")
    grid = figure_state(page, "patches.grid")
    predictions_before = page.evaluate(
        "(s) => JSON.stringify(document.querySelector(s).data[0].x)", _plot("patches.predictions"))
    slider = page.locator(".st-key-patch input[type=range]")
    slider.focus()
    page.keyboard.press("ArrowRight")
    after = wait_for_change(page, "patches.grid", grid)
    assert json.loads(after)[0] != json.loads(grid)[0], "the grid's title names the new patch count"
    assert "patch=" in page.url
    predictions_after = page.evaluate(
        "(s) => JSON.stringify(document.querySelector(s).data[0].x)", _plot("patches.predictions"))
    assert predictions_after != predictions_before, "the model was re-run at the new patch size"
    screenshot(page, "patches-resized")


def test_clicking_a_position_tile_enlarges_it(page, server):
    open_page(page, server, "position_embeddings")
    tile = figure_state(page, "pos.tile")
    click_cell(page, "pos.tiles", 0, 1)
    after = wait_for_change(page, "pos.tile", tile)
    assert "(row 0, col 1)" in json.loads(after)[0]
    assert page.locator(".st-key-pos_row input").input_value() == "0"
    assert page.locator(".st-key-pos_col input").input_value() == "1"
