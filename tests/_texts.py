"""Reading the words a page shows: the glossary's terms, and a detector for English left on a Chinese page.

Shared by the catalogue's checks (``tests/unit/test_i18n.py``) and the pages' (``tests/app/test_app_pages.py``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

from tests._pages import ROOT

__all__ = ["CJK", "HAN", "NEVER", "Term", "assert_chinese", "gloss_problems", "glossary", "english_pattern",
           "page_name", "page_texts", "prose", "untranslated"]

HAN = "\u4e00-\u9fff"

NEVER: dict[str, str] = {  # wordings ruled out in Chinese text (docs/glossary.md), with the reason
    "展开": "rollout is Attention Rollout（注意力逐层累乘）, the grid is 按行排成序列; 展开 means 'expand a panel'",
    r"(?<![\w-])px\b": "像素, not px, in Chinese text",
    "学到的": "learned parameters are 可学习的",
    "位置嵌入": "position embedding is 位置编码 (位置嵌入 is kept once, as a synonym, in the glossary)",
    "读出": "read-out is 用于分类的输出词元",
    "手动重算": "recomputed by hand is 按公式逐步独立重算",
    r"提交(?!\s?ID)": "making a token the page's query is 固定为本页查询 (提交 is kept for a git commit id)",
    r"图 ?7 ?中(?!间)": "Fig. 7 centre is 图 7 中间一栏",
    "像素之外": "'looks 40 px away' is 看向约 40 像素远处 (之外 means beyond)",
    r"（前 [^）]*/[^）]*维）": "(first {shown} of {dim} dimensions) is （共 {dim} 维，显示前 {shown} 维）",
    r"值 ?16×16": "an image is worth 16×16 words: 相当于 16×16 个词",
    "更粗或更细": "coarser or finer patches: 更大或更小的图像块",
    "哪张图": "a map is a 热力图 or 归因图: 哪张归因图值得信任？",
    r"图像块（第": "a patch's label is 图像块（行, 列）",
    r"[A-Z][A-Za-z-]+ 等 \d{4}": "citations read 'Name et al. 2021'",
    r"(?<![\w:/.-])hub\b": "one spelling: Hub",
    r"(?<!逐层)相关性": "relevance is 相关度 (相关系数 is correlation)",
    rf"(?<![*A-Za-z0-9_])\*(?!\*)[{HAN}][^*\n]*?\*(?!\*)": "no italic Chinese",
    rf"(?<![A-Za-z0-9_])_[{HAN}][^_\n]*?_(?![A-Za-z0-9_])": "no italic Chinese",
}


class Term(NamedTuple):
    """A glossary row that some page teaches: its first use there carries ``gloss`` in parentheses."""

    english: str
    chinese: str
    pages: frozenset[str]
    gloss: re.Pattern


def glossary() -> list[Term]:
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
            gloss = re.compile(re.escape(named[1])) if named else english_pattern(english)
            rows.append(Term(english, cells[1], frozenset(p.strip() for p in cells[2].split(",")), gloss))
    assert len(rows) >= 6, "the glossary lost its glossed terms"
    return sorted(rows, key=lambda r: -len(r.english))


def english_pattern(term: str) -> re.Pattern:
    return re.compile(r"\b" + r"\s+".join(map(re.escape, term.split())) + r"(?:e?s)?\b", re.IGNORECASE)


def prose(text: str) -> str:
    """Text without code spans, math, placeholders and HTML tags (which may spell terms as identifiers)."""
    text = re.sub(r"`[^`]*`|\$\$.*?\$\$|\$[^$]*\$", " ", text, flags=re.S)
    return re.sub(r"\{[^{}]*\}|%\{[^}]*\}|<[^>]+>", " ", text)


CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
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
    if CJK.search(text):
        return False
    words = [w for w in _WORD.findall(prose(text)) if w.lower() not in _KEEP and w.lower() not in allowed]
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


def page_texts(at, where: str = "all", links: bool = True) -> list[str]:
    """Every text a user can read on the page run by ``at`` (``where``: 'all', or 'main' for the page alone;
    ``links=False`` leaves out the labels of links to other pages, names like the page's own title)."""
    found: list[str] = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None and not links and type(proto).__name__ == "PageLink":
            return
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


def class_names(at) -> set[str]:

    names: set[str] = set()
    ctx = at.session_state["_vitviz_context"] if "_vitviz_context" in at.session_state else None
    labels = getattr(getattr(ctx, "loaded", None), "labels", None) or []
    for label in labels:
        names |= {w.lower() for w in re.findall(r"[A-Za-z]+", str(label))}
    return names


def assert_chinese(at, page: str) -> None:
    """No exception or error, a Chinese title, and no English prose anywhere on the page run by ``at``."""
    assert not at.exception, (page, [e.value for e in at.exception])
    assert not at.error, (page, [e.value for e in at.error])
    names = {t.chinese for t in glossary() if not CJK.search(t.chinese)}  # method names kept as published
    assert at.title and (CJK.search(at.title[0].value) or at.title[0].value in names), (
        page, [t.value for t in at.title])
    allowed = class_names(at)
    english = sorted({t for t in page_texts(at) if untranslated(t, allowed)})
    assert not english, f"{page} still shows English:\n" + "\n".join(map(repr, english[:30]))


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


def page_name(page: str | None) -> str:
    """``pages/rollout.py`` → ``rollout``; the main page → ``overview`` (the glossary's 'glossed on' names)."""
    return Path(page).stem if page else "overview"
