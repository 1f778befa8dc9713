"""Grad-CAM on the attention of the last block, as Chefer, Gur & Wolf 2021 (CVPR) compute their "GradCAM" row.

The baseline of their Table 1 is ``generate_cam_attn`` in ``baselines/ViT/ViT_explanation_generator.py`` of
github.com/hila-chefer/Transformer-Explainability: Grad-CAM (Selvaraju et al. 2017) with the heads of the last
block's attention as its channels and the class token's attention row over the patches as its feature map.

1. one forward and one backward pass: the last block's attention ``A`` (H, N, N) and its gradient ``∇A`` with
   respect to the target logit;
2. per head, the gradient of the read-out row averaged over the patches: ``w_h = mean_p ∇A[h, cls, p]``
   (Grad-CAM's channel weight);
3. ``map_p = ReLU(mean_h w_h · A[h, cls, p])``: mean over heads, then the positive part (their
   ``(cam * grad).mean(0).clamp(min=0)``; the min-max normalisation that follows in their code does not change
   the ranking and is left to the figures).

The read-out row is the class token's; a model without one reads the mean of the patch tokens' rows (as
:class:`~vitviz.attribution.attention.RawAttention` does). A Capture taken with gradients for the same target is
reused; otherwise the last block's attention is recorded (a :class:`vitviz.hooks.Edits` hook, its fused kernel
switched off while inside) in one forward pass, and one backward pass takes its gradient.
Not to be confused with :class:`~vitviz.attribution.gradcam.GradCAM`, Grad-CAM on the patch *tokens* entering
the last block (the pytorch-grad-cam recipe).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from vitviz.analysis._convert import to_numpy
from vitviz.capture import eager_attention, model_lock
from vitviz.hooks import Edits
from vitviz.i18n import N_
from vitviz.layout import TokenLayout

from ._common import scored_forward
from .base import AttributionMethod, Relevance

if TYPE_CHECKING:
    from torch import nn

    from vitviz.capture import Capture


__all__ = ["AttentionGradCAM", "attention_gradcam_map"]


def _readout(values: np.ndarray, layout: TokenLayout) -> np.ndarray:
    """(H, N, N) -> (H, N): the class token's rows, or the mean of the patch tokens' rows."""
    if layout.class_index is not None:
        return values[:, layout.class_index]
    return values[:, layout.patch_slice].mean(axis=1)


def attention_gradcam_map(attention: np.ndarray, grads: np.ndarray, layout: TokenLayout, *,
                          positive: bool = True) -> np.ndarray:
    """Chefer's ``generate_cam_attn`` from one layer's attention and its gradient.

    Args:
        attention: (H, N, N) attention probabilities of the last block.
        grads: (H, N, N) gradient of the target logit with respect to them.
        layout: Token layout (which row is read out, which columns are patches).
        positive: Keep the positive part (the method); False gives the head-weighted mean before it.

    Returns:
        (gh, gw) map, non-negative unless ``positive`` is False.
    """
    cam = _readout(np.asarray(attention, dtype=np.float64), layout)[:, layout.patch_slice]  # (H, P)
    grad = _readout(np.asarray(grads, dtype=np.float64), layout)[:, layout.patch_slice]  # (H, P)
    weights = grad.mean(axis=1, keepdims=True)  # (H, 1) one weight per head
    weighted = (cam * weights).mean(axis=0)  # (P,)
    return layout.to_grid(np.clip(weighted, 0.0, None) if positive else weighted)  # (gh, gw)


class AttentionGradCAM(AttributionMethod):
    """Grad-CAM with the last block's heads as channels (the "GradCAM" row of Chefer et al. 2021, Table 1)."""

    key = "gradcam_attn"
    title = N_("Grad-CAM on attention (last block)")
    paper = ("Selvaraju et al. 2017, ICCV, as Chefer, Gur & Wolf 2021, CVPR, apply it to a ViT's attention "
             "(generate_cam_attn)")
    class_specific = True
    reads_head = True
    passes = N_("1 forward + 1 backward")

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                  capture: Capture | None = None) -> Relevance:
        if capture is not None and capture.target is not None and (target is None or capture.target == (target,)):
            last = capture.num_layers - 1
            attention, grads = capture.attention(last)[0], capture.attention_grad(last)[0]  # (H, N, N) each
            target, layout = capture.target[0], capture.layout
        else:
            attention, grads, target = last_attention_and_gradient(model, x, target, self.key)
            layout = TokenLayout.from_model(model, tuple(x.shape[-2:]))
        patches = attention_gradcam_map(to_numpy(attention), to_numpy(grads), layout)
        return Relevance(patches=patches, method=self.key, target=target, layout=layout)


def last_attention_and_gradient(model: nn.Module, x: torch.Tensor, target: int | None,
                                method: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The last block's attention probabilities (H, N, N), their gradient for the target logit, and the target:
    one forward pass (the last block unfused, its ``attn_drop`` output recorded), one backward pass."""
    blocks = getattr(model, "blocks", None)
    attn = getattr(blocks[-1], "attn", None) if blocks else None
    if attn is None or not hasattr(attn, "attn_drop"):
        raise ValueError(f"{method} needs a timm ViT whose last block has an attention module")
    recorded: list[torch.Tensor] = []
    with model_lock(model), torch.enable_grad(), Edits() as edits:
        eager_attention(edits, [attn])
        edits.forward_hook(attn.attn_drop, lambda _m, _a, out: recorded.append(out), required=True)
        _leaf, _logits, target, score = scored_forward(model, x, target, method)
        (grad,) = torch.autograd.grad(score, recorded[-1])
    return recorded[-1].detach()[0], grad[0], target
