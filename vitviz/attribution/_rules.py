"""Gradient rules for timm ViTs: temporarily swapped ``forward`` methods whose values are unchanged and
whose gradients implement LRP rules (the "gradient × input" form of LRP, as in zennit and lxt).

Each swap is an instance attribute ``module.forward`` set for the duration of :func:`swapped_forwards` (a
:class:`vitviz.hooks.Edits`) and removed (or put back) on exit, after success or error. The values of every
swapped forward equal the stock module's (up to rounding), so logits are unchanged; only the backward pass
differs:

- :func:`attention_cp_forward`: the attention probabilities are computed from detached queries and keys,
  so relevance flows only through the values (CP-LRP, Achtibat et al. 2024, Sec. 3.3 / App. A).
- :func:`layer_norm_cp_forward`, :func:`rms_norm_cp_forward`: the standard deviation (root mean square) is
  held constant, so the normalisation is a linear map in the backward pass (AttnLRP's identity-like rule
  for normalisation layers; Ali et al. 2022, "XAI for Transformers: Better Explanations through
  Conservative Propagation").
- :func:`identity_rule_forward`: ``act(x) = x · (act(x)/x)`` with the ratio detached, so the gradient is
  ``act(x)/x`` and gradient × input passes each element's relevance on unchanged (identity rule).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from timm.layers import activations
from torch import nn

from vitviz.hooks import Edits

__all__ = [
    "attention_cp_forward",
    "identity_rule_forward",
    "layer_norm_cp_forward",
    "rms_norm_cp_forward",
    "swapped_forwards",
]

@contextmanager
def swapped_forwards(swaps: list[tuple[nn.Module, Callable[..., Any]]]) -> Iterator[None]:
    """Set ``module.forward = fn`` for each pair while inside; put every module back on exit."""
    with Edits() as edits:
        for module, fn in swaps:
            edits.swap_forward(module, fn)
        yield


def attention_cp_forward(attn: nn.Module) -> Callable[..., torch.Tensor]:
    """timm ``Attention.forward`` with the softmax computed from detached queries and keys."""

    def forward(x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            raise ValueError("CP-LRP attention rules do not support attention masks")
        batch, tokens, _ = x.shape
        qkv = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, H, N, d) each
        q, k = attn.q_norm(q), attn.k_norm(k)
        probs = ((q.detach() * attn.scale) @ k.detach().transpose(-2, -1)).softmax(dim=-1)  # (B, H, N, N)
        out = attn.attn_drop(probs) @ v  # (B, H, N, d)
        # (B, N, H*d); older timm Attention has no attn_dim
        out = attn.norm(out.transpose(1, 2).reshape(batch, tokens, -1))
        return attn.proj_drop(attn.proj(out))

    return forward


def layer_norm_cp_forward(norm: nn.LayerNorm) -> Callable[[torch.Tensor], torch.Tensor]:
    """LayerNorm over the last dimension with its standard deviation detached."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        centered = x - x.mean(dim=-1, keepdim=True)
        std = torch.sqrt(centered.pow(2).mean(dim=-1, keepdim=True) + norm.eps).detach()
        y = centered / std
        if norm.weight is not None:
            y = y * norm.weight
        return y if norm.bias is None else y + norm.bias

    return forward


def rms_norm_cp_forward(norm: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """RMSNorm over the last dimension with its root mean square detached."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + norm.eps).detach()
        y = x / rms
        return y if norm.weight is None else y * norm.weight

    return forward


def identity_rule_forward(act: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Elementwise activation whose gradient is ``act(x)/x`` (0 where ``x == 0``, where ``act(0) = 0``)."""
    original = act.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        y = original(x)
        nonzero = x != 0
        ratio = torch.where(nonzero, y / torch.where(nonzero, x, torch.ones_like(x)), torch.zeros_like(x))
        return x * ratio.detach()

    return forward


ELEMENTWISE_ACTIVATIONS: tuple[type, ...] = (nn.GELU, nn.SiLU, nn.ReLU, nn.Tanh)


def is_elementwise_activation(module: nn.Module) -> bool:
    """Whether ``module`` is an activation with ``act(0) = 0`` that the identity rule can handle."""
    timm_types = tuple(getattr(activations, n) for n in ("GELU", "GELUTanh", "QuickGELU", "SiLU")
                       if hasattr(activations, n))
    return isinstance(module, ELEMENTWISE_ACTIVATIONS + timm_types)

