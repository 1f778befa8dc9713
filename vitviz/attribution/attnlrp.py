"""AttnLRP (Achtibat et al. 2024, ICML, "AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for
Transformers"), as its authors publish it, for timm ViTs: one forward and one backward pass, gradient × input.

Unlike CP-LRP (:mod:`vitviz.attribution.cp_lrp`, Ali et al. 2022), relevance flows through the softmax to the
queries and keys, the two attention products split it 50/50 between their operands, and the patch embedding
and the MLP and head layers use the γ-rule that the authors apply to ViTs against gradient shattering. The
rules, with their equation numbers, are in ``vitviz.attribution._rules``; where the logit went besides the
pixels (prefix tokens, position embedding, biases, the softmax's bias term) is in
:func:`vitviz.attribution.conservation.decompose_logit`.

γ: 0.25 on the patch embedding and 0.05 on the MLP and head layers, the middle of the grids that the authors'
``lxt`` examples search for ViTs; the value the paper itself uses for vision could not be confirmed offline.
Parity with ``lxt`` (``bench/attnlrp_parity.py``): 2.3e-7 as shipped, 2.4e-14 with lxt's stabilisers off.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from vitviz.i18n import N_

from ._rules import CONV_GAMMA, LINEAR_GAMMA
from .base import AttributionMethod, Relevance
from .conservation import LogitDecomposition, decompose_logit

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vitviz.capture import Capture

__all__ = ["AttnLRP"]


class AttnLRP(AttributionMethod):
    """AttnLRP: relevance through the softmax, uniform rule on the attention products, γ-rule outside.

    Args:
        conv_gamma: γ of the patch embedding's convolution (0: the ε-rule).
        linear_gamma: γ of the MLP and head linear layers (0: the ε-rule).
    """

    key = "attnlrp"
    title = N_("AttnLRP")
    paper = ("Achtibat et al. 2024, ICML, 'AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for "
             "Transformers'")
    class_specific = True
    reads_head = True
    conserves = True
    passes = N_("1 forward + 1 backward")

    def __init__(self, conv_gamma: float = CONV_GAMMA, linear_gamma: float = LINEAR_GAMMA) -> None:
        self.conv_gamma = float(conv_gamma)
        self.linear_gamma = float(linear_gamma)

    def decompose(self, model: nn.Module, x: torch.Tensor, target: int | None = None) -> LogitDecomposition:
        """The map with every part of the logit its rules did not give to the pixels."""
        return decompose_logit(model, x, target, method=self.key, conv_gamma=self.conv_gamma,
                               linear_gamma=self.linear_gamma)

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                  capture: Capture | None = None) -> Relevance:
        return self.decompose(model, x, target).relevance

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r} γ=({self.conv_gamma}, {self.linear_gamma})>"
