"""A ViT beside a CNN: how far each depth reaches, whether they see alike, what each costs, how much data each needs.

Every builder takes the numbers of :func:`vitviz.compare_cnn` (a :class:`~vitviz.comparison.CnnComparison`) or
the results JSON of ``scripts/data_curves.py``, and draws exactly those numbers.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vitviz.figures.attribution import TOP_LEGEND, legend_height
from vitviz.figures.placement import MARGIN
from vitviz.figures.traces import MAP_SCALE
from vitviz.i18n import N_, _

if TYPE_CHECKING:
    from vitviz.comparison import CnnComparison

__all__ = ["ARCH_COLOURS", "DATA_SETS", "ERF_LEVELS", "cka_figure", "cost_rows", "data_curves_figure",
           "erf_levels", "erf_maps_figure", "reach_figure"]

ARCH_COLOURS = {"vit": "#1f77b4", "cnn": "#d62728"}
DATA_SETS = {"in_distribution": N_("in distribution"), "paint_solid": N_("held-out style: solid paint"),
             "paint_outline": N_("held-out style: outline paint")}
"""Image sets of ``data_curves.json``, in drawing order (the first solid, the held-out ones dashed)."""
_DASHES = ("solid", "dash", "dot")


def _depth_labels(names: Sequence[str], kind: str) -> list[str]:
    """``embed``/``blocks.3`` or ``act1``/``layer2`` as a reader's label: the ViT's embedding and block
    numbers, the CNN's stem and stage numbers."""
    if kind == "vit":
        return [_("embedding") if i == 0 else _("block {n}").format(n=i) for i in range(len(names))]
    return [_("stem") if i == 0 else _("stage {n}").format(n=i) for i in range(len(names))]


ERF_LEVELS = 255
"""The ERF maps are sent as bytes: each map's share of its peak in 255 steps (ten 96 x 96 maps take 92 KB, not the
1.1 MB of float64 numbers; a step is 0.4 % of the peak, finer than a colour scale shows)."""


def erf_levels(erf_map: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8: ``round(255 * map / max(map))`` (what :func:`erf_maps_figure` draws)."""
    erf_map = np.asarray(erf_map, dtype=np.float64)
    peak = float(erf_map.max()) or 1.0
    return np.rint(ERF_LEVELS * np.clip(erf_map / peak, 0.0, 1.0)).astype(np.uint8)


def erf_maps_figure(cmp: CnnComparison) -> go.Figure:
    """The effective receptive field at every depth: the ViT's row above, the CNN's below, each map as its share
    of its own peak (:func:`erf_levels`, 0 to 255)."""
    rows = (("vit", _("ViT"), cmp.vit_erf), ("cnn", _("CNN"), cmp.cnn_erf))
    columns = max(len(cmp.vit_erf.names), len(cmp.cnn_erf.names))
    titles = []  # the depth's number only (a phone shows five maps in a row); hovers name it in full
    for _kind, _name, erf in rows:
        titles += [str(i) for i in range(len(erf.names))] + [""] * (columns - len(erf.names))
    fig = make_subplots(rows=2, cols=columns, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=0.12, row_titles=[name for _k, name, _e in rows])
    ticks = np.linspace(0, ERF_LEVELS, 6)
    share = _("share of the peak")
    for row, (kind, name, erf) in enumerate(rows, start=1):
        for col, (erf_map, label) in enumerate(zip(erf.maps, _depth_labels(erf.names, kind)), start=1):
            fig.add_trace(go.Heatmap(
                z=erf_levels(erf_map), colorscale=MAP_SCALE, zmin=0, zmax=ERF_LEVELS,
                showscale=row == 1 and col == 1,
                colorbar=dict(title=dict(text=share), thickness=12, tickvals=ticks,
                              ticktext=[f"{t / ERF_LEVELS:.1f}" for t in ticks]),
                hovertemplate=f"{name} · {label}<br>y %{{y}}, x %{{x}}: %{{z}}/{ERF_LEVELS} "
                              f"{share}<extra></extra>"), row=row, col=col)
    fig.update_xaxes(showticklabels=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, autorange="reversed", scaleanchor="x", constrain="domain")
    for i in range(2 * columns):
        fig.layout[f"yaxis{'' if i == 0 else i + 1}"].scaleanchor = f"x{'' if i == 0 else i + 1}"
    fig.update_annotations(font_size=11)
    fig.update_layout(margin=dict(MARGIN, t=40), height=330)
    return fig


def reach_figure(cmp: CnnComparison) -> go.Figure:
    """How far each depth reaches, in input pixels: the ERF radii holding 50 % and 90 % of the gradient for
    both models, the CNN's theoretical receptive field (half its side) and the ViT's mean attention distance."""
    fig = go.Figure()
    vit, cnn = cmp.vit_erf, cmp.cnn_erf
    series = (
        ("vit", _("ViT: ERF radius, 50 %"), np.arange(len(vit.names)), vit.radius50, "solid", "circle"),
        ("vit", _("ViT: ERF radius, 90 %"), np.arange(len(vit.names)), vit.radius90, "dash", "circle-open"),
        ("cnn", _("CNN: ERF radius, 50 %"), np.arange(len(cnn.names)), cnn.radius50, "solid", "square"),
        ("cnn", _("CNN: ERF radius, 90 %"), np.arange(len(cnn.names)), cnn.radius90, "dash", "square-open"),
        ("cnn", _("CNN: theoretical field (half its side)"), np.arange(len(cmp.cnn_theory.names)),
         cmp.cnn_theory.size.max(axis=1) / 2, "dot", "triangle-up"),
        ("vit", _("ViT: mean attention distance"), np.arange(1, len(cmp.attention_distance) + 1),
         cmp.attention_distance, "dot", "diamond"),
    )
    hover = _("depth {depth}: {value} px").format(depth="%{x}", value="%{y:.1f}")
    for kind, name, x, y, dash, symbol in series:
        fig.add_trace(go.Scatter(x=x, y=np.asarray(y, dtype=np.float64), name=name, mode="lines+markers",
                                 line=dict(color=ARCH_COLOURS[kind], dash=dash), marker=dict(symbol=symbol, size=8),
                                 hovertemplate=f"{name}<br>" + hover + "<extra></extra>"))
    side = max(cmp.vit_theory.input_size)
    depths = max(len(vit.names), len(cnn.names)) - 1
    name = _("input side {side} px").format(side=side)
    fig.add_trace(go.Scatter(x=[0, depths], y=[side, side], name=name, mode="lines", hoverinfo="skip",
                             line=dict(color="grey", width=1)))
    fig.update_xaxes(title_text=_("depth"), dtick=1)
    fig.update_yaxes(title_text=_("pixels (log scale)"), type="log")
    fig.update_layout(margin=dict(MARGIN, t=20, b=40), height=legend_height(320, len(fig.data)), legend=TOP_LEGEND)
    return fig


def cka_figure(cka: np.ndarray, vit_names: Sequence[str], cnn_names: Sequence[str]) -> go.Figure:
    """Linear CKA between every ViT depth (rows) and every CNN depth (columns), 0 to 1 (Raghu et al. 2021).

    The axes number the depths (0: the ViT's embedding, the CNN's stem), so that a phone shows them side by side;
    the hover names them.
    """
    cka = np.asarray(cka, dtype=np.float64)
    rows, cols = _depth_labels(vit_names, "vit"), _depth_labels(cnn_names, "cnn")
    if cka.shape != (len(rows), len(cols)):
        raise ValueError(f"CKA {cka.shape} for {len(rows)} ViT and {len(cols)} CNN depths")
    names = np.array([[(r, c) for c in cols] for r in rows], dtype=object)  # (Lv, Lc, 2)
    fig = go.Figure(go.Heatmap(
        z=cka, x=list(range(len(cols))), y=list(range(len(rows))), zmin=0.0, zmax=1.0, colorscale="Viridis",
        text=np.round(cka, 2), texttemplate="%{text:.2f}", customdata=names,
        colorbar=dict(title=dict(text=_("CKA")), thickness=12),
        hovertemplate=_("ViT {vit} · CNN {cnn}").format(vit="%{customdata[0]}", cnn="%{customdata[1]}")
        + ": %{z:.3f}<extra></extra>"))
    fig.update_yaxes(title_text=_("ViT depth"), autorange="reversed", dtick=1)
    fig.update_xaxes(title_text=_("CNN depth"), side="bottom", dtick=1)
    fig.update_layout(margin=dict(MARGIN, t=20, b=40), height=360)
    return fig


def cost_rows(vit_cost: Any, cnn_cost: Any) -> list[dict[str, str]]:
    """One row per model (``vitviz.analysis.cost.Cost``): parameters, FLOPs and measured time, for a table."""
    rows = []
    for name, cost in ((_("ViT"), vit_cost), (_("CNN"), cnn_cost)):
        rows.append({
            _("model"): name,
            _("parameters"): _("{count:.2f} M").format(count=cost.parameters / 1e6),
            _("FLOPs per image"): _("{count:.1f} M").format(count=cost.flops / 1e6),
            _("of it in attention"): f"{cost.attention_flops / max(cost.flops, 1):.0%}",
            _("time per image"): _("{ms:.1f} ms").format(ms=cost.seconds * 1e3),
            _("input"): f"{cost.input_size[0]}×{cost.input_size[1]}",
        })
    return rows


def _summary_points(summary: Mapping[str, Any], arch: str, data_set: str) -> tuple[list, list, list]:
    sizes = sorted((int(n) for n, sets in summary.get(arch, {}).items() if data_set in sets))
    points = [summary[arch][str(n)][data_set] for n in sizes]
    return sizes, [100 * p["mean"] for p in points], [100 * p["sd"] for p in points]


def data_curves_figure(results: Mapping[str, Any]) -> go.Figure:
    """Held-out accuracy against training-set size for the ViT and the CNN, mean ± standard deviation over seeds
    (the ``summary`` of ``scripts/data_curves.py``'s JSON): in distribution solid, held-out styles dashed."""
    summary = results["summary"]
    sets = [s for s in DATA_SETS if any(s in sizes for arch in summary.values() for sizes in arch.values())]
    fig = go.Figure()
    for arch, label in (("vit", _("ViT")), ("cnn", _("CNN"))):
        for data_set, dash in zip(sets, _DASHES):
            sizes, means, sds = _summary_points(summary, arch, data_set)
            if not sizes:
                continue
            name = _("{model}, {images}").format(model=label, images=_(DATA_SETS[data_set]))
            fig.add_trace(go.Scatter(
                x=sizes, y=means, error_y=dict(type="data", array=sds, visible=True), name=name,
                mode="lines+markers", line=dict(color=ARCH_COLOURS[arch], dash=dash),
                hovertemplate=f"{name}<br>" + _("{images} training images").format(images="%{x:,}")
                + ": %{y:.1f} % ± %{error_y.array:.1f}<extra></extra>"))
    shown = sorted({int(x) for trace in fig.data for x in trace.x})  # ticks at the sizes trained on, not 2, 3, 4…
    fig.update_xaxes(title_text=_("training images (log scale)"), type="log", tickvals=shown,
                     ticktext=[f"{n:,}" for n in shown])
    fig.update_yaxes(title_text=_("held-out accuracy (%)"))
    fig.update_layout(margin=dict(MARGIN, t=20, b=40), height=legend_height(320, len(fig.data)), legend=TOP_LEGEND)
    return fig
