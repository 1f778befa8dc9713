"""Explicit LRP rules (relevance in, relevance out) for the operations of a timm ViT block.

The rules of Chefer, Gur & Wolf 2021 (CVPR), Sec. 3, as their published code applies them to a ViT:

- linear layers (``qkv``, ``proj``, ``fc1``, ``fc2``, the head): the LRP-αβ rule with α = 1, β = 0 (the
  z⁺ rule generalised to signed inputs: positive contributions ``x⁺w⁺ + x⁻w⁻`` only, biases ignored);
- the two matrix products of attention (``q kᵀ`` and ``A v``): the z rule (LRP-0) on each operand, each
  operand's share halved so that the pair conserves relevance (paper, Eq. 8-9);
- the residual additions: the z rule, then each branch renormalised to the share ``|Σ R_a| / (|Σ R_a| +
  |Σ R_b|)`` of the total (paper, Eq. 10-11);
- LayerNorm, softmax, GELU, dropout, LayerScale: relevance passed on unchanged (as in the authors' code).

Every rule is a small function of the forward operands and the incoming relevance; all tensors keep their
forward shapes. Division uses :func:`safe_divide` (0 where the denominator is 0), as the authors' code does.
"""
from __future__ import annotations

import torch

__all__ = ["add_split", "linear_zplus", "matmul_z", "mean_z", "safe_divide"]

_EPS = 1e-9


def safe_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / b`` with ``|b|`` kept ≥ 1e-9 away from 0 (sign kept), and 0 where ``b == 0``."""
    den = torch.where(b >= 0, b.clamp(min=_EPS), b.clamp(max=-_EPS))
    return torch.where(b == 0, torch.zeros_like(a * b), a / den)


def linear_zplus(x: torch.Tensor, weight: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """LRP-αβ with α = 1, β = 0 through ``y = x Wᵀ`` (bias ignored).

    Args:
        x: (..., in) layer input.
        weight: (out, in) weight.
        relevance: (..., out) relevance of the outputs.

    Returns:
        (..., in) relevance of the inputs; sums to ``relevance.sum()`` wherever ``z⁺ > 0``.
    """
    w_pos, w_neg = weight.clamp(min=0), weight.clamp(max=0)
    x_pos, x_neg = x.clamp(min=0), x.clamp(max=0)
    z = x_pos @ w_pos.T + x_neg @ w_neg.T  # (..., out) positive contributions only, ≥ 0
    s = safe_divide(relevance, z)
    return x_pos * (s @ w_pos) + x_neg * (s @ w_neg)


def matmul_z(a: torch.Tensor, b: torch.Tensor, relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z rule through ``c = a @ b`` for both operands, each share halved (they sum to ``relevance``).

    Args:
        a: (..., n, m) left operand.
        b: (..., m, p) right operand.
        relevance: (..., n, p) relevance of ``c``.
    """
    s = safe_divide(relevance, a @ b)  # (..., n, p)
    return a * (s @ b.transpose(-2, -1)) / 2, b * (a.transpose(-2, -1) @ s) / 2


def add_split(a: torch.Tensor, b: torch.Tensor, relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Relevance through ``c = a + b``: z rule, then each part rescaled to its absolute share of the total.

    Returns:
        ``(R_a, R_b)`` with ``R_a.sum() + R_b.sum() == relevance.sum()``.
    """
    s = safe_divide(relevance, a + b)
    r_a, r_b = a * s, b * s
    sum_a, sum_b = r_a.sum(), r_b.sum()
    total, both = relevance.sum(), sum_a.abs() + sum_b.abs()
    r_a = r_a * safe_divide(safe_divide(sum_a.abs(), both) * total, sum_a)
    r_b = r_b * safe_divide(safe_divide(sum_b.abs(), both) * total, sum_b)
    return r_a, r_b


def mean_z(x: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """z rule through a mean over dimension -2: ``(..., n, d)`` tokens, ``(..., d)`` relevance of the mean."""
    return x * safe_divide(relevance, x.sum(dim=-2)).unsqueeze(-2)
