"""Preprocessing: the model input for a photo, made by the model's own timm eval transform, and its geometry.

``data_config`` reads the model's timm data config (input size, mean and std, crop); ``prepare_input`` runs
timm's eval transform with it and follows every step's effect on coordinates, so the ``InputGeometry`` it
returns says exactly which part of the photo the model saw. torch, torchvision and timm are imported inside
the functions that need them, so ``import vitviz.images`` stays cheap.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from vitviz.i18n import _

from .decode import to_rgb
from .errors import ImageError
from .geometry import InputGeometry

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["FITS", "data_config", "input_geometry", "input_image", "prepare_input", "sees_whole_image"]

FITS = ("crop", "letterbox", "squash")
"""How a photo is fitted to the model's input: ``'crop'`` as the model's own data config says (usually resize the
shorter side, then cut the centre), ``'letterbox'`` (the whole photo, its longer side resized to the input and the
rest padded with the mean colour: timm's ``crop_mode='border'``) or ``'squash'`` (the whole photo resized to the
input, its aspect ratio lost: timm's ``crop_mode='squash'``)."""

# A resize inside the transform may make at most this many times the model input's pixels
# (an extreme strip resized on its short side would otherwise need gigabytes).
_MAX_RESIZE_FACTOR = 256

# Keys of a timm data config that the eval transform uses.
_EVAL_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode", "crop_border_pixels")


def data_config(model: nn.Module, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """timm's data config, with the input size the model is really built for.

    ``resolve_model_data_config`` reads the pretrained config, which keeps e.g. DINOv2's 518 px even when
    the model was created with ``img_size=224`` or re-sized by ``set_input_size``.

    Args:
        model: A timm model.
        base: A config to keep (mean, std, crop, ...) with only the input size updated; by default timm's.
    """
    from timm.data import resolve_model_data_config  # timm: heavy, imported on first use


    config = dict(resolve_model_data_config(model) if base is None else base)
    img_size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if img_size is not None:
        config["input_size"] = (config["input_size"][0], int(img_size[0]), int(img_size[1]))
    return config


def prepare_input(
    image: Image.Image,
    data_config: Mapping[str, Any],
    *,
    fit: str = "crop",
    keep_aspect: bool = False,
    patch_size: int | tuple[int, int] | None = None,
    max_patches: int | None = None,
) -> tuple[torch.Tensor, InputGeometry]:
    """The model input for ``image``, made by timm's own eval transform, and its geometry.

    Default: ``timm.data.create_transform`` with ``data_config`` (from
    ``timm.data.resolve_model_data_config(model)``): resize, centre crop (or squash, or pad with the
    mean colour for ``crop_mode='border'``), to tensor, normalise. The geometry is followed step by step
    through that very transform, so it matches what the model saw.

    ``fit='letterbox'`` or ``'squash'`` (see :data:`FITS`) shows the model the whole photo instead of the
    config's crop: timm's own ``crop_mode='border'`` or ``'squash'`` with ``crop_pct=1``.

    ``keep_aspect=True`` (models made with ``dynamic_img_size=True``): no crop; the image is resized so
    its shorter side is about the config's (shorter) input side, both sides are multiples of
    ``patch_size`` and the aspect ratio is kept; the geometry covers the whole image.

    Args:
        image: an RGB image from ``load_image`` (other modes are converted by ``to_rgb``).
        data_config: timm data config with ``input_size``, ``mean``, ``std``, ``interpolation``,
            ``crop_pct``, ``crop_mode``.
        fit: one of :data:`FITS`; ignored with ``keep_aspect``.
        keep_aspect: keep the whole image at its own aspect ratio instead of the config's crop.
        patch_size: the model's patch (height, width) or side; required with ``keep_aspect``.
        max_patches: with ``keep_aspect``, the most patches allowed (the image is shrunk to fit);
            default four times the patches of the config's input size.

    Returns:
        ``x`` of shape (1, 3, H, W), float32, and the ``InputGeometry`` mapping it to ``image``.

    Raises:
        ImageError: the image is so long and thin that no sensible input exists (reason
            ``'extreme_aspect'``).
        ValueError: ``keep_aspect`` without ``patch_size``, an unknown ``fit``, or a transform step this module
            cannot follow.
    """
    if image.mode != "RGB":
        image = to_rgb(image)
    original = (image.height, image.width)
    config = _transform_config(original, data_config, keep_aspect, patch_size, max_patches, fit)
    steps, geometry = _plan(_create_transform(config).transforms, original, _input_area(config))
    x = image
    for step, planned_size in steps:
        x = step(x)
        if isinstance(x, Image.Image) and (x.height, x.width) != planned_size:
            got = (x.height, x.width)
            raise RuntimeError(f"{step!r} gave {got}, expected {planned_size}: timm's transform changed")
    return x.unsqueeze(0).float().contiguous(), geometry  # (1, 3, H, W)


def input_geometry(
    original_size: tuple[int, int],
    data_config: Mapping[str, Any],
    *,
    fit: str = "crop",
    keep_aspect: bool = False,
    patch_size: int | tuple[int, int] | None = None,
    max_patches: int | None = None,
) -> InputGeometry:
    """The ``InputGeometry`` that ``prepare_input`` gives an image of ``original_size``, without pixels.

    Args:
        original_size: (height, width) of the image.
        data_config: as for ``prepare_input``.
        fit: as for ``prepare_input``.
        keep_aspect: as for ``prepare_input``.
        patch_size: as for ``prepare_input``.
        max_patches: as for ``prepare_input``.

    Raises:
        ImageError: as for ``prepare_input``.
    """
    original = (int(original_size[0]), int(original_size[1]))
    config = _transform_config(original, data_config, keep_aspect, patch_size, max_patches, fit)
    _steps, geometry = _plan(_create_transform(config).transforms, original, _input_area(config))
    return geometry


def input_image(x: torch.Tensor, data_config: Mapping[str, Any]) -> np.ndarray:
    """What the model sees: a normalised input tensor back as a uint8 RGB array.

    Args:
        x: (1, 3, H, W) or (3, H, W) tensor normalised with the config's mean and std.
        data_config: timm data config with ``mean`` and ``std``.

    Returns:
        (H, W, 3) uint8 array.
    """
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {x.shape[0]}")
        x = x[0]  # (3, H, W)
    mean = np.asarray(data_config["mean"], dtype=np.float64).reshape(3, 1, 1)  # (3, 1, 1)
    std = np.asarray(data_config["std"], dtype=np.float64).reshape(3, 1, 1)  # (3, 1, 1)
    pixels = x.detach().cpu().double().numpy() * std + mean  # (3, H, W) in 0..1
    return np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8).transpose(1, 2, 0)  # (H, W, 3)


def sees_whole_image(geometry: InputGeometry, tolerance: float = 0.5) -> bool:
    """Whether the model input shows every pixel of the photo (``crop_box`` covers it, to ``tolerance`` original
    pixels); padding around it does not count against it."""
    top, left, height, width = geometry.crop_box
    rows, cols = geometry.original_size
    return (top <= tolerance and left <= tolerance and top + height >= rows - tolerance
            and left + width >= cols - tolerance)


def _transform_config(
    original_size: tuple[int, int],
    data_config: Mapping[str, Any],
    keep_aspect: bool,
    patch_size: int | tuple[int, int] | None,
    max_patches: int | None,
    fit: str = "crop",
) -> dict[str, Any]:
    """The timm eval-transform config that ``prepare_input`` uses for an image of ``original_size``."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, not {fit!r}")
    if keep_aspect:
        return _keep_aspect_config(original_size, data_config, patch_size, max_patches)
    config = _eval_config(data_config)
    if fit != "crop":  # the whole photo: timm's own modes, nothing cut
        config.update(crop_pct=1.0, crop_mode="border" if fit == "letterbox" else "squash")
        config.pop("crop_border_pixels", None)
    return config


def _eval_config(data_config: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``data_config`` that timm's eval transform uses."""
    return {key: data_config[key] for key in _EVAL_KEYS if key in data_config}


def _create_transform(config: Mapping[str, Any]):
    """timm's eval transform for ``config`` (a torchvision ``Compose``)."""
    from timm.data import create_transform  # timm: heavy, imported on first use

    return create_transform(**config, is_training=False)


def _input_area(config: Mapping[str, Any]) -> int:
    """Pixels of the model input that ``config`` asks for."""
    height, width = _pair(config.get("input_size", 224))
    return height * width


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) from a side, a (height, width) pair or a (channels, height, width) triple."""
    if isinstance(value, int):
        return value, value
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value[0], value[0]
    return value[-2], value[-1]


def _keep_aspect_config(
    original_size: tuple[int, int],
    data_config: Mapping[str, Any],
    patch_size: int | tuple[int, int] | None,
    max_patches: int | None,
) -> dict[str, Any]:
    """A squash config (``crop_pct=1``, so no crop) at the aspect-keeping, patch-multiple size."""
    if patch_size is None:
        raise ValueError("keep_aspect=True needs the model's patch_size")
    patch_h, patch_w = _pair(patch_size)
    config_h, config_w = _pair(data_config["input_size"])
    if max_patches is None:
        max_patches = 4 * max(1, config_h // patch_h) * max(1, config_w // patch_w)
    height, width = original_size
    scale = min(config_h, config_w) / min(height, width)  # shorter side -> config's shorter side
    rows = max(1, round(height * scale / patch_h))
    cols = max(1, round(width * scale / patch_w))
    if rows * cols > max_patches:  # shrink uniformly to the patch budget
        shrink = math.sqrt(max_patches / (rows * cols))
        rows = max(1, math.floor(rows * shrink))
        cols = max(1, math.floor(cols * shrink))
    if rows * cols > max_patches:
        raise ImageError(_extreme_aspect_message(original_size), "extreme_aspect")
    config = _eval_config(data_config)
    config.update(input_size=(3, rows * patch_h, cols * patch_w), crop_pct=1.0, crop_mode="squash")
    config.pop("crop_border_pixels", None)
    return config


def _extreme_aspect_message(original_size: tuple[int, int]) -> str:
    """Message for an image too long and thin to preprocess."""
    height, width = original_size
    return _(
        "This image is too long and thin ({width}×{height} pixels) to show to the model. "
        "Please crop it closer to a square and try again."
    ).format(width=width, height=height)


# A step maps its input frame to its output frame by  out = scale * in + offset  on each axis (exact ratios).
@dataclass(frozen=True)
class _Step:
    size: tuple[int, int]  # output (height, width)
    scale: tuple[Fraction, Fraction]  # (y, x)
    offset: tuple[int, int]  # (y, x)


def _plan(transform_steps: Sequence, original_size: tuple[int, int], input_area: int):
    """Follow each transform step's effect on the image size and on coordinates, without pixels.

    Returns:
        ``[(step, planned output size)]`` for every step, and the resulting ``InputGeometry``.

    Raises:
        ImageError: a step would make an empty image, or a resize would exceed
            ``_MAX_RESIZE_FACTOR * input_area`` pixels (an extreme aspect ratio).
        ValueError: a step this function does not know.
    """
    size = tuple(original_size)
    scale, offset = [Fraction(1), Fraction(1)], [Fraction(0), Fraction(0)]  # exact: out = scale * in + offset
    planned = []
    for step in transform_steps:
        effect = _step_effect(step, size)
        if min(effect.size) < 1 or effect.size[0] * effect.size[1] > _MAX_RESIZE_FACTOR * input_area:
            raise ImageError(_extreme_aspect_message(tuple(original_size)), "extreme_aspect")
        scale = [s * k for s, k in zip(scale, effect.scale)]
        offset = [o * k + d for o, k, d in zip(offset, effect.scale, effect.offset)]
        size = effect.size
        planned.append((step, size))
    crop_box = (-offset[0] / scale[0], -offset[1] / scale[1], size[0] / scale[0], size[1] / scale[1])
    geometry = InputGeometry(tuple(original_size), size, tuple(float(v) for v in crop_box))
    return planned, geometry


def _step_effect(step, size: tuple[int, int]) -> _Step:
    """The geometric effect of one step of a timm eval transform on an image of ``size`` (H, W)."""
    from timm.data.transforms import CenterCropOrPad, MaybeToTensor, ResizeKeepRatio, TrimBorder  # timm: heavy
    from torchvision import transforms  # torchvision: heavy, imported on first use

    if isinstance(step, (MaybeToTensor, transforms.ToTensor, transforms.Normalize)):
        return _Step(size, (Fraction(1), Fraction(1)), (0, 0))
    if isinstance(step, transforms.Resize):
        return _resize(size, _resize_size(step, size))
    if isinstance(step, ResizeKeepRatio):
        return _resize(size, _keep_ratio_size(step, size))
    if isinstance(step, (transforms.CenterCrop, CenterCropOrPad)):
        crop = _pair(step.size)
        offset = (_center_offset(size[0], crop[0]), _center_offset(size[1], crop[1]))
        return _Step(crop, (Fraction(1), Fraction(1)), offset)
    if isinstance(step, TrimBorder):
        return _trim_border(size, step.border_size)
    raise ValueError(f"prepare_input cannot follow the transform step {step!r}")


def _resize(size: tuple[int, int], new_size: tuple[int, int]) -> _Step:
    """A resize from ``size`` to ``new_size``: a pure scale in continuous coordinates."""
    return _Step(new_size, (Fraction(new_size[0], size[0]), Fraction(new_size[1], size[1])), (0, 0))


def _resize_size(step, size: tuple[int, int]) -> tuple[int, int]:
    """Output (H, W) of torchvision's ``Resize`` (shorter side to ``size`` when given one number)."""
    target = step.size
    if isinstance(target, int) or len(target) == 1:
        short_target = target if isinstance(target, int) else target[0]
        height, width = size
        short, long = min(height, width), max(height, width)
        new_short, new_long = short_target, int(short_target * long / short)
        if step.max_size is not None and new_long > step.max_size:
            new_short, new_long = int(step.max_size * new_short / new_long), step.max_size
        return (new_long, new_short) if height > width else (new_short, new_long)
    return int(target[0]), int(target[1])


def _keep_ratio_size(step, size: tuple[int, int]) -> tuple[int, int]:
    """Output (H, W) of timm's ``ResizeKeepRatio`` in eval use (no random scale or aspect)."""
    if step.random_scale_prob > 0 or step.random_aspect_prob > 0:
        raise ValueError(f"prepare_input cannot follow the random step {step!r}")
    ratio_h, ratio_w = size[0] / step.size[0], size[1] / step.size[1]
    ratio = max(ratio_h, ratio_w) * step.longest + min(ratio_h, ratio_w) * (1.0 - step.longest)
    return round(size[0] / ratio), round(size[1] / ratio)


def _center_offset(length: int, crop: int) -> int:
    """Shift of a centre crop-or-pad from ``length`` to ``crop`` pixels (torchvision's and timm's rule)."""
    pad = (crop - length) // 2 if crop > length else 0
    padded = max(length, crop)
    return pad - int(round((padded - crop) / 2.0))


def _trim_border(size: tuple[int, int], border: int) -> _Step:
    """timm's ``TrimBorder``: both offsets are ``min(border, height)``, as timm computes them."""
    height, width = size
    top = left = min(border, height)
    new_size = (max(0, height - 2 * border), max(0, width - 2 * border))
    return _Step(new_size, (Fraction(1), Fraction(1)), (-top, -left))
