"""How far each depth reaches: the effective receptive field (Luo et al. 2016) and the theoretical one.

**Effective receptive field (ERF).** Luo, Li, Urtasun and Zemel 2016, "Understanding the Effective Receptive
Field in Deep Convolutional Neural Networks": put a gradient of 1 on the centre unit of a depth's output
(every channel of that unit, 0 everywhere else), back-propagate to the input, and look at the gradient's
magnitude over the input pixels; average over several inputs. Here, for both architectures:

- the unit is the centre position ``(h // 2, w // 2)`` of the depth's feature map: the centre patch token
  of a ViT (after block ℓ, or entering block 1 for ℓ = 0), the centre unit of a CNN stage;
- the map is ``mean over images of sum over input channels of |d (sum_c y[c, i, j]) / d x|``, normalised to
  sum to 1 (absolute values before averaging, so gradients of opposite sign in different images do not
  cancel);
- the radius holding a fraction ``q`` of the map's mass is the smallest distance ``r`` from the unit's
  centre such that pixels whose centres lie within ``r`` hold at least ``q`` of the mass.

Everything is deterministic: the same model and images give the same maps and radii, to the last bit.

**Theoretical receptive field.** Every input pixel that some path of kernels can carry to the unit. For a
CNN it follows from its conv and pool kernels, strides, paddings and dilations: we measure it exactly as the
support of the same gradient in a copy of the network whose every path counts positively (kernels set to
``1 / fan_in``, biases 0, norms removed, max pools made average pools, input of ones, float64), which for a
plain chain of layers is the textbook ``r_l = r_{l-1} + (k_l - 1) d_l j_{l-1}`` with ``j_l = j_{l-1} s_l``, and
for a network with branches (residual shortcuts) the largest over its paths. The canvas grows (each axis on
its own) until the support no longer touches its border. A ViT's token depends on its own patch before the
first block and on every pixel after it.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vitviz.capture import model_lock
from vitviz.layout import TokenLayout

from .depths import depth_names, depth_outputs, is_vit

__all__ = [
    'EffectiveReceptiveField',
    'GradientMass',
    'TheoreticalReceptiveField',
    'effective_receptive_field',
    'gradient_mass',
    'mass_radius',
    'positive_copy',
    'theoretical_receptive_field',
]

FeatureFn = Callable[[torch.Tensor], Sequence[torch.Tensor]]


@dataclass(frozen=True)
class TheoreticalReceptiveField:
    """The theoretical receptive field of each depth's centre unit, for one input size.

    Attributes:
        names: depth names.
        size: ``(L, 2)`` height and width in pixels of the field (``inf`` where it has no bound within
            ``max_size``: global, e.g. every ViT block).
        jump: ``(L,)`` distance in input pixels between neighbouring units (the depth's stride).
        centres: ``(L, 2)`` centre ``(y, x)`` of the centre unit's field, in input pixels (pixel ``k`` spans
            ``[k, k + 1)``).
        units: ``(L, 2)`` row and column of the centre unit in the depth's feature map.
        input_size: ``(H, W)`` the input these centres are for.
    """

    names: tuple[str, ...]
    size: np.ndarray
    jump: np.ndarray
    centres: np.ndarray
    units: np.ndarray
    input_size: tuple[int, int]

    def box(self, depth: int) -> tuple[float, float, float, float]:
        """``(top, left, bottom, right)`` of the field at ``depth`` in input pixels (may extend past the input)."""
        (cy, cx), (h, w) = self.centres[depth], self.size[depth]
        return cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2


@dataclass(frozen=True)
class EffectiveReceptiveField:
    """Effective receptive fields of the centre unit at every depth.

    Attributes:
        names: depth names.
        maps: ``(L, H, W)`` float64, each map sums to 1.
        centres: ``(L, 2)`` the measured unit's centre ``(y, x)`` in input pixels.
        units: ``(L, 2)`` row and column of the unit in its feature map.
        radius50: ``(L,)`` radius in pixels holding 50 % of each map's mass.
        radius90: ``(L,)`` radius holding 90 %.
        images: how many images the maps average over.
    """

    names: tuple[str, ...]
    maps: np.ndarray
    centres: np.ndarray
    units: np.ndarray
    radius50: np.ndarray
    radius90: np.ndarray
    images: int

    def radius(self, fraction: float) -> np.ndarray:
        """``(L,)`` radius holding ``fraction`` of each map's mass."""
        return np.array([mass_radius(m, c, fraction) for m, c in zip(self.maps, self.centres)])


def mass_radius(erf: np.ndarray, centre: Sequence[float], fraction: float) -> float:
    """Smallest distance from ``centre`` within which pixel centres hold ``fraction`` of ``erf``'s mass.

    Args:
        erf: ``(H, W)`` non-negative map.
        centre: ``(y, x)`` in pixels (pixel ``k`` spans ``[k, k + 1)``, its centre is ``k + 0.5``).
        fraction: in ``(0, 1]``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f'fraction must be in (0, 1], got {fraction}')
    erf = np.asarray(erf, dtype=np.float64)
    total = erf.sum()
    if not total > 0:
        return float('nan')
    yy, xx = np.mgrid[:erf.shape[0], :erf.shape[1]]
    dist = np.hypot(yy + 0.5 - centre[0], xx + 0.5 - centre[1]).ravel()  # (H*W,)
    order = np.argsort(dist, kind='stable')
    cum = np.cumsum(erf.ravel()[order]) / total
    k = int(np.searchsorted(cum, fraction - 1e-12))
    return float(dist[order][min(k, len(order) - 1)])


def _centre_units(maps: Sequence[torch.Tensor]) -> np.ndarray:
    return np.array([(m.shape[-2] // 2, m.shape[-1] // 2) for m in maps])  # (L, 2)


def _unit_gradients(feature_fn: FeatureFn, x: torch.Tensor) -> tuple[list[torch.Tensor], np.ndarray, list]:
    """``|d y[unit] / d x|`` summed over input channels, per depth and image: ``[(B, H, W)]``, the centre
    units ``(L, 2)`` and the feature-map sizes."""
    x = x.detach().clone().requires_grad_(True)
    maps = list(feature_fn(x))
    units = _centre_units(maps)
    grads = []
    for d, (fmap, (i, j)) in enumerate(zip(maps, units)):
        (g,) = torch.autograd.grad(fmap[:, :, i, j].sum(), x, retain_graph=d < len(maps) - 1)  # (B, C, H, W)
        grads.append(g.abs().sum(1))  # (B, H, W): images are independent, so one backward serves them all
    return grads, units, [tuple(m.shape[-2:]) for m in maps]


def _feature_fn(model: nn.Module | FeatureFn) -> tuple[FeatureFn, tuple[str, ...] | None]:
    if isinstance(model, nn.Module) and (is_vit(model) or hasattr(model, 'feature_info')):
        return (lambda x: depth_outputs(model, x).maps), depth_names(model)
    return model, None


@dataclass(frozen=True, eq=False)
class GradientMass:
    """What an effective receptive field averages, summed over some images: computed once for a fixed set and
    pooled with each new image's (``effective_receptive_field(..., pooled_with=)``).

    Attributes:
        sums: ``(L, H, W)`` float64, per depth the sum over images of ``|d y[unit] / d x|`` (summed over channels).
        units: ``(L, 2)`` the centre units.
        feature_sizes: per depth the feature map's ``(h, w)``.
        images: how many images are summed.
    """

    sums: np.ndarray
    units: np.ndarray
    feature_sizes: tuple[tuple[int, int], ...]
    images: int


def gradient_mass(model: nn.Module | FeatureFn, x: torch.Tensor) -> GradientMass:
    """The summed gradient magnitudes of ``model``'s centre units over the images ``x`` (as
    :func:`effective_receptive_field`, which normalises them into maps)."""
    fn, _names = _feature_fn(model)
    with torch.enable_grad():
        grads, units, shapes = _unit_gradients(fn, x)
    sums = np.stack([g.double().sum(0).cpu().numpy() for g in grads])  # (L, H, W)
    return GradientMass(sums=sums, units=units, feature_sizes=tuple(shapes), images=int(x.shape[0]))


def effective_receptive_field(model: nn.Module | FeatureFn, x: torch.Tensor, *,
                              centres: np.ndarray | None = None,
                              pooled_with: GradientMass | None = None) -> EffectiveReceptiveField:
    """Effective receptive field of the centre unit at every depth of ``model`` (Luo et al. 2016).

    The model runs in its current mode (``eval()`` for a trained model: BatchNorm uses its statistics, so the
    images do not interact); gradients are taken with autograd, the model's parameters are not changed.

    Args:
        model: a timm ViT or CNN (depths as :func:`~vitviz.analysis.depths.depth_outputs`), or any callable
            from ``(B, C, H, W)`` input to a list of ``(B, C', h, w)`` feature maps.
        x: ``(B, C, H, W)`` inputs to average over (B = how many images).
        centres: ``(L, 2)`` the units' centres ``(y, x)`` in input pixels (e.g. a
            :class:`TheoreticalReceptiveField`'s, to compute it once); by default the centre of the theoretical
            field for a timm model (a ViT's patch centre). Where not given or not finite (an unbounded field):
            the centre of the input cell the unit tiles, ``((i + 0.5) H / h, (j + 0.5) W / w)``.
        pooled_with: more images' :func:`gradient_mass` (same model and input size), averaged in with ``x``'s.

    Returns:
        Maps, centres and the 50 % / 90 % radii.
    """
    _fn, names = _feature_fn(model)
    mass = gradient_mass(model, x)
    if pooled_with is not None:
        if pooled_with.sums.shape != mass.sums.shape or pooled_with.feature_sizes != mass.feature_sizes:
            raise ValueError('pooled_with was measured on another model or input size')
        mass = GradientMass(mass.sums + pooled_with.sums, mass.units, mass.feature_sizes,
                            mass.images + pooled_with.images)
    h, w = x.shape[-2:]
    cells = np.array([((i + 0.5) * h / s[0], (j + 0.5) * w / s[1])
                      for (i, j), s in zip(mass.units, mass.feature_sizes)])  # (L, 2)
    if centres is None and names is not None:
        centres = theoretical_receptive_field(model, (h, w)).centres  # (L, 2); NaN where unbounded
    centres = cells if centres is None else np.asarray(centres, dtype=np.float64)
    centres = np.where(np.isfinite(centres), centres, cells)
    maps = mass.sums / mass.images  # (L, H, W): the mean over images
    maps /= np.maximum(maps.sum(axis=(1, 2), keepdims=True), np.finfo(np.float64).tiny)
    return EffectiveReceptiveField(
        names=names or tuple(str(i) for i in range(len(maps))), maps=maps, centres=centres, units=mass.units,
        radius50=np.array([mass_radius(m, c, 0.5) for m, c in zip(maps, centres)]),
        radius90=np.array([mass_radius(m, c, 0.9) for m, c in zip(maps, centres)]),
        images=mass.images)


# ------------------------------------------------------------------------------------- theoretical field

class _SumPool(nn.Module):
    """A pool's footprint as a positive depthwise kernel (kernel, stride, padding and dilation kept)."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.kernel = _pair(pool.kernel_size)
        self.stride = _pair(pool.stride or pool.kernel_size)
        self.padding = _pair(pool.padding)
        self.dilation = _pair(getattr(pool, 'dilation', 1))
        self.ceil_mode = bool(getattr(pool, 'ceil_mode', False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dilation == (1, 1):
            return nn.functional.avg_pool2d(x, self.kernel, self.stride, self.padding, self.ceil_mode, True)
        if self.ceil_mode:
            raise NotImplementedError('a dilated pool with ceil_mode')
        c = x.shape[1]
        weight = x.new_full((c, 1, *self.kernel), 1.0 / (self.kernel[0] * self.kernel[1]))  # (C, 1, kh, kw)
        return nn.functional.conv2d(x, weight, None, self.stride, self.padding, self.dilation, groups=c)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def positive_copy(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` in which every path from a pixel to a unit counts positively.

    Convolutions and linear layers get the kernel ``1 / fan_in``, biases 0, every other parameter 1 (layer
    scales, ...); norm layers become the identity; max pools become average pools of the same footprint. On
    an input of ones every activation stays about 1, so ReLU, GELU and SiLU pass gradients, and a pixel's
    gradient is positive exactly when some path connects it to the unit.
    """
    with model_lock(model):
        pos = copy.deepcopy(model)
    pos = pos.to("cpu", torch.float64).eval()  # geometry only: the same on every device, and float64 everywhere
    for name, module in list(pos.named_modules()):
        replacement = None
        if isinstance(module, _NORMS):
            replacement = nn.Identity()
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            replacement = _SumPool(module)
        if replacement is not None and name:
            parent, _, child = name.rpartition('.')
            setattr(pos.get_submodule(parent) if parent else pos, child, replacement)
    with torch.no_grad():
        for module in pos.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.fill_(1.0 / fan_in)
        for name, param in pos.named_parameters():
            if name.endswith('bias'):
                param.zero_()
            elif not name.endswith('weight') or param.ndim < 2:
                param.fill_(1.0)
    return pos


def _ones(pos: nn.Module, batch: int, size: Sequence[int]) -> torch.Tensor:
    """``(batch, C, H, W)`` float64 ones on the positive copy's device, ``C`` its input channels (timm's
    ``pretrained_cfg['input_size']``, else 3)."""
    channels = int((getattr(pos, 'pretrained_cfg', None) or {}).get('input_size', (3,))[0])
    return torch.ones(batch, channels, *size, dtype=torch.float64, device=next(pos.parameters()).device)


def _support(grad: torch.Tensor, axis: int) -> tuple[int, int]:
    """First and last index along ``axis`` (0 rows, 1 columns) where ``grad (H, W)`` is positive."""
    line = (grad > 0).any(dim=1 - axis).nonzero()[:, 0]
    return int(line[0]), int(line[-1])


def _axis_fields(pos: nn.Module, input_size: tuple[int, int], axis: int, max_size: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Size, jump and start (centre of unit 0) of each depth's field along ``axis``.

    The canvas is as narrow as the deepest map allows across ``axis`` and doubles along it until each depth's
    field lies inside; a depth is measured on the first canvas that holds its field.
    """
    with torch.no_grad():
        shapes = [m.shape[-2:] for m in depth_outputs(pos, _ones(pos, 1, input_size)).maps]
    across = 1 - axis
    narrow = -(-input_size[across] // min(s[across] for s in shapes))  # one unit across at every depth
    n_depths = len(shapes)
    sizes, jumps, starts = np.full(n_depths, math.inf), np.zeros(n_depths), np.full(n_depths, math.nan)
    pending, side = list(range(n_depths)), input_size[axis]
    while pending:
        shape = [0, 0]
        shape[axis], shape[across] = side, min(narrow, input_size[across])
        x = _ones(pos, len(pending), shape).requires_grad_(True)
        maps = depth_outputs(pos, x).maps
        total = x.new_zeros(())
        for item, d in enumerate(pending):  # one canvas per depth: their fields overlap
            fmap = maps[d]
            total = total + fmap[item, :, fmap.shape[-2] // 2, fmap.shape[-1] // 2].sum()
        (g,) = torch.autograd.grad(total, x)
        g = g.sum(1)  # (len(pending), H, W)
        still = []
        for item, d in enumerate(pending):
            lo, hi = _support(g[item], axis)
            n = maps[d].shape[-2 + axis]
            if lo > 0 and hi < side - 1:
                jumps[d] = side / n
                sizes[d], starts[d] = hi - lo + 1, (lo + hi + 1) / 2 - (n // 2) * jumps[d]
            else:
                still.append(d)
        if side * 2 > max_size:
            for d in still:
                jumps[d] = side / maps[d].shape[-2 + axis]
            break
        pending, side = still, side * 2
    return sizes, jumps, starts


def theoretical_receptive_field(model: nn.Module, input_size: tuple[int, int] | int, *,
                                max_size: int = 2048) -> TheoreticalReceptiveField:
    """Theoretical receptive field of the centre unit at every depth, for an input of ``input_size``.

    A ViT: its patch before the first block, unbounded (the whole input) after it. A timm CNN: the support of
    :func:`positive_copy`'s input gradient, on a canvas doubled along each axis up to ``max_size`` pixels
    until the field lies inside it (a field still touching the border at ``max_size`` is reported as
    unbounded: e.g. a squeeze-and-excitation or global-attention layer).

    Args:
        model: a timm ViT or CNN.
        input_size: ``(H, W)`` of the real input (sets which unit is the centre one, and its centre).
        max_size: largest canvas side to try.
    """
    size = _pair(input_size)
    names = depth_names(model)
    if is_vit(model):
        layout = TokenLayout.from_model(model, size)
        gh, gw = layout.grid_size
        ph, pw = layout.patch_size
        unit = (gh // 2, gw // 2)
        centre = ((unit[0] + 0.5) * ph, (unit[1] + 0.5) * pw)
        field = [(ph, pw)] + [(math.inf, math.inf)] * (len(names) - 1)
        return TheoreticalReceptiveField(names=names, size=np.array(field, float),
                                         jump=np.full(len(names), float(ph)), centres=np.array([centre] * len(names)),
                                         units=np.array([unit] * len(names)), input_size=size)
    pos = positive_copy(model)
    rows = _axis_fields(pos, size, 0, max_size)
    cols = _axis_fields(pos, size, 1, max_size)
    with torch.no_grad():
        shapes = [m.shape[-2:] for m in depth_outputs(pos, _ones(pos, 1, size)).maps]
    units = np.array([(h // 2, w // 2) for h, w in shapes])
    centres = np.stack([rows[2] + units[:, 0] * rows[1], cols[2] + units[:, 1] * cols[1]], axis=1)  # (L, 2)
    return TheoreticalReceptiveField(names=names, size=np.stack([rows[0], cols[0]], axis=1),
                                     jump=rows[1], centres=centres, units=units, input_size=size)
