"""Integrated Gradients (Sundararajan, Taly & Yan 2017, ICML, "Axiomatic Attribution for Deep Networks").

``IG_i(x) = (x_i - x'_i) · ∫₀¹ ∂f(x' + α(x - x'))/∂x_i dα`` along the straight path from a baseline ``x'``,
here a black image (0 in [0, 1] pixel space, i.e. ``-mean/std`` after the model's normalisation). The
integral is the trapezoid rule over ``steps`` equal intervals (``steps + 1`` points, forward and backward
in batches). Completeness, the paper's axiom: ``Σ_i IG_i = f(x) - f(x')`` up to the quadrature error,
which :func:`integrated_gradients` reports. Implemented here in plain torch (captum's
``IntegratedGradients`` computes the same integral; captum is not a dependency of vitviz).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from vitviz.capture import model_lock
from vitviz.i18n import N_, _
from vitviz.images.preprocess import data_config
from vitviz.layout import TokenLayout

from ._common import check_input, class_target, pixel_relevance
from .base import AttributionMethod, Relevance

if TYPE_CHECKING:
    from torch import nn

    from vitviz.capture import Capture


__all__ = ["IGResult", "IntegratedGradients", "black_baseline", "integrated_gradients"]

DEFAULT_STEPS = 32


@dataclass(frozen=True)
class IGResult:
    """Integrated gradients of one image.

    Attributes:
        attributions: (1, C, H, W) per-channel attributions.
        target: Class explained.
        score: Target logit at the input, ``f(x)``.
        baseline_score: Target logit at the baseline, ``f(x')``.
    """

    attributions: torch.Tensor
    target: int
    score: float
    baseline_score: float

    @property
    def completeness_gap(self) -> float:
        """``Σ IG - (f(x) - f(x'))``: zero for the exact integral, the quadrature error here."""
        return float(self.attributions.sum()) - (self.score - self.baseline_score)


def black_baseline(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A black image in the model's normalised input space: ``(0 - mean) / std`` per channel."""
    config = data_config(model)
    mean = torch.as_tensor(config["mean"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.as_tensor(config["std"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return ((0.0 - mean) / std).expand_as(x).clone()


def trapezoid_weights(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``α_k = k / steps`` and trapezoid weights (sum 1) for ``∫₀¹ g(α) dα``."""
    if steps < 1:
        raise ValueError(f"integrated gradients needs at least 1 step, got {steps}")
    alphas = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    weights = torch.full((steps + 1,), 1.0 / steps, dtype=torch.float64)
    weights[0] = weights[-1] = 0.5 / steps
    return alphas, weights


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                         baseline: torch.Tensor | None = None, steps: int = DEFAULT_STEPS,
                         batch_size: int = 16) -> IGResult:
    """Integrated gradients of the target logit along the straight path from ``baseline`` to ``x``.

    Args:
        model: A classifier.
        x: One normalised image (1, C, H, W).
        target: Class to explain; None takes the top class at ``x`` (read from the pass that includes
            ``α = 1``, no extra forward).
        baseline: (1, C, H, W) baseline; a black image by default (:func:`black_baseline`).
        steps: Trapezoid intervals; the model runs forward and backward on ``steps + 1`` points.
        batch_size: Path points per forward pass.
    """
    check_input(x)
    x = x.detach()
    baseline = black_baseline(model, x) if baseline is None else baseline.detach().to(x)
    alphas, weights = trapezoid_weights(steps)
    order = torch.arange(steps, -1, -1)  # α = 1 first, so the top class is known from the first batch
    total = torch.zeros_like(x, dtype=torch.float64)
    scores: dict[int, float] = {}
    delta = x - baseline
    for chunk in order.split(batch_size):
        points = (baseline + alphas[chunk].to(x).view(-1, 1, 1, 1) * delta).requires_grad_(True)
        logits = model(points)  # (b, classes)
        if not scores:
            target = class_target(model, x, target, logits[:1], "integrated gradients")
        (grad,) = torch.autograd.grad(logits[:, target].sum(), points)
        total += (weights[chunk].to(grad.device).view(-1, 1, 1, 1) * grad.double()).sum(0, keepdim=True)
        scores.update(zip(chunk.tolist(), logits[:, target].detach().double().tolist()))
    return IGResult(attributions=(delta.double() * total), target=int(target),
                    score=scores[steps], baseline_score=scores[0])


_PASSES = N_("{passes} forward + {passes} backward ({steps} trapezoid steps)")


class IntegratedGradients(AttributionMethod):
    """Integrated gradients from a black image, summed over channels, then over each patch.

    Args:
        steps: Trapezoid intervals (``steps + 1`` forward and backward passes, batched).
    """

    key = "integrated_gradients"
    title = N_("Integrated gradients")
    paper = "Sundararajan, Taly & Yan 2017, ICML, 'Axiomatic Attribution for Deep Networks'"
    class_specific = True
    reads_head = True
    passes = _PASSES.format(passes=DEFAULT_STEPS + 1, steps=DEFAULT_STEPS)

    def __init__(self, steps: int = DEFAULT_STEPS) -> None:
        self.steps = int(steps)
        self.passes = _PASSES.format(passes=self.steps + 1, steps=self.steps)

    @property
    def cost(self) -> str:
        """:attr:`passes` in the current language."""
        return _(_PASSES).format(passes=self.steps + 1, steps=self.steps)

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                  capture: Capture | None = None) -> Relevance:
        layout = TokenLayout.from_model(model, tuple(x.shape[-2:]))
        with model_lock(model), torch.enable_grad():
            result = integrated_gradients(model, x, target, steps=self.steps)
        return pixel_relevance(result.attributions, layout, self.key, result.target)
