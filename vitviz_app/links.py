"""Links: the view's state in the URL, as ids that read the same in every language.

Streamlit's ``bind="query-params"`` writes a widget's *shown label* into the URL (``?attn_head=注意力头+2``) and
removes a value equal to the widget's default (so a switch whose default follows ``?lang=zh`` drops ``lang``). A
state whose label is translated, or whose owner is a browser component rather than a widget, is kept in the URL
here instead: :func:`seed` reads a link once per session, into ``st.session_state`` (the one owner of the value;
a widget with the same key shows it), and :func:`publish` writes the value's id back after the page has drawn it.
Numbers, booleans and file names have no label to translate and stay bound to the URL by Streamlit.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import streamlit as st

from vitviz.i18n import LANGUAGES, language

__all__ = ["choice", "index", "publish", "seed"]

Parse = Callable[[str], Any]
"""A URL value (text) → the state's value, or None when the text names none."""


def choice(options: Iterable[Any], label: Callable[[Any], str] | None = None) -> Parse:
    """A parser for one of ``options``: its id (``str(option)``) or, for links made before ids, its label in any
    language (``label(option)``, evaluated in each language)."""
    options = list(options)
    known = {str(option): option for option in options}
    if label is not None:
        for code in LANGUAGES:
            with language(code):
                for option in options:
                    known.setdefault(label(option), option)
    return known.get


def index(size: int) -> Parse:
    """A parser for a whole number in ``0 … size - 1``."""
    def parse(text: str) -> int | None:
        text = text.strip()
        return int(text) if text.isdigit() and int(text) < size else None

    return parse


def seed(key: str, default: Any, parse: Parse, *, valid: Callable[[Any], bool] | None = None,
         scope: str | None = None) -> Any:
    """The state ``key`` for this run, kept in ``st.session_state[key]``.

    The session's own value when it has a valid one; else, once per session, the link's ``?key=`` when
    ``parse`` reads it; else ``default``. A value that is no longer valid (another model has fewer layers) falls
    back to ``default``, and so does a value chosen for another ``scope``.

    Args:
        key: The session-state key, which is also the URL parameter.
        default: The value without a link.
        parse: Reads the URL's text (:func:`choice`, :func:`index`); None means it names nothing.
        valid: Whether a value kept in the session still applies; by default, any value ``parse`` could give.
        scope: What the value was chosen for (e.g. the forward pass's key, for a class chosen among this image's
            predictions): when it changes, the choice is reset to ``default``, never kept for another input.
    """
    ok = valid or (lambda value: parse(str(value)) is not None)
    scope_key = f"_{key}_scope"
    if scope is not None and st.session_state.get(scope_key, scope) != scope:
        st.session_state[key] = default  # chosen for another input: derived choices reset with their input
    if scope is not None:
        st.session_state[scope_key] = scope
    if key in st.session_state and ok(st.session_state[key]):
        return st.session_state[key]
    value = None
    text = st.query_params.get(key)
    if text is not None and key not in st.session_state:
        value = parse(text)
    st.session_state[key] = default if value is None or not ok(value) else value
    return st.session_state[key]


def publish(key: str, value: Any, default: Any = None, *, always: bool = False) -> str | None:
    """Write ``value``'s id (``str(value)``) into the URL as ``?key=``, or remove it when ``value`` is ``default``
    (unless ``always``); only a change is sent to the browser. Returns the id written (None: removed).

    Streamlit (up to at least 1.67) does not pass a change made in a fragment's rerun on to the browser's address
    bar: a page whose state changes in a fragment also hands the ids to its browser component, which writes them
    (``committed.url``, ``vvKeepInUrl`` in ``components/lib.js``).
    """
    text = None if value == default and not always else str(value)
    if st.query_params.get(key) == text:
        return text
    if text is None:
        del st.query_params[key]
    else:
        st.query_params[key] = text
    return text
