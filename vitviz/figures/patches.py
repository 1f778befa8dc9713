"""How the image becomes patches: the grid over the photo, and the token sequence the model receives."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from vitviz.figures.mosaics import mosaic_figure
from vitviz.figures.placement import MARGIN, grid_spec, map_extent, style_image_axes
from vitviz.figures.traces import cell_hover, grid_lines_trace, photo_trace
from vitviz.i18n import _
from vitviz.images import as_rgb_array

if TYPE_CHECKING:
    from PIL import Image

    from vitviz.figures.placement import GridLike
    from vitviz.images import InputGeometry
    from vitviz.layout import TokenLayout


__all__ = ["patch_grid_figure", "patch_sequence_figure", "rect_difference"]

Rect = tuple[float, float, float, float]  # (x0, y0, x1, y1)

CROPPED_FILL = "rgba(20,20,20,0.6)"
PADDED_FILL = "rgba(255,160,0,0.35)"


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


def _shade(rects: list[Rect], fill: str) -> list[dict]:
    return [dict(type="rect", xref="x", yref="y", x0=x0, y0=y0, x1=x1, y1=y1, fillcolor=fill,
                 line=dict(width=0), layer="above") for x0, y0, x1, y1 in rects]


def patch_grid_figure(image: Image.Image | np.ndarray, geometry: InputGeometry | None,
                      layout_or_grid: GridLike) -> go.Figure:
    """The original image with the model's patch grid drawn on the region the model sees.

    Parts of the image the model never sees (centre crop, dropped remainder) are shaded dark; parts of
    the grid beyond the image (padding) are tinted orange. Hovering a patch gives its row, column and
    token index.

    Args:
        image: original image, PIL or uint8 array.
        geometry: ``InputGeometry``, or ``None`` when the whole image was resized to the input.
        layout_or_grid: ``TokenLayout``, a patch grid with ``grid_size``/``patch_size``, or ``(gh, gw)``.

    Returns:
        Traces ``[image, hover heatmap, grid lines]``.
    """
    rgb = as_rgb_array(image)
    height, width = rgb.shape[:2]
    (gh, gw), patch, prefix = grid_spec(layout_or_grid)
    extent = map_extent(geometry, (height, width), layout_or_grid)
    rows, cols = np.indices((gh, gw), dtype=np.int32)  # (gh, gw) each
    token = len(prefix) + rows * gw + cols  # (gh, gw)
    fig = go.Figure([photo_trace(rgb)])
    fig.add_trace(go.Heatmap(
        z=np.zeros((gh, gw), dtype=np.uint8),
        x0=extent.left + extent.cell_width / 2, dx=extent.cell_width,
        y0=extent.top + extent.cell_height / 2, dy=extent.cell_height,
        customdata=np.stack([rows, cols, token], axis=-1),  # (gh, gw, 3)
        hovertemplate=cell_hover("%{customdata[0]}", "%{customdata[1]}",
                                 _("token {index}").format(index="%{customdata[2]}")) + "<extra></extra>",
        colorscale=[[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]], showscale=False, name=_("patches"),
    ))
    fig.add_trace(grid_lines_trace(extent, color="rgba(255,255,255,0.8)"))
    grid_rect = (extent.left, extent.top, extent.right, extent.bottom)
    image_rect = (0.0, 0.0, float(width), float(height))
    shapes = _shade(rect_difference(image_rect, grid_rect), CROPPED_FILL)
    shapes += _shade(rect_difference(grid_rect, image_rect), PADDED_FILL)
    fig.update_layout(shapes=shapes)
    style_image_axes(fig, (height, width), extent)
    if patch is None:
        title = _("{rows}×{cols} = {count} patches").format(rows=gh, cols=gw, count=gh * gw)
    else:
        title = _("{rows}×{cols} = {count} patches of {height}×{width} px").format(
            rows=gh, cols=gw, count=gh * gw, height=patch[0], width=patch[1])
    fig.update_layout(
        title=dict(text=title, subtitle=dict(text=_("dark: not seen by the model · orange: padding"))),
        margin=MARGIN,
    )
    return fig


def patch_sequence_figure(patches: np.ndarray, layout: TokenLayout, *, columns: int | None = None) -> go.Figure:
    """The token sequence as the model receives it: prefix tokens first (labelled grey boxes), then the
    patches in raster order, wrapped ``columns`` tokens per row.

    Args:
        patches: ``(num_patches, ph, pw, 3)`` uint8 pixels of each patch, raster order.
        layout: ``TokenLayout`` (or anything with ``grid_size`` and ``prefix_names``).
        columns: tokens per row; default twice the grid width, at most 32.

    Returns:
        Traces ``[image, hover heatmap]``; one annotation per prefix token.
    """
    patches = np.asarray(patches)
    (gh, gw), _patch_size, prefix = grid_spec(layout)
    if patches.ndim != 4 or patches.shape[0] != gh * gw:
        raise ValueError(f"expected ({gh * gw}, ph, pw, 3) patches, got {patches.shape}")
    patches = np.stack([as_rgb_array(p) for p in patches])  # (n, ph, pw, 3) uint8
    ph, pw = patches.shape[1:3]
    boxes = np.full((len(prefix), ph, pw, 3), 190, dtype=np.uint8)  # (P, ph, pw, 3)
    tokens = np.concatenate([boxes, patches])  # (P + n, ph, pw, 3)
    columns = columns or min(2 * gw, 32)
    prefix_hover, patch_hover = _("token {index}: {name}"), _("token {index}: patch row {row}, col {col}")
    hover = [prefix_hover.format(index=t, name=name) for t, name in enumerate(prefix)]
    hover += [patch_hover.format(index=len(prefix) + i, row=i // gw, col=i % gw) for i in range(gh * gw)]
    fig = mosaic_figure(tokens, columns, hover, fmt="JPEG")
    for t, name in enumerate(prefix):
        y, x = (t // columns) * (ph + 1), (t % columns) * (pw + 1)
        fig.add_annotation(x=x + pw / 2, y=y + ph / 2, text=name, showarrow=False,
                           font=dict(size=9, color="black"))
    fig.update_layout(title=dict(
        text=_("Token sequence: {prefix} prefix + {patches} patch tokens").format(prefix=len(prefix),
                                                                                  patches=gh * gw),
        subtitle=dict(text=_("read left to right, {columns} tokens per row").format(columns=columns)),
    ))
    return fig
