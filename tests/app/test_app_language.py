"""Switching the app's language (``?lang=zh`` / the sidebar switch) changes the texts, never the model's work.

AppTest, in-process: the pass counter of ``vitviz_app.loaders`` proves that no control of the language runs
the model again, and the values a user chose survive the switch although their labels change. The browser
components get their texts in the page's language. Every page in each language: ``test_app_pages.py``.
"""
from __future__ import annotations

import re

import pytest

from tests._apptest import component_data
from vitviz_app.loaders import forward_passes

CJK = re.compile(r"[\u4e00-\u9fff]")


def _titles(at) -> list[str]:
    return [t.value for t in at.title]


def _switch(at, code: str):
    at.segmented_control(key="lang").set_value(code).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page", [None, "pages/how_vit_works.py"], ids=["overview", "how_vit_works"])
def test_switching_the_language_never_runs_the_model(open_app, page):
    at = open_app(page)
    english = _titles(at)
    assert english and not CJK.search(english[0])
    passes = forward_passes()

    _switch(at, "zh")
    chinese = _titles(at)
    assert chinese != english and CJK.search(chinese[0]), chinese
    _switch(at, "en")
    assert _titles(at) == english
    _switch(at, "zh")
    assert _titles(at) == chinese
    assert forward_passes() == passes, "a language switch must only change texts: the passes are cached"


def test_the_choices_survive_a_language_switch(open_app):
    at = open_app("pages/how_vit_works.py", query={"image": "coffee", "how_row": "1", "how_col": "2"})
    at.slider(key="how_layer").set_value(1).run()
    at.selectbox(key="how_head").set_value(1).run()
    passes = forward_passes()
    _switch(at, "zh")
    assert at.selectbox(key="image").value == "coffee"
    assert at.segmented_control(key="source").value == "Sample"  # the value stays English; its label does not
    assert at.segmented_control(key="source").options[0] == "示例"
    assert (at.number_input(key="how_row").value, at.number_input(key="how_col").value) == (1, 2)
    assert (at.slider(key="how_layer").value, at.selectbox(key="how_head").value) == (1, 1)
    assert at.selectbox(key="how_head").options[1] == "注意力头 1"
    assert forward_passes() == passes


def test_the_url_opens_the_app_in_chinese(open_app):
    at = open_app(query={"lang": "zh"})
    assert not at.exception, [e.value for e in at.exception]
    assert _titles(at) == ["Vision Transformer 如何看你的图像"]
    metrics = [m.label for m in at.get("metric")]
    assert metrics == ["词元数", "层数", "每层注意力头数", "图像块大小", "模型输入"]
    sizes = [m.value for m in at.get("metric")][3:]  # one unit spelling on the page: 像素, not px
    assert len(sizes) == 2 and all(re.fullmatch(r"\d+×\d+ 像素", v) for v in sizes), sizes
    # the caption under the image keeps the sample's name (the selector's option and the URL's value)
    sample = at.selectbox(key="image").value
    assert any(f"示例图像：{sample}" in c.value for c in at.main.caption)
    assert at.selectbox(key="model").options[-1] == "其他 timm 模型…"
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert "**图像**" in sidebar and "**模型**" in sidebar and "**权重**：" in sidebar


def test_a_link_copied_after_switching_opens_in_that_language(open_app):
    """The switch once wrote its label into the URL (``?lang=中文``): such a link opens in Chinese too, and the URL
    then holds the code."""
    at = open_app(query={"lang": "中文"})
    assert not at.exception
    assert _titles(at) == ["Vision Transformer 如何看你的图像"]
    assert at.query_params["lang"] == "zh"


def test_the_attention_explorer_gets_its_texts_in_chinese(open_app):
    at = open_app("pages/attention.py", {"lang": "zh"})
    data = component_data(at, "attention_explorer")
    text = dict(data["text"])
    assert text.pop("prefix_labels") == {"cls": "类别词元"}  # the prefix-token buttons
    assert text["tip_cell"] == "第 {row} 行，第 {col} 列"  # the tooltip's "row, column"
    assert text["tip_self"].endswith("：{value}") and text["tip_from"].endswith("：{value}")
    assert text["status_none"].startswith("词元太多")  # the notice when nothing fits the browser
    assert all(CJK.search(value) for key, value in text.items() if key != "share"), text
    # every field the browser fills is one the English text has: the JavaScript fills both alike
    from scripts.i18n import placeholders
    from vitviz.i18n import language
    from vitviz_app.components.attention_explorer import explorer_text

    with language("en"):
        english = explorer_text()
    assert english.keys() == text.keys()
    assert all(placeholders(english[k]) == placeholders(text[k]) for k in text)


def test_the_tile_explorer_gets_its_texts_in_chinese(open_app):
    at = open_app("pages/position_embeddings.py", {"lang": "zh"})
    data = component_data(at, "tile_explorer")
    assert data["text"]["tip"] == "第 {row} 行，第 {col} 列：{value}"
    assert data["text"]["title"].startswith("位置（{row}, {col}）")
    assert data["text"]["caption"].startswith("悬停在小图上")


def test_switching_the_language_keeps_the_view(open_app, figure):
    """The query, head and patch committed in English stay when the page turns Chinese (labels change, values
    do not), and the figure titles follow the language."""
    at = open_app("pages/attention.py", {"attn_figures": "true"})
    for key, value in (("attn_head", "max"), ("attn_query", "patch"), ("attn_row", 1), ("attn_col", 2)):
        at.session_state[key] = value  # the explorer's commit
    at.run()
    assert "patch (row 1, col 2)" in _title(figure(at, "attn.map"))
    assert "Attention of patch (1, 2)" in _title(figure(at, "attn.grid"))
    at.segmented_control(key="lang").set_value("zh").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "注意力"
    state = {key: at.session_state[key] for key in ("attn_head", "attn_query", "attn_row", "attn_col")}
    assert state == {"attn_head": "max", "attn_query": "patch", "attn_row": 1, "attn_col": 2}
    assert "图像块（1, 2）的注意力" in _title(figure(at, "attn.grid"))  # the grid's title comes from the page


def _title(spec: dict) -> str:
    return spec["layout"]["title"]["text"].replace("<br>", " ")


@pytest.mark.parametrize("title", [
    "Attention Rollout，第 0–3 层（类别词元所在行；平均融合）",
    "第 0 层，注意力头 0：图像块（4, 4）的注意力",
    "模型看到的图像：96×96 像素，8×8 个图像块",
])
def test_a_chinese_figure_title_wraps_to_a_phone_wide_chart(title):
    """Chinese has no spaces and its characters are twice as wide: a title still breaks within the width."""
    from vitviz_app.margins import text_columns as _columns
    from vitviz_app.plotting import TITLE_LINE_CHARS, wrap_title

    lines = wrap_title(title).split("<br>")
    assert len(lines) > 1 and all(_columns(line) <= TITLE_LINE_CHARS for line in lines), lines
    assert "".join(lines).replace(" ", "") == title.replace(" ", "")  # nothing lost; a break eats a space only
    assert not any(line.count("（") != line.count("）") for line in lines), "never inside brackets"


@pytest.mark.parametrize("lang, query, key, expected", [
    ("zh", {"page": "pages/attention.py", "attn_head": "Head 1"}, "attn_head", "1"),  # an English link, read in Chinese
    ("zh", {"page": "pages/rollout.py", "ro_fusion": "Max"}, "ro_fusion", "max"),
    ("zh", {"page": None, "source": "Draw"}, "source", "Draw"),  # the option's own value, written by hand
    ("en", {"page": "pages/attention.py", "attn_head": "注意力头 1"}, "attn_head", "1"),  # a Chinese link in English
])
def test_a_link_keeps_its_view_in_the_other_language(open_app, lang, query, key, expected):
    """Links made before the URL held ids held a bound widget's shown label; such a link, made in one language, still
    selects the same option in the other (vitviz_app.links.choice), and the URL then holds the id."""
    query = dict(query)
    page = query.pop("page")
    at = open_app(page, query={**query, "lang": lang})
    assert not at.exception, [e.value for e in at.exception]
    assert str(at.session_state[key]) == expected
    assert at.query_params[key] == expected
