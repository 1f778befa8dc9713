"""Narrow windows, without a browser: long figure titles get a line break, the layout CSS reaches every page."""
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


def test_show_figure_wraps_a_long_title_and_makes_room_for_it(open_app):
    import json

    wrapped = 0
    for page in ("pages/attention.py", "pages/rollout.py"):
        at = open_app(page)
        for chart in at.get("plotly_chart"):
            layout = json.loads(chart.proto.spec)["layout"]
            title = (layout.get("title") or {}).get("text") or ""
            if "<br>" in title:
                wrapped += 1
                assert layout["title"]["yanchor"] == "top" and layout["margin"]["t"] >= 60 + 22, title
                assert title.count("<br>") >= 1, title
            else:
                assert wrap_title(title) == title, f"a long title reached the browser unwrapped: {title!r}"
        css = [h.proto.body for h in at.get("html")]
        assert any("@container vitviz-main" in body for body in css), "the layout CSS is on the page"
    assert wrapped, "no long title on these pages to check"
