"""What the browser tests share: starting ``streamlit run app.py``, and reading what Chromium shows.

The session-wide server and the Chromium fixtures are in ``tests/conftest.py`` (``server``, ``chromium``,
``window``, ``page``); a test that needs a server with other settings starts its own with
:func:`streamlit_server` and says why.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests._apptest import ROOT, bundled_model_shipped

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "LAYOUT_PROBLEMS_JS", "MIN_CHART_PX", "SCREENSHOTS", "TIMEOUT_MS", "Frames",
           "click_cell", "download_from", "figure_state", "idle", "open_page", "plot", "screenshot", "settled",
           "streamlit_server", "wait_for_change", "wait_for_figure", "wait_until_idle"]

CHROMIUM = os.environ.get("VITVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
TIMEOUT_MS = 300_000
"""How long a page may take to run on the server: the first visit waits for the server's warm-up (imports,
the model and its first pass), and a loaded 2-core machine can take minutes. Redraws inside the browser get
seconds."""
START_TIMEOUT_S = 180

# Until vitviz-shapes is shipped, a server process gets the same stand-in as the AppTest suite.
_STAND_IN = textwrap.dedent('''
    import sys
    import vitviz.shapes
    sys.path.insert(0, {root!r})
    from tests._apptest import stand_in_shapes_model
    vitviz.shapes.load_shapes_model = stand_in_shapes_model
''')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(workdir: Path, offline: bool = True, **env_extra: str) -> Iterator[str]:
    """``streamlit run app.py`` on a free loopback port with the test hooks on; yields its base URL.

    Args:
        workdir: where the server's log (``streamlit.log``) goes.
        offline: run with ``VITVIZ_OFFLINE=1`` (the bundled model, no hub).
        env_extra: more environment variables for the server (``VITVIZ_BROWSER_BUDGET``, ``HF_ENDPOINT`` ...).
    """
    from vitviz_app.components import TEST_HOOKS_ENV  # the components' window.__vitviz* probes

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if offline or k not in ("VITVIZ_OFFLINE", "HF_HUB_OFFLINE")}
    env.update(PYTHONUNBUFFERED="1", **{TEST_HOOKS_ENV: "1"}, **env_extra)
    if offline:
        env["VITVIZ_OFFLINE"] = "1"
    if not bundled_model_shipped():
        (workdir / "sitecustomize.py").write_text(_STAND_IN.format(root=str(ROOT)))
        env["PYTHONPATH"] = os.pathsep.join([str(workdir), str(ROOT)])
    log = workdir / "streamlit.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a busy machine: stop it the hard way
            proc.kill()
            proc.wait(timeout=30)


# ------------------------------------------------------------------------------------------ reading a page


def plot(key: str) -> str:
    """CSS selector of the Plotly div of ``vitviz_app.show_figure(..., key=key)``."""
    from vitviz_app.downloads import slug

    return f".st-key-fig-{slug(key)} .js-plotly-plot"


def idle(page) -> None:
    """Wait until no script run is going on (the status widget is gone)."""
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)


# True once the page's elements and drawn Plotly figures have not changed for ``quiet`` ms and no run is shown.
_SETTLED_JS = """(quiet) => {
  const now = performance.now();
  const sig = [document.querySelectorAll('[data-testid=stElementContainer]').length,
               [...document.querySelectorAll('.js-plotly-plot')].filter((p) => p._fullData).length,
               !!document.querySelector('[data-testid=stStatusWidget]')].join();
  const last = window.__vvSettle;
  if (!last || last.sig !== sig) { window.__vvSettle = {sig, since: now}; return false; }
  return !sig.endsWith('true') && now - last.since >= quiet;
}"""


def settled(page, quiet_ms: int = 1500) -> None:
    """Wait until the page stops adding elements and figures for ``quiet_ms`` (a page that draws its results one
    by one, as Compare does, is not done when its first figure is there, and Streamlit's running indicator is not
    always shown while it works)."""
    page.evaluate("() => { window.__vvSettle = null; }")
    page.wait_for_function(_SETTLED_JS, arg=quiet_ms, polling=200, timeout=TIMEOUT_MS)


def wait_until_idle(page) -> None:
    """Wait for the page's run to finish and its first figure or browser-drawn map to be there."""
    page.wait_for_selector("[data-testid=stMain] h1", timeout=TIMEOUT_MS)
    idle(page)
    page.wait_for_selector(".js-plotly-plot, .vv-map", timeout=TIMEOUT_MS)  # the Attention page: the explorer
    page.wait_for_timeout(100)


def open_page(page, url: str, figures: tuple[str, ...] = ()) -> None:
    """Open ``url`` and wait for its run, and until each Plotly figure of ``figures`` (keys) is drawn."""
    page.goto(url, timeout=TIMEOUT_MS)
    wait_until_idle(page)
    for key in figures:
        wait_for_figure(page, key)


def wait_for_figure(page, key: str) -> None:
    """Until the Plotly figure of ``show_figure(..., key=key)`` is drawn (a page may draw it after others)."""
    page.wait_for_function("(sel) => { const gd = document.querySelector(sel); return gd && gd._fullData; }",
                           arg=plot(key), timeout=TIMEOUT_MS)


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
    """The figure's fingerprint: JSON of [title, heat-map values, photo size]."""
    return page.evaluate(f"(sel) => ({_FINGERPRINT_JS})(sel)", plot(key))


def wait_for_change(page, key: str, before: str) -> str:
    """Wait until the figure shows something else than ``before``; return its new fingerprint."""
    page.wait_for_function(
        f"([sel, before]) => {{ const now = ({_FINGERPRINT_JS})(sel); return now !== null && now !== before; }}",
        arg=[plot(key), before], timeout=TIMEOUT_MS,
    )
    wait_until_idle(page)
    return figure_state(page, key)


def figure_title(state: str) -> str:
    """The title in a fingerprint, on one line."""
    return json.loads(state)[0].replace("<br>", " ")


def click_cell(page, key: str, row: int, col: int) -> None:
    """Click the click target of cell (row, col) (a patch of an overlay, or a tile of a tiled heatmap)."""
    page.locator(plot(key)).scroll_into_view_if_needed()  # a click outside the window reaches nothing
    point = page.evaluate(
        """([sel, row, col]) => {
            const gd = document.querySelector(sel);
            const t = gd._fullData.find(t => t.name === 'click targets');  // typed arrays decoded
            const i = Array.from(t.customdata).findIndex(c => c[0] === row && c[1] === col);
            const L = gd._fullLayout, box = gd.getBoundingClientRect();
            return [box.left + L.xaxis._offset + L.xaxis.d2p(t.x[i]), box.top + L.yaxis._offset + L.yaxis.d2p(t.y[i])];
        }""",
        [plot(key), row, col],
    )
    page.mouse.move(point[0], point[1])
    page.wait_for_timeout(300)
    page.mouse.click(point[0], point[1])


def download_from(page, container: str) -> tuple[dict, dict]:
    """Click the "Download arrays (.npz)" button in ``container`` (a CSS selector); return (arrays, settings)."""
    from vitviz_app.downloads import read_npz

    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.locator(container).get_by_role("button", name="Download arrays (.npz)").click()
    return read_npz(Path(download.value.path()).read_bytes())


def screenshot(page, name: str) -> Path:
    """A screenshot of the whole page at the window's width (the window grows to the page's height first)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll('[data-testid=stMain] *, "
                           "[data-testid=stSidebarContent] *')].map(e => e.scrollHeight))")
    page.set_viewport_size({"width": viewport["width"], "height": min(int(height) + 80, 12000)})
    page.wait_for_timeout(600)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size(viewport)
    return path


class Frames:
    """Counts the websocket frames the page sends to the server (a rerun request is one)."""

    def __init__(self, page) -> None:
        self.sent = 0
        self.bytes_sent = 0
        page.on("websocket", lambda ws: ws.on("framesent", self._sent))

    def _sent(self, payload) -> None:
        self.sent += 1
        self.bytes_sent += len(payload.encode() if isinstance(payload, str) else payload)


MIN_CHART_PX = 280
"""No chart is narrower than this (or than the column, when that is narrower)."""

# What a page must satisfy at its width (``minChart``: MIN_CHART_PX); a list of problems, empty when it is right:
# no overlapping text, nothing sticking out of the column, no chart too narrow, no title or label cut.
LAYOUT_PROBLEMS_JS = """(minChart) => {
  const problems = [];
  const main = document.querySelector('[data-testid=stMainBlockContainer]');
  const style = getComputedStyle(main), box = main.getBoundingClientRect();
  const left = box.left + parseFloat(style.paddingLeft), right = box.right - parseFloat(style.paddingRight);
  const column = right - left;
  if (document.scrollingElement.scrollWidth > innerWidth + 1)
    problems.push(`the page scrolls sideways: ${document.scrollingElement.scrollWidth} > ${innerWidth}`);
  const shown = (el) => { const s = getComputedStyle(el);
    return s.display !== 'none' && s.visibility !== 'hidden' && parseFloat(s.opacity || '1') > 0.05; };
  const clipped = (el) => { // inside a box that scrolls or clips on its own (a table that scrolls, a code block)
    for (let e = el.parentElement; e && e !== main; e = e.parentElement) {
      const o = getComputedStyle(e).overflowX;
      if (o === 'auto' || o === 'scroll') return true;
    }
    return false;
  };
  // a line box that a clipping ancestor (overflow other than visible) hides entirely: e.g. a collapsing expander
  const clippedAway = (el, r) => {
    for (let e = el.parentElement; e && e !== main; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.overflowX === 'visible' && s.overflowY === 'visible') continue;
      const c = e.getBoundingClientRect();
      if (r.right <= c.left || r.left >= c.right || r.bottom <= c.top || r.top >= c.bottom) return true;
    }
    return false;
  };
  const name = (el) => (el.innerText || el.textContent || el.className || el.tagName).toString().trim().slice(0, 50);

  // nothing sticks out of the column
  for (const el of main.querySelectorAll('[data-testid=stElementContainer], .js-plotly-plot, canvas, img, table')) {
    const b = el.getBoundingClientRect();
    if (!b.width || !shown(el) || clipped(el)) continue;
    const out = Math.round(Math.max(b.right - right, left - b.left));
    if (out > 1) problems.push(`"${name(el)}" sticks out by ${out} px`);
  }
  // no chart narrower than 280 px (or than the column)
  const least = Math.min(minChart, column);
  for (const el of main.querySelectorAll('.js-plotly-plot, canvas.vz-map, canvas.vt-tiles')) {
    const b = el.getBoundingClientRect();
    if (b.width && shown(el) && b.width < least - 1)
      problems.push(`a chart (${el.className}) is ${Math.round(b.width)} px wide`);
  }
  // no truncated title: Plotly's titles inside their chart, no text cut with an ellipsis
  for (const chart of main.querySelectorAll('.js-plotly-plot')) {
    const b = chart.getBoundingClientRect();
    const titles = '.gtitle, .g-gtitle text, .xtitle, .ytitle, .cbtitle text, .legendtext, .annotation-text';
    for (const t of chart.querySelectorAll(titles)) {
      const r = t.getBoundingClientRect();
      if (r.width && (r.left < b.left - 1 || r.right > b.right + 1 || r.top < b.top - 1 || r.bottom > b.bottom + 1))
        problems.push(`"${t.textContent.slice(0, 50)}" is cut by its chart's edge`);
    }
  }
  // no axis title on a plot: a title inside any subplot's plotting area (another panel's, in a narrow chart)
  for (const chart of main.querySelectorAll('.js-plotly-plot')) {
    const areas = [...chart.querySelectorAll('.bglayer .bg, .imagelayer image')].map((a) => a.getBoundingClientRect());
    for (const t of chart.querySelectorAll('.xtitle, .ytitle')) {
      const r = t.getBoundingClientRect();
      for (const a of areas) {
        const w = Math.min(a.right, r.right) - Math.max(a.left, r.left);
        const h = Math.min(a.bottom, r.bottom) - Math.max(a.top, r.top);
        if (r.width && w > 2 && h > 2) { problems.push(`axis title "${t.textContent}" lies on a plot`); break; }
      }
    }
  }
  for (const el of main.querySelectorAll('*')) {
    if (el.textContent.trim() && shown(el) && getComputedStyle(el).textOverflow === 'ellipsis'
        && el.scrollWidth > el.clientWidth + 1) problems.push(`"${name(el)}" is truncated`);
  }
  // no text on top of other text
  const lines = [];
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || !shown(el)) continue;
    if (el.closest('.vz-tip, [role=tooltip], .hoverlayer, .modebar, .katex')) continue;  // KaTeX sets its own math
    if (el.closest('details:not([open])')) continue;  // a closed expander's body
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects())
      if (r.width > 2 && r.height > 2 && !clippedAway(el, r)) lines.push({ r, node, text: node.textContent.trim() });
  }
  for (let i = 0; i < lines.length; i++) {
    for (let j = i + 1; j < lines.length; j++) {
      const a = lines[i].r, b = lines[j].r;
      if (lines[i].node === lines[j].node) continue;
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 2 && h > 0.4 * Math.min(a.height, b.height))
        problems.push(`"${lines[i].text.slice(0, 40)}" overlaps "${lines[j].text.slice(0, 40)}"`);
    }
  }
  // a metric's value and a select's chosen label are never cut (they clip without an ellipsis)
  for (const value of main.querySelectorAll('[data-testid=stMetricValue]'))
    for (const el of [value, ...value.querySelectorAll('*')])
      if (el.scrollWidth > el.clientWidth + 1) problems.push(`metric "${value.textContent}" is truncated`);
  for (const label of main.querySelectorAll('[data-baseweb=select] [value]'))
    if (label.scrollWidth > label.clientWidth + 1) problems.push(`select "${label.textContent}" is truncated`);
  return [...new Set(problems)];
}"""

