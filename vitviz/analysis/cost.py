"""What a model costs: parameters, FLOPs and measured time; and for a ViT, how cost follows the patch size.

FLOPs are counted by PyTorch's own ``torch.utils.flop_counter.FlopCounterMode`` over one forward pass of one
image (a multiply-add counts 2). On the CPU, PyTorch's fused attention kernel is not one the counter knows,
so the count runs on a copy with timm's ``fused_attn`` switched off: attention is then two matrix products,
``Q K^T`` and ``A V``, each ``N x N x D`` multiply-adds per layer, which the counter sees; the forward's
result is the same. The time is the median wall time of repeated forward passes of the model as it is
(fused attention on), without gradients, on this machine: compare times measured side by side only.

A ViT at patch size ``p`` on an ``H x W`` input has ``N = (H / p)(W / p)`` patch tokens (plus its prefix
tokens): a *larger* patch means *fewer* tokens, so less compute, and the attention part shrinks fastest,
with ``N^2``.
"""
from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vitviz.capture import model_lock

from .repatch import nearest_input_size, with_patch_size

__all__ = ['Cost', 'PatchCost', 'count_flops', 'measure_cost', 'patch_costs', 'patch_tokens']


@dataclass(frozen=True)
class Cost:
    """One model's cost for one input size.

    Attributes:
        parameters: number of parameters.
        flops: floating-point operations of one forward pass of one image (multiply-add = 2).
        attention_flops: the part spent in attention's ``Q K^T`` and ``A V`` products (0 for a CNN).
        seconds: median wall time of one forward pass of one image, without gradients.
        repeats: how many timed passes the median is over.
        input_size: ``(H, W)``.
        threads: torch threads during the timing.
    """

    parameters: int
    flops: int
    attention_flops: int
    seconds: float
    repeats: int
    input_size: tuple[int, int]
    threads: int


@dataclass(frozen=True)
class PatchCost:
    """A ViT's cost at one patch size (see :func:`patch_costs`).

    Attributes:
        patch_size: square patch side in pixels.
        grid: patch rows and columns.
        tokens: patch tokens ``N = (H / p)(W / p)``.
        cost: the model's cost at this patch size (``cost.input_size`` is the input it ran on).
        prefix_tokens: class, distillation and register tokens, which attend beside the patches.
    """

    patch_size: int
    grid: tuple[int, int]
    tokens: int
    cost: Cost
    prefix_tokens: int = 0

    @property
    def attention_pairs(self) -> int:
        """Query-key pairs per head and layer: the square of the whole sequence, ``(N + prefix)^2``."""
        return (self.tokens + self.prefix_tokens) ** 2


def patch_tokens(input_size: tuple[int, int] | int, patch_size: int) -> int:
    """Patch tokens ``N = (H / p)(W / p)`` of a ViT with square patches of side ``p``."""
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    if h % patch_size or w % patch_size:
        raise ValueError(f'patch size {patch_size} does not divide the input {h}x{w}')
    return (h // patch_size) * (w // patch_size)


def _unfused(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose attention modules compute ``Q K^T`` and ``A V`` as plain products."""
    with model_lock(model):
        twin = copy.deepcopy(model)
    for module in twin.modules():
        if hasattr(module, 'fused_attn'):
            module.fused_attn = False
    return twin


def count_flops(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """``(total, attention)`` FLOPs of ``model(x)`` by ``FlopCounterMode`` (attention as explicit products).

    The attention part is what the counter attributes to batched products (``bmm``) inside modules that
    have a ``fused_attn`` switch (timm's attention modules).
    """
    has_attention = any(hasattr(m, 'fused_attn') for m in model.modules())
    twin = _unfused(model) if has_attention else model
    attention_names = {name for name, m in twin.named_modules() if hasattr(m, 'fused_attn')}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        twin(x)
    counts = counter.get_flop_counts()
    prefix = type(twin).__name__
    attention = 0
    for name in attention_names:
        per_op = counts.get(f'{prefix}.{name}', {})
        attention += sum(v for op, v in per_op.items() if 'bmm' in str(op) or 'matmul' in str(op))
    return int(counter.get_total_flops()), int(attention)


def _median_seconds(model: nn.Module, x: torch.Tensor, repeats: int, warmup: int) -> float:
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_cost(model: nn.Module, input_size: tuple[int, int] | int, *, repeats: int = 5, warmup: int = 1) -> Cost:
    """Parameters, FLOPs and measured time of ``model`` on one ``input_size`` image (random pixels).

    Args:
        model: any ``nn.Module`` taking ``(1, 3, H, W)`` (in eval mode for a fair time).
        input_size: ``(H, W)`` or a side.
        repeats: timed forward passes (the median is reported).
        warmup: untimed passes before them.
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    param = next(model.parameters(), None)
    device, dtype = (param.device, param.dtype) if param is not None else ('cpu', torch.float32)
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    flops, attention = count_flops(model, x)
    return Cost(parameters=sum(p.numel() for p in model.parameters()), flops=flops, attention_flops=attention,
                seconds=_median_seconds(model, x, repeats, warmup), repeats=repeats, input_size=(h, w),
                threads=torch.get_num_threads())


def patch_costs(model: nn.Module, patch_sizes: Iterable[int], *, input_size: tuple[int, int] | int | None = None,
                repeats: int = 5, warmup: int = 1) -> list[PatchCost]:
    """A ViT's cost at each patch size, on copies re-patchified by :func:`~vitviz.analysis.with_patch_size`.

    Args:
        model: a timm ViT (``set_input_size`` and ``patch_embed``).
        patch_sizes: square patch sides. A side that does not divide the input runs on the nearest input it
            divides (:func:`~vitviz.analysis.nearest_input_size`), as the repatched model itself does.
        input_size: ``(H, W)``; defaults to the model's own.
        repeats: timed passes per patch size.
        warmup: untimed passes before them.
    """
    size = tuple(model.patch_embed.img_size) if input_size is None else input_size
    out = []
    for p in patch_sizes:
        h, w = nearest_input_size(size, p)
        resized = with_patch_size(model, p, img_size=(h, w)).eval()
        out.append(PatchCost(patch_size=p, grid=(h // p, w // p), tokens=patch_tokens((h, w), p),
                             cost=measure_cost(resized, (h, w), repeats=repeats, warmup=warmup),
                             prefix_tokens=int(getattr(model, 'num_prefix_tokens', 0))))
    return out
