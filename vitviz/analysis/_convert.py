"""Array conversion shared by the analyses: numpy or torch in, numpy out (converted once)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

if TYPE_CHECKING:
    import torch

    from vitviz.capture import Capture

    Array = np.ndarray | torch.Tensor
    """numpy or torch (on any device)."""
    AttentionSource = Capture | Array | Sequence[Array]
    """A Capture, or one image's attention (L, H, N, N) as an array or a list of L (H, N, N) arrays."""
    Query = str | int | tuple[int, int]
    """A query token: a prefix name (``'cls'``, ``'reg0'``), a token index or a patch ``(row, col)``."""

__all__ = ["to_numpy", "is_capture"]


def to_numpy(x: ArrayLike | torch.Tensor, dtype: DTypeLike = np.float64) -> np.ndarray:
    """Convert a numpy array, torch tensor or nested sequence to a numpy array of ``dtype``.

    Torch tensors are detached and moved to the CPU first; bfloat16/half tensors are widened on the torch
    side because numpy has no bfloat16.
    """
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double() if np.dtype(dtype) == np.float64 else x.float()
        x = x.numpy()
    return np.asarray(x, dtype=dtype)


def is_capture(source: object) -> bool:
    """True for a ``vitviz.capture.Capture`` (duck-typed: it computes attention one layer at a time)."""
    return hasattr(source, "fused_attention") and hasattr(source, "attention_row") and hasattr(source, "layout")
