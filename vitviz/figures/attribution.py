"""Figures that compare attribution methods: maps side by side, perturbation curves, the sanity check.

Builders take the results of ``vitviz.attribution`` and ``vitviz.evaluation`` (plain arrays and frozen
dataclasses) and return a ``go.Figure``; they never run a model.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from vitviz.figures.placement import MARGIN, map_extent, style_image_axes
from vitviz.figures.traces import grid_lines_trace, map_heatmap, photo_trace
from vitviz.i18n import N_, _
from vitviz.images import as_rgb_array

if TYPE_CHECKING:
    from collections.abc import Iterable

    from numpy.typing import ArrayLike
    from PIL import Image

    from vitviz.evaluation import Faithfulness, PerturbationBand, SanityCheck
    from vitviz.figures.placement import GridLike
    from vitviz.images import InputGeometry


__all__ = ["faithfulness_figure", "method_colors", "relevance_maps_figure", "sanity_figure", "scaled_map"]

PALETTE = qualitative.D3
BAND_FILL = "rgba(140,140,140,0.25)"
SANITY_STEPS = {"head": N_("classifier head"), "embeddings": N_("embeddings"), "original": N_("original")}
"""Display names of the sanity check's randomisation steps other than ``"block i"``."""
SMALL_PHOTO_SIDE = 320  # px of each small multiple's photo (the page shows several side by side)


def method_colors(names: Iterable[str]) -> dict[str, str]:
    """One colour per method, stable for a given list of names."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def scaled_map(values: ArrayLike) -> np.ndarray:
    """A map scaled to 0..1 by its own minimum and maximum (a constant map becomes all zeros).

    Methods produce relevance on different scales (probabilities, gradients, logit shares); only the
    ranking of the patches matters for the comparison, which this keeps.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros_like(values)
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros_like(values)
    return np.clip((np.nan_to_num(values, nan=low) - low) / (high - low), 0.0, 1.0)


def _wrap_name(name: str) -> str:
    """A method's name with a line break before its parenthesis (``"Grad-CAM<br>(last block)"``; Chinese
    names use the full-width one)."""
    for opening in (" (", "（"):
        if opening in name:
            return name.replace(opening, "<br>" + opening.strip(), 1)
    return name


def relevance_maps_figure(
    maps: Mapping[str, np.ndarray],
    image: Image.Image | np.ndarray,
    geometry: InputGeometry | None = None,
    layout: GridLike | None = None,
    *,
    columns: int = 4,
    opacity: float = 0.6,
    title: str | None = None,
) -> go.Figure:
    """Every method's map over the same photo, as small multiples (each map scaled to 0..1).

    Args:
        maps: Title -> (gh, gw) relevance map, in display order.
        image: The original image.
        geometry: ``InputGeometry`` of the model input in the image (``None``: whole image).
        layout: ``TokenLayout`` (or grid); defaults to the first map's grid.
        columns: Most panels per row.
        opacity: Heatmap opacity.
        title: Figure title.

    Returns:
        One subplot per map, each ``[photo, heatmap, grid lines]``; one shared colour bar.
    """
    if not maps:
        raise ValueError("no maps to draw")
    names = list(maps)
    columns = max(1, min(int(columns), len(names)))
    rows = math.ceil(len(names) / columns)
    rgb = as_rgb_array(image)
    first = np.asarray(maps[names[0]])
    extent = map_extent(geometry, rgb.shape[:2], first.shape if layout is None else layout)
    titles = [_wrap_name(name) for name in names]  # long names wrap, never overlap
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=0.1 if rows > 1 else 0.0)
    fig.update_annotations(font_size=12)
    photo = photo_trace(rgb, max_side=SMALL_PHOTO_SIDE)
    for i, name in enumerate(names):
        row, col = i // columns + 1, i % columns + 1
        fig.add_trace(photo, row=row, col=col)
        heat = map_heatmap(scaled_map(maps[name]), extent, zmin=0.0, zmax=1.0, opacity=opacity,
                           value_label=name, colorbar_title=_("relevance (0–1 per map)"), showscale=i == 0)
        fig.add_trace(heat, row=row, col=col)
        fig.add_trace(grid_lines_trace(extent, color="rgba(255,255,255,0.25)"), row=row, col=col)
        style_image_axes(fig, rgb.shape[:2], extent, row=row, col=col)
    fig.update_xaxes(showticklabels=False, title_text=None)
    fig.update_yaxes(showticklabels=False, title_text=None)
    panel = 260
    fig.update_layout(title=dict(text=title), margin=MARGIN, height=max(300, rows * panel + 80))
    return fig


def _band_traces(band: PerturbationBand, *, row: int, col: int, fig: go.Figure, show_legend: bool) -> None:
    x = 100 * np.asarray(band.fractions)
    count = len(band.seeds)
    fig.add_trace(go.Scatter(
        x=np.concatenate([x, x[::-1]]), y=np.concatenate([band.high, band.low[::-1]]), fill="toself",
        fillcolor=BAND_FILL, line=dict(width=0), hoverinfo="skip",
        name=_("random orders (min–max of {count})").format(count=count),
        legendgroup="random", showlegend=show_legend,
    ), row=row, col=col)
    fig.add_trace(go.Scatter(
        x=x, y=band.mean, mode="lines", line=dict(color="gray", dash="dash"), legendgroup="random",
        name=_("random (mean of {count}, AUC {auc:.3f})").format(count=count, auc=band.auc_mean)
        if show_legend else _("random (mean)"),
        showlegend=show_legend, hovertemplate=_removed_hover() + "<extra>{}</extra>".format(_("random mean")),
    ), row=row, col=col)


def _removed_hover() -> str:
    """Hover ``"30% removed: 0.412"`` of a perturbation curve (Plotly template fields filled in)."""
    return _("{removed} removed: {probability}").format(removed="%{x:.0f}%", probability="%{y:.3f}")


def faithfulness_figure(
    results: Mapping[str, Faithfulness],
    bands: Mapping[str, PerturbationBand] | None = None,
    *,
    class_name: str | None = None,
    title: str | None = None,
) -> go.Figure:
    """Perturbation curves of every method: positive perturbation on the left, negative on the right.

    Args:
        results: Method title -> ``vitviz.evaluation.Faithfulness`` (all of one removal and target).
        bands: ``'most'`` / ``'least'`` -> ``PerturbationBand`` of random orders, drawn under the curves.
        class_name: Name of the target class, for the axis title (default: "the class", translated).
        title: Figure title.
    """
    if not results:
        raise ValueError("no curves to draw")
    class_name = _("the class") if class_name is None else class_name
    colors = method_colors(results)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06, subplot_titles=(
        _("Positive perturbation: most relevant first (lower AUC is better)"),
        _("Negative perturbation: least relevant first (higher AUC is better)"),
    ))
    for col, order in ((1, "most"), (2, "least")):
        if bands and bands.get(order) is not None:
            _band_traces(bands[order], row=1, col=col, fig=fig, show_legend=col == 1)
        for name, result in results.items():
            curve = result.positive if order == "most" else result.negative
            fig.add_trace(go.Scatter(
                x=100 * np.asarray(curve.fractions), y=curve.probabilities, mode="lines+markers",
                line=dict(color=colors[name]), marker=dict(size=5), legendgroup=name, showlegend=col == 1,
                name=name, hovertemplate=_removed_hover() + f"<extra>{name} · AUC {curve.auc:.3f}</extra>",
            ), row=1, col=col)
    removal = next(iter(results.values())).removal
    unit = _("% of patch tokens dropped") if removal == "tokens" else _("% of pixels set to 0")
    fig.update_xaxes(title_text=unit, range=[0, 100 * max(
        float(r.fractions[-1]) for r in results.values())], ticksuffix="%")
    fig.update_yaxes(title_text=_("probability of {class_name}").format(class_name=class_name), range=[0, 1.02],
                     row=1, col=1)
    fig.update_layout(title=dict(text=title), margin=dict(MARGIN, b=40), height=420,
                      legend=dict(orientation="h", yanchor="top", y=-0.18, x=0))
    return fig


def _step_name(step: str) -> str:
    """A randomisation step (``"head"``, ``"block 11"``, ``"embeddings"``) in the current language."""
    if step.startswith("block "):
        return _("block {index}").format(index=step[len("block "):])
    return _(SANITY_STEPS.get(step, step))


def sanity_figure(checks: Mapping[str, SanityCheck], *, title: str | None = None) -> go.Figure:
    """Rank correlation of each method's map with its original as the model is randomised top-down.

    Args:
        checks: Method title -> ``vitviz.evaluation.SanityCheck`` (all on one model and input).
        title: Figure title.

    Returns:
        One line per method over the steps (``original``, ``head``, ``block L-1``, …); flagged methods are
        dashed with ``(flagged)`` in their name; methods that never read the head are marked in the legend;
        the flag threshold is a dotted line.
    """
    if not checks:
        raise ValueError("no sanity checks to draw")
    colors = method_colors(checks)
    fig = go.Figure()
    threshold = next(iter(checks.values())).threshold
    for name, check in checks.items():
        steps = [_("original"), *(_step_name(step) for step in check.steps)]
        values = np.concatenate([[1.0], check.correlations])
        label = name + (_(" (flagged)") if check.flagged else "")
        label += "" if check.reads_head else _(" · never reads head")
        fig.add_trace(go.Scatter(
            x=steps, y=values, mode="lines+markers", name=label,
            line=dict(color=colors[name], dash="dash" if check.flagged else "solid"),
            marker=dict(symbol="x" if check.flagged else "circle", size=8),
            hovertemplate=_("randomised up to {step}: ρ = {rho}").format(step="%{x}", rho="%{y:.3f}")
            + f"<extra>{name}</extra>",
        ))
    fig.add_hline(y=threshold, line=dict(color="crimson", dash="dot", width=1),
                  annotation_text=_("flag above ρ = {threshold:g} (after head + top block)").format(
                      threshold=threshold),
                  annotation_position="bottom right")
    fig.update_xaxes(title_text=_("randomised from the top down to"), type="category")
    fig.update_yaxes(title_text=_("Spearman rank correlation with the original map"), range=[-1.05, 1.05])
    fig.update_layout(title=dict(text=title), margin=dict(MARGIN, b=40), height=420,
                      legend=dict(orientation="h", yanchor="top", y=-0.25, x=0))
    return fig
