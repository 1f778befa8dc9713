"""The app in Chinese: the mechanism, every text translated with its placeholders intact, one glossary.

- the catalogue against the code (``scripts/i18n.py`` extracts every ``_()``/``N_()``/``ngettext()`` text):
  each has a reviewed translation whose placeholders are the English's, and Markdown bold that opens and closes;
- the glossary (``docs/glossary.md``): a text that uses a glossed term is translated with its Chinese term, and a page
  that teaches a term glosses it there and nowhere else (the check, on hand-made texts);
- the detector of English left on a page (``tests/_texts.py``), on hand-picked texts. Every page rendered in
  Chinese, on every token layout, is checked with it in ``tests/app/test_app_pages.py``.
"""
from __future__ import annotations

import importlib.util
import threading

import pytest

from tests._pages import ROOT
from tests._texts import english_pattern, gloss_problems, glossary, prose, untranslated
from vitviz import i18n
from vitviz.i18n import _


def _tool():
    spec = importlib.util.spec_from_file_location("vitviz_i18n_tool", ROOT / "scripts" / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the mechanism -------------------------------------------------------------------------------------------

def test_browser_and_posix_locale_tags_map_to_the_languages_we_speak():
    assert [i18n.match_language(t) for t in ("zh-CN", "zh_Hans_CN", "ZH", "en-US", "en", "fr-FR", "", None)] == [
        "zh", "zh", "zh", "en", "en", None, None, None]
    with pytest.raises(ValueError, match="unsupported language"):
        i18n.set_language("fr")


def test_the_language_is_per_context_and_restored_after_a_block():
    assert i18n.get_language() == "en"
    with i18n.language("zh-CN"):
        assert _("Overview") == "总览"
        seen = []
        worker = threading.Thread(target=lambda: seen.append(_("Overview")))  # another session's thread
        worker.start()
        worker.join()
        assert seen == ["Overview"], "one session's language must not leak into another's"
        with i18n.language("en"):
            assert _("Overview") == "Overview"
        assert _("Overview") == "总览"
    assert _("Overview") == "Overview"


def test_fuzzy_entries_are_not_used_and_a_missing_catalogue_speaks_english(tmp_path, monkeypatch):
    po = tmp_path / "zh" / "LC_MESSAGES" / "vitviz.po"
    po.parent.mkdir(parents=True)
    po.write_text('msgid ""\nmsgstr "Content-Type: text/plain; charset=utf-8\\n"\n\n'
                  'msgid "Reviewed"\nmsgstr "已审校"\n\n#, fuzzy\nmsgid "Changed"\nmsgstr "旧译文"\n',
                  encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    i18n.translations.cache_clear()
    try:
        with i18n.language("zh"):
            assert (_("Reviewed"), _("Changed"), _("Unknown")) == ("已审校", "Changed", "Unknown")
        po.unlink()
        i18n.translations.cache_clear()
        with i18n.language("zh"):
            assert _("Reviewed") == "Reviewed"
    finally:
        i18n.translations.cache_clear()


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


def test_placeholders_are_read_from_format_fields_and_percent_conversions():
    tool = _tool()
    assert tool.placeholders("{n} of {total:,} at {p:.1%}, %s and %(name)d, 100%%") == sorted(
        ["{n}", "{total:,}", "{p:.1%}", "%s", "%(name)d"])
    assert tool.placeholders("no fields") == []


# --- the catalogue -------------------------------------------------------------------------------------------

def test_every_text_in_the_code_has_a_chinese_translation_with_its_placeholders():
    problems = _tool().problems("zh")
    assert not problems, f"{len(problems)} texts need work in vitviz/locale/zh (run scripts/i18n.py check):\n" + \
        "\n".join(problems[:40])


def test_the_catalogue_is_in_step_with_the_code():
    """No translation of a text the code no longer has (``scripts/i18n.py update`` drops them)."""
    tool = _tool()
    extracted = {m.id for m in tool.extract() if m.id}
    stale = [m.id for m in tool.read("zh") if m.id and m.id not in extracted]
    assert not stale, f"run `python scripts/i18n.py update`: {stale[:10]}"


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
    import re

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


def test_translations_use_the_glossary_terms():
    terms = glossary()
    wrong = []
    for message in _tool().read("zh"):
        if not message.id or not message.string:
            continue
        source = prose(message.id if isinstance(message.id, str) else message.id[0])
        target = message.string if isinstance(message.string, str) else message.string[0]
        for english, chinese, *_rest in terms:  # longest first: "attention rollout" hides its "attention"
            if english_pattern(english).search(source) and chinese not in target:
                wrong.append(f"{english!r} → {chinese!r} missing in {target!r}")
            source = english_pattern(english).sub(" ", source)
    assert not wrong, "\n".join(wrong[:30])


def test_the_gloss_check_wants_a_gloss_where_a_page_teaches_a_term_and_nowhere_else():
    terms = [t for t in glossary() if t.english in ("patch", "attention rollout")]
    taught = "图像块（patch）排成序列；**Attention Rollout**（注意力逐层累乘，2020）"
    assert not gloss_problems(taught, terms, "overview")
    assert gloss_problems("图像块排成序列", terms, "patches")  # patches teaches patch: the gloss is missing
    assert gloss_problems("Attention Rollout 与 Attention Rollout（注意力逐层累乘）", terms, "rollout")
    assert gloss_problems("移除图像块（patch）", terms, "compare")  # compare does not teach patch


# --- the detector of English left on a page (tests/_texts.py) ------------------------------------------

def test_the_detector_flags_english_and_lets_names_and_chinese_pass():
    assert untranslated("Sample image")
    assert untranslated("row %{y}, col %{x}<br>attention %{z:.3f}<extra></extra>")
    assert not untranslated("示例图像 (sample image)")
    assert not untranslated("ViT-B/16 (AugReg)")
    assert not untranslated("`vit_base_patch16_224.augreg2_in21k_ft_in1k` · 12 × 12")
    assert not untranslated("tabby cat (#281)", allowed={"tabby", "cat"})


def test_a_notebook_sets_the_language_from_the_package():
    import vitviz

    try:
        vitviz.set_language("zh")
        assert vitviz.i18n.get_language() == "zh" and _("Overview") == "总览"
    finally:
        vitviz.set_language("en")
