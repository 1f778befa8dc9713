"""The Chinese catalogue reads without stumbling: one word per idea, no word-for-word phrases, one typography.

Each rule scans every ``msgstr`` of ``vitviz/locale/zh/LC_MESSAGES/vitviz.po``, so that texts added later (by
any branch) follow it too; docs/glossary.md records each choice and its reason (issue 23, item 7).
``NEVER`` (tests/_texts.py) is also applied to every text a page shows in Chinese (tests/app/test_app_pages.py).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests._texts import NEVER

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "vitviz" / "locale" / "zh" / "LC_MESSAGES" / "vitviz.po"
GLOSSARY = ROOT / "docs" / "glossary.md"



def _catalogue() -> list[tuple[str, str]]:
    """(English, Chinese) of every translated text; a plural's forms each count."""
    from babel.messages.pofile import read_po

    with PO.open("rb") as handle:
        catalog = read_po(handle)
    pairs = []
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        ids = message.id if isinstance(message.id, (tuple, list)) else (message.id,)
        strs = message.string if isinstance(message.string, (tuple, list)) else (message.string,)
        pairs += [(ids[min(i, len(ids) - 1)], s) for i, s in enumerate(strs) if s]
    return pairs


CATALOGUE = _catalogue()


def _prose(text: str) -> str:
    """English without code spans and placeholders (which spell names such as ``{block}``)."""
    return re.sub(r"`[^`]*`|\{[^{}]*\}|%\{[^}]*\}", " ", text)


def _entry(fragment: str) -> str:
    """The translation of the one text whose English contains ``fragment``."""
    found = [zh for en, zh in CATALOGUE if fragment in en]
    assert len(found) == 1, f"{len(found)} texts contain {fragment!r}"
    return found[0]


def _offending(pattern: str, where=lambda en: True) -> list[str]:
    return [f"{en[:60]!r} → {zh[:120]!r}" for en, zh in CATALOGUE if where(en) and re.search(pattern, zh)]


@pytest.mark.parametrize("pattern", list(NEVER), ids=list(NEVER.values()))
def test_no_translation_uses_a_ruled_out_wording(pattern):
    offending = _offending(pattern)
    assert not offending, NEVER[pattern] + ":\n" + "\n".join(offending[:20])


def test_the_rules_catch_the_wordings_they_rule_out():
    old = ["注意力展开", "网格按行展开", "{size} px（原生）", "一个学到的矩阵", "位置嵌入", "读出：{readout}",
           "手动重算", "点击提交", "ViT 论文图 7 中）", "平均看向 3 像素之外", "（前 {shown}/{dim} 维）",
           "一张图像值 16×16 个词", "更粗或更细的图像块", "哪张图值得信任？", "图像块（第 {row} 行，第 {col} 列）",
           "Chefer 等 2021", "来自本地 hub 缓存", "相关性（0–1）", "一个词元*在这一层*看向哪里", "_支持该类别_"]
    caught = {text for text in old for pattern in NEVER if re.search(pattern, text)}
    assert caught == set(old), set(old) - caught
    fine = ["提交 ID（40 个十六进制字符）", "逐层相关性传播（LRP）", "hf-hub:timm/vit_small", "**平均注意力距离**",
            "vit_*、deit*、eva*"]
    assert not [(text, p) for text in fine for p in NEVER if re.search(p, text)]


def test_rollout_is_named_attention_rollout_or_said_as_multiplying_the_layers():
    said = re.compile(r"\broll(?:ed|ing)?[- ]?outs?\b", re.IGNORECASE)
    wrong = [f"{en[:60]!r} → {zh!r}" for en, zh in CATALOGUE
             if said.search(_prose(en)) and "Attention Rollout" not in zh and "逐层累乘" not in zh]
    assert not wrong, "\n".join(wrong)


def test_rollout_is_glossed_at_its_first_use_and_flattening_the_grid_has_a_word_of_its_own():
    assert _entry("**Rollout** (Abnar & Zuidema").startswith("**Attention Rollout**（注意力逐层累乘")
    assert "**Attention Rollout**（注意力逐层累乘，" in _entry(
        "**Attention rollout** (Abnar & Zuidema 2020) follows that")
    assert "网格按行排成序列" in _entry("so the grid becomes a sequence of N = {n} patches, row by row")


def test_a_block_is_a_layer_and_a_module_is_only_a_pytorch_module():
    block = re.compile(r"\bblocks?\b", re.IGNORECASE)
    no_layer = [f"{en[:60]!r} → {zh!r}" for en, zh in CATALOGUE if block.search(_prose(en)) and "层" not in zh]
    assert not no_layer, "\n".join(no_layer)
    module = _offending("模块", where=lambda en: "module" not in en.lower())
    assert not module, "\n".join(module)


def test_position_embeddings_are_position_encodings_learned_where_it_matters():
    said = re.compile(r"\bposition[- ]embeddings?\b", re.IGNORECASE)
    wrong = [f"{en[:60]!r} → {zh!r}" for en, zh in CATALOGUE if said.search(en) and "位置编码" not in zh]
    assert not wrong, "\n".join(wrong)
    assert "**可学习的位置编码（position embedding）**" in _entry("the model adds a learned **position embedding**")
    learned = re.compile(r"\blearned (?:\*\*)?(?:absolute )?(?:position|embedding|matrix)", re.IGNORECASE)
    wrong = [f"{en[:60]!r} → {zh!r}" for en, zh in CATALOGUE if learned.search(en) and "可学习的" not in zh]
    assert not wrong, "\n".join(wrong)


def test_a_map_is_a_heat_map_or_an_attribution_map_never_a_bare_picture():
    bare = re.compile(r"(?<![热因力意示绘小视])图(?![像块例表标片形])")  # 视图 is a view
    said = re.compile(r"\bmaps?\b", re.IGNORECASE)
    wrong = [f"{en[:60]!r} → {zh!r}" for en, zh in CATALOGUE if said.search(_prose(en)) and bare.search(zh)]
    assert not wrong, "\n".join(wrong)
    assert _entry("Which map can you trust?").count("哪张归因图值得信任？") == 1


def test_relevance_is_xiangguandu_and_correlation_keeps_xiangguanxishu():
    said = re.compile(r"\brelevance\b(?! propagation)", re.IGNORECASE)
    wrong = [f"{en[:60]!r} → {zh!r}" for en, zh in CATALOGUE if said.search(_prose(en)) and "相关度" not in zh]
    assert not wrong, "\n".join(wrong)
    assert "相关系数" in _entry("correlation with the difference in distance to the border")


@pytest.mark.parametrize("fragment, phrase", [
    ("through layer {layer}. Read-out: {readout}", "用于分类的输出词元"),
    ("{icon} Recomputed by hand", "按公式逐步独立重算"),
    ("Every number below is recomputed by hand", "按公式逐步独立重算"),
    ("Make this token the query", "固定为本页查询"),
    ("click to commit, Shift", "固定为本页查询"),
    ("Committing {token} to the page", "固定为本页查询"),
    ("ViT paper, Fig. 7 centre", "图 7 中间一栏"),
    ("px away on average", "平均看向约 {first_min:.0f}–{first_max:.0f} 像素远处"),
    ("(first {shown} of {dim} dimensions)", "（共 {dim} 维，显示前 {shown} 维）"),
    ("an image is worth 16×16 words", "相当于 16×16 个词"),
    ("read coarser or finer patches", "更大或更小的图像块"),
    ("Patch (row {row}, col {col}) = token {token} of the sequence", "图像块（{row}, {col}）"),
    ("Chefer et al. 2021 (LRP × gradient)", "Chefer et al. 2021"),
    ("pretrained, from the Hugging Face hub", "Hugging Face Hub"),
    ("{size} px (native)", "{size} 像素（原生）"),
])
def test_each_word_for_word_phrase_is_replaced(fragment, phrase):
    assert phrase in _entry(fragment)


@pytest.mark.parametrize("fragment, subject", [
    ("Which map can you trust?", "本页让每种归因方法解释同一张图像"),
    ("**Rollout** (Abnar & Zuidema 2020) follows attention", "**Attention Rollout**"),
    ("The ViT paper measured, for every head, the **mean attention distance**", "**平均注意力距离**"),
])
def test_the_compare_rollout_and_heads_intros_lead_with_their_subject_with_one_parenthesis_a_sentence(
        fragment, subject):
    intro = _entry(fragment)
    assert intro.startswith(subject), intro[:40]
    sentences = [s for s in re.split(r"(?<=[。？！])", intro) if s.strip()]
    crowded = [s for s in sentences if s.count("（") > 1]
    assert len(sentences) >= 3 and not crowded, crowded


def test_the_glossary_records_each_choice_and_keeps_the_old_synonym_once():
    glossary = GLOSSARY.read_text(encoding="utf-8")
    rows = {line.split("|")[2].strip() for line in glossary.splitlines() if line.startswith("| ")}
    for chosen in ("Attention Rollout", "位置编码", "层", "可学习的", "热力图 / 归因图", "相关度", "相关系数",
                   "用于分类的输出词元", "按公式逐步独立重算", "按行排成序列", "像素", "Hugging Face Hub"):
        assert chosen in rows, chosen
    assert glossary.count("位置嵌入") == 1
    assert "注意力逐层累乘" in glossary and "固定为本页查询" in glossary and "et al." in glossary


def test_every_bold_text_is_bold_in_both_languages():
    """CommonMark (Streamlit's markdown) closes ``**`` after a punctuation mark only before a space or another
    punctuation mark: ``**比较对象：**vitviz`` shows its asterisks. Each text is rendered, its placeholders filled
    with a letter (as the page fills them), and must leave no ``**`` behind."""
    from markdown_it import MarkdownIt

    render = MarkdownIt("commonmark").render
    unclosed = [f"{lang}: {text[:100]!r}" for en, zh in CATALOGUE for lang, text in (("en", en), ("zh", zh))
                if "**" in text and "**" in render(re.sub(r"\{[^{}]*\}", "x", text))]
    assert not unclosed, unclosed
