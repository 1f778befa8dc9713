"""AttnLRP as published (Achtibat et al. 2024, ICML, "AttnLRP: Attention-Aware Layer-Wise Relevance
Propagation for Transformers"), for timm ViTs: one forward and one backward pass, gradient × input.

Unlike CP-LRP (``vitviz.attribution.attnlrp`` today, Ali et al. 2022), relevance flows through the softmax to
the queries and keys, the two attention products split it 50/50 between their operands, and the patch
embedding and the MLP and head layers use the γ-rule that the authors apply to ViTs against gradient
shattering. The rules, with their equation numbers, are in ``vitviz.attribution._attnlrp_rules``; where the
logit went besides the pixels (prefix tokens, position embedding, biases, the softmax's bias term) is in
:func:`vitviz.attribution.conservation.decompose_logit`.

Prototype name: this module becomes ``attnlrp.py`` (key ``'attnlrp'``) when today's method is renamed
``cp_lrp``.
"""
from __future__ import annotations

from typing import Any

from vitviz.i18n import N_

from ._attnlrp_rules import CONV_GAMMA, LINEAR_GAMMA
from .base import AttributionMethod, Relevance
from .conservation import decompose_logit

__all__ = ["AttnLRPPublished"]


class AttnLRPPublished(AttributionMethod):
    """AttnLRP: relevance through the softmax, uniform rule on the attention products, γ-rule outside.

    Args:
        conv_gamma: γ of the patch embedding's convolution (0: the ε-rule).
        linear_gamma: γ of the MLP and head linear layers (0: the ε-rule).
    """

    key = "attnlrp_published"
    title = N_("AttnLRP")
    paper = ("Achtibat et al. 2024, ICML, 'AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for "
             "Transformers'")
    class_specific = True
    reads_head = True
    passes = N_("1 forward + 1 backward")

    def __init__(self, conv_gamma: float = CONV_GAMMA, linear_gamma: float = LINEAR_GAMMA) -> None:
        self.conv_gamma = float(conv_gamma)
        self.linear_gamma = float(linear_gamma)

    def attribute(self, model: Any, x: Any, target: int | None = None, *, capture: Any = None) -> Relevance:
        decomposition = decompose_logit(model, x, target, method="attnlrp", conv_gamma=self.conv_gamma,
                                        linear_gamma=self.linear_gamma)
        relevance = decomposition.relevance
        return Relevance(patches=relevance.patches, method=self.key, target=relevance.target,
                         layout=relevance.layout, prefix=relevance.prefix, pixels=relevance.pixels)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r} γ=({self.conv_gamma}, {self.linear_gamma})>"
