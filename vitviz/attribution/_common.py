"""Helpers shared by the gradient-based methods: one scored forward pass, pixels to patches, hooks.

Every method here runs the model under ``vitviz.capture.model_lock`` (so it never meets a capture's hooks
or flags on a model shared by several sessions), takes gradients with ``torch.autograd.grad`` (so no
parameter's ``.grad`` is touched) and removes what it registered in ``finally``.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from vitviz.capture import check_target
from vitviz.hooks import Edits
from vitviz.i18n import _
from vitviz.layout import TokenLayout

from .base import Relevance, resolve_target

__all__ = ["check_input", "check_plain_blocks", "pixel_relevance", "pixels_to_patches", "recorded_output",
           "scored_forward"]


def check_input(x: torch.Tensor) -> None:
    """Raise a clear error unless ``x`` is one image ``(1, C, H, W)``."""
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"attribution explains one image (1, C, H, W), got shape {tuple(x.shape)}")


def check_plain_blocks(model: nn.Module, method: str, *, pools: tuple[str, ...] | None = None,
                       layer_scale: bool = False) -> None:
    """Refuse a model whose blocks an explicit-rule method does not cover, saying what is not covered.

    Args:
        model: The model to explain.
        method: The method's name, for the message.
        pools: The ``global_pool`` values covered; None covers any pooling but attention pooling.
        layer_scale: Whether each block must be timm's ``Block`` (with ``ls1``/``ls2``, identity or not).

    Raises:
        ValueError: No transformer blocks, attention pooling (or a pooling outside ``pools``), or a block
            whose attention is not timm's plain ``Attention`` or whose MLP is not timm's ``Mlp``.
    """
    from timm.layers import Mlp  # timm: heavy, imported on first use
    from timm.layers.attention import Attention

    blocks = getattr(model, "blocks", None)
    if not blocks:
        raise ValueError(_("{method} needs a timm ViT with transformer blocks; {model} has none").format(
            method=method, model=type(model).__name__))
    pool = getattr(model, "global_pool", "token")
    if getattr(model, "attn_pool", None) is not None:
        raise ValueError(_("{method} does not cover attention pooling heads (global_pool='map')").format(
            method=method))
    if pools is not None and pool not in pools:
        raise ValueError(_("{method} covers class-token and average pooling, not global_pool={pool}").format(
            method=method, pool=repr(pool)))
    for i, block in enumerate(blocks):
        attn, mlp = getattr(block, "attn", None), getattr(block, "mlp", None)
        if type(attn) is not Attention or getattr(attn, "gate", None) is not None:
            raise ValueError(_("block {index}: {method} covers timm's plain Attention, not {module}").format(
                index=i, method=method, module=type(attn).__name__))
        if type(mlp) is not Mlp or (layer_scale and not hasattr(block, "ls1")):
            raise ValueError(_("block {index}: {method} covers timm's Block with its Mlp, not {module}").format(
                index=i, method=method, module=type(mlp).__name__))


def class_target(model: nn.Module, x: torch.Tensor, target: int | None, output: torch.Tensor, method: str) -> int:
    """The class to explain, checked by ``vitviz.capture.check_target`` against the model's classes (a module
    without ``num_classes``: its outputs), read from ``output`` when not given (no extra forward pass)."""
    num_classes = getattr(model, "num_classes", None)
    num_classes = int(output.shape[-1]) if num_classes is None else int(num_classes or 0)
    resolved = resolve_target(model, x, target, output) if num_classes else None
    if resolved is None:
        raise ValueError(_("{method} explains a class score: this model has no classifier head").format(method=method))
    return check_target(resolved, min(num_classes, int(output.shape[-1])))


def scored_forward(model: nn.Module, x: torch.Tensor, target: int | None,
                   method: str) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """One forward pass with a graph from the input: ``(x_leaf, logits, target, score)``.

    ``x_leaf`` is a detached copy of ``x`` that requires grad, ``score`` the target class's logit.
    """
    check_input(x)
    x_leaf = x.detach().clone().requires_grad_(True)
    logits = model(x_leaf)
    target = class_target(model, x, target, logits, method)
    return x_leaf, logits, target, logits[0, target]


def pixels_to_patches(pixels: np.ndarray, layout: TokenLayout) -> np.ndarray:
    """Sum per-pixel relevance ``(H, W)`` over each patch: ``(gh, gw)``.

    Pixels beyond the last whole patch (which timm's patch embedding drops) are ignored.
    """
    (gh, gw), (ph, pw) = layout.grid_size, layout.patch_size
    cropped = np.asarray(pixels, dtype=np.float64)[: gh * ph, : gw * pw]
    return cropped.reshape(gh, ph, gw, pw).sum(axis=(1, 3))  # (gh, gw)


def pixel_relevance(per_channel: torch.Tensor, layout: TokenLayout, method: str, target: int,
                    reduce: str = "sum", prefix: dict[str, float] | None = None) -> Relevance:
    """A Relevance from per-channel input relevance ``(1, C, H, W)``, reduced over channels."""
    values = per_channel.detach()[0].double()  # (C, H, W)
    pixels = (values.sum(0) if reduce == "sum" else values.amax(0)).cpu().numpy()  # (H, W)
    return Relevance(patches=pixels_to_patches(pixels, layout), method=method, target=target,
                     layout=layout, prefix=prefix, pixels=pixels)


@contextmanager
def recorded_output(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record ``module``'s outputs (with their graph) while inside; the hook is always removed.

    Raises:
        vitviz.hooks.HookNeverFired: On exit without error, when the module never ran (a RuntimeError).
    """
    outputs: list[torch.Tensor] = []
    with Edits() as edits:
        edits.forward_hook(module, lambda _m, _a, out: outputs.append(out), required=True)
        yield outputs
