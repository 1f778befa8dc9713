"""Which language the app speaks in this session: English or Chinese (``vitviz.i18n``).

``app.py`` calls :func:`choose` first thing in every run, before any text is made, so that the navigation,
the sidebar, the page and the library's figures all speak the same language; the sidebar draws
:func:`switch`. The choice lives in the widget's state and in the URL (``?lang=zh``) like every other view
setting; without either, it follows the browser's language (``st.context.locale``). Only texts change:
every cache key of model and capture results ignores the language, so switching never runs the model.
"""
from __future__ import annotations

import streamlit as st

from vitviz.i18n import DEFAULT_LANGUAGE, LANGUAGES, _, match_language, set_language

__all__ = ["KEY", "choose", "switch"]

KEY = "lang"
"""The switch's widget key, which is also the URL parameter."""


def _browser_language() -> str | None:
    try:
        return match_language(st.context.locale)
    except Exception:  # an old Streamlit, or a run without a browser (AppTest): no locale to follow
        return None


def _requested() -> str:
    for value in (st.session_state.get(KEY), st.query_params.get(KEY)):
        matched = match_language(value)
        if matched is not None:
            return matched
    return _browser_language() or DEFAULT_LANGUAGE


def choose() -> str:
    """Set this run's language from the switch, the URL or the browser (in that order); return its code."""
    code = _requested()
    set_language(code)
    return code


def switch() -> str:
    """The language switch (English / 中文), bound to the URL; returns the code chosen."""
    code = _requested()
    options = list(LANGUAGES)
    st.segmented_control(
        _("Language"), options, default=code, format_func=LANGUAGES.get, required=True, key=KEY,
        bind="query-params", persist_state="session", label_visibility="collapsed",
        help=_("The language of the app. Class names, model names and downloaded settings stay English."),
    )
    return code
