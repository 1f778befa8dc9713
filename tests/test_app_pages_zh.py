"""The explore pages in Chinese (``?lang=zh``, AppTest): titles, intros, widgets and the browser components'
texts come from the catalogue, and switching the language keeps the view."""
from __future__ import annotations

import re

import pytest
from conftest import component_data

ZH = {"lang": "zh"}

# page -> (title, a piece of its intro: the subject it leads with, or a term glossed where the page teaches it)
PAGES = {
    "pages/patches.py": ("图像块", "**图像块（patch）**"),
    "pages/position_embeddings.py": ("位置编码", "**可学习的位置编码（position embedding）**"),
    "pages/attention.py": ("注意力", "每个词元（token）都作为**查询**"),
    "pages/rollout.py": ("Attention Rollout", "**Attention Rollout**（注意力逐层累乘，Abnar & Zuidema 2020）"),
    "pages/heads_depth.py": ("注意力头与深度", "**平均注意力距离**是一个查询图像块平均看向多远"),
    "pages/compare.py": ("比较归因方法", "本页让每种归因方法解释同一张图像"),
}
LEAD = {"pages/rollout.py", "pages/heads_depth.py", "pages/compare.py"}
"""Pages whose intro leads with its subject, with at most one parenthesis a sentence (issue 23, item 7)."""


def _has_han(text: str) -> bool:
    return any("\u4e00" <= char <= "\u9fff" for char in text)


@pytest.mark.parametrize("page", list(PAGES))
def test_every_explore_page_speaks_chinese(open_app, page):
    at = open_app(page, ZH)
    title, intro = PAGES[page]
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == [title]
    shown = [m.value for m in at.markdown if intro in m.value]
    assert shown, [m.value[:60] for m in at.markdown]
    if page in LEAD:
        assert shown[0].startswith(intro), shown[0][:60]
        crowded = [s for s in re.split(r"(?<=[。？！])", shown[0]) if s.count("（") > 1]
        assert not crowded, crowded
    # every visible label of the page's own widgets is Chinese (the sidebar's are another helper's)
    labels = [w.label for kind in ("slider", "select_slider", "selectbox", "multiselect", "number_input", "toggle",
                                   "segmented_control") for w in at.main.get(kind)]
    assert labels and all(_has_han(label) for label in labels), labels
    assert all(_has_han(d.proto.label) for d in at.main.get("download_button"))
    # a second run formats the widgets' values again from the test's thread, where no language is set: the
    # format functions keep the language of the run that drew them (vitviz.i18n.keep_language)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [title]


def test_a_kept_language_holds_in_another_thread():
    import threading

    from vitviz.i18n import _, keep_language, language

    with language("zh"):
        label = keep_language(lambda: _("Class token"))
    seen = []
    worker = threading.Thread(target=lambda: seen.append(label()))
    worker.start()
    worker.join()
    assert seen == ["类别词元"] and label() == "类别词元" and _("Class token") == "Class token"


def test_the_attention_explorer_gets_its_texts_in_chinese(open_app):
    at = open_app("pages/attention.py", ZH)
    data = component_data(at, "attention_explorer")
    text = dict(data["text"])
    assert text.pop("prefix_labels") == {"cls": "类别词元"}  # the prefix-token buttons
    assert text["tip_cell"] == "第 {row} 行，第 {col} 列"  # the tooltip's "row, column"
    assert text["tip_self"].endswith("：{value}") and text["tip_from"].endswith("：{value}")
    assert text["status_none"].startswith("词元太多")  # the notice when nothing fits the browser
    assert all(_has_han(value) for key, value in text.items() if key != "share"), text
    # every field the browser fills is one the English text has: the JavaScript fills both alike
    from scripts.i18n import placeholders
    from vitviz.i18n import language
    from vitviz_app.components.attention_explorer import explorer_text

    with language("en"):
        english = explorer_text()
    assert english.keys() == text.keys()
    assert all(placeholders(english[k]) == placeholders(text[k]) for k in text)


def test_the_tile_explorer_gets_its_texts_in_chinese(open_app):
    at = open_app("pages/position_embeddings.py", ZH)
    data = component_data(at, "tile_explorer")
    assert data["text"]["tip"] == "第 {row} 行，第 {col} 列：{value}"
    assert data["text"]["title"].startswith("位置（{row}, {col}）")
    assert data["text"]["caption"].startswith("悬停在小图上")


def test_switching_the_language_keeps_the_view(open_app, figure):
    """The query, head and patch chosen in English stay when the page turns Chinese (labels change, values
    do not), and the figure titles follow the language."""
    at = open_app("pages/attention.py", {"attn_figures": "true"})
    at.selectbox(key="attn_head").set_value("max")
    at.segmented_control(key="attn_query").set_value("patch").run()
    at.number_input(key="attn_row").set_value(1)
    at.number_input(key="attn_col").set_value(2).run()
    assert "patch (row 1, col 2)" in _title(figure(at, "attn.map"))
    assert "Attention of patch (1, 2)" in _title(figure(at, "attn.grid"))
    at.segmented_control(key="lang").set_value("zh").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "注意力"
    assert at.selectbox(key="attn_head").value == "max"
    assert at.segmented_control(key="attn_query").value == "patch"
    assert (at.number_input(key="attn_row").value, at.number_input(key="attn_col").value) == (1, 2)
    assert "图像块（1, 2）的注意力" in _title(figure(at, "attn.grid"))  # the grid's title comes from the page


def _title(spec: dict) -> str:
    return spec["layout"]["title"]["text"].replace("<br>", " ")


MY_SOURCES = ("pages/patches.py", "pages/position_embeddings.py", "pages/attention.py", "pages/rollout.py",
              "pages/heads_depth.py", "pages/compare.py", "vitviz_app/clicks.py", "vitviz_app/downloads.py",
              "vitviz_app/components/")


def _flanking(text: str, at: int) -> tuple[bool, bool]:
    """Whether the ``**`` at ``at`` can open / close emphasis (CommonMark's left- and right-flanking rules)."""
    import unicodedata

    def punct(char: str) -> bool:
        return unicodedata.category(char)[0] in "PS"

    before = text[at - 1] if at > 0 else " "
    after = text[at + 2] if at + 2 < len(text) else " "
    opens = not after.isspace() and (not punct(after) or before.isspace() or punct(before))
    closes = not before.isspace() and (not punct(before) or after.isspace() or punct(after))
    return opens, closes


def test_chinese_bold_text_opens_and_closes():
    """Markdown bold next to full-width punctuation: ``**本模型：**它`` is never closed (a closing ``**`` after
    punctuation must be followed by a space or punctuation), so the page would show the asterisks."""
    from babel.messages.pofile import read_po

    from vitviz.i18n import catalogue_path

    with catalogue_path("zh").open("rb") as handle:
        catalog = read_po(handle)
    checked = 0
    for message in catalog:
        if not message.id or not any(path.startswith(MY_SOURCES) for path, _ in message.locations):
            continue
        text = re.sub(r"\{[^{}]*\}", "x", message.string)  # a field's value starts and ends with a letter or digit
        marks = [m.start() for m in re.finditer(r"\*\*", text)]
        assert len(marks) % 2 == 0, message.string
        for i, at in enumerate(marks):
            opens, closes = _flanking(text, at)
            assert (opens if i % 2 == 0 else closes), f"{'opening' if i % 2 == 0 else 'closing'} ** at {at}: {text}"
        checked += len(marks)
    assert checked > 20
