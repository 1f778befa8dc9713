"""Tiled heatmaps: ``(A, B, h, w)`` tiles (layers × heads, positions × positions) as one heatmap with NaN
gaps, in **categories**: one cell per category, the axis labels carry the hover text so no per-cell
``customdata`` has to be shipped to the browser."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from vitviz.i18n import _

from .placement import MARGIN, equal_aspect
from .traces import VALUE_FORMAT, ColourScale

__all__ = ["auto_stride", "tile_array", "tile_labels", "tiled_heatmap_figure"]


def tile_array(tiles: np.ndarray) -> np.ndarray:
    """Lay out ``(A, B, h, w)`` tiles as one ``(A*(h+1)-1, B*(w+1)-1)`` float32 array, NaN between tiles.

    One heatmap with NaN gaps is far lighter (in JSON and in the browser) than ``A*B`` subplots.
    """
    tiles = np.asarray(tiles, dtype=np.float32)
    a, b, h, w = tiles.shape
    padded = np.full((a, b, h + 1, w + 1), np.nan, dtype=np.float32)  # (A, B, h+1, w+1)
    padded[:, :, :h, :w] = tiles
    big = padded.transpose(0, 2, 1, 3).reshape(a * (h + 1), b * (w + 1))  # (A*(h+1), B*(w+1))
    return big[:-1, :-1]


def tile_labels(
    outer: Sequence[int], tile_len: int, cell_fmt: str, tick_fmt: str
) -> tuple[list[str], list[str], list[str]]:
    """Category labels along one axis of :func:`tile_array`, plus tick positions and tick text.

    Cell ``k`` of the tile for index ``t`` (taken from ``outer``) is labelled ``cell_fmt.format(t=t, k=k)``;
    the gap after each tile gets a unique label of zero-width spaces, never hovered since its cells are NaN.
    Ticks sit on each tile's middle cell and read ``tick_fmt.format(t=t)``.

    Returns:
        ``(labels, tickvals, ticktext)``.
    """
    labels: list[str] = []
    for i, t in enumerate(outer):
        labels += [cell_fmt.format(t=t, k=k) for k in range(tile_len)]
        if i < len(outer) - 1:
            labels.append("\u200b" * (i + 1))
    tickvals = [cell_fmt.format(t=t, k=tile_len // 2) for t in outer]
    ticktext = [tick_fmt.format(t=t) for t in outer]
    return labels, tickvals, ticktext


def tiled_heatmap_figure(
    tiles: np.ndarray,
    rows: tuple[Sequence[int], str, str],
    cols: tuple[Sequence[int], str, str],
    *,
    hover_header: str = "",
    value_label: str | None = None,
    value_format: str = VALUE_FORMAT,
    colorscale: ColourScale = "Viridis",
    zmin: float | None = None,
    zmax: float | None = None,
    zmid: float | None = None,
    title: str | None = None,
    x_title: str = "",
    y_title: str = "",
) -> go.Figure:
    """One heatmap of ``(A, B, h, w)`` tiles with NaN gaps; hover text comes from the axis categories.

    Args:
        tiles: the tiles, ``(A, B, h, w)``.
        rows: ``(outer indices (A,), cell format, tick format)`` for the y axis, see :func:`tile_labels`.
        cols: the same for the x axis (``B`` indices).
        hover_header: first hover line.
        value_label, value_format: hover line ``"{value_label} {z}"`` and colour bar title (default "value"
            in the current language).
    """
    value_label = _("value") if value_label is None else value_label
    tiles = np.asarray(tiles)
    a, b, h, w = tiles.shape
    y_labels, y_ticks, y_text = tile_labels(rows[0], h, rows[1], rows[2])
    x_labels, x_ticks, x_text = tile_labels(cols[0], w, cols[1], cols[2])
    header = f"{hover_header}<br>" if hover_header else ""
    fig = go.Figure(go.Heatmap(
        z=tile_array(tiles), x=x_labels, y=y_labels,
        hovertemplate=f"{header}%{{y}}<br>%{{x}}<br>{value_label} %{{z:{value_format}}}<extra></extra>",
        colorscale=colorscale, zmin=zmin, zmax=zmax, zmid=zmid, hoverongaps=False,
        colorbar=dict(title=dict(text=value_label), thickness=14), name=value_label,
    ))
    fig.update_xaxes(type="category", tickmode="array", tickvals=x_ticks, ticktext=x_text,
                     showgrid=False, zeroline=False, title_text=x_title, constrain="domain")
    fig.update_yaxes(type="category", tickmode="array", tickvals=y_ticks, ticktext=y_text,
                     showgrid=False, zeroline=False, title_text=y_title, autorange="reversed",
                     constrain="domain")
    equal_aspect(fig)
    fig.update_layout(title=dict(text=title), margin=MARGIN, plot_bgcolor="white")
    return fig


def auto_stride(size: int, max_tiles: int) -> int:
    """Smallest stride that keeps ``ceil(size / stride)`` at most ``max_tiles``."""
    return max(1, math.ceil(size / max_tiles))
