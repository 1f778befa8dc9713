"""A random map: the baseline every faithfulness metric is read against."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vitviz.i18n import N_
from vitviz.layout import TokenLayout

from .base import AttributionMethod, Relevance

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vitviz.capture import Capture


__all__ = ["RandomMap"]


class RandomMap(AttributionMethod):
    """Independent uniform values per patch from a seeded generator: any ordering it implies is chance.

    Args:
        seed: Seed of ``numpy.random.default_rng``; the same seed gives the same map for the same grid.
    """

    key = "random"
    title = N_("Random (baseline)")
    paper = "baseline of the perturbation tests in Samek et al. 2017, IEEE TNNLS"
    class_specific = False
    reads_head = False
    passes = N_("none")

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                  capture: Capture | None = None) -> Relevance:
        layout = capture.layout if capture is not None else TokenLayout.from_model(model, tuple(x.shape[-2:]))
        patches = np.random.default_rng(self.seed).random(layout.grid_size)  # (gh, gw)
        return Relevance(patches=patches, method=self.key, target=None, layout=layout)
