"""Narrow windows in a real browser: every page on a phone (390 px), and a laptop window with its sidebar open.

Nothing may push the page sideways, a map must keep the content's width, a browser component's canvas must
stay inside it, a metric its whole value, a figure title its whole text. Screenshots go to
``artifacts/screenshots/`` (``narrow-390-<page>.png``).
"""
from __future__ import annotations

import pytest
from test_browser import PAGES, SCREENSHOTS, browser, server, wait_until_idle  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# What a page must satisfy at its width; returns a list of problems (empty when the layout is right).
_LAYOUT_PROBLEMS_JS = """() => {
  const problems = [];
  const page = document.scrollingElement;
  if (page.scrollWidth > innerWidth + 1) problems.push(`page scrolls sideways: ${page.scrollWidth} > ${innerWidth}`);
  const content = document.querySelector('[data-testid=stMainBlockContainer]');
  const style = getComputedStyle(content);
  const width = content.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  for (const chart of document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')) {
    const box = chart.getBoundingClientRect();
    if (box.width < 0.9 * width) problems.push(`a chart is ${Math.round(box.width)} px wide of ${Math.round(width)}`);
    for (const title of chart.querySelectorAll('.gtitle')) {
      const t = title.getBoundingClientRect();
      if (t.width && (t.left < box.left - 1 || t.right > box.right + 1 || t.top < box.top - 10))  // text box > glyphs
        problems.push(`title "${title.textContent}" is cut`);
    }
  }
  const right = content.getBoundingClientRect().right - parseFloat(style.paddingRight);
  for (const canvas of document.querySelectorAll('[data-testid=stMain] canvas')) {  // the browser components' maps
    const box = canvas.getBoundingClientRect();
    if (box.width && box.right > right + 1) {
        problems.push(`a ${canvas.className || 'canvas'} sticks out by ${Math.round(box.right - right)} px`);
    }
  }
  for (const value of document.querySelectorAll('[data-testid=stMain] [data-testid=stMetricValue]')) {
    for (const el of [value, ...value.querySelectorAll('*')])
      if (el.scrollWidth > el.clientWidth + 1) problems.push(`metric "${value.textContent}" is truncated`);
  }
  for (const label of document.querySelectorAll('[data-testid=stMain] [data-baseweb=select] [value]'))
    if (label.scrollWidth > label.clientWidth + 1) problems.push(`select "${label.textContent}" is truncated`);
  return problems;
}"""


def _check(tab, server, width: int, name: str) -> list[str]:
    tab.goto(f"{server}/{'' if name == 'overview' else name}")
    wait_until_idle(tab)
    assert tab.locator("[data-testid=stException]").count() == 0, f"{name} shows an exception"
    problems = tab.evaluate(_LAYOUT_PROBLEMS_JS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = tab.viewport_size
    height = tab.evaluate("() => Math.max(...[...document.querySelectorAll('[data-testid=stMain] *')]"
                          ".map(e => e.scrollHeight))")
    tab.set_viewport_size({"width": width, "height": min(int(height) + 80, 12000)})
    tab.wait_for_timeout(500)
    tab.screenshot(path=str(SCREENSHOTS / f"narrow-{width}-{name}.png"))
    tab.set_viewport_size(viewport)
    return [f"{name} at {width} px: {p}" for p in problems]


def test_every_page_fits_a_phone(browser, server):  # noqa: F811
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    tab = context.new_page()
    try:
        tab.goto(server)
        wait_until_idle(tab)
        sidebar = tab.locator("[data-testid=stSidebar]")
        assert sidebar.count() == 0 or sidebar.bounding_box() is None or sidebar.bounding_box()["x"] + \
            sidebar.bounding_box()["width"] <= 1, "the sidebar starts collapsed on a phone"
        problems = [p for name in PAGES for p in _check(tab, server, 390, name)]
    finally:
        context.close()
    assert not problems, problems


def test_columns_stack_beside_an_open_sidebar(browser, server):  # noqa: F811
    """At 800 px Streamlit keeps the sidebar open: the pages' columns must stack in the 500 px left over."""
    context = browser.new_context(viewport={"width": 800, "height": 900})
    tab = context.new_page()
    try:
        problems = [p for name in ("overview", "attention") for p in _check(tab, server, 800, name)]
    finally:
        context.close()
    assert not problems, problems
