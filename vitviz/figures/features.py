"""What the tokens carry: token norms per layer and a PCA colouring of patch features."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from vitviz.figures.placement import MARGIN, grid_spec, map_extent, style_image_axes
from vitviz.figures.traces import VALUE_FORMAT, cell_hover, photo_trace
from vitviz.i18n import _
from vitviz.images import as_rgb_array, image_size

if TYPE_CHECKING:
    from vitviz.figures.placement import GridLike
    from vitviz.images import InputGeometry
    from vitviz.layout import TokenLayout


__all__ = ["token_norm_figure", "feature_pca_figure", "hidden_state_name"]


def hidden_state_name(index: int, num_states: int) -> str:
    """Name hidden state ``index`` of ``num_states`` (``L+1``): the embeddings or a block's output."""
    index = index % num_states
    return _("embeddings (before block 0)") if index == 0 else _("output of block {block}").format(block=index - 1)


def token_norm_figure(norms: np.ndarray, layout: TokenLayout, layer: int = -1) -> go.Figure:
    """L2 norm of every token at one depth: patch tokens as a map (colour from 0: a length), prefix tokens as bars
    below it.

    High-norm outlier tokens (Darcet et al., "Vision Transformers Need Registers") stand out in both.

    Args:
        norms: ``(L+1, N)`` token norms per hidden state (``[0]`` enters block 0, ``[i]`` leaves block
            ``i-1``).
        layout: ``TokenLayout``.
        layer: hidden-state index (negative counts from the end).

    Returns:
        Traces ``[patch heatmap, bars]``; the bars hold each prefix token, then the patch mean and max.
    """
    norms = np.asarray(norms, dtype=np.float64)
    if norms.ndim != 2:
        raise ValueError(f"expected (L+1, N) norms, got shape {norms.shape}")
    (gh, gw), _patch_size, prefix = grid_spec(layout)
    prefix_values, patch_map = layout.split(norms[layer])  # (P,), (gh, gw)
    # the map above the bars: side by side, the map's colour bar sat on the bars' axis at narrow widths
    fig = make_subplots(rows=2, cols=1, row_heights=[0.72, 0.28], vertical_spacing=0.2,
                        subplot_titles=(_("patch tokens"), _("prefix tokens vs patches")))
    rows_domain = fig.layout.yaxis.domain
    fig.add_trace(go.Heatmap(
        z=patch_map.astype(np.float32), x0=0, dx=1, y0=0, dy=1, colorscale="Viridis",
        zmin=0.0, zmax=float(np.nanmax(patch_map)) if np.isfinite(patch_map).any() else None,  # a length: from 0
        hovertemplate=cell_hover("%{y}", "%{x}", f"%{{z:{VALUE_FORMAT}}}") + "<extra>{}</extra>".format(_("norm")),
        colorbar=dict(title=dict(text=_("norm")), thickness=14, y=sum(rows_domain) / 2, yanchor="middle",
                      len=rows_domain[1] - rows_domain[0]),
        name=_("patch norms"),
    ), row=1, col=1)
    names = [*prefix, _("patch mean"), _("patch max")]
    values = [*prefix_values, patch_map.mean(), patch_map.max()]
    colors = ["#d62728"] * len(prefix) + ["#7f7f7f"] * 2
    fig.add_trace(go.Bar(  # horizontal: the names read side by side ran into each other on a phone
        x=values, y=names, orientation="h", marker_color=colors, name=_("norms"),
        hovertemplate=f"%{{y}}: %{{x:{VALUE_FORMAT}}}<extra></extra>", showlegend=False,
    ), row=2, col=1)
    fig.update_xaxes(range=[-0.5, gw - 0.5], title_text=_("patch column"), showgrid=False, zeroline=False,
                     constrain="domain", row=1, col=1)
    fig.update_yaxes(range=[gh - 0.5, -0.5], title_text=_("patch row"), showgrid=False, zeroline=False,
                     constrain="domain", scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_xaxes(title_text=_("norm"), rangemode="tozero", row=2, col=1)
    fig.update_yaxes(autorange="reversed", row=2, col=1)  # the prefix tokens first, as in the sequence
    title = _("Token norms, {state}").format(state=hidden_state_name(layer, norms.shape[0]))
    fig.update_layout(title=dict(text=title),
                      margin=MARGIN)
    return fig


def feature_pca_figure(rgb: np.ndarray, image: Image.Image | np.ndarray, geometry: InputGeometry | None,
                       layout: GridLike | None = None) -> go.Figure:
    """Patch features coloured by their first three principal components, beside the photo.

    Both panels use original-image pixels, so a patch's colour sits where the patch is in the photo.

    Args:
        rgb: ``(gh, gw, 3)`` PCA colours, uint8 or float in 0..1.
        image: original image.
        geometry: ``InputGeometry`` (``None``: whole image resized to the input).
        layout: ``TokenLayout``; defaults to the colour map's grid.

    Returns:
        Traces ``[photo, PCA colour image]`` in two panels.
    """
    colors = as_rgb_array(rgb)  # (gh, gw, 3) uint8
    photo = image if isinstance(image, Image.Image) else as_rgb_array(image)  # a PIL photo's encoding is cached
    size = image_size(photo)
    grid = colors.shape[:2]
    if layout is not None and grid_spec(layout)[0] != grid:
        raise ValueError(f"colour map {grid} does not match layout grid {grid_spec(layout)[0]}")
    extent = map_extent(geometry, size, grid if layout is None else layout)
    cell_name = _("row {row}, col {col}")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.04, subplot_titles=(_("image"), _("features (PCA)")))
    fig.add_trace(photo_trace(photo), row=1, col=1)
    fig.add_trace(go.Image(
        z=colors, x0=extent.left + extent.cell_width / 2, dx=extent.cell_width,
        y0=extent.top + extent.cell_height / 2, dy=extent.cell_height,
        text=[[cell_name.format(row=r, col=c) for c in range(grid[1])] for r in range(grid[0])],
        hovertemplate=_("{patch}: PC rgb {rgb}").format(patch="%{text}", rgb="%{z}") + "<extra></extra>",
        name=_("PCA colours"),
    ), row=1, col=2)
    for col in (1, 2):
        style_image_axes(fig, size, extent, row=1, col=col)
    # the right panel shares the left's rows: its own y title and labels sat on the photo in a narrow chart
    fig.update_yaxes(title_text=None, showticklabels=False, row=1, col=2)
    fig.update_layout(title=dict(text=_("Patch features, first three principal components as RGB")),
                      margin=MARGIN)
    return fig
