"""The app in Chinese in a real browser: every page opened with ``?lang=zh``, at a desktop width and on a phone.

Each page must show a Chinese title and navigation, no exception box and nothing pushed sideways; the sidebar's
language switch must turn the texts over in place. Screenshots go to ``artifacts/screenshots/``
(``zh-1400-<page>.png``, ``zh-390-<page>.png``) for a person to look at: Chinese needs a CJK font on the
machine, or every character is drawn as an empty box ("tofu").
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from test_browser import SCREENSHOTS, browser, server  # noqa: F401 (fixtures)
from test_browser_narrow import _LAYOUT_PROBLEMS_JS

pytestmark = pytest.mark.browser

PAGES = ["overview", "patches", "position_embeddings", "attention", "rollout", "heads_depth", "compare",
         "how_vit_works"]
NAVIGATION = ["总览", "图像块", "位置编码", "注意力", "Attention Rollout", "注意力头与深度", "比较归因方法",
              "ViT 如何工作"]
"""The navigation's page titles in Chinese, in order (``app.py``'s ``pages()``)."""
CJK = re.compile(r"[\u4e00-\u9fff]")
WAIT_MS = 300_000
"""A page's first run (the server's warm-up, a model pass) on a loaded 2-core machine can take minutes."""


def wait_until_idle(tab) -> None:
    """Wait for the script run to finish and every figure to be drawn (``test_browser``'s, with more time)."""
    tab.wait_for_selector("[data-testid=stMain] h1", timeout=WAIT_MS)
    tab.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=WAIT_MS)
    tab.wait_for_selector(".js-plotly-plot, .vv-map", timeout=WAIT_MS)  # the Attention page: the explorer
    tab.wait_for_timeout(600)


def _cjk_fonts() -> list[str]:
    if shutil.which("fc-list") is None:
        return []
    listed = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False)
    return [line for line in listed.stdout.splitlines() if line.strip()]


def test_a_cjk_font_is_installed():
    """Without one, Chromium draws every Chinese character as a box: the screenshots would be unreadable."""
    if shutil.which("fc-list") is None:
        pytest.skip("fontconfig (fc-list) is not installed: cannot tell whether a CJK font exists")
    if not _cjk_fonts():
        pytest.skip("no font covers Chinese (fc-list :lang=zh is empty): install fonts-noto-cjk, as .ci/run does")
    assert any("CJK" in family or "Hei" in family or "Song" in family or "Kai" in family for family in _cjk_fonts())


def _url(server: str, name: str, lang: str = "zh") -> str:
    return f"{server}/{'' if name == 'overview' else name}?lang={lang}"


def _title(tab) -> str:
    return tab.locator("[data-testid=stMain] h1").first.inner_text()


def _navigation(tab) -> list[str]:
    links = tab.locator("[data-testid=stSidebarNav] a").all_inner_texts()
    return [text.strip().splitlines()[-1].strip() for text in links]  # the icon's ligature name comes first


def _shoot(tab, width: int, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = tab.viewport_size
    height = tab.evaluate("() => Math.max(...[...document.querySelectorAll('[data-testid=stMain] *')]"
                          ".map(e => e.scrollHeight))")
    tab.set_viewport_size({"width": width, "height": min(int(height) + 80, 12000)})
    tab.wait_for_timeout(600)
    tab.screenshot(path=str(SCREENSHOTS / f"zh-{width}-{name}.png"))
    tab.set_viewport_size(viewport)


def _visit_every_page(context, server: str, width: int, narrow_charts_ok: bool) -> list[str]:
    """Open every page in Chinese: no exception, a Chinese title, a screenshot; returns the layout problems."""
    context.set_default_timeout(WAIT_MS)  # the first visit waits for the server's warm-up on a busy machine
    tab = context.new_page()
    problems = []
    try:
        for name in PAGES:
            tab.goto(_url(server, name))
            wait_until_idle(tab)
            assert tab.locator("[data-testid=stException]").count() == 0, f"{name} shows an exception"
            # a method name kept as published (docs/glossary.md) is a Chinese page's title too
            assert CJK.search(_title(tab)) or _title(tab) == "Attention Rollout", f"{name}: {_title(tab)!r}"
            if name == PAGES[0] and width >= 1000:
                assert _navigation(tab) == NAVIGATION
            problems += [f"{name} at {width} px: {p}" for p in tab.evaluate(_LAYOUT_PROBLEMS_JS)
                         if not (narrow_charts_ok and p.startswith("a chart is"))]
            _shoot(tab, width, name)
    finally:
        context.close()
    return problems


def test_every_page_speaks_chinese_in_the_browser(browser, server):  # noqa: F811
    if not _cjk_fonts():
        pytest.skip("no CJK font (fc-list :lang=zh is empty): the pages would show tofu; install fonts-noto-cjk")
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    # side-by-side columns at 1400 px: a chart is narrower than the content there, by design
    problems = _visit_every_page(context, server, 1400, narrow_charts_ok=True)
    assert not problems, problems


@pytest.mark.slow
def test_every_chinese_page_fits_a_phone(browser, server):  # noqa: F811
    if not _cjk_fonts():
        pytest.skip("no CJK font (fc-list :lang=zh is empty): the pages would show tofu; install fonts-noto-cjk")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    problems = _visit_every_page(context, server, 390, narrow_charts_ok=False)
    assert not problems, problems


def _choose_language(tab, label: str) -> None:
    switch = tab.locator("[data-testid=stSidebar] .st-key-lang button", has_text=label)
    switch.click()
    tab.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=WAIT_MS)
    wait_until_idle(tab)


def test_the_sidebar_switch_turns_the_texts_over(browser, server):  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    context.set_default_timeout(WAIT_MS)  # the first visit waits for the server's warm-up on a busy machine
    tab = context.new_page()
    try:
        tab.goto(_url(server, "how_vit_works", "en"))
        wait_until_idle(tab)
        tab.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.wait_for()
        english = _title(tab)
        assert english == "How a Vision Transformer works"
        _choose_language(tab, "中文")
        tab.wait_for_function("() => /[\\u4e00-\\u9fff]/.test(document.querySelector('[data-testid=stMain] h1')"
                              ".innerText)", timeout=WAIT_MS)
        assert _title(tab) == "Vision Transformer 是如何工作的"
        assert _navigation(tab) == NAVIGATION
        sidebar = tab.locator("[data-testid=stSidebar]").inner_text()
        assert "图像" in sidebar and "模型" in sidebar and "示例" in sidebar, sidebar[:400]
        headers = tab.locator("[data-testid=stMain] h2").all_inner_texts()
        assert headers and all(CJK.search(h) for h in headers), headers
        url = tab.url  # the bound switch writes its label: ?lang=%E4%B8%AD%E6%96%87 (中文)
        assert "lang=" in url
        link = context.new_page()  # the link, opened elsewhere, shows the same language
        link.goto(url)
        wait_until_idle(link)
        assert _title(link) == "Vision Transformer 是如何工作的"
        link.close()
        _choose_language(tab, "English")
        tab.wait_for_function("() => document.querySelector('[data-testid=stMain] h1').innerText"
                              ".startsWith('How a Vision')", timeout=WAIT_MS)
        assert _title(tab) == english
        assert _navigation(tab)[0] == "Overview"
    finally:
        context.close()
