"""FlexiViT-style forward: run a timm ViT at any patch size from its stored native-size parameters.

FlexiViT (Beyer et al. 2023) trains one set of weights for many patch sizes: each step picks a patch size
and resizes the patch-embedding kernel (pseudo-inverse resize, "PI-resize") and the position embeddings
(bicubic) on the fly, so gradients flow back into the single stored kernel and grid. We use timm's own
``resample_patch_embed`` and ``resample_abs_pos_embed`` with the defaults that
``VisionTransformer.set_input_size`` uses, so the model trained here, re-patchified by the app with
``set_input_size(patch_size=p)`` on a copy, computes exactly what it computed in training (tested).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed, resample_patch_embed
from timm.models.vision_transformer import VisionTransformer

__all__ = ['flexi_embed', 'flexi_features', 'flexi_forward']


def flexi_embed(model: VisionTransformer, x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Tokens entering block 0 when ``model`` runs at ``patch_size``: patch embed, prefix tokens, positions.

    Differentiable in the stored (native-size) ``patch_embed.proj.weight`` and ``pos_embed``.

    Args:
        model: a timm ``VisionTransformer`` with learned absolute position embeddings.
        x: ``(B, C, H, W)`` normalised images; ``patch_size`` must divide ``H`` and ``W``.
        patch_size: square patch side in pixels.

    Returns:
        ``(B, num_prefix_tokens + gh * gw, D)`` tokens.
    """
    pe = model.patch_embed
    p = (patch_size, patch_size)
    if x.shape[-2] % p[0] or x.shape[-1] % p[1]:
        raise ValueError(f'patch size {patch_size} does not divide the input {tuple(x.shape[-2:])}')
    weight = resample_patch_embed(pe.proj.weight, list(p))  # (D, C, p, p)
    tokens = F.conv2d(x, weight, pe.proj.bias, stride=p)  # (B, D, gh, gw)
    grid = tuple(tokens.shape[-2:])
    tokens = pe.norm(tokens.flatten(2).transpose(1, 2))  # (B, gh * gw, D)

    prefix = []
    if model.cls_token is not None:
        prefix.append(model.cls_token.expand(x.shape[0], -1, -1))  # (B, 1, D)
    if model.reg_token is not None:
        prefix.append(model.reg_token.expand(x.shape[0], -1, -1))  # (B, R, D)
    num_embedded_prefix = 0 if model.no_embed_class else model.num_prefix_tokens
    pos = resample_abs_pos_embed(model.pos_embed, new_size=list(grid), old_size=list(pe.grid_size),
                                 num_prefix_tokens=num_embedded_prefix)  # (1, num_embedded_prefix + gh*gw, D)
    if model.no_embed_class:
        tokens = torch.cat(prefix + [tokens + pos], dim=1)
    else:
        tokens = torch.cat(prefix + [tokens], dim=1) + pos
    return model.pos_drop(tokens)


def flexi_features(model: VisionTransformer, x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Final normalised tokens of ``model`` at ``patch_size`` (``forward_features`` of the re-patchified model).

    Returns:
        ``(B, num_prefix_tokens + gh * gw, D)``.
    """
    tokens = flexi_embed(model, x, patch_size)  # (B, N, D)
    tokens = model.norm_pre(model.patch_drop(tokens))
    return model.norm(model.blocks(tokens))  # (B, N, D)


def flexi_forward(model: VisionTransformer, x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Logits of ``model`` at ``patch_size``, resampling kernel and positions from the stored parameters.

    Equals ``copy.deepcopy(model)`` after ``set_input_size(img_size=x.shape[-2:], patch_size=patch_size)``
    applied to ``x`` (to float rounding), but keeps the graph back to the native-size parameters.

    Args:
        model: a timm ``VisionTransformer``.
        x: ``(B, C, H, W)`` normalised images.
        patch_size: square patch side in pixels.

    Returns:
        ``(B, num_classes)`` logits.
    """
    return model.forward_head(flexi_features(model, x, patch_size))  # (B, num_classes)
