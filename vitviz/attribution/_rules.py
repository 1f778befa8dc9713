"""The LRP rules of AttnLRP and CP-LRP for timm ViTs, in the gradient × input form: one rules module for both.

Inside :func:`attnlrp_rules` every covered module runs a swapped ``forward`` (a :class:`vitviz.hooks.Edits` swap,
undone on exit after success or error) whose values equal the stock module's (up to rounding) and whose
gradient implements one LRP rule, so that ``t ⊙ ∂logit/∂t`` is the relevance of any tensor ``t`` (the form the
authors' ``lxt.efficient`` uses). Equation numbers are those of Achtibat et al. 2024 (ICML, arXiv v2), as the
authors' ``lxt`` cites them:

- linear layers inside attention (``qkv``, ``proj``): the ε-rule (Eq. 8) with ε → 0, i.e. the plain gradient;
- the two matrix products ``q kᵀ`` and ``A v``: the ε-rule, then the uniform rule that gives each operand
  half (Prop. 3.3 with Eq. 7): the gradient reaching each operand is halved;
- the softmax: Deep Taylor decomposition at the input with a bias (Prop. 3.1),
  ``R_in = s ⊙ (R_out − A · Σ R_out)``, which is exactly the gradient × input of the softmax: the plain
  gradient. Its bias term absorbs relevance (:mod:`vitviz.attribution.conservation` reports how much);
- LayerNorm / RMSNorm: the identity rule on the division by the standard deviation (Prop. 3.4), the ε-rule on
  the centring and the affine map: the standard deviation is detached;
- GELU and other elementwise activations: the identity rule (Eq. 9), gradient ``act(x)/x``;
- the patch embedding's convolution and the linear layers outside attention (MLP, head): the γ-rule
  (Montavon et al. 2019), in the sign-aware form of zennit's ``Gamma`` that lxt uses for ViTs (Andéol et
  al. 2021): for a positive output the positive contributions ``x⁺(w + γw⁺) + x⁻(w + γw⁻)`` and the bias
  ``b + γb⁺`` share the relevance, for a negative output the negative ones. γ = 0 is the ε-rule.

With ``attention='cp'`` (and γ = 0) these are the rules of CP-LRP (Ali et al. 2022, "XAI for Transformers:
Better Explanations through Conservative Propagation"): the queries and keys are detached, so no relevance
flows through the softmax and the values take all of it (no uniform rule is needed: only ``A v`` carries
relevance, and ``A`` is a constant).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import activations
from timm.layers.attention import Attention
from torch import nn

from vitviz.hooks import Edits

from ._common import check_plain_blocks

__all__ = ["ATTENTION_RULES", "CONV_GAMMA", "LINEAR_GAMMA", "attention_forward", "attnlrp_rules", "gamma_forward",
           "identity_rule_forward", "is_elementwise_activation", "norm_forward", "uniform"]

# γ for ViTs. Neither the paper's text at hand (offline) nor lxt fixes one value: lxt's ViT examples grid-search
# the convolution's γ over {0.1, 0.25, 100} and the linear layers' over {0, 0.01, 0.05, 0.1, 1}. These are the
# middle of those grids (0.25 is also zennit's default γ); the paper's own value could not be confirmed.
CONV_GAMMA = 0.25
LINEAR_GAMMA = 0.05

ATTENTION_RULES = {"attnlrp": "AttnLRP", "cp": "CP-LRP"}
"""``attention=`` value -> the method's name (for messages): relevance through the softmax, or q and k detached."""


class _ScaleGradient(torch.autograd.Function):
    """Identity in the forward pass; the gradient is multiplied by ``factor``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


def uniform(x: torch.Tensor, operands: int = 2) -> torch.Tensor:
    """Uniform rule (Eq. 7) for one operand of a product of ``operands`` factors: the same value, its gradient
    (hence its gradient × input relevance) divided by ``operands``."""
    return _ScaleGradient.apply(x, 1.0 / operands)


def attention_forward(attn: nn.Module, attention: str, record: list | None) -> Callable[..., torch.Tensor]:
    """timm ``Attention.forward`` under AttnLRP (``attention='attnlrp'``) or CP-LRP (``'cp'``).

    ``record`` (when given) receives ``(scores, probs)`` of each call, for the softmax's share.
    """

    def forward(x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            raise ValueError(f"{ATTENTION_RULES[attention]} attention rules do not support attention masks")
        batch, tokens, _ = x.shape
        qkv = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, H, N, d) each
        q, k = attn.q_norm(q), attn.k_norm(k)
        if attention == "cp":
            q, k = q.detach(), k.detach()
        else:
            q, k = uniform(q), uniform(k)  # Prop. 3.3 on q kᵀ
        scores = (q * attn.scale) @ k.transpose(-2, -1)  # (B, H, N, N)
        probs = scores.softmax(dim=-1)  # Prop. 3.1: the plain gradient
        if record is not None and scores.requires_grad:
            record.append((scores, probs))
        if attention != "cp":
            probs, v = uniform(probs), uniform(v)  # Prop. 3.3 on A v
        out = (attn.attn_drop(probs) @ v).transpose(1, 2).reshape(batch, tokens, -1)  # (B, N, H*d)
        return attn.proj_drop(attn.proj(attn.norm(out)))

    return forward


def norm_forward(norm: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """LayerNorm / RMSNorm over the last dimension with the scale detached (Prop. 3.4); None for others."""
    if isinstance(norm, nn.LayerNorm):
        if len(norm.normalized_shape) != 1:
            raise ValueError("AttnLRP handles LayerNorm over the last dimension only")

        def forward(x: torch.Tensor) -> torch.Tensor:
            centred = x - x.mean(dim=-1, keepdim=True)
            y = centred / torch.sqrt(centred.pow(2).mean(dim=-1, keepdim=True) + norm.eps).detach()
            y = y if norm.weight is None else y * norm.weight
            return y if norm.bias is None else y + norm.bias

        return forward
    if type(norm).__name__ in ("RmsNorm", "RMSNorm") and hasattr(norm, "eps"):

        def rms_forward(x: torch.Tensor) -> torch.Tensor:
            y = x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + norm.eps).detach()
            return y if norm.weight is None else y * norm.weight

        return rms_forward
    return None


def identity_rule_forward(act: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Elementwise activation with gradient ``act(x)/x`` (0 where ``x == 0``): the identity rule (Eq. 9)."""
    original = act.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        y = original(x)
        nonzero = x != 0
        ratio = torch.where(nonzero, y / torch.where(nonzero, x, torch.ones_like(x)), torch.zeros_like(x))
        return x * ratio.detach()

    return forward


def _gamma_output(op: Callable[..., torch.Tensor], x: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None, gamma: float) -> torch.Tensor:
    """``op(x, w, b)`` whose gradient × input is the sign-aware γ-rule's relevance (bias share included).

    With ``P = x⁺w⁺ + x⁻w⁻ + b⁺`` the positive contributions, the negative ones are ``z − P``; a positive output
    is shared in proportion to ``z + γP``, a negative one to ``z + γ(z − P)``: three products, not five.
    """
    z = op(x, weight, bias)
    b_pos = None if bias is None else bias.clamp(min=0)
    positive = op(x.clamp(min=0), weight.clamp(min=0), b_pos) + op(x.clamp(max=0), weight.clamp(max=0), None)
    # Positive outputs: z + γP ≥ z > 0; negative outputs: z + γ(z − P) ≤ z < 0.
    modified = z + gamma * torch.where(z > 0, positive, z - positive)
    safe = torch.where(modified == 0, torch.ones_like(modified), modified)
    ratio = torch.where(modified == 0, torch.zeros_like(z), z / safe).detach()
    return modified * ratio


def gamma_forward(module: nn.Module, gamma: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """``nn.Linear`` / ``nn.Conv2d`` forward with the γ-rule's gradient (values unchanged up to rounding)."""
    op = F.linear if isinstance(module, nn.Linear) else module._conv_forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        return _gamma_output(op, x, module.weight, module.bias, gamma)

    return forward


def is_elementwise_activation(module: nn.Module) -> bool:
    """Whether ``module`` is an activation with ``act(0) = 0`` that the identity rule can handle."""

    timm_types = tuple(getattr(activations, n) for n in ("GELU", "GELUTanh", "QuickGELU", "SiLU")
                       if hasattr(activations, n))
    return isinstance(module, (nn.GELU, nn.SiLU, nn.ReLU, nn.Tanh) + timm_types)


def _swaps(model: nn.Module, attention: str, conv_gamma: float, linear_gamma: float,
           record: list | None) -> list[tuple[nn.Module, Callable[..., Any]]]:

    in_attention = {id(m) for a in model.modules() if type(a) is Attention for m in a.modules()}
    patch_proj = getattr(getattr(model, "patch_embed", None), "proj", None)
    swaps = []
    for module in model.modules():
        if type(module) is Attention:
            swaps.append((module, attention_forward(module, attention, record)))
        elif (norm := norm_forward(module)) is not None:
            swaps.append((module, norm))
        elif is_elementwise_activation(module):
            swaps.append((module, identity_rule_forward(module)))
        elif module is patch_proj and isinstance(module, nn.Conv2d) and conv_gamma:
            swaps.append((module, gamma_forward(module, conv_gamma)))
        elif isinstance(module, nn.Linear) and id(module) not in in_attention and linear_gamma:
            swaps.append((module, gamma_forward(module, linear_gamma)))
    return swaps


@contextmanager
def attnlrp_rules(model: nn.Module, *, conv_gamma: float = 0.0, linear_gamma: float = 0.0,
                  attention: str = "attnlrp", record: list | None = None) -> Iterator[nn.Module]:
    """Swap the AttnLRP rules into ``model`` while inside; every module is restored on exit.

    Args:
        model: A timm ViT with plain attention and MLP blocks.
        conv_gamma: γ of the patch embedding's convolution (0: the ε-rule).
        linear_gamma: γ of the linear layers outside attention, i.e. the MLPs and the head (0: the ε-rule).
        attention: ``'attnlrp'`` (relevance through the softmax) or ``'cp'`` (queries and keys detached).
        record: A list that receives each attention call's ``(scores, probs)``.

    Raises:
        ValueError: For a model whose blocks the rules do not cover (attention pooling, gated attention,
            rotary attention, GLU MLPs) or an unknown ``attention``.
    """
    if attention not in ATTENTION_RULES:
        raise ValueError(f"attention must be 'attnlrp' or 'cp', not {attention!r}")
    check_plain_blocks(model, ATTENTION_RULES[attention])
    with Edits() as edits:
        for module, forward in _swaps(model, attention, conv_gamma, linear_gamma, record):
            edits.swap_forward(module, forward)
        yield model
