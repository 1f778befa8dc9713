"""The first-view bench's timer inside the page (``bench/_first_view_probe.js``): it names the first frame in which
every watched element is there, not an earlier one and not much later, and reads the start-up box's title, without
the bench asking the page anything while it loads (the old timer from Python slowed the page by 0.4–0.65 s,
bench/README.md §20)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

PROBE = (Path(__file__).resolve().parents[2] / "bench" / "_first_view_probe.js").read_text()
URL = "http://first-view.test/"
PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<div data-testid="stSidebar">sidebar</div><script>
  window.added = {};
  const add = (id, ms, html) => setTimeout(() => {
    const e = document.createElement('div'); e.id = id; e.innerHTML = html || id; document.body.appendChild(e);
    window.added[id] = performance.timeOrigin + performance.now();
  }, ms);
  add('status', 50, '<div data-testid="stExpander"><details><summary><span>progress_activity</span>'
      + 'Starting vitviz to open ViT vs CNN…</summary></details></div>');
  add('first', 100);
  add('second', 400);
</script></body></html>"""


def _open(chromium, selectors: list[str]):
    context = chromium.new_context()
    context.add_init_script(PROBE)
    context.add_init_script(f"window.__vvView.watch({json.dumps(selectors)})")
    page = context.new_page()
    page.route(URL, lambda route: route.fulfill(status=200, content_type="text/html", body=PAGE))
    page.goto(URL)
    return context, page


def test_the_page_names_the_first_frame_with_every_watched_element_and_the_start_up_title(chromium):
    context, page = _open(chromium, ["#first", "#second"])
    try:
        page.wait_for_function("window.__vvView.drawn !== null", polling=100, timeout=10_000)
        view, added = page.evaluate("window.__vvView"), page.evaluate("window.added")
    finally:
        context.close()
    assert added["second"] <= view["drawn"] < added["second"] + 250  # that frame, not one before the last element
    assert view["title"] == "Starting vitviz to open ViT vs CNN…"
    assert view["shell"] is not None and view["shell"] <= added["first"]


def test_a_view_that_never_comes_is_never_called_drawn(chromium):
    context, page = _open(chromium, ["#first", "#never"])
    try:
        page.wait_for_function("window.added.second !== undefined", polling=100, timeout=10_000)
        page.wait_for_timeout(300)
        assert page.evaluate("window.__vvView.drawn") is None
        page.evaluate("window.__vvView.watch(['#second'])")  # a new watch (a view reached by a click) looks at once
        page.wait_for_function("window.__vvView.drawn !== null", polling=100, timeout=10_000)
    finally:
        context.close()
