"""Attention rollout over the image, with a slider through the layers."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from vitviz.figures._base import overlay_figure

__all__ = ["rollout_figure"]

HEATMAP_TRACE = 1  # overlay traces: [image, heatmap, grid lines]

QUERY_NAMES = {
    "cls": "class-token row",
    "mean": "mean over patch queries",
    "mean_patches": "mean over patch queries",  # vitviz.analysis.RolloutResult.readout
}
METHOD_NAMES = {"rollout": "Attention rollout", "gradient_rollout": "Gradient rollout"}


def _query_text(query: str) -> str:
    return QUERY_NAMES.get(query, f"{query} row")


def rollout_figure(
    maps: np.ndarray,
    image: Any,
    geometry: Any,
    layout: Any = None,
    *,
    start_layer: int = 0,
    query: str = "cls",
    method: str = "rollout",
    opacity: float = 0.6,
    title: str | None = None,
) -> go.Figure:
    """Cumulative attention rollout drawn over the image, one animation frame per layer.

    Frame ``i`` shows the rollout through block ``start_layer + i``; the figure opens on the last layer.
    Each frame has its own colour range (0..its maximum), since rollout concentrates with depth.

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
        title: figure title; ``None`` names the layers and the query, ``""`` leaves the title out.

    Returns:
        Overlay traces ``[image, heatmap, grid lines]``, ``L'`` frames named by block index, a slider.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"expected (L, gh, gw) rollout maps, got shape {maps.shape}")
    layers = [start_layer + i for i in range(maps.shape[0])]
    top = [float(m.max()) or 1.0 for m in maps]
    name = METHOD_NAMES.get(method, method)
    if title is None:
        title = f"{name}, layers {layers[0]}–{layers[-1]} ({_query_text(query)})"
    fig = overlay_figure(maps[-1], image, geometry, layout, title=title, zmin=0.0, zmax=top[-1],
                         opacity=opacity, value_label="rollout")
    fig.frames = [
        go.Frame(data=[go.Heatmap(z=m, zmin=0.0, zmax=zmax)], traces=[HEATMAP_TRACE], name=str(layer))
        for m, zmax, layer in zip(maps, top, layers)
    ]
    steps = [
        dict(method="animate", label=str(layer),
             args=[[str(layer)], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                      transition=dict(duration=0))])
        for layer in layers
    ]
    fig.update_layout(sliders=[dict(
        active=len(layers) - 1, steps=steps, currentvalue=dict(prefix="through layer "),
        pad=dict(t=30), len=1.0,
    )])
    return fig
