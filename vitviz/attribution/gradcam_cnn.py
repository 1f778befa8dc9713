"""Grad-CAM (Selvaraju et al. 2017, ICCV) on a CNN's last stage: its standard home.

The last stage's feature map ``A`` (``forward_features``, before timm's pooling head) has ``C`` channels over an
``h x w`` grid. Each channel is weighed by the gradient of the class score averaged over the grid (Eq. 1 of
the paper, ``alpha_c = mean_ij d y / d A_cij``) and the map is ``ReLU(sum_c alpha_c A_c)`` (Eq. 2). It takes
one forward and one backward pass through the head only, with no hook: timm's ``forward_features`` and
``forward_head`` split the model exactly there.

This is the CNN counterpart of :mod:`vitviz.attribution.gradcam` (Grad-CAM on a ViT's patch tokens), kept out
of the ViT registry ``METHODS`` because it takes a CNN.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["CnnGradCAM", "cnn_gradcam"]


@dataclass(frozen=True)
class CnnGradCAM:
    """Grad-CAM of one image on a CNN's last stage.

    Attributes:
        cells: ``(h, w)`` float64 non-negative map over the last feature map's cells.
        target: class explained.
        probability: the model's softmax probability of ``target`` on the image.
        cell_size: ``(cell height, cell width)`` in input pixels (input size over feature-map size).
    """

    cells: np.ndarray
    target: int
    probability: float
    cell_size: tuple[float, float]


def cnn_gradcam(model: nn.Module, x: torch.Tensor, target: int | None = None) -> CnnGradCAM:
    """Grad-CAM on the last stage of a timm CNN.

    Args:
        model: a timm CNN with ``forward_features`` and ``forward_head`` (left untouched, parameters frozen or not).
        x: one normalised input ``(1, 3, H, W)``.
        target: class to explain; None for the top class.

    Returns:
        The frozen :class:`CnnGradCAM`.
    """
    import torch  # torch: heavy, imported on first use

    from vitviz.capture import check_target, model_lock

    if getattr(x, "ndim", 0) != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one image (1, 3, H, W), got shape {tuple(getattr(x, 'shape', ()))}")
    x = x.to(next(model.parameters()).device)  # the model's own device (a GPU server's)
    with model_lock(model), torch.enable_grad():
        with torch.no_grad():
            features = model.forward_features(x)  # (1, C, h, w)
        features = features.detach().requires_grad_(True)
        logits = model.forward_head(features)  # (1, classes)
        target = int(logits.argmax(1)) if target is None else check_target(target, logits.shape[1])
        (grads,) = torch.autograd.grad(logits[0, target], features)  # (1, C, h, w)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1)
    cells = torch.relu((weights * features.detach()).sum(dim=1))[0]  # (h, w)
    probability = float(torch.softmax(logits.detach().double(), dim=1)[0, target])
    size = (x.shape[-2] / features.shape[-2], x.shape[-1] / features.shape[-1])
    return CnnGradCAM(cells=cells.double().cpu().numpy(), target=target, probability=probability, cell_size=size)
