"""Narrow windows, without a browser: long figure titles get a line break (that every page's figures are wrapped
and the layout CSS reaches every page: ``test_app_pages.py``)."""
from __future__ import annotations

import pytest

from vitviz_app.plotting import TITLE_LINE_CHARS, wrap_title


@pytest.mark.parametrize(
    "title, expected",
    [
        ("Attention rollout, layers 0–3 (class-token row; mean fusion)",
         "Attention rollout,<br>layers 0–3<br>(class-token row; mean fusion)"),
        ("Layer 0, mean over heads: attention of patch (row 1, col 2)",
         "Layer 0, mean over heads:<br>attention of patch<br>(row 1, col 2)"),
        ("What the model sees: 96×96 px, 8×8 patches", "What the model sees: 96×96 px,<br>8×8 patches"),
        ("Layer 3: attention of cls", "Layer 3: attention of cls"),
        ("x" * 80, "x" * 80),
    ],
)
def test_long_titles_break_at_a_separator_outside_brackets(title, expected):
    assert wrap_title(title) == expected
    assert wrap_title(expected) == expected, "wrapping twice changes nothing"
    assert wrap_title(title).replace("<br>", " ").replace(", ", ",").replace(",", ", ") == title.replace(
        ", ", ",").replace(",", ", "), "only line breaks are added"
    for line in expected.split("<br>"):
        if " " in line:
            assert len(line) <= TITLE_LINE_CHARS or line.startswith("("), line
        assert line.count("(") == line.count(")"), "never inside brackets"
