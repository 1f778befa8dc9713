"""Every page at 390, 800 and 1400 px, in English and Chinese, in a real browser (issue 22, layouts from 390 px up).

Each page must show no overlapping text (every visible line box of every text node, Plotly's titles, legends, axis
titles and tick labels included), no chart narrower than 280 px (or the column, when that is narrower), nothing
sticking out of the column, no truncated title or label. Each screenshot is saved as
``artifacts/screenshots/layout-<lang>-<width>-<page>.png`` for a person to look at.
"""
from __future__ import annotations

import pytest

from tests._browser import SCREENSHOTS, wait_until_idle
from vitviz_app.ui import PATH

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = (390, 800, 1400)
MIN_CHART_PX = 280

# What a page must satisfy at its width; returns a list of problems (empty when the layout is right).
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
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects())
      if (r.width > 2 && r.height > 2) lines.push({ r, node, text: node.textContent.trim() });
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
  return [...new Set(problems)];
}"""


def _path(page: str, lang: str) -> str:
    return f"{'' if page == 'overview' else page}?lang={lang}"


@pytest.fixture(scope="module")
def tabs(chromium):
    """One browser context per width (a tab each), reused by every page and language."""
    contexts = {width: chromium.new_context(viewport={"width": width, "height": 900}) for width in WIDTHS}
    yield {width: context.new_page() for width, context in contexts.items()}
    for context in contexts.values():
        context.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.xfail(
    reason="Compare's layouts belong to the Compare helper (issue 22); checked here, fixed there", strict=False))
    if p == "compare" else p for p in PATH])
def test_every_page_lays_out_at_every_width_in_both_languages(tabs, server, page, width, lang):
    tab = tabs[width]
    tab.goto(f"{server}/{_path(page, lang)}", timeout=240_000)
    wait_until_idle(tab)
    tab.wait_for_timeout(800)  # the browser components draw after their payload arrives
    assert tab.locator("[data-testid=stException]").count() == 0, f"{page} shows an exception"
    problems = tab.evaluate(LAYOUT_PROBLEMS_JS, MIN_CHART_PX)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = tab.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    tab.set_viewport_size({"width": width, "height": min(int(height) + 40, 16000)})
    tab.wait_for_timeout(600)
    tab.screenshot(path=str(SCREENSHOTS / f"layout-{lang}-{width}-{page}.png"))
    tab.set_viewport_size({"width": width, "height": 900})
    assert not problems, f"{page} at {width} px in {lang}: {problems}"
