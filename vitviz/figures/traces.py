"""Traces: the photo, a map over it, grid lines, outlines and hover texts, and the two map figures built
from them (a map over the photo, a map on its own grid).

Figures are kept light: the photo travels once as a downscaled JPEG data URI (``vitviz.images.encode``, cached
per image), arrays travel as float32 or small integer typed arrays (Plotly serialises numpy arrays as base64).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from vitviz.i18n import _
from vitviz.images import as_rgb_array, image_size, photo_data_uri
from vitviz.images.encode import MAX_PHOTO_SIDE

from .placement import MARGIN, GridLike, MapExtent, equal_aspect, map_extent, style_image_axes

if TYPE_CHECKING:
    from vitviz.images import InputGeometry

__all__ = ["MAP_SCALE", "VALUE_FORMAT", "ColourScale", "cell_hover", "cell_outline", "grid_heatmap_figure",
           "grid_lines_trace", "map_heatmap", "overlay_figure", "photo_trace", "prefix_summary"]

MAP_SCALE = "Inferno"  # attention and rollout maps; browser components draw with the same stops
VALUE_FORMAT = ".3g"

ColourScale = str | Sequence[Sequence[float | str]]
"""A Plotly colour scale: a name (``'Viridis'``) or ``[[position, colour], ...]`` stops."""


def photo_trace(image: Image.Image | np.ndarray, *, max_side: int | None = MAX_PHOTO_SIDE) -> go.Image:
    """The photo as an ``Image`` trace spanning ``[0, W] x [0, H]`` original pixels, JPEG-compressed.

    The encoded photo is cached per image (:func:`photo_data_uri`): pass the same PIL image (or equal
    arrays) to every figure of a page and it is scaled and encoded once.
    """
    if not isinstance(image, Image.Image):
        image = as_rgb_array(image)
    source = photo_data_uri(image, max_side=max_side)
    height, width = image_size(image)
    scale = 1.0 if max_side is None else min(1.0, max_side / max(height, width))
    small_h, small_w = max(1, round(height * scale)), max(1, round(width * scale))
    dy, dx = height / small_h, width / small_w
    return go.Image(
        source=source,
        x0=dx / 2, y0=dy / 2, dx=dx, dy=dy,
        hoverinfo="skip", name=_("image"),
    )


def grid_lines_trace(extent: MapExtent, *, color: str = "rgba(255,255,255,0.45)") -> go.Scatter:
    """All patch grid lines as one ``Scatter`` trace (segments separated by ``None``)."""
    gh, gw = extent.grid_size
    xs: list[float | None] = []
    ys: list[float | None] = []
    for r in range(gh + 1):
        y = extent.top + r * extent.cell_height
        xs += [extent.left, extent.right, None]
        ys += [y, y, None]
    for c in range(gw + 1):
        x = extent.left + c * extent.cell_width
        xs += [x, x, None]
        ys += [extent.top, extent.bottom, None]
    return go.Scatter(
        x=xs, y=ys, mode="lines", line=dict(color=color, width=1),
        hoverinfo="skip", showlegend=False, name=_("patch grid"),
    )


def cell_hover(row: str, col: str, value: str) -> str:
    """Hover text ``"row r, col c: value"`` in the current language; arguments are Plotly template fields."""
    return _("row {row}, col {col}: {value}").format(row=row, col=col, value=value)


def _row_col_customdata(grid: tuple[int, int]) -> np.ndarray:
    rows, cols = np.indices(grid, dtype=np.int16)  # (gh, gw) each
    return np.stack([rows, cols], axis=-1)  # (gh, gw, 2)


def map_heatmap(
    values: np.ndarray,
    extent: MapExtent,
    *,
    colorscale: ColourScale = MAP_SCALE,
    zmin: float | None = None,
    zmax: float | None = None,
    opacity: float = 0.6,
    colorbar_title: str | None = None,
    value_label: str | None = None,
    value_format: str = VALUE_FORMAT,
    showscale: bool = True,
) -> go.Heatmap:
    """A ``(gh, gw)`` map as a heatmap in original-pixel coordinates; hover ``row r, col c: value``.

    ``value_label`` defaults to "value" in the current language.
    """
    value_label = _("value") if value_label is None else value_label
    values = np.asarray(values, dtype=np.float32)
    if values.shape != extent.grid_size:
        raise ValueError(f"map shape {values.shape} does not match grid {extent.grid_size}")
    return go.Heatmap(
        z=values,
        x0=extent.left + extent.cell_width / 2, dx=extent.cell_width,
        y0=extent.top + extent.cell_height / 2, dy=extent.cell_height,
        customdata=_row_col_customdata(extent.grid_size),
        hovertemplate=cell_hover("%{customdata[0]}", "%{customdata[1]}", f"%{{z:{value_format}}}")
        + f"<extra>{value_label}</extra>",
        colorscale=colorscale, zmin=zmin, zmax=zmax, opacity=opacity, hoverongaps=False,
        showscale=showscale, colorbar=dict(title=dict(text=colorbar_title or value_label), thickness=14),
        name=value_label,
    )


def cell_outline(extent: MapExtent, row: int, col: int, *, color: str = "#00e5ff") -> dict:
    """A layout shape outlining one patch cell (e.g. the query patch)."""
    x0, y0, x1, y1 = extent.cell_box(row, col)
    return dict(type="rect", xref="x", yref="y", x0=x0, y0=y0, x1=x1, y1=y1,
                line=dict(color=color, width=2), fillcolor="rgba(0,0,0,0)")


def prefix_summary(names: Sequence[str], values: Sequence[float], fmt: str = VALUE_FORMAT) -> str:
    """``"cls: 0.31 · reg0: 0.12"`` for the prefix tokens, or ``""`` when there are none."""
    return " · ".join(f"{name}: {value:{fmt}}" for name, value in zip(names, values))


def overlay_figure(
    values: np.ndarray,
    image: Image.Image | np.ndarray,
    geometry: InputGeometry | None = None,
    layout: GridLike | None = None,
    *,
    title: str | None = None,
    colorscale: ColourScale = MAP_SCALE,
    zmin: float | None = None,
    zmax: float | None = None,
    opacity: float = 0.6,
    value_label: str | None = None,
    value_format: str = VALUE_FORMAT,
    grid_lines: bool = True,
) -> go.Figure:
    """Draw a ``(gh, gw)`` map over the original image, on the region the model input shows.

    Args:
        values: the patch map, ``(gh, gw)``.
        image: the original (upright) image, PIL or uint8 array.
        geometry: ``InputGeometry`` mapping the model input to the original image; ``None`` when the
            whole image was resized to the input.
        layout: ``TokenLayout`` (or patch grid / ``(gh, gw)`` tuple); defaults to the map's shape.
        title: figure title.
        colorscale, zmin, zmax, opacity: heatmap colouring.
        value_label: what the values are (colour bar title, hover); default "value" in the current language.
        value_format: d3 format of the value in the hover text.
        grid_lines: draw the patch grid.

    Returns:
        Traces ``[image, heatmap]`` plus ``[grid lines]`` when ``grid_lines``.
    """
    values = np.asarray(values)
    size = image_size(image)
    extent = map_extent(geometry, size, values.shape if layout is None else layout)
    fig = go.Figure([photo_trace(image)])
    fig.add_trace(map_heatmap(values, extent, colorscale=colorscale, zmin=zmin, zmax=zmax, opacity=opacity,
                              value_label=value_label, value_format=value_format))
    if grid_lines:
        fig.add_trace(grid_lines_trace(extent))
    style_image_axes(fig, size, extent)
    fig.update_layout(title=dict(text=title), margin=MARGIN)
    return fig


def grid_heatmap_figure(
    values: np.ndarray,
    *,
    title: str | None = None,
    value_label: str | None = None,
    value_format: str = VALUE_FORMAT,
    colorscale: ColourScale = "Viridis",
    zmin: float | None = None,
    zmax: float | None = None,
    zmid: float | None = None,
    outline: tuple[int, int] | None = None,
) -> go.Figure:
    """A ``(gh, gw)`` map on its own, axes in patch rows/columns; hover ``row r, col c: value``.

    Args:
        values: the map, ``(gh, gw)``.
        outline: ``(row, col)`` of a cell to outline (e.g. the query position).
        value_label: what the values are (colour bar title, hover); default "value" in the current language.
    """
    value_label = _("value") if value_label is None else value_label
    values = np.asarray(values, dtype=np.float32)
    gh, gw = values.shape
    fig = go.Figure(go.Heatmap(
        z=values, x0=0, dx=1, y0=0, dy=1,
        hovertemplate=cell_hover("%{y}", "%{x}", f"%{{z:{value_format}}}") + f"<extra>{value_label}</extra>",
        colorscale=colorscale, zmin=zmin, zmax=zmax, zmid=zmid, hoverongaps=False,
        colorbar=dict(title=dict(text=value_label), thickness=14), name=value_label,
    ))
    fig.update_xaxes(range=[-0.5, gw - 0.5], title_text=_("patch column"), showgrid=False, zeroline=False,
                     constrain="domain")
    fig.update_yaxes(range=[gh - 0.5, -0.5], title_text=_("patch row"), showgrid=False, zeroline=False,
                     constrain="domain")
    equal_aspect(fig)
    if outline is not None:
        r, c = outline
        fig.add_shape(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5,
                      line=dict(color="#00e5ff", width=2))
    fig.update_layout(title=dict(text=title), margin=MARGIN)
    return fig
