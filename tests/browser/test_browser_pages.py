"""Every page in a real browser, in both languages, at the widths people use: what only a browser shows.

What every page says, in English and in Chinese, is checked in AppTest (``tests/app/test_app_pages.py``). Here
Chromium lays it out in the windows people use (a phone, the 500 px beside an open sidebar, a desktop), by the
layout rules of ``tests/_browser.py:LAYOUT_PROBLEMS_JS`` (nothing pushes the page sideways or sticks out of the
column, no chart under 280 px, no text on text, no title, metric or label cut). Chinese needs a CJK font on the
machine, or every character is drawn as an empty box ("tofu"): screenshots go to ``artifacts/screenshots/``
(``<lang>-<width>-<page>.png``) for a person to look at. The sidebar's language switch turns the texts over in place.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests._browser import LAYOUT_PROBLEMS_JS, MIN_CHART_PX, screenshot, settled, wait_until_idle
from tests._pages import app_pages
from tests._texts import glossary

# every page in four windows (32 page loads): the slow tier, beside tests/browser/test_layouts.py's width matrix
pytestmark = [pytest.mark.browser, pytest.mark.slow]

CJK = re.compile(r"[\u4e00-\u9fff]")
WINDOWS = {  # name: (language, width, height, phone)
    "zh-1400": ("zh", 1400, 1000, False),  # a desktop: the pages' columns side by side
    "en-800": ("en", 800, 900, False),  # a laptop window: the sidebar stays open, the columns stack beside it
    "en-390": ("en", 390, 844, True),  # a phone: the sidebar starts collapsed
    "zh-390": ("zh", 390, 844, True),
}


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


def _title(tab) -> str:
    return tab.locator("[data-testid=stMain] h1").first.inner_text()


def _navigation(tab) -> list[str]:
    links = tab.locator("[data-testid=stSidebarNav] a").all_inner_texts()
    return [text.strip().splitlines()[-1].strip() for text in links]  # the icon's ligature name comes first


def _sidebar_closed(tab) -> bool:
    sidebar = tab.locator("[data-testid=stSidebar]")
    box = sidebar.bounding_box() if sidebar.count() else None
    return box is None or box["x"] + box["width"] <= 1


@pytest.mark.parametrize("page", app_pages(), ids=lambda p: p.name)
@pytest.mark.parametrize("window_name", list(WINDOWS))
def test_every_page_fits_the_window(window, server, window_name, page):
    lang, width, height, phone = WINDOWS[window_name]
    if lang == "zh" and not _cjk_fonts():
        pytest.skip("no CJK font (fc-list :lang=zh is empty): the page would show tofu; install fonts-noto-cjk")
    tab = window(width, height, phone=phone)
    tab.goto(page.url(server, **({"lang": lang} if lang != "en" else {})))
    wait_until_idle(tab)
    settled(tab)  # as test_layouts: Compare adds its curves one by one, and a legend mid-redraw is not the page
    assert tab.locator("[data-testid=stException]").count() == 0, "the page shows an exception"
    kept = {t.chinese for t in glossary() if not CJK.search(t.chinese)}  # method names kept as published
    assert bool(CJK.search(_title(tab)) or _title(tab) in kept) == (lang == "zh"), _title(tab)
    if phone:
        assert _sidebar_closed(tab), "the sidebar starts collapsed on a phone"
    else:
        assert _navigation(tab) == [p.title for p in app_pages(lang)]
    problems = tab.evaluate(LAYOUT_PROBLEMS_JS, MIN_CHART_PX)  # the same rules as tests/browser/test_layouts.py
    screenshot(tab, f"{window_name}-{page.name}")
    assert not problems, problems


def _choose_language(tab, label: str) -> None:
    tab.locator("[data-testid=stSidebar] .st-key-lang button", has_text=label).click()
    tab.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')")
    wait_until_idle(tab)


def test_the_sidebar_switch_turns_the_texts_over(window, server):
    how = next(p for p in app_pages() if p.file == "pages/how_vit_works.py")
    tab = window(1400, 1000)
    tab.goto(how.url(server, lang="en"))
    wait_until_idle(tab)
    tab.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.wait_for()
    english = _title(tab)
    assert english == "How a Vision Transformer works"
    _choose_language(tab, "中文")
    tab.wait_for_function("() => /[\\u4e00-\\u9fff]/.test(document.querySelector('[data-testid=stMain] h1')"
                          ".innerText)")
    assert _title(tab) == "Vision Transformer 是如何工作的"
    assert _navigation(tab) == [p.title for p in app_pages("zh")]
    sidebar = tab.locator("[data-testid=stSidebar]").inner_text()
    assert "图像" in sidebar and "模型" in sidebar and "示例" in sidebar, sidebar[:400]
    headers = tab.locator("[data-testid=stMain] h2").all_inner_texts()
    assert headers and all(CJK.search(h) for h in headers), headers
    url = tab.url  # the bound switch writes its label: ?lang=%E4%B8%AD%E6%96%87 (中文)
    assert "lang=" in url
    link = window(1400, 1000)  # the link, opened elsewhere, shows the same language
    link.goto(url)
    wait_until_idle(link)
    assert _title(link) == "Vision Transformer 是如何工作的"
    _choose_language(tab, "English")
    tab.wait_for_function("() => document.querySelector('[data-testid=stMain] h1').innerText"
                          ".startsWith('How a Vision')")
    assert _title(tab) == english
    assert _navigation(tab) == [p.title for p in app_pages("en")]
