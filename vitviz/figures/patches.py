"""How the image becomes patches: the grid over the photo, and the token sequence the model receives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from vitviz.figures.mosaics import mosaic_figure
from vitviz.figures.placement import (
    MARGIN,
    UNSEEN_FILL,
    Rect,
    grid_spec,
    map_extent,
    rect_difference,
    style_image_axes,
    unseen_parts,
)
from vitviz.figures.traces import cell_hover, grid_lines_trace, photo_trace
from vitviz.i18n import _
from vitviz.images import as_rgb_array

if TYPE_CHECKING:
    from PIL import Image

    from vitviz.analysis.cost import PatchCost
    from vitviz.figures.placement import GridLike
    from vitviz.images import InputGeometry
    from vitviz.layout import TokenLayout


__all__ = ["patch_cost_figure", "patch_grid_figure", "patch_sequence_figure", "rect_difference"]

CROPPED_FILL = UNSEEN_FILL  # what the model does not see (``vitviz.figures.placement`` dims it on every map)
PADDED_FILL = "rgba(255,160,0,0.35)"


def _shade(rects: list[Rect], fill: str) -> list[dict]:
    return [dict(type="rect", xref="x", yref="y", x0=x0, y0=y0, x1=x1, y1=y1, fillcolor=fill,
                 line=dict(width=0), layer="above") for x0, y0, x1, y1 in rects]


def patch_grid_figure(image: Image.Image | np.ndarray, geometry: InputGeometry | None,
                      layout_or_grid: GridLike) -> go.Figure:
    """The original image with the model's patch grid drawn on the region the model sees.

    Parts of the image the model never sees (centre crop, dropped remainder) are shaded dark; parts of
    the grid beyond the image (padding) are tinted orange; the subtitle names only the ones this image has.
    Hovering a patch gives its row, column and token index.

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
    padding = [p for p in rect_difference(grid_rect, image_rect) if min(p[2] - p[0], p[3] - p[1]) > 0.5]
    fig.update_layout(shapes=_shade(padding, PADDED_FILL))
    style_image_axes(fig, (height, width), extent)  # dims what the model does not see
    if patch is None:
        title = _("{rows}×{cols} = {count} patches").format(rows=gh, cols=gw, count=gh * gw)
    else:
        title = _("{rows}×{cols} = {count} patches of {height}×{width} px").format(
            rows=gh, cols=gw, count=gh * gw, height=patch[0], width=patch[1])
    legend = ([_("dark: not seen by the model")] if unseen_parts((height, width), extent) else []) + \
        ([_("orange: padding")] if padding else [])  # only what this image has
    fig.update_layout(title=dict(text=title, subtitle=dict(text=" · ".join(legend))), margin=MARGIN)
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


def patch_cost_figure(costs: Sequence[PatchCost], native: int) -> go.Figure:
    """What each patch size costs, relative to the native one (log scale): patch tokens ``N``, attention pairs
    ``(N + prefix)^2`` and FLOPs. Measured times are left to a table: they vary from run to run.

    Args:
        costs: one :class:`~vitviz.analysis.cost.PatchCost` per patch size (``vitviz.analysis.patch_costs``).
        native: the patch size the others are compared with (must be among ``costs``).

    Returns:
        One line per quantity, x = patch size in pixels.
    """
    costs = sorted(costs, key=lambda c: c.patch_size)
    base = next((c for c in costs if c.patch_size == native), None)
    if base is None:
        raise ValueError(f"patch size {native} is not among the costs {[c.patch_size for c in costs]}")
    series = (
        (_("patch tokens N"), lambda c: c.tokens, "dot"),
        (_("attention pairs (N²)"), lambda c: c.attention_pairs, "solid"),
        (_("FLOPs"), lambda c: c.cost.flops, "dash"),
    )
    sizes = [c.patch_size for c in costs]
    fig = go.Figure()
    for name, value, dash in series:
        ratios = [value(c) / value(base) if value(base) else float("nan") for c in costs]
        fig.add_trace(go.Scatter(x=sizes, y=ratios, name=name, mode="lines+markers", line=dict(dash=dash),
                                 hovertemplate=_("{name} at {size} px: ×{ratio}").format(
                                     name=name, size="%{x}", ratio="%{y:.3g}") + "<extra></extra>"))
    fig.update_layout(
        title=dict(text=_("Cost per patch size, relative to {native} px").format(native=native),
                   subtitle=dict(text=_("a larger patch: fewer tokens, less compute (log scale)"))),
        xaxis=dict(title=_("patch size (pixels)"), tickvals=sizes),
        yaxis=dict(title=_("× the cost at {native} px").format(native=native), type="log",
                   dtick=1),  # powers of ten only: the minor labels of a log axis ran into each other
        legend=dict(orientation="h", yanchor="top", y=-0.2),
    )
    return fig
