"""Placement: where a patch map lies over the photo, and axes that show both in original pixels.

Anything drawn over the photo uses **original pixels**: x grows right, y grows down, the photo spans
``[0, width] x [0, height]`` and a ``(gh, gw)`` map covers the region the model input shows
(``InputGeometry.crop_box``), which may reach past the photo when the input was padded.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import plotly.graph_objects as go

from vitviz.i18n import _

if TYPE_CHECKING:
    from vitviz.images import InputGeometry

__all__ = ["MARGIN", "UNSEEN_FILL", "GridLike", "MapExtent", "dim_unseen", "equal_aspect", "grid_spec", "map_extent",
           "rect_difference", "style_image_axes", "unseen_parts"]

MARGIN = dict(l=10, r=10, t=60, b=10)
UNSEEN_FILL = "rgba(20,20,20,0.6)"
"""What covers the parts of the photo the model never sees (a centre crop's sides, a dropped remainder)."""

Rect = tuple[float, float, float, float]  # (x0, y0, x1, y1)


class _HasGrid(Protocol):
    grid_size: tuple[int, int]


GridLike = _HasGrid | Sequence[int]
"""A ``TokenLayout``, a ``PatchGrid`` (anything with ``grid_size``) or a plain ``(rows, cols)`` tuple."""


@dataclass(frozen=True)
class MapExtent:
    """Where a ``(gh, gw)`` patch map lies over the original image, in original pixels.

    Attributes:
        top: y of the grid's top edge.
        left: x of the grid's left edge.
        cell_height: height of one patch cell.
        cell_width: width of one patch cell.
        grid_size: patch rows, patch columns.
    """

    top: float
    left: float
    cell_height: float
    cell_width: float
    grid_size: tuple[int, int]

    @property
    def bottom(self) -> float:
        return self.top + self.cell_height * self.grid_size[0]

    @property
    def right(self) -> float:
        return self.left + self.cell_width * self.grid_size[1]

    def cell_box(self, row: int, col: int) -> tuple[float, float, float, float]:
        """Corners ``(x0, y0, x1, y1)`` of one patch cell."""
        x0 = self.left + col * self.cell_width
        y0 = self.top + row * self.cell_height
        return x0, y0, x0 + self.cell_width, y0 + self.cell_height


def grid_spec(layout_or_grid: GridLike) -> tuple[tuple[int, int], tuple[int, int] | None, tuple[str, ...]]:
    """``(grid_size, patch_size or None, prefix_names)`` from a TokenLayout, a patch grid or a tuple.

    Anything with ``grid_size`` works (``TokenLayout``, ``PatchGrid``); ``patch_size`` and
    ``prefix_names`` are used when present. A plain ``(rows, cols)`` tuple is a grid without prefix tokens.
    """
    if hasattr(layout_or_grid, "grid_size"):
        grid = tuple(int(v) for v in layout_or_grid.grid_size)
        patch = getattr(layout_or_grid, "patch_size", None)
        patch = None if patch is None else tuple(int(v) for v in np.broadcast_to(patch, (2,)))
        prefix = tuple(getattr(layout_or_grid, "prefix_names", ()))
        return (grid[0], grid[1]), patch, prefix
    rows, cols = (int(v) for v in layout_or_grid)
    return (rows, cols), None, ()


def map_extent(geometry: InputGeometry | None, image_size: tuple[int, int], layout_or_grid: GridLike) -> MapExtent:
    """Place a patch grid over the original image.

    The grid starts at the model input's top-left corner. With a known patch size a cell spans
    ``patch_size`` input pixels, so a grid that covers more or less than the input (padding or dropped
    remainder) is still placed exactly; otherwise the grid is spread evenly over the crop box.

    Args:
        geometry: ``InputGeometry`` (``crop_box``, ``input_size``); ``None`` means the whole image was
            resized to the input without cropping (the layout's ``input_size``, or a ``PatchGrid``'s
            ``image_size``, is then the input).
        image_size: original image (height, width), used when ``geometry`` is ``None``.
        layout_or_grid: see :func:`grid_spec`.
    """
    grid, patch, _prefix = grid_spec(layout_or_grid)
    if geometry is None:
        top, left, box_h, box_w = 0.0, 0.0, float(image_size[0]), float(image_size[1])
        # TokenLayout.input_size, or PatchGrid.image_size (a grid cut from the image's own pixels)
        input_size = getattr(layout_or_grid, "input_size", None) or getattr(layout_or_grid, "image_size", None)
    else:
        top, left, box_h, box_w = (float(v) for v in geometry.crop_box)
        input_size = getattr(geometry, "input_size", None)
    if patch is not None and input_size is not None:
        cell_h = patch[0] * box_h / input_size[0]
        cell_w = patch[1] * box_w / input_size[1]
    else:
        cell_h, cell_w = box_h / grid[0], box_w / grid[1]
    return MapExtent(top, left, cell_h, cell_w, grid)


def rect_difference(outer: Rect, inner: Rect) -> list[Rect]:
    """The parts of ``outer`` not covered by ``inner``, as at most four disjoint rectangles.

    Bands above and below ``inner`` span the full width of ``outer``; bands left and right span only the
    rows ``inner`` covers.
    """
    ox0, oy0, ox1, oy1 = outer
    ix0, iy0 = min(max(inner[0], ox0), ox1), min(max(inner[1], oy0), oy1)
    ix1, iy1 = max(min(inner[2], ox1), ix0), max(min(inner[3], oy1), iy0)
    if ix0 >= ix1 or iy0 >= iy1:
        return [outer] if ox0 < ox1 and oy0 < oy1 else []
    parts = [(ox0, oy0, ox1, iy0), (ox0, iy1, ox1, oy1), (ox0, iy0, ix0, iy1), (ix1, iy0, ox1, iy1)]
    return [p for p in parts if p[2] > p[0] and p[3] > p[1]]


def unseen_parts(image_size: tuple[int, int], extent: MapExtent, tolerance: float = 0.5) -> list[Rect]:
    """The parts of a photo of ``image_size`` (height, width) outside the map, i.e. never seen by the model,
    as ``(x0, y0, x1, y1)`` rectangles; slivers thinner than ``tolerance`` original pixels are left out."""
    height, width = image_size
    parts = rect_difference((0.0, 0.0, float(width), float(height)),
                            (extent.left, extent.top, extent.right, extent.bottom))
    return [p for p in parts if min(p[2] - p[0], p[3] - p[1]) > tolerance]


def dim_unseen(fig: go.Figure, image_size: tuple[int, int], extent: MapExtent, *, row: int | None = None,
               col: int | None = None) -> bool:
    """Cover the parts of the photo the model never sees (:func:`unseen_parts`) with :data:`UNSEEN_FILL`, in the
    whole figure or one subplot; returns whether there were any."""
    parts = unseen_parts(image_size, extent)
    xref, yref = "x", "y"
    if row is not None:
        subplot = fig.get_subplot(row, col)
        xref, yref = subplot.xaxis.plotly_name.replace("axis", ""), subplot.yaxis.plotly_name.replace("axis", "")
    for x0, y0, x1, y1 in parts:
        fig.add_shape(type="rect", xref=xref, yref=yref, x0=x0, y0=y0, x1=x1, y1=y1, fillcolor=UNSEEN_FILL,
                      line=dict(width=0), layer="above")
    return bool(parts)


def style_image_axes(
    fig: go.Figure, image_size: tuple[int, int], extent: MapExtent | None = None, *, row: int | None = None,
    col: int | None = None, dim: bool = True,
) -> None:
    """Equal-aspect axes in original pixels, y pointing down, covering the image and the map; with ``dim``, the
    parts of the photo outside the map (never seen by the model) are dimmed (:func:`dim_unseen`)."""
    height, width = image_size
    x_lo, x_hi, y_lo, y_hi = 0.0, float(width), 0.0, float(height)
    if extent is not None:
        x_lo, x_hi = min(x_lo, extent.left), max(x_hi, extent.right)
        y_lo, y_hi = min(y_lo, extent.top), max(y_hi, extent.bottom)
    fig.update_xaxes(range=[x_lo, x_hi], showgrid=False, zeroline=False, constrain="domain",
                     title_text=_("x (px)"), row=row, col=col)
    fig.update_yaxes(range=[y_hi, y_lo], showgrid=False, zeroline=False, constrain="domain",
                     title_text=_("y (px)"), row=row, col=col)
    equal_aspect(fig, row=row, col=col)
    if dim and extent is not None:
        dim_unseen(fig, image_size, extent, row=row, col=col)


def equal_aspect(fig: go.Figure, *, row: int | None = None, col: int | None = None) -> None:
    """Give the y axis of the figure (or of one subplot) the x axis's scale: square pixels and cells."""
    if row is None:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
        return
    xaxis = fig.get_subplot(row, col).xaxis.plotly_name  # 'xaxis2'
    fig.update_yaxes(scaleanchor=xaxis.replace("axis", ""), scaleratio=1, row=row, col=col)
