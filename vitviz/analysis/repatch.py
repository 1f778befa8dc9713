"""Run a ViT at another patch size, FlexiViT-style, on a copy of the model.

FlexiViT (Beyer et al. 2023, "FlexiViT: One Model for All Patch Sizes") resizes the patch-embedding
weights with the pseudo-inverse resize (PI-resize) so that a resized patch's token stays as close as
possible to the original, and bicubically resamples the position embeddings to the new grid. timm
implements both in ``model.set_input_size(img_size=..., patch_size=...)`` (``resample_patch_embed`` and
``resample_abs_pos_embed``); this module only picks a valid input size and applies it to a deep copy, so a
model shared between sessions is never mutated.
"""
from __future__ import annotations

import copy

from torch import nn

from vitviz.capture import model_lock

from .patches import _pair

__all__ = ["nearest_input_size", "with_patch_size"]


def nearest_input_size(input_size: tuple[int, int] | int, patch_size: tuple[int, int] | int) -> tuple[int, int]:
    """The input size nearest to ``input_size`` that ``patch_size`` divides, per side.

    Each side becomes the nearest multiple of the patch side (halves round up), and at least one patch:
    e.g. 224 px at patch 20 gives 220 (11 patches), 230 px gives 240 (12 patches).

    Returns:
        (height, width) in pixels.
    """
    size, patch = _pair(input_size, "input_size"), _pair(patch_size, "patch_size")
    return tuple(max(p, int(s / p + 0.5) * p) for s, p in zip(size, patch))  # type: ignore[return-value]


def with_patch_size(
    model: nn.Module,
    patch_size: tuple[int, int] | int,
    img_size: tuple[int, int] | int | None = None,
) -> nn.Module:
    """A copy of ``model`` that runs at ``patch_size`` (FlexiViT-style resampling by timm).

    The input size defaults to the model's current one; when the patch size does not divide it (given or
    default), it becomes :func:`nearest_input_size` so no pixel is silently dropped by the strided
    convolution. The copy's ``pretrained_cfg['input_size']`` follows, so ``timm.data.resolve_model_data_config``
    prepares inputs of the new size. At the model's own patch and input size the copy computes exactly
    what the model computes.

    Args:
        model: A timm model with ``set_input_size`` and ``patch_embed`` (VisionTransformer, Eva, ...).
        patch_size: New patch (height, width) in pixels (an int means square).
        img_size: Model input (height, width); defaults to the model's current input size.

    Returns:
        A new model (same device, dtype and train/eval mode); ``model`` is left untouched.

    Raises:
        TypeError: When the model cannot change its patch size.
    """
    if not hasattr(model, "set_input_size") or not hasattr(model, "patch_embed"):
        raise TypeError(
            f"{type(model).__name__} cannot change its patch size: it needs timm's set_input_size "
            "and a patch_embed (ViT-family models)"
        )
    patch_size = _pair(patch_size, "patch_size")
    current = _pair(tuple(model.patch_embed.img_size), "img_size")
    img_size = nearest_input_size(current if img_size is None else img_size, patch_size)
    with model_lock(model):  # never copy a model mid-capture: the copy would inherit its hooks and flags
        resized = copy.deepcopy(model)
    resized.set_input_size(img_size=img_size, patch_size=patch_size)
    cfg = dict(getattr(resized, "pretrained_cfg", None) or {})
    if cfg:
        channels = cfg.get("input_size", (3,))[0]
        cfg["input_size"] = (channels, *img_size)
        cfg.pop("test_input_size", None)  # it described the original geometry
        resized.pretrained_cfg = cfg
        if hasattr(resized, "default_cfg"):
            resized.default_cfg = cfg  # timm's backwards-compatible alias
    return resized
