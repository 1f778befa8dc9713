"""Words a user reads, in the user's language: one gettext catalogue per language.

Every user-facing text in vitviz (figure titles, axis and hover texts, error messages) and in the app is
written in English inside ``_()`` and looked up in the catalogue of the current language::

    from vitviz.i18n import _

    title = _("Attention of patch ({row}, {col})").format(row=r, col=c)

Rules that keep the catalogue extractable and the translations safe:

- the text inside ``_()`` is a literal (no f-string, no concatenation with variables): values go in
  through named ``{placeholders}`` and ``.format()`` after the lookup, so that a translation can move them;
- texts defined at import time (module constants, option labels) are marked with ``N_()``, which only marks
  them for extraction, and translated where they are shown, with ``_(CONSTANT)``;
- data stays English: class names, model names, file names and the keys of exported settings.

The catalogues are ``vitviz/locale/<language>/LC_MESSAGES/vitviz.po``, edited by translators and updated
from the code by ``python scripts/i18n.py update``. They are compiled in memory on first use (Babel), so no
generated ``.mo`` file is committed. English needs no catalogue: it is the text in the code.

The language is a context variable, so each thread (each Streamlit session's script run) has its own:
the app sets it at the top of every run; a notebook calls :func:`set_language` or uses :func:`language`.
The glossary the translations follow is ``docs/glossary.md``.
"""
from __future__ import annotations

import gettext
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar

__all__ = ["LANGUAGES", "DEFAULT_LANGUAGE", "DOMAIN", "LOCALE_DIR", "Message", "N_", "_", "catalogue_path",
           "get_language", "keep_language", "language", "match_language", "ngettext", "sentences", "set_language",
           "translations"]

LANGUAGES = {"en": "English", "zh": "中文"}
"""Language codes the app speaks, with each language's name in itself (for the switch)."""
DEFAULT_LANGUAGE = "en"
DOMAIN = "vitviz"
LOCALE_DIR = Path(__file__).parent / "locale"

_current: ContextVar[str] = ContextVar("vitviz_language", default=DEFAULT_LANGUAGE)


def match_language(tag: str | None) -> str | None:
    """The supported language for a browser or POSIX locale tag (``'zh-CN'``, ``'zh_Hans'``, ``'en-US'``).

    Returns:
        A key of :data:`LANGUAGES`, or None when the tag names no language vitviz speaks.
    """
    if not tag:
        return None
    primary = str(tag).replace("_", "-").split("-")[0].strip().lower()
    return primary if primary in LANGUAGES else None


def set_language(code: str) -> None:
    """Speak ``code`` (a key of :data:`LANGUAGES`, or a locale tag such as ``'zh-CN'``) in this context."""
    matched = match_language(code)
    if matched is None:
        raise ValueError(f"unsupported language {code!r}; choose one of {sorted(LANGUAGES)}")
    _current.set(matched)


def get_language() -> str:
    """The language of the current context (``'en'`` unless set)."""
    return _current.get()


@contextmanager
def language(code: str) -> Iterator[None]:
    """Speak ``code`` inside the ``with`` block, then go back to the previous language."""
    matched = match_language(code)
    if matched is None:
        raise ValueError(f"unsupported language {code!r}; choose one of {sorted(LANGUAGES)}")
    token = _current.set(matched)
    try:
        yield
    finally:
        _current.reset(token)


_Result = TypeVar("_Result")


def keep_language(func: Callable[..., _Result]) -> Callable[..., _Result]:
    """``func``, always called in the language of the context that wraps it, wherever it is called later.

    For callbacks whose texts are made after the script run that defines them: a widget's ``format_func``
    (Streamlit's ``AppTest`` formats a widget's value again from the test's own thread, where the session's
    language is not set) or a cached builder.
    """
    code = get_language()

    def in_language(*args, **kwargs) -> _Result:
        with language(code):
            return func(*args, **kwargs)

    return in_language


def catalogue_path(code: str) -> Path:
    """Where the editable catalogue (``.po``) of a language lives."""
    return LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(code: str) -> gettext.NullTranslations:
    """The compiled catalogue of a language (compiled once per process; fuzzy entries are left out).

    English, and a language whose catalogue is missing, give the texts as written in the code.
    """
    path = catalogue_path(code)
    if code == DEFAULT_LANGUAGE or not path.is_file():
        return gettext.NullTranslations()
    # babel: needed only for a language other than English, on first use
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with path.open("rb") as handle:
        catalog = read_po(handle, locale=code, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # fuzzy (unreviewed) entries are not written: their English shows instead
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _(message: str) -> str:
    """``message`` in the current language (as written when it has no translation)."""
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for the count ``n``, in the current language."""
    return translations(_current.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it (for texts defined at import time)."""
    return message


def sentences(*parts: str) -> str:
    """Sentences one after the other, as the current language writes them (English: a space between)."""
    text = parts[0]
    for part in parts[1:]:
        # TRANSLATORS: two sentences one after the other; Chinese needs no space between them.
        text = _("{sentence} {next_sentence}").format(sentence=text, next_sentence=part)
    return text


@dataclass(frozen=True)
class Message:
    """A sentence for the user kept as its English text and values, so that whoever reads it gets it in their
    own language: ``str(message)`` looks the text up in the current language's catalogue and fills it in.

    A loaded model or a download in flight is shared by every session (whatever their language), so what it
    says cannot be a finished sentence. A value may itself be a :class:`Message` (translated too).

    Attributes:
        text: The English text, marked for extraction where it is written (``N_()``), with ``{placeholders}``.
        values: ``(name, value)`` pairs for the placeholders; each value is shown with ``str()``.
    """

    text: str
    values: tuple[tuple[str, object], ...] = ()

    def __str__(self) -> str:
        return _(self.text).format(**{name: str(value) for name, value in self.values})
