"""Margins that fit before Plotly measures: every changed figure is drawn once, not twice.

Plotly draws a figure inside its layout's margins, then measures what sticks out of the plot area (axis
titles and tick labels, a colour bar, a slider) and, when that needs more room than the margins give, draws
the whole figure a second time with wider ones (``plots.doAutoMargin`` in plotly.js). Our figures ask for
10 px on three sides, so every figure was drawn twice whenever it changed: on the Attention page a committed
patch click spent about 100 ms of the browser's main thread in the second draws of its two figures
(bench/README.md §10). :func:`reserve_margins` starts each side at an estimate of what will be pushed, from
the texts the figure holds. An estimate a little too large leaves a few pixels of white; one too small costs
the second draw, as before, and nothing else: Plotly still widens the margin.
"""
from __future__ import annotations

import math
import unicodedata
from typing import Any

import plotly.graph_objects as go

__all__ = ["reserve_margins", "text_columns", "wide_char"]

CHAR_PX = 6.6
"""Average advance of a Latin character of the 12 px chart font (a Chinese character counts two)."""
TITLE_PX = 26
"""An axis title's line and its gap to the tick labels."""
TICK_ROW_PX = 22
"""A horizontal axis's row of tick labels and its gap to the plot."""
COLOURBAR_PX = 95
"""A colour bar with short tick labels (``0.004``, ``1``): the bar, its labels and their padding."""
COLOURBAR_TITLE = (30, 8.6)
"""A colour bar's width for a longer title on top of it: ``base + px × columns`` (measured in Chromium: "attention"
needs 103 px, "fraction of max" 155 px)."""
LEGEND = (72, 6.4)
"""A legend to the right of the plot: ``base + px × columns`` of its longest entry or title (measured in Chromium:
"head 11" needs 115 px, "mean of all patches" 192 px, "注意力头 11" 131 px)."""
SLIDER_PX = 115
"""A frame slider with its play buttons under the plot."""
EDGE_PX = 10


def wide_char(char: str) -> bool:
    """A character that takes two columns (Chinese, full-width punctuation)."""
    return unicodedata.east_asian_width(char) in "WF"


def text_columns(text: str) -> int:
    """The width of a text in columns of a Latin character: a Chinese character counts two."""
    return sum(2 if wide_char(char) else 1 for char in text)


def _title(axis: Any) -> str:
    title = getattr(axis, "title", None)
    return (getattr(title, "text", None) or "") if title is not None else ""


def _number(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{value:g}" if math.isfinite(value) else ""


def _tick_labels(fig: go.Figure, axis: Any, letter: str) -> list[str]:
    """What the tick labels of ``axis`` will read, as far as the figure says: its tick texts, its category
    labels, or the ends of its range."""
    if axis.ticktext is not None:
        return [str(t) for t in axis.ticktext]
    labels: list[str] = []
    for trace in fig.data:
        values = getattr(trace, letter, None) if trace.type in ("bar", "box", "violin", "scatter") else None
        if values is not None and len(values) and isinstance(values[0], str):
            labels.extend(values)
    if labels:
        return labels
    if axis.range is not None:
        return [_number(v) for v in axis.range]
    return ["0.00"]


def _axis_visible(axis: Any) -> bool:
    return axis.visible is not False and axis.showticklabels is not False


def _colourbar_titles(fig: go.Figure) -> list[str]:
    """The titles of the colour bars the figure shows (a heatmap shows one unless told not to)."""
    titles = []
    for trace in fig.data:
        bar = None
        if trace.type in ("heatmap", "contour", "histogram2d") and trace.showscale is not False:
            bar = trace.colorbar
        elif getattr(getattr(trace, "marker", None), "showscale", None):
            bar = trace.marker.colorbar
        if bar is not None and not (getattr(trace, "coloraxis", None)):
            titles.append(_title(bar))
    return titles


_UNLISTED = ("heatmap", "image", "contour")  # traces Plotly leaves out of a legend unless told


def _legend_shown(fig: go.Figure) -> bool:
    """Plotly's rule: a legend when asked for, or by default when two or more traces would be listed."""
    if fig.layout.showlegend is not None:
        return bool(fig.layout.showlegend)
    listed = [t for t in fig.data if t.type not in _UNLISTED and t.showlegend is not False]
    return len(listed) >= 2


def _needed(fig: go.Figure) -> dict[str, int]:
    """Estimated room, per side, for what Plotly would push out of the plot area."""
    layout = fig.layout
    need = {"l": 0, "r": 0, "b": 0}
    x, y = layout.xaxis, layout.yaxis
    if _axis_visible(y) and y.side != "right":
        ticks = max((text_columns(t) for t in _tick_labels(fig, y, "y")), default=0)
        need["l"] = EDGE_PX + math.ceil(ticks * CHAR_PX) + 8 + (TITLE_PX if _title(y) else 0)
    if _axis_visible(x) and x.side != "top":
        need["b"] = EDGE_PX + TICK_ROW_PX + (TITLE_PX if _title(x) else 0)
    titles = _colourbar_titles(fig)
    if titles:
        base, per_column = COLOURBAR_TITLE
        need["r"] = max(COLOURBAR_PX, *(math.ceil(base + per_column * text_columns(t)) for t in titles))
    if layout.sliders:
        need["b"] = max(need["b"], SLIDER_PX)
    if _legend_shown(fig) and layout.legend.orientation != "h" and (layout.legend.x is None or layout.legend.x >= 1):
        names = [t.name or "" for t in fig.data if t.showlegend is not False and t.type not in _UNLISTED]
        title = _title(layout.legend)
        base, per_column = LEGEND
        need["r"] = max(need["r"], math.ceil(base + per_column * max(map(text_columns, [*names, title]))))
    return need


def reserve_margins(fig: go.Figure) -> go.Figure:
    """Widen ``fig``'s left, right and bottom margins to what its axes, colour bars and slider will need.

    Margins are only ever widened. A legend beside the plot gets room for its longest entry; one above or below
    it none (its height depends on how its entries wrap), so such a figure may still be drawn twice. Returns ``fig``.
    """
    layout = fig.layout
    current = {side: getattr(layout.margin, side) for side in ("l", "r", "b")}
    widened = {side: need for side, need in _needed(fig).items()
               if need > (current[side] if current[side] is not None else 80)}
    if widened:
        fig.update_layout(margin=widened)
    return fig
