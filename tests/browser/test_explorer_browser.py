"""The attention explorer in a real browser: hovering redraws in the page with nothing sent to the server,
the drawn values equal the Capture's (the page's own download) to within the quantisation step, a click
commits the query to the page, and with a lowered size budget the page says so and falls back to clicks."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from vitviz_app.components import TEST_HOOKS_ENV

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("VITVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 240_000  # the first run imports torch and timm on a busy machine

if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")

EXPLORER = "() => window.__vitvizExplorer || null"


@contextlib.contextmanager
def _server(tmp_path: Path, **env_extra: str):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, VITVIZ_OFFLINE="1", PYTHONUNBUFFERED="1", **{TEST_HOOKS_ENV: "1"}, **env_extra)
    log = tmp_path / "streamlit.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
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
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a busy machine: stop it the hard way
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def chromium():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def browser(chromium):
    """A fresh browser context per test (closed after it)."""
    context = chromium.new_context(viewport={"width": 1500, "height": 1400}, accept_downloads=True)
    yield context
    context.close()


class Frames:
    """Counts the websocket frames the page sends to the server (a rerun request is one)."""

    def __init__(self, page) -> None:
        self.sent = 0
        self.bytes_sent = 0
        page.on("websocket", lambda ws: ws.on("framesent", self._sent))

    def _sent(self, payload) -> None:
        self.sent += 1
        self.bytes_sent += len(payload.encode() if isinstance(payload, str) else payload)


def _open(browser, url: str):
    page = browser.new_page()
    frames = Frames(page)
    page.goto(url, timeout=TIMEOUT_MS)
    page.locator(".vv-map").wait_for(state="attached", timeout=TIMEOUT_MS)
    page.locator(".vv-map").scroll_into_view_if_needed()
    page.wait_for_function("() => window.__vitvizExplorer && window.__vitvizExplorer.draw_count > 0",
                           timeout=TIMEOUT_MS)
    _idle(page)
    page.locator(".vv-map").scroll_into_view_if_needed()
    return page, frames


def _idle(page) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)


def _hover(page, row: int, col: int) -> dict:
    """Move the pointer over patch (row, col) of the explorer's map; return what it then drew."""
    state = page.evaluate(EXPLORER)
    gh, gw = state["grid"]
    box = page.locator(".vv-map").bounding_box()
    page.mouse.move(box["x"] + (col + 0.5) * box["width"] / gw, box["y"] + (row + 0.5) * box["height"] / gh)
    token = state["num_prefix"] + row * gw + col
    page.wait_for_function(f"() => window.__vitvizExplorer.query === {token}", timeout=10_000)
    return page.evaluate(EXPLORER)


def _download_from(page, container: str) -> tuple[dict, dict]:
    from vitviz_app.downloads import read_npz

    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.locator(container).get_by_role("button", name="Download arrays (.npz)").click()
    return read_npz(Path(download.value.path()).read_bytes())


def _download(page) -> tuple[dict, dict]:
    return _download_from(page, ".st-key-attn-download")


def _half_steps(rows: np.ndarray) -> np.ndarray:
    return (rows.max(-1) - rows.min(-1)) / 255 / 2  # the payload's per-row quantisation, half a step


def _commit_click(page, row: int, col: int) -> None:
    state = page.evaluate(EXPLORER)
    gh, gw = state["grid"]
    box = page.locator(".vv-map").bounding_box()
    page.mouse.click(box["x"] + (col + 0.5) * box["width"] / gw, box["y"] + (row + 0.5) * box["height"] / gh)
    token = state["num_prefix"] + row * gw + col
    page.wait_for_function(f"() => window.__vitvizExplorer.committed.token === {token}", timeout=TIMEOUT_MS)
    _idle(page)


@pytest.fixture(scope="module")
def default_server(tmp_path_factory):
    with _server(tmp_path_factory.mktemp("server")) as url:
        yield url


def test_hovering_a_position_tile_shows_it_large_without_a_rerun(browser, default_server):
    page = browser.new_page()
    frames = Frames(page)
    page.goto(f"{default_server}/position_embeddings", timeout=TIMEOUT_MS)
    page.locator(".vt-tiles").wait_for(state="attached", timeout=TIMEOUT_MS)
    page.locator(".vt-tiles").scroll_into_view_if_needed()
    page.wait_for_function("() => window.__vitvizTiles && window.__vitvizTiles.draw_count > 0", timeout=TIMEOUT_MS)
    _idle(page)
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
    arrays, _ = _download_from(page, ".st-key-pos-download")
    sim = arrays["position_similarity"].astype(np.float64)  # (gh, gw, gh, gw), the page's own values
    for (row, col), values in drawn.items():
        ref = sim[row, col]
        assert np.all(np.abs(values - ref) <= (ref.max() - ref.min()) / 255 / 2 + 1e-6)


def test_hovering_redraws_in_the_browser_and_matches_the_capture(browser, default_server):
    url = default_server
    page, frames = _open(browser, f"{url}/attention")
    first = page.evaluate(EXPLORER)
    assert first["tier"] == "heads"  # the bundled model is small: every head of every query is sent

    sent = frames.sent
    a = _hover(page, 1, 1)
    b = _hover(page, 5, 6)
    assert a["query"] != b["query"] and a["draw_count"] < b["draw_count"]
    assert not np.allclose(a["values"], b["values"])  # two different maps drawn
    layer_input = page.locator(".vv-layer")
    layer_input.focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => window.__vitvizExplorer.layer === {b['layer'] - 1}", timeout=10_000)
    page.locator(".vv-head").select_option("2")
    page.wait_for_function("() => window.__vitvizExplorer.head === '2'", timeout=10_000)
    c = page.evaluate(EXPLORER)
    assert c["query"] == b["query"] and not np.allclose(c["values"], b["values"])
    page.wait_for_timeout(300)
    assert frames.sent == sent, "hovering or changing layer/head in the explorer sent something to the server"

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
    _idle(page)
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


def _same_shares(page) -> None:
    """The explorer's shares of the committed query (quantised rows) round to the page's (the Capture's)."""
    import re

    line = page.locator("[data-testid=stMarkdownContainer]", has_text="Share of this query's attention:").inner_text()
    page_shares = [float(v) for v in re.findall(r"(-?[\d.]+)%", line)]
    drawn = [100 * v for v in page.evaluate(EXPLORER)["shares"]]
    assert len(page_shares) == len(drawn) and abs(sum(drawn) - 100) < 1e-3, (line, drawn)
    assert all(abs(a - b) <= 0.1 + 1e-9 for a, b in zip(page_shares, drawn)), (line, drawn)


def test_a_committed_click_updates_the_page_and_its_figures_are_drawn_once(browser, default_server):
    """After a click the explorer (the page's map) holds it and the URL, the heading and the table follow
    (one fragment rerun) with no Plotly figure to redraw. With the page's Plotly figures on, their map follows
    too, and Plotly did not have to widen any figure's margins (which draws a figure twice)."""
    page, _frames = _open(browser, f"{default_server}/attention")
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
    _same_shares(page)  # the explorer and the page say the same about the committed query
    page.locator(".vv-head").select_option("max")  # then commit the head-max view of the same patch
    state = page.evaluate(EXPLORER)
    box, (gh, gw) = page.locator(".vv-map").bounding_box(), state["grid"]
    page.mouse.click(box["x"] + 3.5 * box["width"] / gw, box["y"] + 2.5 * box["height"] / gh)
    page.wait_for_function("() => window.__vitvizExplorer.committed.head === 'max'", timeout=TIMEOUT_MS)
    _idle(page)
    assert "Max over heads" in _query_heading(page)
    _same_shares(page)  # normalised by the row's total, as the page does

    page, _frames = _open(browser, f"{default_server}/attention?attn_figures=true")
    _commit_click(page, 2, 3)
    title = page.evaluate("() => document.querySelector('.st-key-fig-attn-map .js-plotly-plot').layout.title.text")
    assert "(row 2, col 3)" in title
    widened = page.evaluate(_WIDENED)
    assert len(widened) == 2 and all(not sides for _key, sides in widened), widened
    # the fragment's rerun skips app.py, which sets the language: a click on a Chinese page stays Chinese
    page, _frames = _open(browser, f"{default_server}/attention?lang=zh")
    _commit_click(page, 4, 1)
    heading = _query_heading(page)
    assert "query" not in heading and "本页的查询：图像块（4, 1）" in heading, heading
    assert "注意力" in page.locator("[data-testid=stTable]").inner_text()  # the table's header, translated


def test_a_huge_grid_falls_back_to_clicks_and_the_page_says_so(browser, tmp_path):
    with _server(tmp_path, VITVIZ_BROWSER_BUDGET="12000") as url:
        page, frames = _open(browser, f"{url}/attention")
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
