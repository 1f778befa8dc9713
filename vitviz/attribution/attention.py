"""Attention-based maps as attribution methods: raw attention, rollout, gradient-weighted rollout.

They wrap the analyses in ``vitviz.analysis`` (which hold the maths and its tests) behind the common
signature, reusing a Capture when the caller has one. The read-out row is the class token's, or the mean
of the patch tokens' rows for a model without a class token (as ``vitviz.analysis.rollout`` does).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vitviz import analysis
from vitviz.analysis._convert import to_numpy
from vitviz.capture import capture as run_capture
from vitviz.i18n import N_, _

from .base import AttributionMethod, Relevance, check_start_layer, resolve_target

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vitviz.capture import Capture


__all__ = ["GradientRollout", "RawAttention", "Rollout"]


def _capture(model: nn.Module, x: torch.Tensor, capture: Capture | None, target: int | None = None) -> Capture:
    """The caller's capture when it has what is needed, else a new one."""
    if capture is not None and (target is None or capture.target == (target,)):
        return capture
    return run_capture(model, x, target=target)


def _checked_start(start_layer: int, num_layers: int) -> int:
    """``start_layer``, refused with a clear message when the model has no block at that depth."""
    if start_layer >= num_layers:
        raise ValueError(_("start layer {start} is beyond this model's {layers} layers").format(
            start=start_layer, layers=num_layers))
    return start_layer


class RawAttention(AttributionMethod):
    """The last layer's attention of the read-out token over the patches, averaged over heads.

    The "raw attention" row of Chefer et al. 2021 (CVPR), Table 1; it never reads the classifier head.
    """

    key = "attention"
    title = N_("Raw attention (last layer)")
    paper = "Dosovitskiy et al. 2021, ICLR (ViT), Sec. 4.5"
    class_specific = False
    reads_head = False
    passes = N_("1 forward")

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                  capture: Capture | None = None) -> Relevance:
        cap = _capture(model, x, capture)
        layout = cap.layout
        last = cap.num_layers - 1
        if layout.class_index is not None:
            row = to_numpy(cap.attention_row(last, layout.class_index)[0]).mean(axis=0)  # (N,)
        else:
            fused = to_numpy(cap.fused_attention(last, "mean")[0])  # (N, N)
            row = fused[layout.patch_slice].mean(axis=0)  # (N,)
        prefix, patches = layout.split(row)  # (P,), (gh, gw)
        return Relevance(
            patches=patches, method=self.key, target=None, layout=layout,
            prefix=dict(zip(layout.prefix_names, map(float, prefix))),
        )


class Rollout(AttributionMethod):
    """Attention rollout (Abnar & Zuidema 2020), mean head fusion, no discarding, from ``start_layer`` on.

    Args:
        start_layer: First block folded in (0: every block). Chefer et al. 2021 use 1 for their Table 1
            (``generate_rollout(..., start_layer=1)``), which ``python -m vitviz.evaluate`` reproduces.
    """

    key = "rollout"
    title = N_("Attention rollout")
    paper = "Abnar & Zuidema 2020, ACL, 'Quantifying Attention Flow in Transformers'"
    class_specific = False
    reads_head = False
    passes = N_("1 forward")
    options = ("start_layer",)

    def __init__(self, start_layer: int = 0) -> None:
        self.start_layer = check_start_layer(start_layer)

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                  capture: Capture | None = None) -> Relevance:
        cap = _capture(model, x, capture)
        result = analysis.rollout(cap, start_layer=_checked_start(self.start_layer, cap.num_layers))
        return Relevance(
            patches=np.asarray(result.final_map, dtype=np.float64), method=self.key, target=None,
            layout=cap.layout, prefix=dict(zip(cap.layout.prefix_names, map(float, result.prefix[-1]))),
        )


class GradientRollout(AttributionMethod):
    """Gradient-weighted rollout (Chefer, Gur & Wolf 2021, ICCV): attention times its gradient, positive
    part, averaged over heads, accumulated as ``R ← R + Ā·R`` from block ``start_layer`` on.

    Args:
        start_layer: First block folded in (0: every block, as the ICCV paper's code does).
    """

    key = "gradient_rollout"
    title = N_("Gradient-weighted rollout")
    paper = ("Chefer, Gur & Wolf 2021, ICCV, 'Generic Attention-model Explainability for Interpreting "
             "Bi-Modal and Encoder-Decoder Transformers'")
    class_specific = True
    reads_head = True
    passes = N_("1 forward + 1 backward")
    options = ("start_layer",)

    def __init__(self, start_layer: int = 0) -> None:
        self.start_layer = check_start_layer(start_layer)

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                  capture: Capture | None = None) -> Relevance:
        output = None if capture is None else capture.output
        target = resolve_target(model, x, target, output)
        if target is None:
            raise ValueError(_("gradient rollout needs a classifier: this model has no class scores"))
        cap = _capture(model, x, capture, target=target)
        result = analysis.gradient_rollout(cap, start_layer=_checked_start(self.start_layer, cap.num_layers))
        return Relevance(
            patches=np.asarray(result.final_map, dtype=np.float64), method=self.key, target=target,
            layout=cap.layout, prefix=dict(zip(cap.layout.prefix_names, map(float, result.prefix[-1]))),
        )
