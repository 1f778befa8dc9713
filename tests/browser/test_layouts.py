"""Every page at 390, 800 and 1400 px, in English and Chinese, in a real browser (issue 22, layouts from 390 px up).

Each page must show no overlapping text (every visible line box of every text node, Plotly's titles, legends, axis
titles and tick labels included), no chart narrower than 280 px (or the column, when that is narrower), nothing
sticking out of the column, no truncated title or label; on Compare also an AUC table that fits without scrolling
and every method chip shown. Each screenshot is saved as
``artifacts/screenshots/layout-<lang>-<width>-<page>.png`` for a person to look at.
"""
from __future__ import annotations

import pytest

from tests._browser import LAYOUT_PROBLEMS_JS, MIN_CHART_PX, SCREENSHOTS, settled, wait_until_idle
from vitviz_app.ui import PATH

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = (390, 800, 1400)

# What only the Compare page must also satisfy: its AUC table fits the column without scrolling (its numbers are
# read side by side), and every method chip is shown (``count``: how many the page offers).
COMPARE_PROBLEMS_JS = """(count) => {
  const problems = [];
  const content = document.querySelector('[data-testid=stMainBlockContainer]');
  const style = getComputedStyle(content);
  const right = content.getBoundingClientRect().right - parseFloat(style.paddingRight);
  for (const table of document.querySelectorAll('[data-testid=stMain] [data-testid=stTable]')) {
    if (table.getBoundingClientRect().right > right + 1 || [...table.querySelectorAll('*')].some(
        (e) => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible'))
      problems.push(`the AUC table is cut (${Math.round(table.getBoundingClientRect().width)} px)`);
  }
  const chips = [...document.querySelectorAll('.st-key-cmp_methods button[data-variant=pills]')];
  const hidden = chips.filter((c) => { const r = c.getBoundingClientRect();
    return r.width === 0 || r.right > right + 1 || getComputedStyle(c).visibility === 'hidden'; });
  if (chips.length !== count || hidden.length) problems.push(`${hidden.length} of ${chips.length} method chips hidden`);
  return problems;
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
@pytest.mark.parametrize("page", PATH)
def test_every_page_lays_out_at_every_width_in_both_languages(tabs, server, page, width, lang):
    tab = tabs[width]
    tab.goto(f"{server}/{_path(page, lang)}", timeout=240_000)
    wait_until_idle(tab)
    settled(tab)  # every figure drawn (Compare adds its maps and curves one by one)
    tab.wait_for_timeout(800)  # the browser components draw after their payload arrives
    assert tab.locator("[data-testid=stException]").count() == 0, f"{page} shows an exception"
    problems = tab.evaluate(LAYOUT_PROBLEMS_JS, MIN_CHART_PX)
    if page == "compare":
        from vitviz.attribution import METHODS

        problems += tab.evaluate(COMPARE_PROBLEMS_JS, len(METHODS))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = tab.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    tab.set_viewport_size({"width": width, "height": min(int(height) + 40, 16000)})
    tab.wait_for_timeout(600)
    tab.screenshot(path=str(SCREENSHOTS / f"layout-{lang}-{width}-{page}.png"))
    tab.set_viewport_size({"width": width, "height": 900})
    assert not problems, f"{page} at {width} px in {lang}: {problems}"
