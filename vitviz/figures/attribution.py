"""Figures that compare attribution methods: maps side by side, where an LRP map's logit went, perturbation
curves, the sanity check.

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

    from vitviz.attribution.conservation import LogitDecomposition
    from vitviz.evaluation import Faithfulness, PerturbationBand, PerturbationCurve, SanityCheck
    from vitviz.figures.placement import GridLike
    from vitviz.images import InputGeometry


__all__ = ["conservation_figure", "faithfulness_figure", "method_colors", "perturbation_figure",
           "relevance_maps_figure", "sanity_figure", "scaled_map"]

PALETTE = qualitative.D3
BAND_FILL = "rgba(140,140,140,0.25)"
SANITY_STEPS = {"head": N_("classifier head"), "final norm": N_("final norm"), "embeddings": N_("embeddings"),
                "original": N_("original")}
SANITY_METRICS = {"spearman": N_("Spearman ρ"), "spearman_abs": N_("Spearman ρ of |map|"), "ssim": N_("SSIM")}
"""Display names of the sanity check's similarities (``vitviz.evaluation.sanity.METRICS``)."""
SANITY_FIELDS = {"spearman": "correlations", "spearman_abs": "abs_correlations", "ssim": "ssim"}
ORDER_TITLES = {"most": N_("Most relevant removed first (lower AUC is better)"),
                "least": N_("Least relevant removed first (higher AUC is better)")}
"""Titles of the two perturbation orders."""
TOP_LEGEND = dict(orientation="h", yanchor="bottom", y=1.02, x=0, xanchor="left")
"""A legend above the plot, for a figure without a title: it never covers an axis title, and Plotly grows the top
margin to fit it."""
LEGEND_LINE_PX = 21
"""Height of one legend entry: on a phone-wide chart a horizontal legend puts each entry on its own line."""


def legend_height(plot: int, entries: int) -> int:
    """A figure height that leaves ``plot`` pixels to the plot even when every legend entry takes a line (a phone);
    a wide screen puts several entries on a line and gives the rest to the plot."""
    return plot + LEGEND_LINE_PX * entries + 60


BOTTOM_LEGEND = dict(orientation="h", yanchor="top", y=-0.3, x=0, xanchor="left")
"""A legend well below the x-axis title, for a figure whose title or subplot titles take the top."""
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
    colorbar: bool = True,
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
        colorbar: Draw the shared colour bar (a page that shows each map as its own figure says it once).

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
                           value_label=name, colorbar_title=_("relevance (0–1 per map)"),
                           showscale=colorbar and i == 0)
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


def _curve_trace(name: str, curve: PerturbationCurve, colour: str, show_legend: bool) -> go.Scatter:
    return go.Scatter(
        x=100 * np.asarray(curve.fractions), y=curve.probabilities, mode="lines+markers",
        line=dict(color=colour), marker=dict(size=5), legendgroup=name, showlegend=show_legend,
        name=name, hovertemplate=_removed_hover() + f"<extra>{name} · AUC {curve.auc:.3f}</extra>",
    )


def _axis_titles(fig: go.Figure, removal: str, class_name: str, last: float) -> None:
    unit = _("% of patch tokens dropped") if removal == "tokens" else _("% of pixels set to 0")
    fig.update_xaxes(title_text=unit, range=[0, 100 * last], ticksuffix="%")
    fig.update_yaxes(title_text=_("probability of {class_name}").format(class_name=class_name), range=[0, 1.02],
                     row=1, col=1)


def perturbation_figure(
    curves: Mapping[str, PerturbationCurve],
    band: PerturbationBand | None = None,
    *,
    order: str = "most",
    removal: str = "tokens",
    class_name: str | None = None,
    colors: Mapping[str, str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """One perturbation order: every method's curve (those computed so far) over the random band.

    Args:
        curves: Method title -> ``PerturbationCurve`` of ``order`` (may be empty while the curves are computed).
        band: The random band of this order, drawn under the curves.
        order: ``'most'`` (positive perturbation) or ``'least'`` (negative perturbation).
        removal: ``'tokens'`` or ``'pixels'`` (the x-axis unit).
        class_name: Name of the target class, for the axis title (default: "the class", translated).
        colors: Method title -> colour (default :func:`method_colors` of ``curves``), so that a method keeps its
            colour while more curves arrive.
        title: Figure title (default none: the legend sits above the plot, where a title would collide with it;
            :data:`ORDER_TITLES` names the order for a heading outside the figure).
    """
    class_name = _("the class") if class_name is None else class_name
    colors = dict(colors or method_colors(curves))
    fig = make_subplots(rows=1, cols=1)
    if band is not None:
        _band_traces(band, row=1, col=1, fig=fig, show_legend=True)
    for name, curve in curves.items():
        fig.add_trace(_curve_trace(name, curve, colors.get(name, "black"), True), row=1, col=1)
    last = band.fractions[-1] if band is not None else max((c.fractions[-1] for c in curves.values()), default=0.9)
    _axis_titles(fig, removal, class_name, float(last))
    entries = len(curves) + (2 if band is not None else 0)
    fig.update_layout(title=dict(text=title), margin=dict(MARGIN, t=20 if title is None else MARGIN["t"], b=40),
                      height=legend_height(340, entries), legend=TOP_LEGEND if title is None else BOTTOM_LEGEND)
    return fig


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
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=[_wrap_name(_(ORDER_TITLES[o])) for o in ("most", "least")])
    for col, order in ((1, "most"), (2, "least")):
        if bands and bands.get(order) is not None:
            _band_traces(bands[order], row=1, col=col, fig=fig, show_legend=col == 1)
        for name, result in results.items():
            curve = result.positive if order == "most" else result.negative
            fig.add_trace(_curve_trace(name, curve, colors[name], col == 1), row=1, col=col)
    first = next(iter(results.values()))
    _axis_titles(fig, first.removal, class_name, max(float(r.fractions[-1]) for r in results.values()))
    fig.update_annotations(font_size=13)
    fig.update_layout(title=dict(text=title), margin=dict(MARGIN, t=90, b=40), height=480, legend=BOTTOM_LEGEND)
    return fig


CONSERVATION_PARTS = {"patches": N_("the map (input pixels)"), "prefix": N_("prefix tokens"),
                      "position": N_("position embedding"), "biases": N_("biases"), "softmax": N_("softmax rule")}
"""Display names of the parts of an explained logit (``LogitDecomposition``), in the order they are drawn."""
CONSERVATION_COLOURS = {"patches": "#1f77b4", "prefix": "#9467bd", "position": "#2ca02c", "biases": "#ff7f0e",
                        "softmax": "#d62728"}


def logit_parts(decomposition: LogitDecomposition) -> dict[str, float]:
    """The parts of :data:`CONSERVATION_PARTS`, each a signed share of the logit (they sum to 1 up to rounding)."""
    logit = decomposition.logit
    values = {"patches": decomposition.patches, "prefix": sum(decomposition.prefix.values()),
              "position": decomposition.position, "biases": sum(decomposition.biases.values()),
              "softmax": decomposition.softmax}
    return {k: (v / logit if logit else float("nan")) for k, v in values.items()}


def conservation_figure(decompositions: Mapping[str, LogitDecomposition], *, title: str | None = None) -> go.Figure:
    """Where each LRP map's explained logit went: one horizontal bar per method, split into signed shares.

    Args:
        decompositions: Method title -> ``vitviz.attribution.conservation.LogitDecomposition``.
        title: Figure title.

    Returns:
        A relative-stacked bar chart in percent of the logit: the map's share first, then the prefix tokens,
        the position embedding, the biases and (AttnLRP) the softmax rule's bias term; negative shares to the
        left of 0.
    """
    if not decompositions:
        raise ValueError("no decompositions to draw")
    names = list(decompositions)
    shares = {name: logit_parts(d) for name, d in decompositions.items()}
    fig = go.Figure()
    for part, label in CONSERVATION_PARTS.items():
        values = [100 * shares[n][part] for n in names]
        if not any(abs(v) > 1e-9 for v in values):
            continue
        fig.add_trace(go.Bar(
            y=[_wrap_name(n) for n in names], x=values, orientation="h", name=_(label),
            marker_color=CONSERVATION_COLOURS[part],
            customdata=[[decompositions[n].logit * shares[n][part], decompositions[n].logit] for n in names],
            hovertemplate=_("{part}: {share} of the logit ({value} of {logit})").format(
                part=_(label), share="%{x:.1f}%", value="%{customdata[0]:.3f}", logit="%{customdata[1]:.3f}")
            + "<extra></extra>",
        ))
    fig.add_vline(x=100, line=dict(color="gray", dash="dot", width=1))
    fig.update_layout(barmode="relative", title=dict(text=title), margin=dict(MARGIN, b=40), legend=TOP_LEGEND,
                      height=max(200, 90 + 55 * len(names)))
    fig.update_xaxes(title_text=_("% of the explained logit"), ticksuffix="%", zeroline=True)
    fig.update_yaxes(autorange="reversed")
    return fig


def _step_name(step: str) -> str:
    """A randomisation step (``"head"``, ``"block 11"``, ``"embeddings"``) in the current language."""
    if step.startswith("block "):
        return _("block {index}").format(index=step[len("block "):])
    return _(SANITY_STEPS.get(step, step))


def sanity_figure(checks: Mapping[str, SanityCheck], *, metric: str = "spearman",
                  title: str | None = None) -> go.Figure:
    """Similarity of each method's map with its original as the model is randomised top-down.

    Args:
        checks: Method title -> ``vitviz.evaluation.SanityCheck`` (all on one model and input).
        metric: ``'spearman'`` (signed rank correlation), ``'spearman_abs'`` (of the absolute values) or
            ``'ssim'`` (structural similarity).
        title: Figure title.

    Returns:
        One line per method over the steps (``original``, ``head``, ``block L-1``, …, ``final norm``,
        ``embeddings``); flagged methods are dashed with ``(flagged)`` in their name; methods that never read the
        head are marked in the legend; for the signed Spearman ρ, the flag threshold is a dotted line.
    """
    if not checks:
        raise ValueError("no sanity checks to draw")
    if metric not in SANITY_METRICS:
        raise ValueError(f"metric must be one of {', '.join(SANITY_METRICS)}, not {metric!r}")
    colors = method_colors(checks)
    fig = go.Figure()
    threshold = next(iter(checks.values())).threshold
    label_metric = _(SANITY_METRICS[metric])
    for name, check in checks.items():
        steps = [_("original"), *(_step_name(step) for step in check.steps)]
        values = np.concatenate([[1.0], getattr(check, SANITY_FIELDS[metric])])
        label = name + (_(" (flagged)") if check.flagged else "")
        label += "" if check.reads_head else _(" · never reads head")
        fig.add_trace(go.Scatter(
            x=steps, y=values, mode="lines+markers", name=label,
            line=dict(color=colors[name], dash="dash" if check.flagged else "solid"),
            marker=dict(symbol="x" if check.flagged else "circle", size=8),
            hovertemplate=_("randomised up to {step}: {metric} = {value}").format(
                step="%{x}", metric=label_metric, value="%{y:.3f}") + f"<extra>{name}</extra>",
        ))
    if metric == "spearman":
        fig.add_hline(y=threshold, line=dict(color="crimson", dash="dot", width=1),
                      annotation_text=_("flag above ρ = {threshold:g} (after head + top block)").format(
                          threshold=threshold),
                      annotation_position="bottom right")
    # upright step names overlap on a phone (Plotly's automatic 30° turn still leaves them touching): vertical
    fig.update_xaxes(title_text=_("randomised from the top down to"), type="category", automargin=True,
                     tickangle=-90)
    fig.update_yaxes(title_text=_("{metric} with the original").format(metric=label_metric), automargin=True,
                     range=[-1.05, 1.05])
    fig.update_layout(title=dict(text=title), margin=dict(MARGIN, l=60, b=40), height=legend_height(320, len(checks)),
                      legend=TOP_LEGEND)
    return fig
