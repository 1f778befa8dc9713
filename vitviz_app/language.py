"""Which language the app speaks in this session: English or Chinese (``vitviz.i18n``).

``app.py`` calls :func:`choose` first thing in every run, before any text is made, so that the navigation,
the sidebar, the page and the library's figures all speak the same language; the sidebar draws
:func:`switch`. The choice lives in the switch's state and in the URL as a code (``?lang=zh``), written on every
run so that a copied link opens in the same language in any browser; without either, it follows the browser's
language (``st.context.locale``). Only texts change: every cache key of model and capture results ignores the
language, so switching never runs the model.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from vitviz.i18n import DEFAULT_LANGUAGE, LANGUAGES, _, keep_language, language, match_language, set_language

from . import links

__all__ = ["KEY", "choose", "switch", "url_format"]

KEY = "lang"
"""The switch's widget key, which is also the URL parameter."""


def _browser_language() -> str | None:
    try:
        return match_language(st.context.locale)
    except Exception:  # an old Streamlit, or a run without a browser (AppTest): no locale to follow
        return None


def _code(value) -> str | None:
    """A language code from a code or locale tag (``'zh-CN'``) or from the switch's label (``'中文'``): the bound
    switch writes its label into the URL, so a link copied after switching holds ``?lang=中文``."""
    by_name = {name: code for code, name in LANGUAGES.items()}
    return by_name.get(value) if value in by_name else match_language(value)


def _requested() -> str:
    for value in (st.session_state.get(KEY), st.query_params.get(KEY)):
        matched = _code(value)
        if matched is not None:
            return matched
    return _browser_language() or DEFAULT_LANGUAGE


def choose() -> str:
    """Set this run's language from the switch, the URL or the browser (in that order); return its code."""
    code = _requested()
    set_language(code)
    return code


def switch() -> str:
    """The language switch (English / 中文); returns the code chosen, which the URL holds as ``?lang=en|zh``.

    Not bound by Streamlit: a bound switch wrote its label (``?lang=中文``) and dropped a value equal to its
    default, which followed the URL, so ``/attention?lang=zh`` lost ``lang`` at once.
    """
    code = _requested()
    st.session_state[KEY] = code  # the switch shows it (a legacy ``中文`` becomes ``zh``)
    chosen = st.segmented_control(
        _("Language"), list(LANGUAGES), format_func=LANGUAGES.get, required=True, key=KEY,
        persist_state="session", label_visibility="collapsed",
        help=_("The language of the app. Class names, model names and downloaded settings stay English."),
    ) or code
    links.publish(KEY, chosen, always=True)
    return chosen


def url_format(key: str, options: Sequence[Any], label: Callable[[Any], str]) -> Callable[[Any], str]:
    """``label`` as the ``format_func`` of the URL-bound widget ``key``, for links made in any language.

    Deprecated for the app's own widgets: Streamlit then writes the label into the URL; ``vitviz_app.links``
    keeps a language-neutral id there instead.

    Streamlit writes a bound widget's *shown label* into the URL (``?attn_head=Head 0``) and reads a link back
    by matching the labels, so a link made in English would open a Chinese page on the widget's default (and a
    hand-written ``?source=Draw`` too). Called just before the widget is made, on a session's first run this
    reads a URL value that is an option's label in any language, or the option itself, and gives the widget
    that option; Streamlit then writes the label of this run's language back into the URL.

    Args:
        key: The widget's key, which is its URL parameter.
        options: The widget's options (its values).
        label: Option → shown label, made with ``_()`` in the current language.

    Returns:
        ``label`` kept in this run's language (see :func:`vitviz.i18n.keep_language`).
    """
    shown = keep_language(label)
    value = st.query_params.get(key)
    if value is None or key in st.session_state:  # no link to read, or the session has its own value
        return shown
    options = list(options)
    if value in (shown(option) for option in options):
        return shown  # Streamlit reads it itself
    known = {str(option): option for option in options}
    for code in LANGUAGES:
        with language(code):
            known.update({label(option): option for option in options})
    if value in known:
        st.session_state[key] = known[value]
    return shown
