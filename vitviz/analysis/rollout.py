"""Attention rollout and gradient-weighted rollout: how attention flows from the input to a token.

Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers") models a block as
attention plus its residual connection, ``Â = 0.5·I + 0.5·A`` with rows re-normalised, and multiplies these
from the first layer up: ``R_l = Â_l · R_{l-1}``, ``R_{start-1} = I``. Row ``i`` of ``R_l`` says how much
token ``i`` after layer ``l`` draws on each input token. Heads are fused first (mean, or max/min as in the
widely used variant by J. Gildenblat), optionally after discarding the weakest links.

Gradient rollout (Chefer, Gur & Wolf 2021, "Generic Attention-model Explainability for Interpreting
Bi-Modal and Encoder-Decoder Transformers", Eq. 5-6) weights each head's attention by the gradient of the
target class score and keeps the positive part, ``Ā = E_h[(∇A ⊙ A)^+]``, and accumulates
``R ← R + Ā·R`` from ``R = I``. It is class specific.

The map is the class token's row of ``R`` over the patches; a model without a class token (average or
attention pooling) has no single read-out token, so the map is the mean of the patch tokens' rows instead,
and the result says so. With a ``Capture`` the computation goes layer by layer
(``capture.fused_attention``), never holding all layers' attention at once.

The maps only need the read-out row ``r_l = e·M_l···M_s`` of each ``R_l`` (``e`` picks the class token, or
averages the patch tokens; ``M`` is ``Â`` or ``I + Ā``), so by default no ``N × N`` product is formed:
the layers are visited from the top down and every read-out row still being built is multiplied by the
layer's step matrix, ``rows[l:] ← rows[l:] · M_l``. That costs ``O(L²·N²)`` (at most L rows times an
``N × N`` matrix per layer) instead of the ``O(L·N³)`` of forming each ``R_l``, and holds ``(L, N)`` rows
instead of ``N × N`` matrices. ``keep_joint=True`` forms ``R`` itself when it is wanted.

Both rollouts share their read-out, layer ranges and precomputed steps here; the per-layer step matrices
(head fusion, discarding, the residual, the gradient weighting) are made in :mod:`.rollout_matrices`.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._convert import is_capture, to_numpy
from .rollout_matrices import (
    FUSIONS,
    array_layers,
    checked_layer,
    discard_lowest,
    fuse_heads,
    gradient_matrices,
    gradient_pairs,
    gradient_rollout_steps,
    rollout_matrices,
    rollout_steps,
)

if TYPE_CHECKING:
    from vitviz.layout import TokenLayout

    from ._convert import AttentionSource


__all__ = ["RolloutResult", "discard_lowest", "gradient_rollout", "gradient_rollout_steps", "rollout",
           "rollout_steps"]



@dataclass(frozen=True)
class RolloutResult:
    """Rollout after every layer of a range, with the read-out map for each step.

    Attributes:
        maps: (L', gh, gw) read-out row over the patch tokens after each layer; None without a layout.
        prefix: (L', P) read-out row at the prefix tokens (class, registers, ...); None without a layout.
        joint: (N, N) joint attention ``R`` after the last layer of the range; None unless asked for with
            ``keep_joint=True`` (always formed without a layout, where it is the only result).
        cumulative: (L', N, N) ``R`` after each layer; with ``keep_joint=True`` and attention-array input only
            (a Capture is processed layer by layer and keeps just ``joint``).
        layers: Index of the last layer folded in at each step, e.g. ``(0, 1, ..., 11)``.
        readout: ``'cls'`` (the class token's row) or ``'mean_patches'`` (mean of the patch tokens' rows,
            for models without a class token); None without a layout.
        method: ``'rollout'`` or ``'gradient_rollout'``.
        head_fusion: How heads were fused (``'mean'``, ``'max'``, ``'min'``; gradient rollout: ``'mean'``).
        discard_ratio: Fraction of each row's entries discarded before the residual (rollout only).
    """

    maps: np.ndarray | None
    prefix: np.ndarray | None
    joint: np.ndarray | None
    cumulative: np.ndarray | None
    layers: tuple[int, ...]
    readout: str | None
    method: str
    head_fusion: str
    discard_ratio: float

    @property
    def from_class_token(self) -> bool:
        return self.readout == "cls"

    @property
    def final_map(self) -> np.ndarray | None:
        """(gh, gw) map after the last layer of the range."""
        return None if self.maps is None else self.maps[-1]


def _layer_range(num_layers: int, start_layer: int, end_layer: int | None) -> range:
    layers = range(num_layers)[start_layer:end_layer]
    if len(layers) == 0:
        raise ValueError(f"no layers in [{start_layer}, {end_layer}) of {num_layers} layers")
    return layers


def _readout_row(joint: np.ndarray, layout: TokenLayout) -> np.ndarray:
    """The class token's row of R, or the mean of the patch tokens' rows: (N,)."""
    if joint.shape[-1] != layout.num_tokens:
        raise ValueError(f"attention over {joint.shape[-1]} tokens does not match {layout.describe()}")
    if layout.class_index is not None:
        return joint[layout.class_index]
    return joint[layout.patch_slice].mean(axis=0)


def _readout_vector(layout: TokenLayout) -> np.ndarray:
    """``e`` with ``e·R`` the read-out row: the class token's indicator, or 1/P on each patch token: (N,)."""
    vector = np.zeros(layout.num_tokens)
    if layout.class_index is not None:
        vector[layout.class_index] = 1.0
    else:
        vector[layout.patch_slice] = 1.0 / layout.num_patches
    return vector


def _readout_rows(steps_top_down: Iterable[np.ndarray], count: int, readout: np.ndarray) -> np.ndarray:
    """Read-out row of the product after each layer, from step matrices given from the top layer down.

    With steps ``M_0 … M_{count-1}`` (bottom to top) visited as ``M_{count-1}, …, M_0``, row ``l`` of the
    result is ``e·M_l·M_{l-1}···M_0``: when layer ``j`` is visited, row ``j`` starts as ``e`` and every row
    ``≥ j`` is multiplied by ``M_j`` on the right.

    Returns:
        (count, N) float64.
    """
    rows = np.empty((count, readout.shape[0]))  # (L', N)
    for j, step in zip(range(count - 1, -1, -1), steps_top_down):  # step: (N, N) of layer j
        if step.shape[-1] != readout.shape[0]:
            raise ValueError(f"attention over {step.shape[-1]} tokens does not match {readout.shape[0]} tokens")
        rows[j] = readout
        rows[j:] = rows[j:] @ step  # (L'-j, N) · (N, N)
    return rows


def _rows_result(rows: np.ndarray, layers: range, layout: TokenLayout, **info: str | float) -> RolloutResult:
    prefix, maps = layout.split(rows)  # (L', P), (L', gh, gw)
    readout = "cls" if layout.class_index is not None else "mean_patches"
    return RolloutResult(maps=maps, prefix=prefix, joint=None, cumulative=None, layers=tuple(layers),
                         readout=readout, **info)


def _collect(
    steps: Iterator[np.ndarray],
    layers: range,
    layout: TokenLayout,
    keep_cumulative: bool,
    **info: str | float,
) -> RolloutResult:
    """Run the step iterator, keeping each step's read-out row (and all of R only when asked)."""
    kept, picked = [], []
    for joint in steps:  # (N, N) after each layer
        if keep_cumulative:
            kept.append(joint)
        if layout is not None:
            picked.append(_readout_row(joint, layout))
    maps = prefix = readout = None
    if layout is not None:
        prefix, maps = layout.split(np.stack(picked))  # (L', P), (L', gh, gw)
        readout = "cls" if layout.class_index is not None else "mean_patches"
    return RolloutResult(
        maps=maps,
        prefix=prefix,
        joint=joint,
        cumulative=np.stack(kept) if keep_cumulative else None,  # (L', N, N)
        layers=tuple(layers),
        readout=readout,
        **info,
    )


def _cumulative_products(matrices: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """R after each layer, from the bottom layer's step matrix M up: R_l = M_l · R_{l-1} from R = I.

    Rollout: M = Â. Gradient rollout: M = I + Ā, so R ← R + Ā·R.
    """
    joint = None
    for step in matrices:  # (N, N) per layer
        joint = step if joint is None else step @ joint  # R_l = M_l · R_{l-1}
        yield joint


def rollout(
    attentions: AttentionSource,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    start_layer: int = 0,
    end_layer: int | None = None,
    *,
    layout: TokenLayout | None = None,
    item: int = 0,
    keep_joint: bool = False,
    steps: Sequence[np.ndarray] | None = None,
) -> RolloutResult:
    """Attention rollout (Abnar & Zuidema 2020) over layers ``[start_layer, end_layer)``.

    Per layer: fuse heads, optionally discard the weakest entries of each row (never a token's own entry,
    never the class-token column: see :func:`discard_lowest`), add the residual ``Â = 0.5·I + 0.5·A`` and
    re-normalise rows, then ``R_l = Â_l · R_{l-1}`` from ``R = I``.

    Args:
        attentions: A Capture (computed layer by layer), or one image's attention (L, H, N, N) or a list of
            L arrays (H, N, N), numpy or torch.
        head_fusion: ``'mean'``, ``'max'`` or ``'min'`` over heads.
        discard_ratio: Fraction in [0, 1) of each row's entries to zero before the residual.
        start_layer: First layer folded in (Python slice semantics; negative counts from the end).
        end_layer: Layer after the last one folded in; None for the last layer.
        layout: Token layout (taken from a Capture when omitted); without one there are no maps and no
            class-token column is protected from discarding.
        item: Batch item of a Capture.
        keep_joint: Also form the joint attention ``R`` (``O(L·N³)``; with attention arrays, ``R`` after
            every layer too). Without it only the read-out rows are computed (``O(L²·N²)``, see the module
            docstring) and ``joint`` is None. Always on without a layout.
        steps: Every layer's ``Â`` (N, N), from :func:`rollout_steps` of the same attention with the same
            ``head_fusion``, ``discard_ratio`` and ``item``: the attention is then not read again, so another
            start or end layer costs only the products (the result is the same).

    Returns:
        The RolloutResult.
    """
    if head_fusion not in FUSIONS:
        raise ValueError(f"head_fusion must be one of {FUSIONS}, not {head_fusion!r}")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    from_capture = is_capture(attentions)
    layout = attentions.layout if from_capture and layout is None else layout
    keep_column = None if layout is None else layout.class_index
    if from_capture:
        layers = _layer_range(attentions.num_layers, start_layer, end_layer)

        def fused(order):
            return (to_numpy(attentions.fused_attention(i, head_fusion)[item]) for i in order)  # (N, N) each
    else:
        stack = array_layers(attentions)
        layers = _layer_range(len(stack), start_layer, end_layer)

        def fused(order):
            return (fuse_heads(checked_layer(stack, i), head_fusion) for i in order)  # (N, N) each
    steps = _checked_steps(steps, attentions.num_layers if from_capture else len(stack))
    info = dict(method="rollout", head_fusion=head_fusion, discard_ratio=float(discard_ratio))

    def matrices(order):
        if steps is not None:
            return (steps[i] for i in order)
        return rollout_matrices(fused(order), float(discard_ratio), keep_column)

    if keep_joint or layout is None:
        products = _cumulative_products(matrices(layers))
        return _collect(products, layers, layout, keep_cumulative=not from_capture, **info)
    return _rows_result(_readout_rows(matrices(reversed(layers)), len(layers), _readout_vector(layout)), layers,
                        layout, **info)


def gradient_rollout(
    attentions: AttentionSource,
    grads: AttentionSource | None = None,
    start_layer: int = 0,
    end_layer: int | None = None,
    *,
    layout: TokenLayout | None = None,
    item: int = 0,
    keep_joint: bool = False,
    steps: Sequence[np.ndarray] | None = None,
) -> RolloutResult:
    """Gradient-weighted attention rollout (Chefer, Gur & Wolf 2021) over layers ``[start_layer, end_layer)``.

    Per layer: ``Ā = E_h[(∇A ⊙ A)^+]`` (positive part of gradient times attention, mean over heads), then
    ``R ← R + Ā·R`` from ``R = I``. ``grads[l]`` must be the gradient of the target score with respect to
    ``attentions[l]``, the same layer.

    Args:
        attentions: A Capture taken with ``target=...`` (its ``attention_grad`` supplies the gradients), or
            one image's attention (L, H, N, N) / a list of L arrays (H, N, N).
        grads: Gradients shaped like ``attentions``; must be None for a Capture.
        start_layer: First layer folded in (Python slice semantics).
        end_layer: Layer after the last one folded in; None for the last layer.
        layout: Token layout (taken from a Capture when omitted); without one there are no maps.
        item: Batch item of a Capture.
        keep_joint: Also form the joint ``R`` (and, with arrays, ``R`` after every layer); see :func:`rollout`.
        steps: Every layer's ``I + Ā`` (N, N), from :func:`gradient_rollout_steps` of the same capture (or
            arrays) and ``item``: attention and gradients are then not read again (the result is the same).

    Returns:
        The RolloutResult (``method='gradient_rollout'``).
    """
    from_capture = is_capture(attentions)
    num_layers, pairs = gradient_pairs(attentions, grads, item=item)
    if from_capture:
        layout = attentions.layout if layout is None else layout
    layers = _layer_range(num_layers, start_layer, end_layer)
    steps = _checked_steps(steps, num_layers)
    info = dict(method="gradient_rollout", head_fusion="mean", discard_ratio=0.0)

    def matrices(order):
        if steps is not None:
            return (steps[i] for i in order)
        return gradient_matrices(pairs(order))

    if keep_joint or layout is None:
        products = _cumulative_products(matrices(layers))
        return _collect(products, layers, layout, keep_cumulative=not from_capture, **info)
    return _rows_result(_readout_rows(matrices(reversed(layers)), len(layers), _readout_vector(layout)), layers,
                        layout, **info)


def _checked_steps(steps: Sequence[np.ndarray] | None, num_layers: int) -> Sequence[np.ndarray] | None:
    """Precomputed step matrices, which must cover every layer."""
    if steps is not None and len(steps) != num_layers:
        raise ValueError(f"{len(steps)} step matrices for {num_layers} layers")
    return steps
