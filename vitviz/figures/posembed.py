"""Position embeddings and patch-embedding filters (ViT paper, Fig. 7 left and centre)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vitviz.figures.mosaics import mosaic_traces, style_mosaic_axes
from vitviz.figures.placement import MARGIN
from vitviz.figures.tiles import auto_stride, tiled_heatmap_figure
from vitviz.figures.traces import grid_heatmap_figure
from vitviz.i18n import _

__all__ = ["position_similarity_figure", "position_tile_figure", "embedding_filters_figure"]

SIMILARITY_SCALE = "RdBu_r"


def _check_similarity(sim: np.ndarray) -> np.ndarray:
    sim = np.asarray(sim)
    if sim.ndim != 4 or sim.shape[:2] != sim.shape[2:]:
        raise ValueError(f"expected a (gh, gw, gh, gw) similarity, got shape {sim.shape}")
    return sim


def _color_range(sim: np.ndarray, data_range: bool) -> tuple[float, float]:
    if data_range:
        return float(np.nanmin(sim)), float(np.nanmax(sim))
    return -1.0, 1.0


def position_similarity_figure(
    sim: np.ndarray, *, data_range: bool = False, max_tiles: int = 16, title: str | None = None
) -> go.Figure:
    """Cosine similarity of each position embedding with all others, one tile per position.

    Tile ``(i, j)`` is ``sim[i, j]``: how similar position ``(i, j)`` is to every position ``(r, c)``.
    All tiles form one heatmap with NaN gaps between tiles.

    Args:
        sim: ``(gh, gw, gh, gw)`` cosine similarities.
        data_range: colour by the data's min..max instead of -1..1.
        max_tiles: at most this many tiles per side; larger grids show every ``s``-th position.
        title: figure title.
    """
    sim = _check_similarity(sim)
    gh, gw = sim.shape[:2]
    sy, sx = auto_stride(gh, max_tiles), auto_stride(gw, max_tiles)
    rows, cols = list(range(0, gh, sy)), list(range(0, gw, sx))
    zmin, zmax = _color_range(sim, data_range)
    if title is None and sy == sx == 1:
        title = _("Position embedding similarity")
    elif title is None:
        title = _("Position embedding similarity (every {row_step}th row, {col_step}th column)").format(
            row_step=sy, col_step=sx)
    return tiled_heatmap_figure(
        sim[::sy, ::sx],  # (A, B, gh, gw)
        rows=(rows, _("row {t} ↔ row {k}"), "{t}"),
        cols=(cols, _("col {t} ↔ col {k}"), "{t}"),
        hover_header=_("position ↔ other position"),
        value_label=_("cosine"), value_format=".3f",
        colorscale=SIMILARITY_SCALE, zmin=zmin, zmax=zmax, title=title,
        x_title=_("input patch column"), y_title=_("input patch row"),
    )


def position_tile_figure(sim: np.ndarray, row: int, col: int, *, data_range: bool = False) -> go.Figure:
    """One position's tile enlarged: cosine similarity of position ``(row, col)`` with every position."""
    sim = _check_similarity(sim)
    zmin, zmax = _color_range(sim[row, col], data_range)
    return grid_heatmap_figure(
        sim[row, col],  # (gh, gw)
        title=_("Position (row {row}, col {col})").format(row=row, col=col),
        value_label=_("cosine"), value_format=".3f", colorscale=SIMILARITY_SCALE,
        zmin=zmin, zmax=zmax, outline=(row, col),
    ).update_layout(title_subtitle_text=_("cosine similarity to every position"))  # short lines: narrow columns


def _to_uint8_tiles(tiles: np.ndarray) -> np.ndarray:
    """Tiles as uint8: uint8 kept, floats in 0..1 scaled by 255 (so 0.5 stays the grey of a zero weight),
    other floats min-max scaled each on its own (a principal component's sign and scale are arbitrary)."""
    tiles = np.asarray(tiles)
    if tiles.dtype == np.uint8:
        return tiles
    tiles = tiles.astype(np.float64)
    if tiles.min() < 0.0 or tiles.max() > 1.0:
        lo = tiles.min(axis=(1, 2, 3), keepdims=True)  # (n, 1, 1, 1)
        tiles = (tiles - lo) / np.maximum(tiles.max(axis=(1, 2, 3), keepdims=True) - lo, 1e-12)
    return np.round(255 * tiles).astype(np.uint8)


def embedding_filters_figure(
    tiles: np.ndarray, explained_variance: np.ndarray, *, columns: int = 7
) -> go.Figure:
    """Principal components of the patch-embedding filters as RGB tiles, and the variance each explains.

    Args:
        tiles: ``(n, ph, pw, 3)`` component images, uint8 or float in 0..1 (as
            ``vitviz.analysis.embedding_filters`` returns them; other floats are scaled per tile).
        explained_variance: ``(n,)`` fraction of the filters' variance explained by each component.
        columns: tiles per row (the paper shows 28 components in rows of 7).

    Returns:
        Above: traces ``[image, hover heatmap]`` of the tiles; below: a bar per component and the cumulative
        share (stacked, not side by side: beside the tiles, the curve's axis title ran into them on a phone).
    """
    tiles = _to_uint8_tiles(tiles)
    ratio = np.asarray(explained_variance, dtype=np.float64).reshape(-1)  # (n,)
    n = tiles.shape[0]
    if ratio.size != n:
        raise ValueError(f"{n} tiles but {ratio.size} explained-variance values")
    columns = min(columns, n)
    component = _("component {index}: {share:.1%} of variance")
    hover = [component.format(index=k, share=ratio[k]) for k in range(n)]
    image, hover_map, size = mosaic_traces(tiles, columns, hover, fmt="PNG")
    fig = make_subplots(rows=2, cols=1, row_heights=[0.6, 0.4], vertical_spacing=0.14,
                        subplot_titles=(_("components"), _("explained variance")))
    fig.add_trace(image, row=1, col=1)
    fig.add_trace(hover_map, row=1, col=1)
    fig.add_trace(go.Bar(
        x=np.arange(n), y=ratio, name=_("per component"),
        hovertemplate=_("component {index}: {share}").format(index="%{x}", share="%{y:.1%}") + "<extra></extra>",
    ), row=2, col=1)
    fig.add_trace(go.Scatter(
        x=np.arange(n), y=np.cumsum(ratio), mode="lines+markers", name=_("cumulative"),
        hovertemplate=_("components 0..{index}: {share}").format(index="%{x}", share="%{y:.1%}")
        + "<extra></extra>",
    ), row=2, col=1)
    style_mosaic_axes(fig, size, row=1, col=1)
    fig.update_xaxes(title_text=_("component"), row=2, col=1)
    fig.update_yaxes(title_text=_("fraction of variance"), tickformat=".0%", rangemode="tozero", row=2, col=1)
    fig.update_layout(
        title=dict(text=_("Patch-embedding filters: first {count} principal components ({share:.0%} of variance)")
                   .format(count=n, share=ratio.sum())),
        margin=MARGIN, plot_bgcolor="white", legend=dict(orientation="h", y=-0.12),
    )
    return fig
