"""Top-k predictions as a horizontal bar chart."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from vitviz.figures.placement import MARGIN
from vitviz.i18n import _

if TYPE_CHECKING:
    from vitviz.analysis import Prediction


__all__ = ["predictions_figure"]


def _label_and_probability(prediction: Prediction | tuple[str, float]) -> tuple[str, float]:
    """``(label, probability)`` from a ``Prediction`` (``label``/``probability``) or a pair."""
    if hasattr(prediction, "probability"):
        return str(prediction.label), float(prediction.probability)
    label, probability = prediction
    return str(label), float(probability)


def predictions_figure(predictions: Iterable[Prediction | tuple[str, float]], *, title: str | None = None) -> go.Figure:
    """Horizontal bars of the top-k classes, most probable on top, probability printed on each bar.

    Args:
        predictions: ``Prediction`` objects (``label``, ``probability``) or ``(label, probability)``
            pairs, most probable first.
        title: figure title; default "Top predictions" in the current language.

    Returns:
        One bar trace; bars sit at y = 0, 1, … (rank) with the labels as tick text, so repeated labels
        (ImageNet has two "crane" classes) stay separate bars.
    """
    title = _("Top predictions") if title is None else title
    pairs = [_label_and_probability(p) for p in predictions]
    labels = [label for label, _prob in pairs]
    probs = [prob for _label, prob in pairs]
    ranks = list(range(len(pairs)))
    fig = go.Figure(go.Bar(
        x=probs, y=ranks, orientation="h", text=[f"{p:.1%}" for p in probs], textposition="auto",
        customdata=labels, hovertemplate="%{customdata}: %{x:.2%}<extra></extra>", name=_("probability"),
        marker_color="#1f77b4",
    ))
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title_text=_("probability"))
    fig.update_yaxes(tickmode="array", tickvals=ranks, ticktext=labels, autorange="reversed",
                     title_text=None)
    fig.update_layout(title=dict(text=title), margin=MARGIN, bargap=0.25,
                      height=max(220, 70 + 32 * len(pairs)))
    return fig
