"""Attribution methods: which patches made the model produce its output, one signature for all.

Each method is an :class:`AttributionMethod` with one ``attribute(model, x, target, capture=None)`` entry
point returning a :class:`Relevance` over the model's own patch grid. ``METHODS`` is the one registry the
app, the notebook API (``Explanation.relevance``) and the evaluation (``vitviz.evaluation``) all read.
"""
from __future__ import annotations

from .attention import GradientRollout, RawAttention, Rollout
from .attnlrp import AttnLRP
from .base import AttributionMethod, Relevance, resolve_target
from .chefer2021 import Chefer2021
from .gradcam import GradCAM
from .input_gradient import InputGradient
from .integrated_gradients import IntegratedGradients
from .random import RandomMap

__all__ = ["METHODS", "AttributionMethod", "Relevance", "attribute", "get_method", "resolve_target"]

METHODS: dict[str, AttributionMethod] = {
    method.key: method
    for method in (
        RawAttention(), Rollout(), GradientRollout(), Chefer2021(), AttnLRP(), GradCAM(), InputGradient(),
        IntegratedGradients(), RandomMap(),
    )
}


def get_method(name: str) -> AttributionMethod:
    """The registered method called ``name`` (a key of ``METHODS``)."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown attribution method {name!r}; known: {', '.join(METHODS)}") from None


def attribute(method: str, model, x, target: int | None = None, *, capture=None) -> Relevance:
    """``get_method(method).attribute(model, x, target, capture=capture)``."""
    return get_method(method).attribute(model, x, target, capture=capture)
