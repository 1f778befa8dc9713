"""In the browser: the attention explorer's hover, layer and head changes, and a committed click; the rollout
explorer's layer scrubber and head fusion; following a patch on "How a ViT works".

One concept in one file (over 450 lines): the click-to-frame latency of the app's browser-drawn views, every mode
sharing one server start-up, one in-page frame probe and one report.

Starts ``streamlit run app.py`` (offline, random-weight ViT-B/16 through the app's own loading path, see
``bench/_app.py``), opens the Attention page in headless Chromium and measures, on the explorer:

* **hover**: the pointer moves onto another patch; that patch's map must be redrawn;
* **layer (explorer)**: arrow key on the explorer's own layer slider;
* **head (explorer)**: arrow key on the explorer's head menu;
* **patch click (commit)**: a click on the explorer's map (the page's map); the page must be consistent again:
  the explorer holds the clicked patch as the committed query, and every server-drawn part that depends on it
  has changed: the URL, the "committed view" heading, the top-5 table and, with ``--figures`` (the page's
  "Plotly figures" toggle on), the Plotly attention map.

The explorer is the page's one set of controls (issue 22): its layer and head changes commit too (the page
follows them in a fragment rerun); the page's own server slider is gone.

Then the Rollout page (``--pages rollout``): **rollout layer (browser)**, an arrow key on the explorer's layer
scrubber, and **rollout fusion (browser)**, a click on another head-fusion button; and "How a ViT works"
(``--pages how``): **follow a patch (hover)**, the pointer onto another patch in step 1, and **follow a patch
(commit)**, a click, until the page is consistent again (a server rerun): the follower holds the clicked patch,
every later step's picture shows it (a browser view drawn from the follower's payload, or, with ``--how-figures``
or on an older version, a Plotly figure whose title and traces changed), and step 1's patch caption and step 5's
table of keys have changed.

Latency is taken from the input event's own timestamp (``event.timeStamp``, page clock) to the **first
frame Chrome produced after the change** (CDP ``Page.startScreencast``: each frame's compositor timestamp;
Chrome emits a frame only when the screen changed). The explorer's draw count and the Plotly figure tell
which frame is the first changed one: the first screencast frame whose timestamp follows the moment the
change was made in the page. Also reported: the first animation frame after the change (``rAF``). Bytes are
the websocket payloads sent and received between the input and the page being idle again.

Targets: hover median ≤ 50 ms, p90 ≤ 100 ms and 0 bytes sent; layer/head ≤ 50 ms; click ≤ 300 ms.
``--commit-ab`` measures only committed clicks, alternated between two tabs: the page as shipped and with its
Plotly figures on (rAF latency; a side-by-side ratio on a noisy machine). ``--how-ab`` does the same for "How a
ViT works": its steps drawn in the browser (shipped) against its steps as Plotly figures (``?how_figures=true``,
the page before).
``--toggle [--app DIR ...]`` measures the Attention page's "Plotly figures" toggle: from the click on it to the
first animation frame after both figures (the map and the layers × heads grid) are drawn, in each checkout given
(e.g. the commit before a change, unpacked with ``git archive``), servers started in turn and rounds alternating.
``--app DIR ...`` without ``--toggle`` measures the ``--pages`` interactions in each checkout given, the same way
(e.g. ``--pages how --app /tmp/before .``: the walk-through's commit before and after a change); with ``--how-ab``,
the checkouts' servers run together and each round clicks the same patch in one tab of each.
Run: ``python bench/explorer_latency.py [--quick] [--pages attention,rollout,how] [--figures | --how-figures |
--commit-ab | --how-ab | --toggle] [--app DIR ...] [--out FILE.md]``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._app import app_env, free_port, random_hub_weights, start_server  # noqa: E402
from bench._timing import REPO, Table, add_common_args, machine, quantile, quantiles, report  # noqa: E402
from bench.browser_latency import _FINGERPRINT, CHROMIUM, CHROMIUM_ARGS, MAP, MODEL, FrameCounter  # noqa: E402
from vitviz_app.components._registry import TEST_HOOKS_ENV  # noqa: E402

__all__ = ["main"]

TIMEOUT_MS = 600_000
COMMIT_TIMEOUT_MS = 60_000
EXPLORER = "() => window.__vitvizExplorer || null"

# The parts of the Attention page a commit must change: the URL, the "page's query" heading, the top-5 table
# and, when the page draws them, the Plotly map. One string each.
_PAGE_PARTS = """(sel) => {
    const fingerprint = %s;
    const text = (el) => el ? el.innerText : null;
    return [location.search, text(document.querySelector('.st-key-attn-query')),
            text(document.querySelector('[data-testid=stTable]')),
            document.querySelector(sel) ? fingerprint(sel) : 'no figure'];
}""" % _FINGERPRINT  # noqa: UP031 (a JS template: its braces stay literal)

# One-shot probe: remembers the next input event's time, then watches every animation frame until `changed()`
# holds; stores the input time, the time the change was seen in the page, and the first rAF after it.
_PROBE = """    window.__vvProbe = null;
    let input = null;
    const mark = (e) => { if (input === null) input = e.timeStamp; };
    for (const type of %s) window.addEventListener(type, mark, {capture: true, once: true});
    const poll = () => {
        if (input !== null && changed()) {
            const seen = performance.now();
            requestAnimationFrame((next) => {
                window.__vvProbe = {input, seen, raf: next, origin: performance.timeOrigin};
            });
            return;
        }
        requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
}"""
"""What every probe shares, after its ``changed()``: from the first input event of ``%s`` (a JS array of event
types) to the first animation frame after ``changed()`` holds, in ``window.__vvProbe``."""


_ARM = """([kind, sel, before, target]) => {
    const parts = %s;
    const changed = () => {
        const e = window.__vitvizExplorer;
        if (kind === 'commit') {  // every part changed (a part that is the same for both queries is skipped)
            const now = parts(sel);
            return e && e.committed.token === target && now.every(
                (p, i) => p !== before[i] || before[i] === 'no figure');
        }
        return e && e.draw_count !== before;
    };
""" % _PAGE_PARTS + _PROBE % "['pointermove', 'keydown', 'mousedown']"  # noqa: UP031 (JS templates: their braces stay literal)


# The same probe for the other pages' components: `name` is the window global a component publishes
# (draw_count, committed); a commit is seen when `committed` matches `target` and the server figure `sel` changed.
_ARM_VIEW = """([name, kind, sel, before, target]) => {
    const fingerprint = %s;
    const changed = () => {
        const e = window[name];
        if (kind === 'commit') return e && JSON.stringify(e.committed) === target && fingerprint(sel) !== before;
        return e && e.draw_count !== before;
    };
""" % _FINGERPRINT + _PROBE % "['pointermove', 'keydown', 'mousedown']"  # noqa: UP031 (JS templates: their braces stay literal)


# The parts of "How a ViT works" a committed patch changes: each later step's picture (a browser view of the
# follower's payload, "view:" + its committed patch; or the step's Plotly figure: its title and trace names), and
# the server's texts (step 1's patch caption, step 5's table of keys). One string each.
_HOW_PARTS = """() => {
    const parts = {};
    for (const [step, fig] of [['pixels', 'flat'], ['embeddings', 'embed'], ['attention', 'attention'],
                               ['norms', 'blocks']]) {
        const view = window['__vitvizStep_' + step];
        const gd = document.querySelector('.st-key-fig-how-' + fig + ' .js-plotly-plot');
        const shown = document.querySelector('.st-key-how_step_' + step) && view;
        if (shown) parts[step] = 'view:' + JSON.stringify(view.committed);
        else parts[step] = gd && gd.layout ? JSON.stringify([gd.layout.title && gd.layout.title.text,
                                                             (gd.data || []).map((t) => t.name)]) : null;
    }
    const text = (sel) => { const e = document.querySelector(sel); return e ? e.innerText : null; };
    parts.table = text('[data-testid=stMain] [data-testid=stTable]');
    parts.caption = text('[data-testid=stMain] [data-testid=stImageCaption]');
    return parts;
}"""

# A commit on "How a ViT works" is seen when the follower holds the clicked patch, every browser view shows it
# and every server-drawn part has changed.
_ARM_HOW = """([target, before]) => {
    const parts = %s;
    const changed = () => {
        const e = window.__vitvizFollow;
        if (!e || JSON.stringify(e.committed) !== target) return false;
        const now = parts();
        return Object.keys(now).every((k) => now[k] !== null
            && (now[k].startsWith('view:') ? now[k] === 'view:' + target : now[k] !== before[k]));
    };
""" % _HOW_PARTS + _PROBE % "['mousedown']"  # noqa: UP031 (JS templates: their braces stay literal)


class Screencast:
    """Chrome's screencast through CDP: the compositor timestamp (epoch ms) of every frame produced."""

    def __init__(self, page) -> None:
        self.cdp = page.context.new_cdp_session(page)
        self.frames: list[float] = []
        self.cdp.on("Page.screencastFrame", self._frame)
        self.cdp.send("Page.startScreencast", {"format": "jpeg", "quality": 5, "maxWidth": 320, "maxHeight": 320,
                                               "everyNthFrame": 1})

    def _frame(self, params) -> None:
        self.frames.append(float(params["metadata"]["timestamp"]) * 1000.0)
        self.cdp.send("Page.screencastFrameAck", {"sessionId": params["sessionId"]})


def _cell(page, row: int, col: int) -> tuple[float, float]:
    state = page.evaluate(EXPLORER)
    gh, gw = state["grid"]
    box = page.locator(".vv-map").bounding_box()
    return box["x"] + (col + 0.5) * box["width"] / gw, box["y"] + (row + 0.5) * box["height"] / gh


def measure(page, counter: FrameCounter, cast: Screencast, kind: str, action, target: int = -1) -> dict:
    """Arm the probe, do ``action``, wait for the change and for the app to be idle; times in ms."""
    state = page.evaluate(EXPLORER)
    before = page.evaluate(f"(sel) => ({_PAGE_PARTS})(sel)", MAP) if kind == "commit" else state["draw_count"]
    page.evaluate(_ARM, [kind, MAP, before, target])
    received, sent, _ = counter.snapshot()
    action()
    try:
        page.wait_for_function("() => window.__vvProbe !== null", polling=10,
                               timeout=COMMIT_TIMEOUT_MS if kind == "commit" else 30_000)
    except Exception:  # the control did not change the view (e.g. a menu that ignores arrow keys)
        return {}
    probe = page.evaluate("() => window.__vvProbe")
    if kind == "commit":
        _idle_on(page, counter, ".vv-map")
    else:
        page.wait_for_timeout(250)  # late frames and any (unexpected) websocket traffic
    r2, s2, _ = counter.snapshot()
    seen_epoch = probe["origin"] + probe["seen"]
    # the change is made in an event handler before `seen`; the first frame at or after it shows it
    # no frame after the change: nothing visible changed then (e.g. the parts were below the window); the rAF
    # time stands in (an earlier frame, e.g. the explorer's own "committing" text, would understate it)
    later = [t for t in cast.frames if t >= seen_epoch - 1.0]
    frame_ms = min(later) - (probe["origin"] + probe["input"]) if later else None
    return {"screencast": frame_ms, "raf": probe["raf"] - probe["input"], "seen": probe["seen"] - probe["input"],
            "received": r2 - received, "sent": s2 - sent}


def run(url: str, rounds: int) -> dict[str, list[dict]]:
    from playwright.sync_api import sync_playwright

    names = ["hover", "layer (explorer)", "head (explorer)", "patch click (commit)"]
    results: dict[str, list[dict]] = {name: [] for name in names}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # tall enough that the explorer, the heading and the top-5 table are on screen together (the screencast
        # only produces a frame for a change that can be seen)
        page = browser.new_context(viewport={"width": 1500, "height": 1800}).new_page()
        counter = FrameCounter(page)
        page.goto(url, timeout=TIMEOUT_MS)
        page.locator(".vv-map").wait_for(state="attached", timeout=TIMEOUT_MS)
        page.wait_for_function("() => window.__vitvizExplorer && window.__vitvizExplorer.draw_count > 0",
                               timeout=TIMEOUT_MS)
        _idle_on(page, counter, ".vv-map", quiet_s=1.0)
        page.locator(".vv-map").scroll_into_view_if_needed()
        cast = Screencast(page)
        info = page.evaluate(EXPLORER)
        gh, gw = info["grid"]
        cells = [(r, c) for r in range(1, gh - 1, 2) for c in range(1, gw - 1, 3)]
        layer_input, head_input = page.locator(".vv-layer"), page.locator(".vv-head")
        for k in range(rounds):
            row, col = cells[k % len(cells)]
            point = _cell(page, row, col)
            for step in range(3):  # hovers, each onto a new patch
                r2, c2 = cells[(k * 3 + step + 5) % len(cells)]
                p2 = _cell(page, r2, c2)
                results["hover"].append(measure(page, counter, cast, "draw", lambda p2=p2: page.mouse.move(*p2)))
            key = "ArrowLeft" if (k // 5) % 2 == 0 else "ArrowRight"

            def explorer_key(locator, key=key):
                locator.focus()
                page.keyboard.press(key)

            results["layer (explorer)"].append(
                measure(page, counter, cast, "draw", lambda: explorer_key(layer_input)))
            results["head (explorer)"].append(measure(
                page, counter, cast, "draw",
                lambda k=k: explorer_key(head_input, "ArrowDown" if (k // 5) % 2 == 0 else "ArrowUp")))
            if k % 2 == 0:
                target = info["num_prefix"] + row * gw + col
                page.mouse.move(*point)
                page.wait_for_timeout(100)
                results["patch click (commit)"].append(measure(
                    page, counter, cast, "commit", lambda point=point: page.mouse.click(*point), target=target))
                _idle_on(page, counter, ".vv-map")
                page.locator(".vv-map").scroll_into_view_if_needed()
        browser.close()
    return results


def _idle_on(page, counter: FrameCounter, selector: str, quiet_s: float = 0.4) -> None:
    """Until no script run is shown, ``selector`` is there and the websocket has been quiet for ``quiet_s``."""
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=TIMEOUT_MS)
    page.wait_for_selector(selector, state="attached", timeout=TIMEOUT_MS)
    while time.monotonic() - counter.last < quiet_s:
        page.wait_for_timeout(50)


def measure_view(page, counter: FrameCounter, cast: Screencast, name: str, kind: str, action,
                 sel: str = "", target: str = "") -> dict:
    """:func:`measure` for a component publishing ``window[name]``; a commit waits for ``sel`` to change."""
    before = page.evaluate(f"(sel) => ({_FINGERPRINT})(sel)", sel) if kind == "commit" else \
        page.evaluate(f"() => window.{name}.draw_count")
    page.evaluate(_ARM_VIEW, [name, kind, sel, before, target])
    received, sent, _ = counter.snapshot()
    action()
    try:
        page.wait_for_function("() => window.__vvProbe !== null", polling=10,
                               timeout=TIMEOUT_MS if kind == "commit" else 30_000)
    except Exception:
        return {}
    probe = page.evaluate("() => window.__vvProbe")
    if kind == "commit":
        _idle_on(page, counter, sel)
    else:
        page.wait_for_timeout(250)
    r2, s2, _ = counter.snapshot()
    input_epoch, seen_epoch = probe["origin"] + probe["input"], probe["origin"] + probe["seen"]
    later = [t for t in cast.frames if t >= seen_epoch - 1.0]
    frame_ms = min(later) - input_epoch if later else None
    return {"screencast": frame_ms, "raf": probe["raf"] - probe["input"], "seen": probe["seen"] - probe["input"],
            "received": r2 - received, "sent": s2 - sent}


def measure_how_commit(page, counter: FrameCounter, cast: Screencast, action, target: str) -> dict:
    """A committed patch on "How a ViT works", until every part that depends on it shows it (``_ARM_HOW``)."""
    before = page.evaluate(f"({_HOW_PARTS})()")
    page.evaluate(_ARM_HOW, [target, before])
    received, sent, _ = counter.snapshot()
    action()
    try:
        page.wait_for_function("() => window.__vvProbe !== null", polling=10, timeout=COMMIT_TIMEOUT_MS)
    except Exception:
        return {}
    probe = page.evaluate("() => window.__vvProbe")
    _idle_on(page, counter, ".vf-image")
    r2, s2, _ = counter.snapshot()
    input_epoch, seen_epoch = probe["origin"] + probe["input"], probe["origin"] + probe["seen"]
    later = [t for t in cast.frames if t >= seen_epoch - 1.0]
    return {"screencast": min(later) - input_epoch if later else None, "raf": probe["raf"] - probe["input"],
            "seen": probe["seen"] - probe["input"], "received": r2 - received, "sent": s2 - sent}


def _open_view(page, url: str, selector: str, name: str):
    counter = FrameCounter(page)
    page.goto(url, timeout=TIMEOUT_MS)
    page.locator(selector).wait_for(state="attached", timeout=TIMEOUT_MS)
    page.wait_for_function(f"() => window.{name} && window.{name}.draw_count > 0", timeout=TIMEOUT_MS)
    _idle_on(page, counter, selector, quiet_s=1.0)
    page.locator(selector).scroll_into_view_if_needed()
    return counter, Screencast(page)


def run_commit_ab(url: str, rounds: int) -> dict[str, list[dict]]:
    """Side by side on one server: two tabs of the Attention page, as shipped and with its Plotly figures on;
    each round clicks the same patch in both (the order alternates). Latency is the rAF one: with two windows,
    Chrome's screencast does not produce a frame for every change in the tab that is not in front."""
    from playwright.sync_api import sync_playwright

    variants = {"commit, explorer as the map (shipped)": url, "commit, Plotly figures on": url + "&attn_figures=true"}
    results: dict[str, list[dict]] = {name: [] for name in variants}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tabs = {}
        for name, address in variants.items():
            page = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
            counter = FrameCounter(page)
            page.goto(address, timeout=TIMEOUT_MS)
            page.wait_for_function("() => window.__vitvizExplorer && window.__vitvizExplorer.draw_count > 0",
                                   timeout=TIMEOUT_MS)
            _idle_on(page, counter, ".vv-map", quiet_s=1.0)
            tabs[name] = (page, counter, Screencast(page))
        info = next(iter(tabs.values()))[0].evaluate(EXPLORER)
        gh, gw = info["grid"]
        cells = [(r, c) for r in range(1, gh - 1, 2) for c in range(1, gw - 1, 3)]
        for k in range(rounds):
            row, col = cells[(k * 7) % len(cells)]
            for name in (list(tabs) if k % 2 == 0 else list(tabs)[::-1]):
                page, counter, cast = tabs[name]
                page.bring_to_front()
                page.locator(".vv-map").scroll_into_view_if_needed()
                point = _cell(page, row, col)
                page.mouse.move(*point)
                page.wait_for_timeout(600)
                found = measure(page, counter, cast, "commit", lambda page=page, point=point: page.mouse.click(*point),
                                target=info["num_prefix"] + row * gw + col)
                results[name].append({**found, "screencast": None} if found else found)
        browser.close()
    return results


def run_how_ab(base: str, rounds: int, variants: dict[str, str] | None = None) -> dict[str, list[dict]]:
    """Side by side: tabs of "How a ViT works", by default on one server as shipped (the steps drawn in the browser)
    and with its steps as Plotly figures (``how_figures``, the page before), or the ``variants`` given (name → URL,
    e.g. one server per checkout); each round clicks the same patch in every tab (the order alternates). Latency is
    the rAF one, as in :func:`run_commit_ab`."""
    from playwright.sync_api import sync_playwright

    how = base.replace("/attention", "/how_vit_works")
    variants = variants or {"follow a patch (commit), steps drawn in the browser (shipped)": how,
                            "follow a patch (commit), steps as Plotly figures (before)": how + "&how_figures=true"}
    results: dict[str, list[dict]] = {name: [] for name in variants}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tabs = {}
        for name, address in variants.items():
            page = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
            counter, cast = _open_view(page, address, ".vf-image", "__vitvizFollow")
            tabs[name] = (page, counter, cast)
        gh, gw = next(iter(tabs.values()))[0].evaluate("() => window.__vitvizFollow.grid")
        cells = [(r, c) for r in range(1, gh - 1, 2) for c in range(1, gw - 1, 3)]
        for k in range(rounds):
            row, col = cells[(k * 7) % len(cells)]
            for name in (list(tabs) if k % 2 == 0 else list(tabs)[::-1]):
                page, counter, cast = tabs[name]
                page.bring_to_front()
                page.locator(".vf-image").scroll_into_view_if_needed()
                box = page.locator(".vf-image").bounding_box()
                point = box["x"] + (col + 0.5) * box["width"] / gw, box["y"] + (row + 0.5) * box["height"] / gh
                page.mouse.move(*point)
                page.wait_for_timeout(600)
                found = measure_how_commit(page, counter, cast, lambda page=page, point=point: page.mouse.click(*point),
                                           target=json.dumps({"row": row, "col": col}, separators=(",", ":")))
                results[name].append({**found, "screencast": None} if found else found)
        browser.close()
    return results


def run_views(base: str, rounds: int, pages: list[str], how_query: str = "") -> dict[str, list[dict]]:
    """The Rollout page's scrubber and fusion buttons, and the walk-through's patch follower."""
    from playwright.sync_api import sync_playwright

    results: dict[str, list[dict]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1100})
        if "rollout" in pages:
            page = context.new_page()
            counter, cast = _open_view(page, base.replace("/attention", "/rollout"), ".vr-map", "__vitvizRollout")
            layer, fusions = page.locator(".vr-layer"), ["max", "min", "mean"]
            for name in ("rollout layer (browser)", "rollout fusion (browser)"):
                results[name] = []
            for k in range(rounds * 3):
                key = "ArrowLeft" if (k // 5) % 2 == 0 else "ArrowRight"

                def scrub(key=key):
                    layer.focus()
                    page.keyboard.press(key)

                results["rollout layer (browser)"].append(
                    measure_view(page, counter, cast, "__vitvizRollout", "draw", scrub))
                button = page.locator(f".vr-fusion[data-fusion={fusions[k % 3]}]")
                results["rollout fusion (browser)"].append(
                    measure_view(page, counter, cast, "__vitvizRollout", "draw", button.click))
            page.close()
        if "how" in pages:
            page = context.new_page()
            counter, cast = _open_view(page, base.replace("/attention", "/how_vit_works") + how_query, ".vf-image",
                                       "__vitvizFollow")
            gh, gw = page.evaluate("() => window.__vitvizFollow.grid")
            cells = [(r, c) for r in range(1, gh - 1, 2) for c in range(1, gw - 1, 3)]
            results["follow a patch (hover)"], results["follow a patch (commit)"] = [], []

            def point(row, col):
                box = page.locator(".vf-image").bounding_box()
                return box["x"] + (col + 0.5) * box["width"] / gw, box["y"] + (row + 0.5) * box["height"] / gh

            for k in range(rounds * 3):
                r, c = cells[(k * 5) % len(cells)]
                results["follow a patch (hover)"].append(measure_view(
                    page, counter, cast, "__vitvizFollow", "draw", lambda r=r, c=c: page.mouse.move(*point(r, c))))
                if k % 3 == 0:
                    xy = point(r, c)
                    results["follow a patch (commit)"].append(measure_how_commit(
                        page, counter, cast, lambda xy=xy: page.mouse.click(*xy),
                        target=json.dumps({"row": r, "col": c}, separators=(",", ":"))))
                    page.locator(".vf-image").scroll_into_view_if_needed()
            page.close()
        browser.close()
    return results


# Until both Plotly figures of the Attention page (map and grid) are drawn, then the next animation frame.
_TOGGLE_ARM = """() => {
    const drawn = (key) => { const gd = document.querySelector(`.st-key-fig-${key} .js-plotly-plot`);
                             return gd && gd._fullData && gd.querySelector('.main-svg'); };
    const changed = () => drawn('attn-map') && drawn('attn-grid');
""" + _PROBE % "['mousedown']"  # noqa: UP031 (a JS template: its braces stay literal)

# The explorer has drawn (``drawCount`` in checkouts before the components' shared contract, ``draw_count`` after).
_EXPLORER_DREW = "() => { const e = window.__vitvizExplorer; return e && (e.draw_count || e.drawCount) > 0; }"


def run_toggle(url: str, rounds: int) -> list[float]:
    """The "Plotly figures" toggle switched on ``rounds`` times (and off between): ms from the click to the first
    animation frame after both figures are drawn. Each round commits another patch first, so the figures are
    built for a view they were not built for before (the first view of a commit, not a cached one)."""
    from playwright.sync_api import sync_playwright

    times: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
        counter = FrameCounter(page)
        page.goto(url, timeout=TIMEOUT_MS)
        page.wait_for_function(_EXPLORER_DREW, timeout=TIMEOUT_MS)
        _idle_on(page, counter, ".vv-map", quiet_s=1.0)
        toggle = page.locator(".st-key-attn_figures label").first
        gh, gw = page.evaluate(EXPLORER)["grid"]
        cells = [(r, c) for r in range(1, gh - 1, 2) for c in range(1, gw - 1, 3)]
        for k in range(rounds):
            page.locator(".vv-map").scroll_into_view_if_needed()
            page.mouse.click(*_cell(page, *cells[(k * 5) % len(cells)]))  # a new committed view
            _idle_on(page, counter, ".vv-map")
            toggle.scroll_into_view_if_needed()
            page.evaluate(_TOGGLE_ARM)
            toggle.click()
            page.wait_for_function("() => window.__vvProbe !== null", polling=10, timeout=TIMEOUT_MS)
            probe = page.evaluate("() => window.__vvProbe")
            times.append(probe["raf"] - probe["input"])
            _idle_on(page, counter, ".st-key-fig-attn-grid .js-plotly-plot")
            toggle.click()  # off again
            page.wait_for_function("() => !document.querySelector('.st-key-fig-attn-map .js-plotly-plot')",
                                   timeout=TIMEOUT_MS)
            _idle_on(page, counter, ".vv-map")
        browser.close()
    return times


def toggle_main(args, apps: list[Path], rounds: int) -> None:
    """``--toggle``: the figures toggle in each checkout, one server at a time, the checkouts alternating. A
    session's first toggle (the browser has not loaded its Plotly code yet unless the page preloads it) and the
    later ones are reported apart."""
    env = app_env(threads=args.threads) | {TEST_HOOKS_ENV: "1"}
    first: dict[str, list[float]] = {str(app): [] for app in apps}
    later: dict[str, list[float]] = {str(app): [] for app in apps}
    chunk = max(2, rounds // 2)
    for _half in range(2):  # two passes, alternating the checkouts, so a change in the machine's load hits both
        for app in apps:
            port = free_port()
            log = Path(tempfile.mkdtemp(prefix="vitviz-bench-")) / "streamlit.log"
            server = start_server(port, env, log, timeout_s=600, app_dir=app)
            try:
                url = f"http://127.0.0.1:{port}/attention?model={quote(MODEL[0])}"
                times = run_toggle(url, chunk)
                first[str(app)] += times[:1]
                later[str(app)] += times[1:]
                print(app, times, flush=True)
            finally:
                server.terminate()
                server.wait(timeout=60)
    table = Table(f"Attention page: the Plotly figures toggle, {MODEL[0]} with random weights (headless Chromium)",
                  ["app", "toggle", "n", "median ms", "p25–p75 ms", "min ms", "max ms"])
    for app in first:
        for name, ms in (("a session's first", first[app]), ("later ones", later[app])):
            q1, q2, q3 = quantiles(ms)
            table.add(app, name, len(ms), q2, f"{q1:.0f}–{q3:.0f}", min(ms), max(ms))
    table.notes += [
        "From the mousedown on the toggle to the first animation frame after both Plotly figures (the map over the "
        "photo and the layers × heads grid) have their SVG; each round first commits another patch, so the figures "
        "are made for a new view. A session's first toggle is also the first Plotly chart of a page opened "
        "directly (a shared link). Target: ≤ 1 s.",
        "Checkouts started one at a time, in alternation; the machine is shared, so compare rows of one run only.",
    ]
    report([table], machine(), args.out)


_COLUMNS = ["interaction", "n", "median ms (screencast)", "p90 ms", "p25–p75 ms", "median ms (rAF)",
            "bytes sent (max)", "KiB received (median)"]


def _add_rows(table: Table, results: dict[str, list[dict]], *first: Any) -> dict[str, int]:
    """One row per interaction of ``results`` (after the cells ``first``); returns how many of each were timed by
    rAF because no screencast frame followed the change."""
    by_raf = {}
    for name, rows in results.items():
        rows = [r for r in rows if r]
        if not rows:
            continue
        by_raf[name] = sum(r["screencast"] is None for r in rows)
        ms = [r["screencast"] if r["screencast"] is not None else r["raf"] for r in rows]
        q1, q2, q3 = quantiles(ms)
        p90 = quantile(ms, 0.9)
        table.add(*first, name, len(rows), q2, p90, f"{q1:.0f}–{q3:.0f}", statistics.median(r["raf"] for r in rows),
                  max(r["sent"] for r in rows), statistics.median(r["received"] for r in rows) / 1024)
    return by_raf


def how_apps_ab(env: dict[str, str], apps: list[Path], rounds: int, out: str | None) -> None:
    """``--how-ab --app A B ...``: one server per checkout, all running; one tab each, the same patch clicked in
    every tab each round, the order alternating (:func:`run_how_ab`), so that the machine's load falls on all alike."""
    servers, variants = [], {}
    t0, load = time.perf_counter(), os.getloadavg()[0]
    try:
        for app in apps:
            port = free_port()
            log = Path(tempfile.mkdtemp(prefix="vitviz-bench-")) / "streamlit.log"
            servers.append(start_server(port, env, log, timeout_s=600, app_dir=app))
            variants[str(app)] = f"http://127.0.0.1:{port}/how_vit_works?model={quote(MODEL[0])}"
        results = run_how_ab("", rounds, variants)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=60)
    table = Table(f"How a ViT works: a followed patch's commit in each checkout, side by side, {MODEL[0]} with random "
                  "weights (headless Chromium)", ["app", *_COLUMNS])
    for app, rows in results.items():
        _add_rows(table, {"follow a patch (commit), rAF": rows}, app)
    table.notes += [
        f"{rounds} committed clicks per checkout: one server and one tab per checkout, all running; each round the "
        "same patch in every tab, the order alternating. Until the follower holds the clicked patch, every later "
        "step's picture shows it and step 1's caption and step 5's table of keys have changed; rAF after the input "
        f"event. 1-minute load average {load:.1f} before, {os.getloadavg()[0]:.1f} after; "
        f"{time.perf_counter() - t0:.0f} s in all.",
    ]
    report([table], machine(), out)
    if out:
        Path(out).with_suffix(".raw.json").write_text(json.dumps(results, indent=1))


def apps_main(args, apps: list[Path], pages: list[str], rounds: int) -> None:
    """``--app A B ...`` (without ``--toggle``): the interactions of ``--pages`` in each checkout (e.g. the commit
    before a change, unpacked with ``git archive``), one server at a time, in two passes whose order is reversed
    (A B, then B A), so that a change in the machine's load falls on every checkout. The load average is noted
    before and after each pass."""
    env = app_env(threads=args.threads) | {TEST_HOOKS_ENV: "1"}
    if args.how_ab:
        how_apps_ab(env, apps, rounds, args.out)
        return
    how_query = "&how_figures=true" if args.how_figures else ""
    results: dict[str, dict[str, list[dict]]] = {str(app): {} for app in apps}
    loads = []
    t0 = time.perf_counter()
    for half in range(2):
        for app in (apps if half == 0 else apps[::-1]):
            port = free_port()
            log = Path(tempfile.mkdtemp(prefix="vitviz-bench-")) / "streamlit.log"
            before = os.getloadavg()[0]
            server = start_server(port, env, log, timeout_s=600, app_dir=app)
            try:
                url = f"http://127.0.0.1:{port}/attention?model={quote(MODEL[0])}"
                found = run(url + ("&attn_figures=true" if args.figures else ""), max(1, rounds // 2)) \
                    if "attention" in pages else {}
                found.update(run_views(url, max(1, rounds // 2), pages, how_query))
            finally:
                server.terminate()
                server.wait(timeout=60)
            for name, rows in found.items():
                results[str(app)].setdefault(name, []).extend(rows)
            loads.append(f"{app} (pass {half + 1}): {before:.1f} → {os.getloadavg()[0]:.1f}")
            print(loads[-1], flush=True)
    table = Table(f"Browser components in each checkout, {MODEL[0]} with random weights (headless Chromium)",
                  ["app", *_COLUMNS])
    by_raf = {}
    for app, found in results.items():
        by_raf.update({f"{app}: {name}": count for name, count in _add_rows(table, found, app).items()})
    table.notes += [
        f"Pages {', '.join(pages)}; {max(1, rounds // 2)} rounds per checkout and pass, two passes (the checkouts' "
        f"order reversed in the second), one server at a time. {time.perf_counter() - t0:.0f} s in all.",
        "Latency as in the other tables: the input event's timestamp → the first screencast frame after the change "
        "(rAF: the first animation frame). How a ViT works' commit: until the follower, every step's picture and "
        "the server's texts (step 1's caption, step 5's table) show the clicked patch.",
        "1-minute load average before → after each pass: " + "; ".join(loads) + ".",
    ]
    _finish(table, by_raf, results, args.out)


def _finish(table: Table, by_raf: dict[str, int], results, out) -> None:
    """Note the cases measured by rAF, print and write the table, and the raw results next to it."""
    if any(by_raf.values()):
        table.notes.append("Measured by rAF where no screencast frame followed the change: " + ", ".join(
            f"{name} {count}" for name, count in by_raf.items() if count) + ".")
    report([table], machine(), out)
    if out:
        Path(out).with_suffix(".raw.json").write_text(json.dumps(results, indent=1))


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--pages", default="attention,rollout,how",
                        help="comma-separated: attention (the explorer), rollout, how (the walk-through)")
    parser.add_argument("--figures", action="store_true",
                        help="open the Attention page with its Plotly figures on (?attn_figures=true)")
    parser.add_argument("--how-figures", action="store_true",
                        help="open How a ViT works with its steps drawn as Plotly figures (?how_figures=true)")
    parser.add_argument("--commit-ab", action="store_true",
                        help="only committed clicks, side by side: the page as shipped and with its Plotly figures on")
    parser.add_argument("--toggle", action="store_true",
                        help="only the Attention page's Plotly figures toggle, in each --app checkout")
    parser.add_argument("--app", type=Path, nargs="*", default=[REPO],
                        help="app checkouts to compare, one server at a time (default: this tree): with --toggle, "
                             "its toggle; else the interactions of --pages (e.g. --pages how --app /tmp/before .)")
    parser.add_argument("--how-ab", action="store_true",
                        help="only committed clicks on How a ViT works, side by side: the steps drawn in the browser "
                             "(shipped) and as Plotly figures (before); with --app, one tab per checkout")
    args = parser.parse_args(argv)
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    rounds = args.repeats or (2 if args.quick else 10)
    random_hub_weights(MODEL[1])
    if args.toggle:
        toggle_main(args, args.app, rounds)
        return
    if args.app != [REPO]:
        apps_main(args, args.app, pages, rounds)
        return
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="vitviz-bench-")) / "streamlit.log"
    env = app_env(threads=args.threads) | {TEST_HOOKS_ENV: "1"}  # the components expose what they draw
    server = start_server(port, env, log, timeout_s=600)
    try:
        url = f"http://127.0.0.1:{port}/attention?model={quote(MODEL[0])}"
        t0 = time.perf_counter()
        if args.commit_ab:
            results = run_commit_ab(url, rounds)
        elif args.how_ab:
            results = run_how_ab(url, rounds)
        else:
            results = run(url + ("&attn_figures=true" if args.figures else ""), rounds) if "attention" in pages else {}
            results.update(run_views(url, rounds, pages, "&how_figures=true" if args.how_figures else ""))
        total_s = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    table = Table(
        f"Browser components (attention explorer, rollout explorer, patch follower), {MODEL[0]} with random "
        "weights (headless Chromium)", list(_COLUMNS))
    by_raf = _add_rows(table, results)
    if args.commit_ab:
        table.notes.append(
            f"{rounds} committed clicks per tab, the same patch in both tabs each round, the order alternating; one "
            f"server. Until the explorer holds the clicked patch and the URL, the \"page's query\" heading, the top-5 "
            f"table (and, figures on, the Plotly map) have all changed. {total_s:.0f} s in all.")
    if args.how_ab:
        table.notes.append(
            f"{rounds} committed clicks per tab, the same patch in both tabs each round, the order alternating; one "
            "server. Until the follower holds the clicked patch, every later step's picture shows it (a browser view "
            "of the follower's payload, or a Plotly figure whose title and traces changed) and step 1's caption and "
            f"step 5's table of keys have changed. {total_s:.0f} s in all.")
    table.notes += [] if args.commit_ab or args.how_ab else [
        f"{rounds} rounds; pages {', '.join(pages)}. Attention: 3 hovers, one explorer layer and head change each, "
        "a commit and a server slider move every other round. Rollout: 3 layer keys and 3 fusion clicks per round. "
        "How a ViT works: 3 hovers per round, a commit every third hover. "
        f"{total_s:.0f} s including the first page loads (model build + capture).",
        "Latency: the input event's timestamp → the first screencast frame (CDP Page.startScreencast) produced "
        "after the change was made in the page; rAF: → the first animation frame after it. Commit and server "
        "slider: until the explorer holds the new committed state and the URL, the \"page's query\" heading, the "
        "top-5 table" + (" and the page's Plotly attention map (figures on)" if args.figures else "")
        + " have all changed (a server rerun); follow a patch (commit): until the follower, every step's picture "
        "(browser view or Plotly figure) and the server's texts (step 1's caption, step 5's table) show the clicked "
        "patch.",
        "Server, browser and the benchmark share the machine's CPUs.",
    ]
    _finish(table, by_raf, results, args.out)


if __name__ == "__main__":
    main()
