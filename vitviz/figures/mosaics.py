"""Mosaics: small images (patches, filters) laid out row by row as one compressed image, with hover texts
carried by an invisible one-cell-per-slot heatmap."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from vitviz.i18n import _
from vitviz.images import image_data_uri

from .placement import MARGIN, equal_aspect

__all__ = ["mosaic", "mosaic_figure", "mosaic_traces", "style_mosaic_axes"]


def mosaic(tiles: np.ndarray, columns: int, *, gap: int = 1, fill: int = 255) -> np.ndarray:
    """Place ``(n, h, w, 3)`` uint8 tiles row by row, ``columns`` per row, ``gap`` pixels apart.

    Returns:
        ``(rows*(h+gap)-gap, columns*(w+gap)-gap, 3)`` uint8; slot ``i`` starts at
        ``((i // columns)*(h+gap), (i % columns)*(w+gap))``.
    """
    tiles = np.asarray(tiles, dtype=np.uint8)
    n, h, w = tiles.shape[:3]
    rows = max(1, math.ceil(n / columns))
    out = np.full((rows * (h + gap), columns * (w + gap), 3), fill, dtype=np.uint8)
    for i in range(n):
        y, x = (i // columns) * (h + gap), (i % columns) * (w + gap)
        out[y:y + h, x:x + w] = tiles[i]
    return out[: rows * (h + gap) - gap, : columns * (w + gap) - gap]


def mosaic_traces(
    tiles: np.ndarray, columns: int, hover: Sequence[str], *, fmt: str = "PNG", gap: int = 1
) -> tuple[go.Image, go.Heatmap, tuple[int, int]]:
    """The tiles of :func:`mosaic` as one compressed image, plus an invisible one-cell-per-slot heatmap
    that carries the hover text ``hover[i]`` of slot ``i``; both in mosaic pixels.

    Returns:
        ``(image trace, hover heatmap trace, (mosaic height, mosaic width))``.
    """
    tiles = np.asarray(tiles, dtype=np.uint8)
    picture = mosaic(tiles, columns, gap=gap)
    return _image_trace(picture, fmt), _hover_heatmap(tiles.shape, columns, hover, gap), picture.shape[:2]


def _image_trace(picture: np.ndarray, fmt: str, top: float = 0.0) -> go.Image:
    """``picture`` as a compressed image trace whose top-left corner is at (0, ``top``) mosaic pixels."""
    return go.Image(source=image_data_uri(picture, max_side=None, fmt=fmt), x0=0.5, y0=top + 0.5,
                    hoverinfo="skip", name=_("tiles"))


def _hover_heatmap(shape: tuple[int, ...], columns: int, hover: Sequence[str], gap: int) -> go.Heatmap:
    """An invisible heatmap with one cell per slot of a mosaic of ``shape`` (n, h, w, 3) tiles; empty slots are gaps."""
    n, h, w = shape[:3]
    rows = max(1, math.ceil(n / columns))
    text = np.full(rows * columns, "", dtype=object)
    text[:n] = list(hover)
    present = np.full(rows * columns, np.nan, dtype=np.float32)
    present[:n] = 0
    return go.Heatmap(
        z=present.reshape(rows, columns),  # (rows, columns)
        x0=w / 2, dx=w + gap, y0=h / 2, dy=h + gap, text=text.reshape(rows, columns).tolist(),
        hovertemplate="%{text}<extra></extra>", hoverongaps=False, showscale=False,
        colorscale=[[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]], name=_("hover"),
    )


def style_mosaic_axes(fig: go.Figure, size: tuple[int, int], *, row: int | None = None,
                      col: int | None = None) -> None:
    """Hidden equal-aspect axes spanning a mosaic of ``size`` (height, width) pixels, y down."""
    fig.update_xaxes(range=[0, size[1]], visible=False, constrain="domain", row=row, col=col)
    fig.update_yaxes(range=[size[0], 0], visible=False, constrain="domain", row=row, col=col)
    equal_aspect(fig, row=row, col=col)


def mosaic_figure(
    tiles: np.ndarray, columns: int, hover: Sequence[str], *, fmt: str = "PNG", gap: int = 1
) -> go.Figure:
    """A figure of :func:`mosaic_traces`: traces ``[image, hover heatmap]``, or ``[image of the full rows, hover
    heatmap, image of the last row's tiles]`` when that row is not full.

    The last row's tiles are an image of their own, as wide as they are: a JPEG of the whole mosaic smeared
    faint colours of the last tiles over the empty slots beside them (a ghost row).
    """
    tiles = np.asarray(tiles, dtype=np.uint8)
    n, h, w = tiles.shape[:3]
    full = n // columns * columns  # tiles in full rows
    size = (max(1, math.ceil(n / columns)) * (h + gap) - gap, columns * (w + gap) - gap)  # as mosaic()'s
    if full in (0, n):
        traces = [_image_trace(mosaic(tiles, columns, gap=gap), fmt)]
    else:
        last = mosaic(tiles[full:], n - full, gap=gap)  # (h, (n - full)·(w + gap) − gap, 3): the tiles only
        traces = [_image_trace(mosaic(tiles[:full], columns, gap=gap), fmt),
                  _image_trace(last, fmt, top=full // columns * (h + gap))]
    fig = go.Figure([traces[0], _hover_heatmap(tiles.shape, columns, hover, gap), *traces[1:]])
    style_mosaic_axes(fig, size)
    fig.update_layout(margin=MARGIN, plot_bgcolor="white")
    return fig
