"""The Compare page in a real browser at 1400, 800 and 390 px, in English and Chinese (issue 22): maps keep a
readable size, no title overlaps or is cut, no legend covers an axis title, the AUC table fits, every method chip
shows. Screenshots go to ``artifacts/screenshots/compare-<width>-<lang>.png``."""
from __future__ import annotations

import pytest

from tests._browser import SCREENSHOTS, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = (1400, 800, 390)
MIN_MAP_PX = 280

_PROBLEMS_JS = """(minMap) => {
  const problems = [];
  const overlap = (a, b) => a.width > 0 && b.width > 0 && a.left < b.right - 1 && b.left < a.right - 1 &&
                            a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const page = document.scrollingElement;
  if (page.scrollWidth > innerWidth + 1) problems.push(`page scrolls sideways: ${page.scrollWidth} > ${innerWidth}`);
  const content = document.querySelector('[data-testid=stMainBlockContainer]');
  const style = getComputedStyle(content);
  const inner = content.getBoundingClientRect();
  const left = inner.left + parseFloat(style.paddingLeft), right = inner.right - parseFloat(style.paddingRight);
  const width = right - left;
  for (const map of document.querySelectorAll('.st-key-cmp-maps .js-plotly-plot')) {
    const box = map.getBoundingClientRect();
    if (box.width < Math.min(minMap, width) - 1) problems.push(`a map is ${Math.round(box.width)} px wide`);
  }
  for (const chart of document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')) {
    const box = chart.getBoundingClientRect();
    if (box.right > right + 1 || box.left < left - 1) problems.push(`a chart sticks out of the column`);
    const titles = [...chart.querySelectorAll('.gtitle, .annotation-text, .xtitle, .ytitle')]
      .map(t => [t.textContent, t.getBoundingClientRect()]).filter(([, r]) => r.width > 0);
    for (const [text, r] of titles) {
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
        problems.push(`"${text}" is cut`);
    }
    for (let i = 0; i < titles.length; i++)
      for (let j = i + 1; j < titles.length; j++)
        if (overlap(titles[i][1], titles[j][1])) problems.push(`"${titles[i][0]}" overlaps "${titles[j][0]}"`);
    const legend = chart.querySelector('.legend');
    if (legend) {
      const l = legend.getBoundingClientRect();
      for (const [text, r] of titles) if (overlap(l, r)) problems.push(`the legend covers "${text}"`);
    }
  }
  for (const table of document.querySelectorAll('[data-testid=stMain] [data-testid=stTable]')) {
    const box = table.getBoundingClientRect();
    const cells = table.querySelectorAll('th, td');
    if (box.right > right + 1 || [...table.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1 &&
        getComputedStyle(e).overflowX !== 'visible'))
      problems.push(`the AUC table is cut (${Math.round(box.width)} px, ${cells.length} cells)`);
    for (const cell of cells) if (cell.getBoundingClientRect().right > right + 1) {
      problems.push(`a table cell "${cell.textContent}" is outside the column`); break; }
  }
  const chips = [...document.querySelectorAll('.st-key-cmp_methods button[data-variant=pills]')];
  const hidden = chips.filter(c => { const r = c.getBoundingClientRect();
    return r.width === 0 || r.right > right + 1 || getComputedStyle(c).visibility === 'hidden'; });
  if (!chips.length || hidden.length) problems.push(`${hidden.length} of ${chips.length} method chips are not shown`);
  return {problems, chips: chips.length};
}"""


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_compare_fits_1400_800_and_390_px(chromium, server, lang):
    problems = []
    for width in WIDTHS:
        phone = width < 500
        context = chromium.new_context(viewport={"width": width, "height": 900}, is_mobile=phone, has_touch=phone)
        tab = context.new_page()
        try:
            tab.goto(f"{server}/compare?lang={lang}")
            wait_until_idle(tab)
            tab.wait_for_selector(".st-key-fig-cmp-sanity .js-plotly-plot", timeout=300_000)
            tab.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=300_000)
            tab.wait_for_timeout(1000)
            assert tab.locator("[data-testid=stException]").count() == 0
            found = tab.evaluate(_PROBLEMS_JS, MIN_MAP_PX)
            assert found["chips"] == 11, found
            problems += [f"{width} px, {lang}: {p}" for p in found["problems"]]
            height = tab.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
            tab.set_viewport_size({"width": width, "height": min(int(height) + 80, 16000)})
            tab.wait_for_timeout(800)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(SCREENSHOTS / f"compare-{width}-{lang}.png"), full_page=True)
        finally:
            context.close()
    assert not problems, "\n".join(problems)
