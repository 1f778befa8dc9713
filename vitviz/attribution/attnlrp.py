"""AttnLRP in its CP-LRP form for ViTs (Achtibat et al. 2024, ICML, "AttnLRP: Attention-Aware Layer-Wise
Relevance Propagation for Transformers"), computed as gradient × input under modified gradients.

Inside :func:`cp_lrp_rules` (a context manager in the manner of zennit's composites) every timm module
keeps its output values and changes only its gradient (see ``vitviz.attribution._rules``):

- attention: queries and keys are detached in the softmax, so relevance flows through the values only;
- LayerNorm / RMSNorm: the standard deviation is held constant;
- GELU (and other elementwise activations with ``act(0) = 0``): identity rule, gradient ``act(x)/x``.

With these rules every operation is linear in its input for fixed detached factors, so the target logit is
a linear function of (input pixels, position embedding, prefix tokens, biases) and gradient × input
conserves it exactly: ``Σ pixels + position + Σ prefix + biases = logit`` (Euler's theorem; tested). The
map is ``x ⊙ ∂logit/∂x`` summed over the colour channels, then over each patch; the prefix tokens' share is
in ``Relevance.prefix`` and the other terms in :class:`AttnLRPResult`.

The ``lxt`` package (the authors' implementation, PyPI ``lxt`` 2.1) was checked and not used: it patches
torchvision's and Hugging Face's ViT classes, not timm's, and requires transformers, accelerate,
bitsandbytes, open_clip_torch and zennit.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from timm.layers.attention import Attention
from torch import nn

from vitviz.capture import model_lock
from vitviz.i18n import N_
from vitviz.layout import TokenLayout

from ._common import check_plain_blocks, pixel_relevance, recorded_output, scored_forward
from ._rules import (
    attention_cp_forward,
    identity_rule_forward,
    is_elementwise_activation,
    layer_norm_cp_forward,
    rms_norm_cp_forward,
    swapped_forwards,
)
from .base import AttributionMethod, Relevance

if TYPE_CHECKING:
    from vitviz.capture import Capture


__all__ = ["AttnLRP", "AttnLRPResult", "attnlrp_relevance", "cp_lrp_rules"]


@dataclass(frozen=True)
class AttnLRPResult:
    """Gradient × input of one image under the CP-LRP rules.

    Attributes:
        pixels: (1, C, H, W) relevance of each input value, ``x ⊙ ∂logit/∂x``.
        prefix: Prefix-token name -> relevance of that token as it enters block 0 (its learned embedding
            plus its position embedding, where the model adds one to it).
        position: Relevance of the patch tokens' position embedding, summed.
        target: Class explained.
        score: The target logit.
    """

    pixels: torch.Tensor
    prefix: dict[str, float]
    position: float
    target: int
    score: float

    @property
    def input_total(self) -> float:
        """Relevance of everything that enters block 0 but the biases: pixels + position + prefix."""
        return float(self.pixels.sum()) + self.position + sum(self.prefix.values())


def _norm_forward(module: nn.Module):
    if isinstance(module, nn.LayerNorm):
        if len(module.normalized_shape) != 1:
            raise ValueError("AttnLRP handles LayerNorm over the last dimension only")
        return layer_norm_cp_forward(module)
    if type(module).__name__ in ("RmsNorm", "RMSNorm") and hasattr(module, "eps"):
        return rms_norm_cp_forward(module)
    return None


@contextmanager
def cp_lrp_rules(model: nn.Module) -> Iterator[nn.Module]:
    """Swap the CP-LRP rules into ``model`` while inside; every module is restored on exit.

    Raises:
        ValueError: For a model whose blocks the rules do not cover (attention pooling, gated attention,
            rotary attention, GLU MLPs).
    """
    check_plain_blocks(model, "AttnLRP")
    swaps = []
    for module in model.modules():
        if type(module) is Attention:
            swaps.append((module, attention_cp_forward(module)))
        elif (norm := _norm_forward(module)) is not None:
            swaps.append((module, norm))
        elif is_elementwise_activation(module):
            swaps.append((module, identity_rule_forward(module)))
    with swapped_forwards(swaps):
        yield model


def _sequence_module(model: nn.Module) -> nn.Module:
    """The module whose output is the token sequence entering the blocks (position embedding added)."""
    module = getattr(model, "pos_drop", None)
    if module is None:
        raise ValueError(f"{type(model).__name__} has no pos_drop; cannot find its token sequence")
    return module


def attnlrp_relevance(model: nn.Module, x: torch.Tensor, target: int | None = None) -> AttnLRPResult:
    """Gradient × input of the target logit under :func:`cp_lrp_rules`: one forward, one backward.

    Args:
        model: A timm ViT (VisionTransformer or DeiT) with plain attention blocks.
        x: One normalised image (1, C, H, W).
        target: Class to explain; None takes the top class.
    """
    layout = TokenLayout.from_model(model, tuple(x.shape[-2:]))
    with model_lock(model), torch.enable_grad(), cp_lrp_rules(model):
        with recorded_output(model.patch_embed) as embedded, recorded_output(_sequence_module(model)) as seq:
            x_leaf, _logits, target, score = scored_forward(model, x, target, "AttnLRP")
        tokens = seq[-1]  # (1, N, D)
        grad_x, grad_tokens = torch.autograd.grad(score, [x_leaf, tokens])
    patch_tokens = embedded[-1].detach().reshape(1, layout.num_patches, -1)  # (1, P, D)
    token_relevance = (tokens.detach() * grad_tokens).double()  # (1, N, D)
    position = (tokens.detach()[:, layout.patch_slice] - patch_tokens) * grad_tokens[:, layout.patch_slice]
    prefix = token_relevance[0, : layout.num_prefix_tokens].sum(-1)  # (prefix,)
    return AttnLRPResult(
        pixels=(x_leaf.detach() * grad_x).double(),
        prefix=dict(zip(layout.prefix_names, map(float, prefix))),
        position=float(position.double().sum()),
        target=target,
        score=float(score.detach()),
    )


class AttnLRP(AttributionMethod):
    """AttnLRP (CP-LRP form): gradient × input with detached q/k, constant norm scale, identity GELU."""

    key = "attnlrp"
    title = N_("AttnLRP (CP-LRP)")
    paper = ("Achtibat et al. 2024, ICML, 'AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for "
             "Transformers'")
    class_specific = True
    reads_head = True
    passes = N_("1 forward + 1 backward")

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                  capture: Capture | None = None) -> Relevance:
        result = attnlrp_relevance(model, x, target)
        layout = TokenLayout.from_model(model, tuple(x.shape[-2:]))
        return pixel_relevance(result.pixels, layout, self.key, result.target, prefix=result.prefix)
