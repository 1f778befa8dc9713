"""Grad-CAM (Selvaraju et al. 2017, ICCV) on the patch tokens entering the last transformer block.

Grad-CAM weighs each feature channel by the gradient of the class score averaged over space, and keeps the
positive part of the weighted sum: ``map_p = ReLU(Σ_d w_d · T_{p,d})`` with ``w_d = mean_p ∂y/∂T_{p,d}``.
For a ViT the "feature map" is the set of patch tokens. The tokens *leaving* the last block are useless
for a class-token model: only the class token reaches the head after the last block, so their gradient is
zero. The map is therefore taken on the tokens *entering* the last block's attention (the output of its
``norm1``), where every patch token still reaches the read-out; this is the layer the pytorch-grad-cam
ViT recipe uses, and it works for average-pooled models too.

This is not the "GradCAM" row of Chefer, Gur & Wolf 2021 (Table 1): theirs weighs the last block's attention
heads (:mod:`vitviz.attribution.gradcam_attn`). Why Grad-CAM on a ViT's tokens can rank patches worse than a
random order is discussed in ``docs/evaluation.md`` ("Why token Grad-CAM can fail on a ViT").
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from vitviz.capture import model_lock
from vitviz.i18n import N_, _
from vitviz.layout import TokenLayout

from ._common import recorded_output, scored_forward
from .base import AttributionMethod, Relevance

if TYPE_CHECKING:
    from torch import nn

    from vitviz.capture import Capture


__all__ = ["GradCAM", "gradcam_map"]


def gradcam_map(tokens: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM over tokens: ``ReLU(tokens @ grads.mean(0))``.

    Args:
        tokens: (P, D) patch tokens.
        grads: (P, D) gradient of the class score with respect to ``tokens``.

    Returns:
        (P,) non-negative map.
    """
    weights = grads.mean(dim=0)  # (D,)
    return torch.relu(tokens @ weights)  # (P,)


def _target_layer(model: nn.Module) -> nn.Module:
    blocks = getattr(model, "blocks", None)
    if not blocks or not hasattr(blocks[-1], "norm1"):
        raise ValueError(_("Grad-CAM needs a ViT with transformer blocks; {model} has none").format(
            model=type(model).__name__))
    return blocks[-1].norm1


class GradCAM(AttributionMethod):
    """Grad-CAM on the patch tokens entering the last block (see the module docstring)."""

    key = "gradcam"
    title = N_("Grad-CAM on tokens (last block)")
    paper = "Selvaraju et al. 2017, ICCV, 'Grad-CAM: Visual Explanations from Deep Networks'"
    class_specific = True
    reads_head = True
    passes = N_("1 forward + 1 backward (down to the last block)")

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                  capture: Capture | None = None) -> Relevance:
        layout = TokenLayout.from_model(model, tuple(x.shape[-2:]))
        with model_lock(model), torch.enable_grad():
            with recorded_output(_target_layer(model)) as outputs:
                _leaf, _logits, target, score = scored_forward(model, x, target, self.key)
            tokens = outputs[-1]  # (1, N, D)
            if tokens.shape[1] != layout.num_tokens:
                raise ValueError(f"the last block sees {tokens.shape[1]} tokens, the layout says "
                                 f"{layout.describe()}")
            (grads,) = torch.autograd.grad(score, tokens)
        patches = layout.patch_slice
        cam = gradcam_map(tokens.detach()[0, patches].double(), grads[0, patches].double())  # (P,)
        return Relevance(patches=layout.to_grid(cam.cpu().numpy()).astype(np.float64), method=self.key,
                         target=target, layout=layout)
