"""The step matrices the rollouts multiply, one per layer: how one block's attention becomes one step.

Attention rollout (Abnar & Zuidema 2020): heads fused (mean, or max/min), the weakest links optionally discarded,
then ``Â = 0.5·I + 0.5·A`` with rows re-normalised. Gradient rollout (Chefer, Gur & Wolf 2021, Eq. 5): ``I + Ā``
with ``Ā = E_h[(∇A ⊙ A)^+]``. :mod:`.rollout` multiplies them and reads the maps out; :func:`rollout_steps` and
:func:`gradient_rollout_steps` hand every layer's step over, to be rolled out again over other layer ranges.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from ._convert import is_capture, to_numpy

if TYPE_CHECKING:
    from vitviz.layout import TokenLayout

    from ._convert import Array, AttentionSource

__all__ = ["FUSIONS", "aligned_pairs", "array_layers", "checked_layer", "discard_lowest", "fuse_heads",
           "gradient_matrices", "gradient_pairs", "gradient_rollout_steps", "rollout_matrices", "rollout_steps",
           "with_residual"]

FUSIONS = ("mean", "max", "min")


def fuse_heads(attn: np.ndarray, fusion: str) -> np.ndarray:
    """Fuse heads of (H, N, N) attention into (N, N)."""
    if fusion not in FUSIONS:
        raise ValueError(f"head_fusion must be one of {FUSIONS}, not {fusion!r}")
    return getattr(attn, fusion)(axis=0)  # (N, N)


def discard_lowest(attn: Array, ratio: float, keep_column: int | None = None) -> np.ndarray:
    """Zero the lowest ``ratio`` fraction of each row's discardable entries.

    A row's own (diagonal) entry is never discarded, nor the ``keep_column`` entry (the class token's
    column in rollout, as in common practice, so that attention to the class token is never cut). In row
    ``i`` with ``n`` discardable entries, the ``floor(ratio * n)`` smallest are zeroed (entries tied at the
    cut are chosen deterministically but in no documented order). Rows are not re-normalised here.

    Args:
        attn: (N, N) attention (heads already fused).
        ratio: Fraction in [0, 1).
        keep_column: A column that is never discarded, or None.

    Returns:
        float64 array (N, N).
    """
    attn = to_numpy(attn)
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {ratio}")
    n = attn.shape[-1]
    if ratio == 0.0:
        return attn.copy()
    protected = np.eye(n, dtype=bool)  # (N, N)
    if keep_column is not None:
        protected[:, keep_column] = True
    eligible = n - protected.sum(axis=1)  # (N,)
    count = np.floor(ratio * eligible + 1e-9).astype(int)  # (N,) entries to zero per row
    candidates = np.where(protected, np.inf, attn)  # (N, N): protected entries sort last
    drop = np.zeros((n, n), dtype=bool)
    for k in np.unique(count[count > 0]):  # one or two distinct counts: the class row and the others
        rows = np.flatnonzero(count == k)
        smallest = np.argpartition(candidates[rows], k - 1, axis=1)[:, :k]  # (rows, k), linear time per row
        drop[rows[:, None], smallest] = True
    return np.where(drop, 0.0, attn)


def with_residual(attn: np.ndarray) -> np.ndarray:
    """Â = 0.5·I + 0.5·A, rows re-normalised to sum to 1."""
    mixed = 0.5 * attn  # (N, N), a new array: the input is never changed
    mixed[np.diag_indices_from(mixed)] += 0.5
    mixed /= mixed.sum(axis=-1, keepdims=True)
    return mixed


def rollout_matrices(
    fused: Iterable[np.ndarray], discard_ratio: float, keep_column: int | None
) -> Iterator[np.ndarray]:
    """Â of each layer, in the order given: fused (N, N) attention, weakest links discarded, residual added."""
    for attn in fused:  # (N, N) per layer
        if discard_ratio > 0:
            attn = discard_lowest(attn, discard_ratio, keep_column)
        yield with_residual(attn)  # (N, N)


def gradient_matrices(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[np.ndarray]:
    """I + Ā of each layer, in the order given, with Ā = E_h[(∇A ⊙ A)^+] from its (attention, gradient)."""
    for attn, grad in pairs:  # (H, N, N) each
        weighted = np.clip(grad * attn, 0.0, None).mean(axis=0)  # Ā, (N, N)
        weighted[np.diag_indices_from(weighted)] += 1.0  # I + Ā
        yield weighted


def array_layers(attentions: AttentionSource) -> list[np.ndarray]:
    if hasattr(attentions, "ndim") and attentions.ndim != 4:
        raise ValueError(
            "expected one image's attention (L, H, N, N) or a list of (H, N, N), "
            f"got shape {tuple(attentions.shape)}"
        )
    return list(attentions)


def checked_layer(stack: list, layer: int) -> np.ndarray:
    """One layer's attention (H, N, N) as float64, shape checked."""
    attn = to_numpy(stack[layer])
    if attn.ndim != 3 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"layer {layer}: expected square attention (H, N, N), got shape {attn.shape}")
    return attn


def aligned_pairs(stack: list, grad_stack: list, layers: Iterable[int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i in layers:
        attn, grad = checked_layer(stack, i), to_numpy(grad_stack[i])  # (H, N, N) each
        if grad.shape != attn.shape:
            raise ValueError(f"layer {i}: gradient shape {grad.shape} differs from attention shape {attn.shape}")
        yield attn, grad


def rollout_steps(
    attentions: AttentionSource, head_fusion: str = "mean", discard_ratio: float = 0.0, *,
    layout: TokenLayout | None = None, item: int = 0,
) -> list[np.ndarray]:
    """Every layer's rollout step ``Â_l`` (N, N), as :func:`rollout` forms it: heads fused, the weakest links
    discarded (never a token's own entry or the class-token column), the residual added, rows re-normalised.

    Pass the list to :func:`rollout` (``steps=``) to roll out other layer ranges without reading the attention
    again. Holds ``L·N²`` float64 values (3.7 MB for ViT-B/16 at 224).
    """
    if head_fusion not in FUSIONS:
        raise ValueError(f"head_fusion must be one of {FUSIONS}, not {head_fusion!r}")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    if is_capture(attentions):
        layout = attentions.layout if layout is None else layout
        fused = (to_numpy(attentions.fused_attention(i, head_fusion)[item]) for i in range(attentions.num_layers))
    else:
        stack = array_layers(attentions)
        fused = (fuse_heads(checked_layer(stack, i), head_fusion) for i in range(len(stack)))
    keep_column = None if layout is None else layout.class_index
    return list(rollout_matrices(fused, float(discard_ratio), keep_column))


def gradient_pairs(attentions: AttentionSource, grads: AttentionSource | None = None, *, item: int = 0,
                   ) -> tuple[int, Callable[[Iterable[int]], Iterator[tuple[np.ndarray, np.ndarray]]]]:
    """The number of layers, and a function giving the (attention, gradient) pair, (H, N, N) each, of every layer
    it is asked for: from a Capture (its own gradients) or from attention and gradient arrays, shapes checked."""
    if is_capture(attentions):
        if grads is not None:
            raise ValueError("a Capture carries its own gradients; pass grads only with attention arrays")
        return attentions.num_layers, lambda order: (
            (to_numpy(attentions.attention(i)[item]), to_numpy(attentions.attention_grad(i)[item])) for i in order)
    if grads is None:
        raise ValueError("gradient rollout needs the gradients of the attention (grads)")
    stack, grad_stack = array_layers(attentions), array_layers(grads)
    if len(stack) != len(grad_stack):
        raise ValueError(f"{len(grad_stack)} gradient layers for {len(stack)} attention layers")
    return len(stack), lambda order: aligned_pairs(stack, grad_stack, order)


def gradient_rollout_steps(attentions: AttentionSource, grads: AttentionSource | None = None, *,
                           item: int = 0) -> list[np.ndarray]:
    """Every layer's gradient-rollout step ``I + Ā_l`` (N, N), ``Ā = E_h[(∇A ⊙ A)^+]``, as
    :func:`gradient_rollout` forms it; pass the list to it (``steps=``) to reuse them."""
    num_layers, pairs = gradient_pairs(attentions, grads, item=item)
    return list(gradient_matrices(pairs(range(num_layers))))
