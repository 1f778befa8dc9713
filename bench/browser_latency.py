"""In the browser: from moving the layer slider, or clicking a patch, to the new attention map being drawn.

Starts ``streamlit run app.py`` on a free port (offline, random-weight ViT-B/16 through the app's own
loading path, see ``bench/_app.py``), opens the Attention page in headless Chromium (Debian's
``/usr/bin/chromium`` through Playwright; nothing is downloaded) with its Plotly figures on (``attn_figures``:
the page's own map is its browser-side explorer, ``explorer_latency.py``) and repeats, alternately:

* **layer slider**: focus the Layer slider and press an arrow key (the slider moves one layer);
* **patch click**: click the centre of another patch on the attention map (its click-target markers).

Latency is measured inside the page: from the ``keydown`` / ``mousedown`` event (``performance.now()`` in a
capture-phase listener) to the first animation frame whose attention-map figure differs (title, heatmap
values) from before the interaction, polled every frame. It covers the widget's own event handling, the
websocket round trip, the server's rerun, the delta transfer and Plotly's redraw. Bytes are the payloads of
the websocket frames the browser received (and sent) from the interaction until the app was idle again.

Target: ≤ 300 ms. Run: ``python bench/browser_latency.py [--quick] [--out bench/results/browser_latency.md]``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._app import app_env, free_port, random_hub_weights, start_server  # noqa: E402
from bench._timing import Table, add_common_args, machine, quantiles, report  # noqa: E402

__all__ = ["main"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
MODEL = ("ViT-B/16 (AugReg)", "vit_base_patch16_224.augreg_in21k_ft_in1k")
TARGET_MS = 300.0
MAP = ".st-key-fig-attn-map .js-plotly-plot"
TIMEOUT_MS = 240_000

# What the attention map shows: its title and its heatmap's values.
_FINGERPRINT = """(sel) => {
    const gd = document.querySelector(sel);
    if (!gd || !gd.data) return null;
    const heat = gd.data.find(t => t.type === 'heatmap');
    const z = heat && heat.z ? JSON.stringify(Array.from(heat.z, r => Array.from(r))) : '';
    return JSON.stringify([gd.layout.title && gd.layout.title.text, z]);
}"""

# Arms a one-shot probe: remembers the time of the next keydown/mousedown, then polls every animation
# frame until the map differs from `before`, and stores the elapsed time in window.__vitvizLatency.
_ARM = """([sel, before]) => {
    const fingerprint = %s;
    window.__vitvizLatency = null;
    let start = null;
    const mark = (e) => { if (start === null) start = performance.now(); };
    window.addEventListener('keydown', mark, {capture: true, once: true});
    window.addEventListener('mousedown', mark, {capture: true, once: true});
    const poll = () => {
        const now = fingerprint(sel);
        if (start !== null && now !== null && now !== before) {
            window.__vitvizLatency = {ms: performance.now() - start, start: start, end: performance.now(),
                                      title: JSON.parse(now)[0]};
            window.removeEventListener('keydown', mark, {capture: true});
            window.removeEventListener('mousedown', mark, {capture: true});
            return;
        }
        requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
}""" % _FINGERPRINT  # noqa: UP031 (a JS template: its braces stay literal)


# Loaded before the app: timestamps (page clock) of every websocket message sent and received.
_WS_TIMES = """(() => {
    window.__vitvizWs = [];
    const size = (d) => d && (d.byteLength !== undefined ? d.byteLength : (d.size !== undefined ? d.size : d.length));
    const log = (kind, data) => window.__vitvizWs.push([kind, performance.now(), size(data)]);
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) { log('sent', data); return send.call(this, data); };
    const Original = window.WebSocket;
    function Logged(...args) {
        const ws = new Original(...args);
        ws.addEventListener('message', (e) => log('received', e.data));
        return ws;
    }
    Logged.prototype = Original.prototype;
    Object.assign(Logged, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
    window.WebSocket = Logged;
})();"""


def _phases(page, probe: dict) -> dict:
    """Split one interaction's latency with the websocket timestamps between its start and the new map."""
    log = page.evaluate("() => window.__vitvizWs.splice(0)")
    start, end = probe["start"], probe["end"]
    sent = [t for kind, t, _ in log if kind == "sent" and start <= t <= end]
    received = [t for kind, t, _ in log if kind == "received" and start <= t <= end]
    if not sent or not received:
        return {}
    return {"to request": sent[0] - start, "request → first reply": received[0] - sent[0],
            "first reply → last frame": received[-1] - received[0], "last frame → drawn": end - received[-1]}


class FrameCounter:
    """Sums websocket payload sizes, in bytes, received and sent by the page."""

    def __init__(self, page) -> None:
        self.received = 0
        self.sent = 0
        self.frames = 0
        self.last = time.monotonic()
        page.on("websocket", self._attach)

    def _attach(self, ws) -> None:
        ws.on("framereceived", lambda payload: self._count(payload, incoming=True))
        ws.on("framesent", lambda payload: self._count(payload, incoming=False))

    def _count(self, payload, incoming: bool) -> None:
        size = len(payload.encode() if isinstance(payload, str) else payload)
        if incoming:
            self.received += size
            self.frames += 1
        else:
            self.sent += size
        self.last = time.monotonic()

    def snapshot(self) -> tuple[int, int, int]:
        return self.received, self.sent, self.frames


def wait_idle(page, counter: FrameCounter, quiet_s: float = 0.4) -> None:
    """Until no script run is shown as running and the websocket has been quiet for ``quiet_s``."""
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=TIMEOUT_MS)
    page.wait_for_selector(MAP, timeout=TIMEOUT_MS)
    while time.monotonic() - counter.last < quiet_s:
        page.wait_for_timeout(50)


def fingerprint(page) -> str:
    return page.evaluate(f"(sel) => ({_FINGERPRINT})(sel)", MAP)


def _cell_point(page, row: int, col: int) -> tuple[float, float]:
    """Screen position of the centre of patch (row, col) on the attention map (its click-target marker)."""
    return tuple(page.evaluate(
        """([sel, row, col]) => {
            const gd = document.querySelector(sel);
            const t = gd._fullData.find(t => t.name === 'click targets');
            const i = Array.from(t.customdata).findIndex(c => c[0] === row && c[1] === col);
            const L = gd._fullLayout, box = gd.getBoundingClientRect();
            return [box.left + L.xaxis._offset + L.xaxis.l2p(t.x[i]), box.top + L.yaxis._offset + L.yaxis.l2p(t.y[i])];
        }""", [MAP, row, col]))


def measure(page, counter: FrameCounter, action) -> dict:
    """Arm the in-page probe, do ``action``, wait for the new map and for the app to be idle."""
    before = fingerprint(page)
    page.evaluate("() => window.__vitvizWs.splice(0)")
    page.evaluate(_ARM, [MAP, before])
    received, sent, frames = counter.snapshot()
    action()
    page.wait_for_function("() => window.__vitvizLatency !== null", timeout=TIMEOUT_MS, polling=20)
    result = page.evaluate("() => window.__vitvizLatency")
    wait_idle(page, counter)
    r2, s2, f2 = counter.snapshot()
    return {"ms": result["ms"], "title": result["title"], "received": r2 - received, "sent": s2 - sent,
            "frames": f2 - frames, "phases": _phases(page, result)}


def run(url: str, rounds: int) -> dict[str, list[dict]]:
    from playwright.sync_api import sync_playwright

    results: dict[str, list[dict]] = {"layer slider": [], "patch click": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
        page.add_init_script(_WS_TIMES)
        counter = FrameCounter(page)
        page.goto(url, timeout=TIMEOUT_MS)
        page.wait_for_selector("[data-testid=stMain] h1", timeout=TIMEOUT_MS)
        wait_idle(page, counter, quiet_s=1.0)
        slider = page.locator(".st-key-attn_layer input[type=range]")
        cells = [(r, c) for r in range(1, 14, 3) for c in range(2, 14, 4)]
        for k in range(rounds):
            key = "ArrowLeft" if (k // 6) % 2 == 0 else "ArrowRight"  # sweep down and up through the layers

            def move_slider(key=key):
                slider.focus()
                page.keyboard.press(key)

            row, col = cells[k % len(cells)]
            point = _cell_point(page, row, col)

            def click_patch(point=point):
                page.mouse.move(*point)
                page.mouse.click(*point)

            order = [("layer slider", move_slider), ("patch click", click_patch)]
            for name, action in order if k % 2 == 0 else order[::-1]:
                if name == "patch click":
                    point = _cell_point(page, row, col)
                results[name].append(measure(page, counter, action))
        browser.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--keep-log", action="store_true", help="print the server log path")
    args = parser.parse_args(argv)
    rounds = args.repeats or (3 if args.quick else 20)
    random_hub_weights(MODEL[1])
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="vitviz-bench-")) / "streamlit.log"
    server = start_server(port, app_env(threads=args.threads), log)
    try:
        url = f"http://127.0.0.1:{port}/attention?model={quote(MODEL[0])}&attn_query=patch&attn_figures=true"
        t0 = time.perf_counter()
        results = run(url, rounds)
        total_s = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    table = Table(
        f"Browser latency on the Attention page, {MODEL[0]} with random weights "
        f"(server: {args.threads or 'default'} thread(s); headless Chromium)",
        ["interaction", "median ms", "p25–p75 ms", "min ms", "max ms", f"≤ {TARGET_MS:.0f} ms?",
         "KiB received (median)", "KiB sent (median)", "ws frames received"],
    )
    for name, rows in results.items():
        ms = [r["ms"] for r in rows]
        q1, q2, q3 = quantiles(ms)
        table.add(name, q2, f"{q1:.0f}–{q3:.0f}", min(ms), max(ms), "yes" if q2 <= TARGET_MS else "no",
                  statistics.median(r["received"] for r in rows) / 1024,
                  statistics.median(r["sent"] for r in rows) / 1024,
                  statistics.median(r["frames"] for r in rows))
    phases = Table("Where the time goes (medians, ms, page clock)",
                   ["interaction", "to request", "request → first reply", "first reply → last frame",
                    "last frame → drawn"])
    for name, rows in results.items():
        parts = [r["phases"] for r in rows if r["phases"]]
        phases.add(name, *[statistics.median(p[k] for p in parts) if parts else float("nan")
                           for k in phases.columns[1:]])
    phases.notes += [
        "to request: from the key/mouse event to the widget's rerun request leaving the browser (the widget's "
        "own handling); request → first reply: until the server's first message (the rerun has started); first "
        "reply → last frame: the server running the page and streaming its elements, up to the last message "
        "before the new map was drawn; last frame → drawn: the browser applying the deltas and Plotly drawing.",
    ]
    table.notes += [
        f"{rounds} rounds, the two interactions alternating; {total_s:.0f} s including the first page load "
        "(model build + capture).",
        "Latency: keydown/mousedown → first animation frame showing a different map (in-page clock). "
        "Server, browser and the benchmark share the machine's CPUs.",
        f"Example titles: {results['layer slider'][-1]['title']!r}; {results['patch click'][-1]['title']!r}.",
    ]
    if args.keep_log:
        table.notes.append(f"server log: {log}")
    report([table, phases], machine(), args.out)
    if args.out:
        raw = Path(args.out).with_suffix(".raw.json")
        raw.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
