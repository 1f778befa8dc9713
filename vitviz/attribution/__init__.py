"""Attribution methods: which patches made the model produce its output, one signature for all.

Each method is an :class:`AttributionMethod` with one ``attribute(model, x, target, capture=None)`` entry
point returning a :class:`Relevance` over the model's own patch grid. ``METHODS`` is the one registry the
app, the notebook API (``Explanation.relevance``) and the evaluation (``vitviz.evaluation``) all read.

Renamed keys (kept for one release): ``'attnlrp_published'`` is ``'attnlrp'`` (a DeprecationWarning). The key
``'attnlrp'`` itself named CP-LRP up to vitviz 0.1; it now names AttnLRP as Achtibat et al. 2024 publish it,
and CP-LRP is ``'cp_lrp'``: :func:`renamed_note` gives the sentence the entry points (CLI, notebook, URL) show.
"""
from __future__ import annotations

import warnings

from .attention import GradientRollout, RawAttention, Rollout
from .attnlrp import AttnLRP
from .base import AttributionMethod, Relevance, resolve_target
from .chefer2021 import Chefer2021
from .cp_lrp import CPLRP
from .gradcam import GradCAM
from .gradcam_attn import AttentionGradCAM
from .gradcam_cnn import CnnGradCAM, cnn_gradcam
from .input_gradient import InputGradient
from .integrated_gradients import IntegratedGradients
from .random import RandomMap

__all__ = ["METHODS", "RENAMED", "AttributionMethod", "CnnGradCAM", "Relevance", "attribute", "cnn_gradcam",
           "get_method", "renamed_note",
           "resolve_key", "resolve_target"]

METHODS: dict[str, AttributionMethod] = {
    method.key: method
    for method in (
        RawAttention(), Rollout(), GradientRollout(), Chefer2021(), AttentionGradCAM(), GradCAM(), CPLRP(),
        AttnLRP(), InputGradient(), IntegratedGradients(), RandomMap(),
    )
}

RENAMED: dict[str, str] = {"attnlrp_published": "attnlrp"}
"""Old registry key -> its key now (accepted, with a DeprecationWarning, until the next release)."""
MEANING_CHANGED: dict[str, tuple[str, str]] = {"attnlrp": ("0.1", "cp_lrp")}
"""Key whose method changed -> (the last version with the old method, the old method's key now)."""


def resolve_key(name: str) -> str:
    """The registry key ``name`` stands for: itself, or its new key when it was renamed (with a
    DeprecationWarning). Raises ValueError for an unknown name."""
    if name in RENAMED:
        warnings.warn(f"attribution method {name!r} is now called {RENAMED[name]!r}", DeprecationWarning,
                      stacklevel=3)
        name = RENAMED[name]
    if name not in METHODS:
        raise ValueError(f"unknown attribution method {name!r}; known: {', '.join(METHODS)}")
    return name


def renamed_note(name: str) -> str | None:
    """A one-line note for a key whose meaning changed (``'attnlrp'``), for entry points a user types keys
    into; None for every other key. English (the CLI's and the notebook's warnings stay English)."""
    if name not in MEANING_CHANGED:
        return None
    version, old = MEANING_CHANGED[name]
    return (f"{name!r} now names {METHODS[name].title} ({METHODS[name].paper.split(',')[0]}); up to vitviz "
            f"{version} it named {METHODS[old].title}, which is now {old!r}")


def get_method(name: str) -> AttributionMethod:
    """The registered method called ``name`` (a key of ``METHODS``, or a renamed key: see :func:`resolve_key`)."""
    return METHODS[resolve_key(name)]


def attribute(method: str, model, x, target: int | None = None, *, capture=None) -> Relevance:
    """``get_method(method).attribute(model, x, target, capture=capture)``."""
    return get_method(method).attribute(model, x, target, capture=capture)
