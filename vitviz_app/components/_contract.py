"""The contract between the page and its browser components, both ways.

Down: every component is mounted with one data shape, ``{payload, committed, colours, text}`` (:func:`mount_data`),
keys in snake_case (``lib.js`` describes each key). Up: what a component sends back (a click that commits a patch,
a query, a sketch) comes from the browser, so it is untrusted input. Each component's handler reads it with a
``read`` function that checks type, range and size against the page's model (:class:`Refused` otherwise) before
the page sees it; a refused value is ignored with a log line, never shown as an error (:func:`commit_handler`).
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

__all__ = ["Refused", "as_cell", "as_index", "as_number", "commit_handler", "mount_data", "read_or_none"]

_LOG = logging.getLogger("vitviz_app.components")
_SHOWN = 120  # characters of a refused value written to the log
_DIGITS = re.compile(r"[0-9]{1,6}")


class Refused(ValueError):
    """A value sent by a browser component that the page must not use; the message says why (for the log)."""


def mount_data(*, payload: str | None = None, committed: Any = None, colours: Sequence | None = None,
               text: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The data a component is mounted with.

    Args:
        payload: Id of the payload the carrier delivers (``vitviz.export``), or None.
        committed: The page's state the component opens on (plain JSON).
        colours: Colour stops ``[[t, r, g, b], ...]`` of the server figures' scale, or None.
        text: Every text the component shows, in the page's language (values may be nested mappings or lists).
    """
    return {"payload": payload, "committed": committed, "colours": colours, "text": dict(text or {})}


def as_number(value: Any, what: str, low: float, high: float) -> float:
    """``value`` as a finite float in ``[low, high]``; booleans, strings, NaN and infinities are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused(f"{what} is not a number ({type(value).__name__})")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise Refused(f"{what} {number!r} is not within [{low}, {high}]")
    return number


def as_index(value: Any, what: str, size: int, *, digits: bool = False) -> int:
    """``value`` as an index in ``range(size)``: an int or a whole float (with ``digits``, also a string of digits,
    as a head is named); booleans, other strings, NaN and infinities are refused."""
    if digits and isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused(f"{what} is not an index ({type(value).__name__})")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise Refused(f"{what} {value!r} is not a whole number")
    if not 0 <= value < size:
        raise Refused(f"{what} {value!r} is not within 0…{size - 1}")
    return int(value)


def as_cell(value: Any, grid: Sequence[int]) -> tuple[int, int]:
    """``(row, col)`` from ``{'row': …, 'col': …}``, within a grid of ``grid`` = (rows, cols)."""
    if not isinstance(value, Mapping):
        raise Refused(f"a commit is an object, not {type(value).__name__}")
    return as_index(value.get("row"), "row", int(grid[0])), as_index(value.get("col"), "column", int(grid[1]))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}… ({len(text)} characters)"


def read_or_none(read: Callable[[Any], Any], value: Any, component: str) -> Any:
    """``read(value)``, or None with a log line when ``read`` refuses it (:class:`Refused`)."""
    try:
        return read(value)
    except Refused as exc:
        _LOG.warning("%s: ignored a value from the browser (%s): %s", component, exc, _shown(value))
        return None


def commit_handler(key: str, read: Callable[[Any], Any], on_commit: Callable[[Any], None],
                   component: str) -> Callable[[], None]:
    """The change callback of a component whose trigger ``commit`` the page follows.

    It reads the trigger value of widget ``key``, checks it with ``read`` and hands what ``read`` returns to
    ``on_commit``; a value ``read`` refuses is ignored with a log line.
    """
    def handle() -> None:
        state = st.session_state.get(key)
        value = state.get("commit") if isinstance(state, Mapping) else None
        if value is None:
            return
        commit = read_or_none(read, value, component)
        if commit is not None:
            on_commit(commit)

    return handle
