"""Attention rollout over the image, with a slider through the layers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from vitviz.figures.traces import overlay_figure
from vitviz.i18n import N_, _

if TYPE_CHECKING:
    from PIL import Image

    from vitviz.images import InputGeometry
    from vitviz.layout import TokenLayout


__all__ = ["rollout_figure", "rollout_title"]

HEATMAP_TRACE = 1  # overlay traces: [image, heatmap, grid lines]

QUERY_NAMES = {
    "cls": N_("class-token row"),
    "mean": N_("mean over patch queries"),
    "mean_patches": N_("mean over patch queries"),  # vitviz.analysis.RolloutResult.readout
}
METHOD_NAMES = {"rollout": N_("Attention rollout"), "gradient_rollout": N_("Gradient rollout")}
FUSION_NAMES = {"mean": N_("mean fusion"), "max": N_("max fusion"), "min": N_("min fusion")}


def _query_text(query: str) -> str:
    if query in QUERY_NAMES:
        return _(QUERY_NAMES[query])
    return _("{token} row").format(token=query)


def _layers_text(first: int, last: int) -> str:
    if first == last:
        return _("layer {layer}").format(layer=first)
    return _("layers {first}–{last}").format(first=first, last=last)


def _fusion_text(head_fusion: str) -> str:
    if head_fusion in FUSION_NAMES:
        return _(FUSION_NAMES[head_fusion])
    return _("{fusion} fusion").format(fusion=head_fusion)


def rollout_title(method: str, first: int, last: int, query: str, head_fusion: str | None = None,
                  discard_ratio: float | None = None) -> str:
    """``"Attention rollout, layers 0–3 (class-token row; max fusion, discard 0.50)"``."""
    settings = []
    if head_fusion is not None:
        settings.append(_fusion_text(head_fusion))
    if discard_ratio:
        settings.append(_("discard {ratio:.2f}").format(ratio=discard_ratio))
    details = _("; ").join([_query_text(query)] + ([_(", ").join(settings)] if settings else []))
    name = _(METHOD_NAMES[method]) if method in METHOD_NAMES else method
    return _("{method}, {layers} ({details})").format(method=name, layers=_layers_text(first, last),
                                                    details=details)


def rollout_figure(
    maps: np.ndarray,
    image: Image.Image | np.ndarray,
    geometry: InputGeometry | None,
    layout: TokenLayout | None = None,
    *,
    start_layer: int = 0,
    query: str = "cls",
    method: str = "rollout",
    opacity: float = 0.6,
    title: str | None = None,
    head_fusion: str | None = None,
    discard_ratio: float | None = None,
) -> go.Figure:
    """Cumulative attention rollout drawn over the image, one animation frame per layer.

    Frame ``i`` shows the rollout through block ``start_layer + i``; the figure opens on the last layer.
    Each frame has its own colour range (0..its maximum), since rollout concentrates with depth, and its own
    title (the layers it has rolled out), so the title follows the slider.

    Args:
        maps: ``(L', gh, gw)`` the rollout map after each layer (e.g. the class token's row of the
            cumulative rollout, patch columns only).
        image: original image.
        geometry: ``InputGeometry`` (``None``: whole image resized to the input).
        layout: ``TokenLayout``; defaults to the map's grid.
        start_layer: block index of ``maps[0]``.
        query: ``"cls"`` (class token's row), ``"mean"`` / ``"mean_patches"`` (mean over patch queries, for
            models without a class token) or another token's name.
        method: ``"rollout"`` (Abnar & Zuidema) or ``"gradient_rollout"`` (Chefer et al.), for the title.
        opacity: heatmap opacity.
        title: figure title; ``None`` names the layers, the query and the settings (:func:`rollout_title`),
            and follows the slider; ``""`` leaves the title out; any other text is kept on every frame.
        head_fusion: how heads were fused (``"mean"``, ``"max"``, ``"min"``), for the title; ``None``: unsaid.
        discard_ratio: fraction of weak links discarded, for the title (0 or ``None``: unsaid).

    Returns:
        Overlay traces ``[image, heatmap, grid lines]``, ``L'`` frames named by block index, a slider.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"expected (L, gh, gw) rollout maps, got shape {maps.shape}")
    layers = [start_layer + i for i in range(maps.shape[0])]
    top = [float(m.max()) or 1.0 for m in maps]
    titles = [title] * len(layers) if title is not None else [
        rollout_title(method, layers[0], layer, query, head_fusion, discard_ratio) for layer in layers]
    fig = overlay_figure(maps[-1], image, geometry, layout, title=titles[-1], zmin=0.0, zmax=top[-1],
                         opacity=opacity, value_label=_("rollout"))
    fig.frames = [
        go.Frame(data=[go.Heatmap(z=m, zmin=0.0, zmax=zmax)], traces=[HEATMAP_TRACE], name=str(layer),
                 layout=dict(title=dict(text=text)))
        for m, zmax, layer, text in zip(maps, top, layers, titles)
    ]
    steps = [
        dict(method="animate", label=str(layer),
             args=[[str(layer)], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                      transition=dict(duration=0))])
        for layer in layers
    ]
    fig.update_layout(sliders=[dict(
        active=len(layers) - 1, steps=steps, currentvalue=dict(prefix=_("through layer ")),
        pad=dict(t=30), len=1.0,
    )])
    return fig
