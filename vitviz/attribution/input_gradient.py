"""Input gradient ("saliency", Simonyan, Vedaldi & Zisserman 2014, ICLR workshop): ``max_c |∂y/∂x_c|``.

The plainest gradient map and the usual baseline: how strongly the class score reacts to each input pixel,
the absolute value maximised over the colour channels as in the paper. It says nothing about the sign of a
pixel's effect; gradient × input with the attention rules is AttnLRP (``vitviz.attribution.attnlrp``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from vitviz.capture import model_lock
from vitviz.i18n import N_
from vitviz.layout import TokenLayout

from ._common import pixel_relevance, scored_forward
from .base import AttributionMethod, Relevance

if TYPE_CHECKING:
    from torch import nn

    from vitviz.capture import Capture


__all__ = ["InputGradient"]


class InputGradient(AttributionMethod):
    """``max_c |∂ logit_target / ∂ x_c|`` per pixel, summed over each patch."""

    key = "input_gradient"
    title = N_("Input gradient (saliency)")
    paper = ("Simonyan, Vedaldi & Zisserman 2014, ICLR workshop, 'Deep Inside Convolutional Networks: "
             "Visualising Image Classification Models and Saliency Maps'")
    class_specific = True
    reads_head = True
    passes = N_("1 forward + 1 backward")

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                  capture: Capture | None = None) -> Relevance:
        layout = TokenLayout.from_model(model, tuple(x.shape[-2:]))
        with model_lock(model), torch.enable_grad():
            x_leaf, _, target, score = scored_forward(model, x, target, self.key)
            (grad,) = torch.autograd.grad(score, x_leaf)
        return pixel_relevance(grad.abs(), layout, self.key, target, reduce="max")
