"""What a ViT or a CNN holds at each depth, in one format, so both can be measured the same way.

A depth is a place along the network where a spatial representation exists:

- a **ViT** (timm ``VisionTransformer``): the tokens entering block 1 (patch embedding plus position
  embedding, ``'embed'``), then the tokens leaving each block (``'blocks.0'``, ...), as timm's own
  ``forward_features`` computes them (before the final norm);
- a **CNN** (any timm model with ``feature_info`` and ``forward_intermediates``: ResNet, ConvNeXt, ...):
  every feature level timm declares (for a ResNet the stem's activation ``'act1'``, then ``'layer1'`` ...
  ``'layer4'``), from ``forward_intermediates``.

Each depth comes back as a feature map ``(B, C, h, w)`` (a ViT's patch tokens on their grid) and, for CKA,
as the whole representation ``(B, ...)`` (a ViT's prefix tokens included).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vitviz.layout import TokenLayout

__all__ = ['Depths', 'depth_names', 'depth_outputs', 'is_vit']


def is_vit(model: nn.Module) -> bool:
    """Whether ``model`` is a token model with a patch embedding and blocks (timm ViT family)."""
    return hasattr(model, 'patch_embed') and hasattr(model, 'blocks') and hasattr(model, '_pos_embed')


def depth_names(model: nn.Module) -> tuple[str, ...]:
    """Names of the depths of ``model``: ``('embed', 'blocks.0', ...)`` or the CNN's feature modules."""
    if is_vit(model):
        return ('embed', *(f'blocks.{i}' for i in range(len(model.blocks))))
    info = getattr(model, 'feature_info', None)
    if not info or not hasattr(model, 'forward_intermediates'):
        raise TypeError(f'{type(model).__name__} has no feature_info / forward_intermediates: not a timm CNN')
    return tuple(str(level['module']) for level in info)


@dataclass(frozen=True)
class Depths:
    """One forward pass seen at every depth.

    Attributes:
        names: depth names (see :func:`depth_names`).
        maps: per depth ``(B, C, h, w)`` spatial features (a ViT's patch tokens on the patch grid).
        full: per depth the whole representation: ``(B, N, D)`` tokens for a ViT, the map for a CNN.
    """

    names: tuple[str, ...]
    maps: tuple[torch.Tensor, ...]
    full: tuple[torch.Tensor, ...]


def _vit_depths(model: nn.Module, x: torch.Tensor) -> Depths:
    layout = TokenLayout.from_model(model, tuple(x.shape[-2:]))
    gh, gw = layout.grid_size
    tokens = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))  # (B, N, D)
    full = [tokens]
    for block in model.blocks:
        tokens = block(tokens)  # (B, N, D)
        full.append(tokens)
    maps = [t[:, layout.patch_slice].reshape(t.shape[0], gh, gw, -1).permute(0, 3, 1, 2) for t in full]  # (B,D,gh,gw)
    return Depths(names=depth_names(model), maps=tuple(maps), full=tuple(full))


def depth_outputs(model: nn.Module, x: torch.Tensor) -> Depths:
    """Run ``model`` on ``x`` (autograd on, so gradients can be taken) and keep every depth.

    Args:
        model: a timm ViT or CNN (see the module docstring).
        x: ``(B, 3, H, W)`` model input.
    """
    if is_vit(model):
        return _vit_depths(model, x)
    names = depth_names(model)
    maps = tuple(model.forward_intermediates(x, intermediates_only=True))  # (B, C, h, w) each
    if len(maps) != len(names):
        raise ValueError(f'{type(model).__name__} gave {len(maps)} feature maps for {len(names)} feature levels')
    return Depths(names=names, maps=maps, full=maps)
