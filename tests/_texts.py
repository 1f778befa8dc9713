"""Reading the words a page shows: the glossary's terms, and a detector for English left on a Chinese page.

Shared by the catalogue's checks (``tests/unit/test_i18n.py``) and the pages' (``tests/app/test_app_pages.py``).
"""
from __future__ import annotations

import json
import re

from tests._pages import ROOT

__all__ = ["CJK", "assert_chinese", "first_use_without_english", "glossary", "english_pattern", "page_texts",
           "prose", "untranslated"]


def glossary() -> list[tuple[str, str]]:
    """The ✓ rows of docs/glossary.md: (English term, Chinese term), longest English first."""
    rows = []
    for line in (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[2] == "✓" and cells[0] != "English":  # not the header row
            english = cells[0].split(",")[0].strip()
            rows.append((english, cells[1]))
    assert len(rows) >= 6, "the glossary lost its checked terms"
    return sorted(rows, key=lambda r: -len(r[0]))


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
         "jpeg", "webp", "bmp", "gif", "tiff", "heic", "avif", "svg", "pth", "bin", "english", "relu", "et", "al"}


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
    assert at.title and CJK.search(at.title[0].value), (page, [t.value for t in at.title])
    allowed = class_names(at)
    english = sorted({t for t in page_texts(at) if untranslated(t, allowed)})
    assert not english, f"{page} still shows English:\n" + "\n".join(map(repr, english[:30]))


def first_use_without_english(text: str, terms: list[tuple[str, str]]) -> list[str]:
    missing = []
    for english, chinese in terms:
        longer = [c for _, c in terms if chinese in c and c != chinese]
        covered = {i for c in longer for m in re.finditer(re.escape(c), text) for i in range(m.start(), m.end())}
        uses = [m for m in re.finditer(re.escape(chinese), text) if m.start() not in covered]
        if not uses:
            continue
        after = text[uses[0].end(): uses[0].end() + 80]
        if not re.match(r"\s*[（(]\s*" + english_pattern(english).pattern.removeprefix(r"\b"), after,
                        re.IGNORECASE):
            missing.append(f"{chinese} ({english}): …{text[max(0, uses[0].start() - 20): uses[0].end() + 20]}…")
    return missing
