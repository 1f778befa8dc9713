"""Click a patch: invisible click targets on top of a figure, and reading the clicked cell back.

Plotly heatmaps report no points to ``st.plotly_chart(on_select=...)`` (streamlit/streamlit#8760,
#15042), so a clickable figure gets one transparent scatter marker per cell, carrying ``(row, col)`` as
``customdata``. The heatmap's hover moves to those markers and ``hoverdistance=-1`` makes the nearest
marker, i.e. the cell under the pointer, the one that is hovered and clicked.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from vitviz.i18n import N_, _

__all__ = ["add_cell_targets", "add_tile_targets", "clicked_cell", "click_to_state", "CLICK_TRACE_NAME",
           "TILE_LAYER_HEAD", "TILE_POSITION"]

CLICK_TRACE_NAME = N_("click targets")
"""The click-target trace's name in English; the trace is named in the page's language (``_(CLICK_TRACE_NAME)``).
Its hover texts always name their own box, so the name is never shown, but it is a trace's name all the same."""


def _targets(x, y, customdata, hovertemplate: str | None) -> go.Scatter:
    return go.Scatter(
        x=x, y=y, customdata=customdata, mode="markers", name=_(CLICK_TRACE_NAME), showlegend=False,
        marker=dict(size=6, color="rgba(0,0,0,0)", line=dict(width=0)),
        selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)),
        hovertemplate=hovertemplate, hoverinfo=None if hovertemplate else "none",
    )


def _first_heatmap(fig: go.Figure) -> go.Heatmap | None:
    return next((t for t in fig.data if t.type == "heatmap"), None)


def add_cell_targets(fig: go.Figure, extent: Any) -> go.Figure:
    """Make each patch cell of an image overlay clickable.

    Args:
        fig: A figure in original-pixel coordinates (``vitviz.figures`` overlays).
        extent: ``vitviz.figures.MapExtent`` of its patch grid.

    Returns:
        ``fig``, with one more trace: a marker at each cell centre, customdata ``[row, col, value]``.
    """
    gh, gw = extent.grid_size
    rows, cols = np.indices((gh, gw))  # (gh, gw) each
    x = extent.left + (cols.ravel() + 0.5) * extent.cell_width
    y = extent.top + (rows.ravel() + 0.5) * extent.cell_height
    heat = _first_heatmap(fig)
    cell = _("row {row}, col {col}").format(row="%{customdata[0]}", col="%{customdata[1]}")
    hovertemplate = "{}<extra>{}</extra>".format(cell, _("click to choose"))
    values = np.zeros(gh * gw)
    if heat is not None and heat.z is not None and np.shape(heat.z) == (gh, gw):
        values = np.asarray(heat.z, dtype=np.float64).ravel()
        label = heat.name or _("value")
        hovertemplate = f"{cell}: %{{customdata[2]:.3g}}<extra>{label}</extra>"
        heat.hoverinfo = "skip"
        heat.hovertemplate = None
    customdata = np.stack([rows.ravel(), cols.ravel(), values], axis=1)  # (gh*gw, 3)
    fig.add_trace(_targets(x, y, customdata, hovertemplate))
    fig.update_layout(hovermode="closest", hoverdistance=-1, clickmode="event+select", dragmode="pan")
    return fig


TILE_POSITION = N_("position (row %{customdata[0]}, col %{customdata[1]})")
TILE_LAYER_HEAD = N_("layer %{customdata[0]}, head %{customdata[1]}")


def add_tile_targets(fig: go.Figure, label: str = TILE_POSITION) -> go.Figure:
    """Make each tile of a tiled heatmap (``tiled_heatmap_figure``: category axes) clickable, all over.

    A marker sits on each tile's middle cell, which is where the axes put their ticks; the tick text is the
    tile's index, so customdata is ``[tile row, tile col]``. With ``hoverdistance=-1`` the marker nearest the
    pointer is the one hovered and clicked: the tiles are equal and evenly spaced, so that is the marker of
    the tile under the pointer anywhere inside it (not only near its centre); the heatmap's own hover is
    skipped, or it would win inside the tiles.

    Args:
        fig: The tiled heatmap figure.
        label: Hover text of a tile, a Plotly template over ``customdata`` (e.g. :data:`TILE_LAYER_HEAD`),
            looked up in the catalogue.
    """
    xaxis, yaxis = fig.layout.xaxis, fig.layout.yaxis
    xs, ys = list(xaxis.tickvals), list(yaxis.tickvals)
    col_ids, row_ids = [int(t) for t in xaxis.ticktext], [int(t) for t in yaxis.ticktext]
    grid_x, grid_y = np.meshgrid(np.arange(len(xs)), np.arange(len(ys)))  # (A, B) each
    x = [xs[i] for i in grid_x.ravel()]
    y = [ys[i] for i in grid_y.ravel()]
    customdata = np.stack([np.asarray(row_ids)[grid_y.ravel()], np.asarray(col_ids)[grid_x.ravel()]], axis=1)
    heat = _first_heatmap(fig)
    if heat is not None:
        heat.hoverinfo = "skip"
        heat.hovertemplate = None
    fig.add_trace(_targets(x, y, customdata, "{}<extra>{}</extra>".format(_(label), _("click to enlarge"))))
    fig.update_layout(hovermode="closest", hoverdistance=-1, clickmode="event+select", dragmode="pan")
    return fig


def clicked_cell(event: Any) -> tuple[int, int] | None:
    """The ``(row, col)`` of the clicked click target in a ``st.plotly_chart`` selection event, if any."""
    if not event:
        return None
    selection = event.get("selection") if isinstance(event, dict) else getattr(event, "selection", None)
    if not selection:
        return None
    points = selection.get("points") if isinstance(selection, dict) else getattr(selection, "points", None)
    for point in points or []:
        data = point.get("customdata")
        if isinstance(data, dict):  # a typed-array row reaches Python as {"0": row, "1": col, ...}
            data = [data[k] for k in sorted(data, key=int)]
        if data is not None and len(data) >= 2:
            return int(round(float(data[0]))), int(round(float(data[1])))
    return None


def click_to_state(
    chart_key: str, row_key: str, col_key: str, *, col_as: Callable[[int], Any] = int, **also: Any
) -> Callable[[], None]:
    """An ``on_select`` callback that copies the clicked cell into two widget keys.

    Streamlit runs it before the page reruns, so the widgets it writes (e.g. a query's row and column
    number inputs) are drawn with the clicked values. A click that hits no target changes nothing.

    Args:
        chart_key: The chart's key (its selection event lives in ``st.session_state[chart_key]``).
        row_key, col_key: Widget keys receiving the clicked row and column.
        col_as: Converts the column before storing (e.g. ``str`` for a selectbox of strings).
        **also: Further keys to set on a click (e.g. ``attn_query="patch"``).
    """

    def callback() -> None:
        cell = clicked_cell(st.session_state.get(chart_key))
        if cell is None:
            return
        st.session_state[row_key] = cell[0]
        st.session_state[col_key] = col_as(cell[1])
        for key, value in also.items():
            st.session_state[key] = value

    return callback
