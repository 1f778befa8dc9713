"""Top-k predictions with human-readable ImageNet names from timm's own class metadata."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from timm.data import ImageNetInfo, infer_imagenet_subset

from ._convert import to_numpy

if TYPE_CHECKING:
    from torch import nn

    from ._convert import Array


__all__ = ["Prediction", "imagenet_labels", "softmax", "top_k"]


@dataclass(frozen=True)
class Prediction:
    """One class of a model's output.

    Attributes:
        index: Class index in the model's output.
        label: Human-readable class name.
        probability: Softmax probability in [0, 1].
    """

    index: int
    label: str
    probability: float


def softmax(logits: Array) -> np.ndarray:
    """Numerically stable softmax over the last axis, in float64."""
    logits = to_numpy(logits)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def top_k(
    output: Array,
    labels: Sequence[str] | None = None,
    k: int = 5,
    from_logits: bool = True,
) -> list[Prediction]:
    """The ``k`` most probable classes, most probable first (ties: lower index first).

    Args:
        output: One image's output (C,) (or (1, C)): logits, or probabilities with ``from_logits=False``.
        labels: Name of each class (length C); None names them ``'class i'``.
        k: How many; fewer when the model has fewer classes.
        from_logits: Apply softmax first.

    Returns:
        A list of Prediction.
    """
    output = to_numpy(output)
    if output.ndim == 2 and output.shape[0] == 1:
        output = output[0]  # (C,)
    if output.ndim != 1:
        raise ValueError(f"expected one image's output (C,), got shape {output.shape}")
    if labels is not None and len(labels) != len(output):
        raise ValueError(f"{len(labels)} labels for {len(output)} classes")
    probs = softmax(output) if from_logits else output  # (C,)
    order = np.argsort(-probs, kind="stable")[: max(0, int(k))]
    return [
        Prediction(int(i), labels[i] if labels is not None else f"class {i}", float(probs[i])) for i in order
    ]


def imagenet_labels(model: nn.Module) -> list[str] | None:
    """Readable class names (WordNet lemmas, e.g. ``'tench, Tinca tinca'``) for an ImageNet classifier.

    The ImageNet subset is inferred by timm from the model's class count (``infer_imagenet_subset``:
    1000 -> ImageNet-1k, 11821 -> ImageNet-12k, 21843 -> ImageNet-21k, ...).

    Returns:
        One name per output class, or None when the model is not an ImageNet classifier (other class
        counts, or no classifier head).
    """
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    subset = infer_imagenet_subset(model) if num_classes else None
    if subset is None:
        return None
    info = ImageNetInfo(subset)
    if info.num_classes() != num_classes:
        return None
    return [info.index_to_description(i) for i in range(num_classes)]
