"""The app in Chinese: every text translated, placeholders intact, one glossary, and no English left on a page.

Three layers of checks:
- the catalogue against the code (``scripts/i18n.py`` extracts every ``_()``/``N_()``/``ngettext()`` text):
  each has a reviewed translation whose placeholders are the English's;
- the glossary (``docs/glossary.md``): a text that uses a glossed term is translated with its Chinese term;
- every page rendered in Chinese in AppTest, on every token layout: no exception, and a detector finds no
  visible text that is still English (labels, help, captions, alerts, metrics, table headers, and the
  figures' titles, axes, colour bars, hover texts and slider labels); a page that teaches a term glosses its
  first use (the English, or the Chinese for a name kept in English), other pages never gloss it, and no page
  shows a wording that tests/unit/test_zh_wording.py rules out.
"""
from __future__ import annotations

import importlib.util
import json
import re
import threading
from pathlib import Path
from typing import NamedTuple

import pytest

from vitviz import i18n
from vitviz.i18n import _

ROOT = Path(__file__).resolve().parent.parent
PAGES = [None, "pages/patches.py", "pages/position_embeddings.py", "pages/attention.py", "pages/rollout.py",
         "pages/heads_depth.py", "pages/how_vit_works.py", "pages/compare.py"]


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


class Term(NamedTuple):
    """A glossary row that some page teaches: its first use there carries ``gloss`` in parentheses."""

    english: str
    chinese: str
    pages: frozenset[str]
    gloss: re.Pattern


def _glossary() -> list[Term]:
    """The rows of docs/glossary.md with pages in 'glossed on', longest English first.

    The gloss is the English, or, for a name that stays English (Attention Rollout), the Chinese given in its
    notes as ``gloss: Name（中文）``.
    """
    rows = []
    for line in (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[2] and cells[0] != "English" and not cells[2].startswith("-"):
            english = cells[0].split(",")[0].strip()
            named = re.search(r"gloss: " + re.escape(cells[1]) + r"（([^，）]+)", cells[3])
            gloss = re.compile(re.escape(named[1])) if named else _english_pattern(english)
            rows.append(Term(english, cells[1], frozenset(p.strip() for p in cells[2].split(",")), gloss))
    assert len(rows) >= 6, "the glossary lost its glossed terms"
    return sorted(rows, key=lambda r: -len(r.english))


def _english_pattern(term: str) -> re.Pattern:
    return re.compile(r"\b" + r"\s+".join(map(re.escape, term.split())) + r"(?:e?s)?\b", re.IGNORECASE)


def _prose(text: str) -> str:
    """Text without code spans, math, placeholders and HTML tags (which may spell terms as identifiers)."""
    text = re.sub(r"`[^`]*`|\$\$.*?\$\$|\$[^$]*\$", " ", text, flags=re.S)
    return re.sub(r"\{[^{}]*\}|%\{[^}]*\}|<[^>]+>", " ", text)


def test_translations_use_the_glossary_terms():
    terms = _glossary()
    wrong = []
    for message in _tool().read("zh"):
        if not message.id or not message.string:
            continue
        source = _prose(message.id if isinstance(message.id, str) else message.id[0])
        target = message.string if isinstance(message.string, str) else message.string[0]
        for english, chinese, *_rest in terms:  # longest first: "attention rollout" hides its "attention"
            if _english_pattern(english).search(source) and chinese not in target:
                wrong.append(f"{english!r} → {chinese!r} missing in {target!r}")
            source = _english_pattern(english).sub(" ", source)
    assert not wrong, "\n".join(wrong[:30])


# --- what a page shows ---------------------------------------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"(?<![\w/.-])[A-Za-z][a-z]{2,}(?![\w/.-])")
# Names that stay as they are in Chinese text: people, libraries, file formats, model and method names.
_KEEP = {"abnar", "zuidema", "chefer", "dosovitskiy", "beyer", "gildenblat", "timm", "torch", "pytorch", "plotly",
         "streamlit", "numpy", "vitviz", "shapes", "softmax", "logit", "logits", "png", "npz", "json", "csv",
         "safetensors", "deit", "dino", "eva", "flexivit", "augreg", "imagenet", "hugging", "face", "transformer",
         "vision", "grad", "cam", "smoothgrad", "lrp", "attnlrp", "gelu", "mlp", "layernorm", "qkv", "rgb",
         "jpeg", "webp", "bmp", "gif", "tiff", "heic", "avif", "svg", "pth", "bin", "english", "relu", "et", "al",
         "rollout"}


def untranslated(text: str, allowed: set[str] = frozenset()) -> bool:
    """Whether a visible text is still English prose: no Chinese, and two or more ordinary English words.

    Names (capitalised inside, such as ViT or AugReg), identifiers, file names, numbers, code spans, math and
    the words in :data:`_KEEP` or ``allowed`` (e.g. the model's class names, which are data) do not count.
    """
    if _CJK.search(text):
        return False
    words = [w for w in _WORD.findall(_prose(text)) if w.lower() not in _KEEP and w.lower() not in allowed]
    return len(words) >= 2


_TEXT_FIELDS = {"body", "label", "help", "placeholder", "caption", "content"}
_SKIP_TYPES = {"Html", "PlotlyChart", "Arrow", "DownloadButton.type"}


def _proto_texts(message, found: list[str]) -> None:
    from google.protobuf.descriptor import FieldDescriptor

    kind = type(message).__name__
    for field, value in message.ListFields():
        values = list(value) if getattr(field, "is_repeated", False) else [value]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for v in values:
                _proto_texts(v, found)
        elif field.type == FieldDescriptor.TYPE_STRING and kind not in _SKIP_TYPES and (
                field.name in _TEXT_FIELDS or (field.name == "options" and kind != "Selectbox")):
            found += [v for v in values if v]


def _figure_texts(spec: dict) -> list[str]:
    layout = spec.get("layout", {})
    found = []

    def title(obj):
        t = (obj or {}).get("title")
        return t.get("text") if isinstance(t, dict) else t

    found.append(title(layout))
    for key, value in layout.items():
        if key.startswith(("xaxis", "yaxis", "coloraxis")) and isinstance(value, dict):
            found += [title(value), title(value.get("colorbar"))]
    for trace in spec.get("data", []):
        found += [trace.get("hovertemplate"), title(trace.get("colorbar")),
                  title(trace.get("marker", {}).get("colorbar"))]
        if trace.get("showlegend") or trace.get("type") in ("bar", "scatter") and trace.get("name"):
            found.append(trace.get("name"))
    found += [a.get("text") for a in layout.get("annotations", [])]
    for slider in layout.get("sliders", []):
        found.append((slider.get("currentvalue") or {}).get("prefix"))
        found += [step.get("label") for step in slider.get("steps", [])]
    for menu in layout.get("updatemenus", []):
        found += [b.get("label") for b in menu.get("buttons", [])]
    for frame in spec.get("frames", []):
        found.append(title(frame.get("layout")))
    return [t for t in found if isinstance(t, str) and t.strip()]


def _table_headers(arrow_proto) -> list[str]:
    import pyarrow as pa

    try:
        return [str(n) for n in pa.ipc.open_stream(arrow_proto.data).schema.names if not str(n).startswith("__")]
    except Exception:
        return []


def page_texts(at, where: str = "all") -> list[str]:
    """Every text a user can read on the page run by ``at`` (``where``: 'all', or 'main' for the page alone)."""
    found: list[str] = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None:
            kind = type(proto).__name__
            if kind == "PlotlyChart":
                found.extend(_figure_texts(json.loads(proto.spec)))
            elif kind == "Arrow":
                found.extend(_table_headers(proto))
            _proto_texts(proto, found)
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for child in children.values():
                walk(child)

    walk(at.main if where == "main" else at._tree)
    return found


def _class_names(at) -> set[str]:

    names: set[str] = set()
    ctx = at.session_state["_vitviz_context"] if "_vitviz_context" in at.session_state else None
    labels = getattr(getattr(ctx, "loaded", None), "labels", None) or []
    for label in labels:
        names |= {w.lower() for w in re.findall(r"[A-Za-z]+", str(label))}
    return names


def _assert_chinese(at, page) -> None:
    assert not at.exception, (page, [e.value for e in at.exception])
    assert not at.error, (page, [e.value for e in at.error])
    names = {t.chinese for t in _glossary() if not _CJK.search(t.chinese)}  # method names kept as published
    assert at.title and (_CJK.search(at.title[0].value) or at.title[0].value in names), (
        page, [t.value for t in at.title])
    allowed = _class_names(at)
    english = sorted({t for t in page_texts(at) if untranslated(t, allowed)})
    assert not english, f"{page or 'overview'} still shows English:\n" + "\n".join(map(repr, english[:30]))


def test_the_detector_flags_english_and_lets_names_and_chinese_pass():
    assert untranslated("Sample image")
    assert untranslated("row %{y}, col %{x}<br>attention %{z:.3f}<extra></extra>")
    assert not untranslated("示例图像 (sample image)")
    assert not untranslated("ViT-B/16 (AugReg)")
    assert not untranslated("`vit_base_patch16_224.augreg2_in21k_ft_in1k` · 12 × 12")
    assert not untranslated("tabby cat (#281)", allowed={"tabby", "cat"})


def _glossed(text: str, end: int, term: Term) -> bool:
    """Whether the use of ``term`` ending at ``end`` is followed by its gloss in parentheses (bold may close
    between them)."""
    return bool(re.match(r"\**\s*[（(]\s*" + term.gloss.pattern.removeprefix(r"\b"), text[end:end + 80], re.IGNORECASE))


def gloss_problems(text: str, terms: list[Term], page: str) -> list[str]:
    """On a page that teaches a term, its first use lacks the gloss; on any other page, some use has one."""
    problems = []
    for term in terms:
        longer = [t.chinese for t in terms if term.chinese in t.chinese and t.chinese != term.chinese]
        covered = {i for c in longer for m in re.finditer(re.escape(c), text) for i in range(m.start(), m.end())}
        uses = [m for m in re.finditer(re.escape(term.chinese), text) if m.start() not in covered]
        shown = [f"…{text[max(0, m.start() - 20): m.end() + 20]}…" for m in uses]
        if page in term.pages:
            if uses and not _glossed(text, uses[0].end(), term):
                problems.append(f"{term.chinese} ({term.english}) has no gloss at its first use: {shown[0]}")
        else:
            problems += [f"{term.chinese} ({term.english}) is glossed on {page}, which does not teach it: {s}"
                         for m, s in zip(uses, shown) if _glossed(text, m.end(), term)]
    return problems


def _page_name(page: str | None) -> str:
    return Path(page).stem if page else "overview"


def _wording():
    """tests/unit/test_zh_wording.py, which owns the wording rules (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("zh_wording", ROOT / "tests" / "unit" / "test_zh_wording.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gloss_check_wants_a_gloss_where_a_page_teaches_a_term_and_nowhere_else():
    terms = [t for t in _glossary() if t.english in ("patch", "attention rollout")]
    taught = "图像块（patch）排成序列；**Attention Rollout**（注意力逐层累乘，2020）"
    assert not gloss_problems(taught, terms, "overview")
    assert gloss_problems("图像块排成序列", terms, "patches")  # patches teaches patch: the gloss is missing
    assert gloss_problems("Attention Rollout 与 Attention Rollout（注意力逐层累乘）", terms, "rollout")
    assert gloss_problems("移除图像块（patch）", terms, "compare")  # compare does not teach patch


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p or "overview")
def test_every_page_speaks_chinese_and_glosses_only_the_terms_it_teaches(open_app, page):
    at = open_app(page, query={"lang": "zh"})
    _assert_chinese(at, page)
    texts = page_texts(at, where="main")
    if at.title:  # the page title is a name, not a sentence: the gloss comes in the intro below it
        texts = [t for t in texts if t != at.title[0].value]
    problems = gloss_problems("\n".join(texts), _glossary(), _page_name(page))
    assert not problems, "\n".join(problems)
    never = _wording().NEVER  # what the page shows follows the wording rules too
    stumbles = [f"{reason}: {t[:120]!r}" for t in page_texts(at) for pattern, reason in never.items()
                if re.search(pattern, t)]
    assert not stumbles, "\n".join(stumbles)


LAYOUTS = [
    ("test_vit2", {"num_classes": 10}),  # one register, no class token, average pooling
    ("test_vit3", {"num_classes": 10}),  # attention pooling
    ("test_vit", {"num_classes": 0}),  # no classifier head
    ("test_vit", {"num_classes": 10, "img_size": (64, 96)}),  # a non-square grid
    ("deit_tiny_distilled_patch16_224", {"num_classes": 10, "img_size": 64}),  # class + distillation tokens
]


@pytest.mark.parametrize("name, model_args", LAYOUTS,
                         ids=["registers-avg-pool", "attention-pool", "no-head", "non-square", "distilled"])
def test_every_page_speaks_chinese_on_every_token_layout(open_app, swap_bundled, name, model_args):
    swap_bundled(name, **model_args)
    at = open_app(query={"lang": "zh"})
    _assert_chinese(at, None)
    for page in PAGES[1:]:
        at.switch_page(page).run()
        _assert_chinese(at, page)


def test_a_notebook_sets_the_language_from_the_package():
    import vitviz

    try:
        vitviz.set_language("zh")
        assert vitviz.i18n.get_language() == "zh" and _("Overview") == "总览"
    finally:
        vitviz.set_language("en")
