"""Raw attention: one query's map over the image, the layers × heads grid, and attention distance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from vitviz.figures.placement import MARGIN, grid_spec, map_extent
from vitviz.figures.tiles import tiled_heatmap_figure
from vitviz.figures.traces import MAP_SCALE, cell_outline, overlay_figure, prefix_summary
from vitviz.i18n import N_, _
from vitviz.images import image_size

if TYPE_CHECKING:
    from PIL import Image

    from vitviz.images import InputGeometry
    from vitviz.layout import TokenLayout


__all__ = ["attention_map_figure", "attention_map_titles", "attention_grid_figure", "attention_distance_figure",
           "token_name", "head_colours"]


FUSION_TITLES = {"mean": N_("mean over heads"), "max": N_("max over heads"), "min": N_("min over heads")}
"""How the title names each head fusion (the keys are the values the analysis takes)."""


def head_colours(num_heads: int) -> list[str]:
    """One clearly different colour per head: Plotly's qualitative palettes (10, or up to 24 colours);
    beyond 24 heads the colours repeat."""
    palette = qualitative.Plotly if num_heads <= len(qualitative.Plotly) else qualitative.Dark24
    return [palette[h % len(palette)] for h in range(num_heads)]


def token_name(layout: TokenLayout, token: int) -> str:
    """``"cls"``, ``"reg0"``, … for a prefix token, ``"patch (row r, col c)"`` for a patch token."""
    (gh, gw), _patch_size, prefix = grid_spec(layout)
    if not 0 <= token < len(prefix) + gh * gw:
        raise IndexError(f"token {token} out of range for {len(prefix) + gh * gw} tokens")
    if token < len(prefix):
        return prefix[token]
    row, col = divmod(token - len(prefix), gw)
    return _("patch (row {row}, col {col})").format(row=row, col=col)


def _head_name(head: int | str | None) -> str:
    if head is None:
        return _(FUSION_TITLES["mean"])
    if isinstance(head, (int, np.integer)):
        return _("head {head}").format(head=head)
    if str(head) in FUSION_TITLES:
        return _(FUSION_TITLES[str(head)])
    return _("{fusion} over heads").format(fusion=head)


def attention_map_titles(attention_row: np.ndarray, layout: TokenLayout, *, query: int, layer: int | None = None,
                         head: int | str | None = None) -> tuple[str, str]:
    """The title and subtitle of :func:`attention_map_figure` (which query, layer and heads; each prefix token's and
    all patches' share of the row's total), for views of the same map drawn elsewhere (the walk-through's step 5)."""
    _grid, _patch_size, prefix = grid_spec(layout)
    prefix_values, patch_map = layout.split(attention_row)  # (P,), (gh, gw)
    heads_text, query_text = _head_name(head), token_name(layout, query)
    if layer is None:
        title = _("{heads}: attention of {query}").format(heads=heads_text, query=query_text)
    else:
        title = _("Layer {layer}, {heads}: attention of {query}").format(layer=layer, heads=heads_text,
                                                                          query=query_text)
    total = float(prefix_values.sum() + patch_map.sum())  # 1 for one head or the mean; not for max / min
    scale = 1.0 / total if np.isfinite(total) and total > 0 else 1.0
    shares = [prefix_summary(prefix, prefix_values * scale),
              _("all patches: {share:.3g}").format(share=patch_map.sum() * scale)]
    if abs(total - 1.0) > 1e-3:
        shares.insert(0, _("shares of the fused row's total:"))
    return title, " · ".join(s for s in shares if s).replace(": · ", ": ")


def attention_map_figure(
    attention_row: np.ndarray,
    image: Image.Image | np.ndarray,
    geometry: InputGeometry | None,
    layout: TokenLayout,
    *,
    query: int,
    layer: int | None = None,
    head: int | str | None = None,
    opacity: float = 0.6,
) -> go.Figure:
    """Where one query token looks, drawn over the image; prefix tokens' shares listed apart.

    Args:
        attention_row: ``(N,)`` the query's attention probabilities over all tokens (prefix first), e.g.
            ``capture.attention_row(layer, query)[0, head]``.
        image: original image.
        geometry: ``InputGeometry`` (``None``: whole image resized to the input).
        layout: ``TokenLayout``.
        query: token index of the query; a patch query is outlined on the image.
        layer: block index, for the title.
        head: head index, or the fusion used (``"mean"``, ``"max"``, …; ``None`` means mean), for the title.
        opacity: heatmap opacity over the photo.

    Returns:
        Overlay traces ``[image, heatmap, grid lines]``; the colour scale spans 0..max over patches so a
        large class-token share does not wash the map out. The subtitle gives each prefix token's and all
        patches' share of the row's total: the attention itself for one head or the head mean, the fused
        row normalised to 1 for a max or min over heads (whose values do not sum to 1).
    """
    (gh, gw), _patch_size, prefix = grid_spec(layout)
    _prefix_values, patch_map = layout.split(attention_row)  # (P,), (gh, gw)
    title, subtitle = attention_map_titles(attention_row, layout, query=query, layer=layer, head=head)
    fig = overlay_figure(
        patch_map, image, geometry, layout, title=title,
        zmin=0.0, zmax=float(patch_map.max()) or 1.0, opacity=opacity, value_label=_("attention"),
    )
    fig.update_layout(title_subtitle_text=subtitle)
    if query >= len(prefix):
        row, col = divmod(query - len(prefix), gw)
        extent = map_extent(geometry, image_size(image), layout)
        fig.add_shape(**cell_outline(extent, row, col))
    return fig


def attention_grid_figure(
    maps: np.ndarray,
    *,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    normalize: bool = False,
    title: str | None = None,
) -> go.Figure:
    """Layers × heads grid of small attention maps in one heatmap (NaN gaps between tiles).

    Args:
        maps: ``(L, H, gh, gw)`` one query's attention over the patches, per layer and head.
        layers: block index of each row of tiles (default ``0..L-1``).
        heads: head index of each column of tiles (default ``0..H-1``).
        normalize: scale each tile to its own maximum (shows the pattern of weak late-layer heads); the
            hover then reports the fraction of the tile's maximum, and a tile whose maximum is tiny (below
            uniform attention, 1 / patches: the query looks almost only at prefix tokens) says so on the tile
            ("max 0.0003"), so that its stretched colours are not read as strong attention.
        title: figure title.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 4:
        raise ValueError(f"expected (L, H, gh, gw) maps, got shape {maps.shape}")
    num_layers, num_heads = maps.shape[:2]
    tops = maps.max(axis=(2, 3))  # (L, H)
    if normalize:
        maps = maps / np.maximum(tops[:, :, None, None], 1e-12)  # (L, H, gh, gw)
    layers = list(range(num_layers)) if layers is None else list(layers)
    heads = list(range(num_heads)) if heads is None else list(heads)
    fig = tiled_heatmap_figure(
        maps,
        rows=(layers, _("layer {t}, row {k}"), "{t}"),
        cols=(heads, _("head {t}, col {k}"), "{t}"),
        value_label=_("fraction of max") if normalize else _("attention"),
        colorscale=MAP_SCALE, zmin=0.0, zmax=1.0 if normalize else None,
        title=_("Attention per layer and head") if title is None else title,
        x_title=_("head"), y_title=_("layer"),
    )
    if normalize:
        _mark_tiny_tiles(fig, tops, layers, heads, maps.shape[2:])
    return fig


def _mark_tiny_tiles(fig: go.Figure, tops: np.ndarray, layers: Sequence[int], heads: Sequence[int],
                     grid: tuple[int, int]) -> None:
    """Write "max …" on each tile (of a grid scaled per tile) whose maximum is below uniform attention."""
    gh, gw = grid
    tiny = 1.0 / (gh * gw)
    for i, j in zip(*np.nonzero(tops < tiny)):
        fig.add_annotation(
            x=_("head {t}, col {k}").format(t=heads[j], k=gw // 2),  # tiled_heatmap_figure names the cells so
            y=_("layer {t}, row {k}").format(t=layers[i], k=gh - 1),
            text=_("max {value}").format(value=f"{tops[i, j]:.1g}"), showarrow=False, yanchor="bottom",
            font=dict(size=9, color="white"), bgcolor="rgba(0,0,0,0.55)", borderpad=1)


def attention_distance_figure(
    dist: np.ndarray, *, layers: Sequence[int] | None = None, title: str | None = None
) -> go.Figure:
    """Mean attention distance per head against depth (ViT paper, Fig. 7 right).

    Args:
        dist: ``(L, H)`` mean attention distance in input pixels.
        layers: block index of each row (default ``0..L-1``).
        title: figure title.

    Returns:
        One scatter trace per head, each with ``L`` points and its own colour (:func:`head_colours`).
    """
    dist = np.asarray(dist, dtype=np.float64)
    if dist.ndim != 2:
        raise ValueError(f"expected (L, H) distances, got shape {dist.shape}")
    num_layers, num_heads = dist.shape
    layers = np.arange(num_layers) if layers is None else np.asarray(layers)
    fig = go.Figure()
    for h, colour in enumerate(head_colours(num_heads)):
        fig.add_trace(go.Scatter(
            x=layers, y=dist[:, h], mode="markers", name=_("head {head}").format(head=h),
            marker=dict(size=7, opacity=0.8, color=colour),
            hovertemplate=_("layer {layer}, head {head}: {distance} px").format(
                layer="%{x}", head=h, distance="%{y:.1f}") + "<extra></extra>",
        ))
    fig.update_xaxes(title_text=_("network depth (layer)"), dtick=1 if num_layers <= 24 else None)
    fig.update_yaxes(title_text=_("mean attention distance (pixels)"), rangemode="tozero")
    fig.update_layout(title=dict(text=_("Mean attention distance") if title is None else title), margin=MARGIN,
                      legend=dict(title=dict(text=_("head"))))
    return fig
