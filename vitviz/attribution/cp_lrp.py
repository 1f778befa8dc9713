"""CP-LRP for ViTs (Ali et al. 2022, ICML, "XAI for Transformers: Better Explanations through Conservative
Propagation"), computed as gradient × input under modified gradients: one forward, one backward.

Inside the rules (``vitviz.attribution._rules.attnlrp_rules`` with ``attention='cp'``, a
:class:`vitviz.hooks.Edits` swap of forwards) every timm module keeps its output values and changes only its
gradient:

- attention: queries and keys are detached in the softmax, so relevance flows through the values only;
- LayerNorm / RMSNorm: the standard deviation is held constant;
- GELU (and other elementwise activations with ``act(0) = 0``): identity rule, gradient ``act(x)/x``;
- linear layers and the patch embedding: the plain gradient (the ε-rule with ε → 0).

With these rules every operation is linear in its input for fixed detached factors, so the target logit is
a linear function of (input pixels, position embedding, prefix tokens, biases) and gradient × input
conserves it exactly: ``Σ pixels + position + Σ prefix + biases = logit`` (Euler's theorem;
:func:`vitviz.attribution.conservation.decompose_logit` returns every part). The map is ``x ⊙ ∂logit/∂x``
summed over the colour channels, then over each patch.

Up to vitviz 0.1 this method was registered as ``'attnlrp'`` with the title "AttnLRP (CP-LRP)";
AttnLRP as Achtibat et al. 2024 publish it (relevance through the softmax, γ-rule) is now
:mod:`vitviz.attribution.attnlrp`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from vitviz.i18n import N_

from ._rules import attnlrp_rules
from .base import AttributionMethod, Relevance
from .conservation import LogitDecomposition, decompose_logit

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vitviz.capture import Capture


__all__ = ["CPLRP", "cp_lrp_rules"]


@contextmanager
def cp_lrp_rules(model: nn.Module) -> Iterator[nn.Module]:
    """Swap the CP-LRP rules into ``model`` while inside; every module is restored on exit.

    Raises:
        ValueError: For a model whose blocks the rules do not cover (attention pooling, gated attention,
            rotary attention, GLU MLPs).
    """
    with attnlrp_rules(model, attention="cp") as ruled:
        yield ruled


class CPLRP(AttributionMethod):
    """CP-LRP: gradient × input with detached q/k, constant norm scale, identity GELU."""

    key = "cp_lrp"
    title = N_("CP-LRP")
    paper = ("Ali et al. 2022, ICML, 'XAI for Transformers: Better Explanations through Conservative "
             "Propagation'")
    class_specific = True
    reads_head = True
    conserves = True
    passes = N_("1 forward + 1 backward")

    def decompose(self, model: nn.Module, x: torch.Tensor, target: int | None = None) -> LogitDecomposition:
        """The map with every part of the logit its rules did not give to the pixels."""
        return decompose_logit(model, x, target, method=self.key)

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                  capture: Capture | None = None) -> Relevance:
        return self.decompose(model, x, target).relevance
