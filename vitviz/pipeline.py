"""The pipeline: one image through one model, the one place that does it.

``run`` repatches (a FlexiViT-style copy at another patch size), prepares the input with the model's own data
config, moves it to the model's device, captures every layer's attention (and its gradient for a target) and
reads the top-k classes. The notebook's ``vitviz.explain`` and the app's cached ``forward`` both call it.

One device rule: the input always goes to the device of the model that runs. ``device`` names another one to
run on; the model is then moved there first (in place, as ``module.to`` does), so model and input never part.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from vitviz.images import InputGeometry, prepare_input, preprocess
from vitviz.layout import TokenLayout

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vitviz.analysis.predictions import Prediction
    from vitviz.capture import Capture

__all__ = ["TOP_K", "Pass", "model_device", "run"]

TOP_K = 5
"""How many classes a pass reads (the app's table, the notebook's ``predictions``)."""

Repatch = Callable[["nn.Module", tuple[int, int]], "nn.Module"]
"""Makes the copy of a model at another patch size; the app passes a cached ``with_patch_size``."""


@dataclass(frozen=True, eq=False)
class Pass:
    """One image seen by one model at one patch size: what went in, where it came from, what came out.

    Attributes:
        model: The model that ran: a re-patched copy when ``patch_size`` differs from the model's own.
        data_config: timm data config the input was prepared with (``input_size`` follows the model).
        image: The original, upright RGB image.
        x: The normalised input (1, 3, H, W), on the model's device.
        geometry: Which part of ``image`` the input shows.
        capture: Every layer's attention and tokens (and attention gradients for ``target``), on the CPU.
        probabilities: Softmax of the output (C,) float64, or None for a model without a classifier.
        predictions: The ``TOP_K`` most probable classes (empty without a classifier).
        patch_size: Patch (height, width) of this pass.
        target: Class whose gradients were taken, or None.
        finite: Whether the output and every recorded token are finite (NaN weights make neither).
    """

    model: nn.Module = field(repr=False)
    data_config: dict[str, Any] = field(repr=False)
    image: Image.Image = field(repr=False)
    x: torch.Tensor = field(repr=False)
    geometry: InputGeometry
    capture: Capture = field(repr=False)
    probabilities: np.ndarray | None = field(repr=False)
    predictions: tuple[Prediction, ...]
    patch_size: tuple[int, int]
    target: int | None
    finite: bool = True

    @property
    def layout(self) -> TokenLayout:
        """Where each token of this pass sits."""
        return self.capture.layout

    @property
    def device(self) -> torch.device:
        """Where the model ran (and the input went)."""
        return self.x.device


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's parameters (its buffers' for a model without any; the CPU for neither)."""
    import torch  # torch: heavy, imported on first use (vitviz.pipeline is imported by the app at start-up)

    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _patch_pair(patch_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(patch_size, int):
        return patch_size, patch_size
    height, width = (int(p) for p in patch_size)
    return height, width


def _classes(model: nn.Module, output: torch.Tensor) -> int:
    """The model's class count when its output is class scores, else 0 (features of a headless model)."""
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    return num_classes if num_classes and output.shape[-1] == num_classes else 0


def run(
    model: nn.Module,
    image: Image.Image,
    *,
    patch_size: int | tuple[int, int] | None = None,
    target: int | None = None,
    data_config: Mapping[str, Any] | None = None,
    labels: list[str] | None = None,
    device: str | torch.device | None = None,
    repatch: Repatch | None = None,
    fit: str = "crop",
) -> Pass:
    """Run ``model`` once on ``image``: repatch, prepare, move to the model's device, capture, read the top-k.

    Args:
        model: A timm ViT-family model (moved, in place, to ``device`` when one is given).
        image: An upright RGB image (``vitviz.images.read_image`` or ``load_image`` makes one).
        patch_size: Run at this patch size: a FlexiViT-style resampled copy of the model (``repatch``) when it
            differs from the model's own; the model passed in is left untouched.
        target: Class whose gradients are recorded with the capture (checked against the model's classes).
        data_config: The model's data config (mean, std, crop ...) as loaded; timm's when None. Its
            input size follows the model that runs.
        labels: Class names for the predictions; timm's ImageNet names when None (``class i`` otherwise).
        device: Where to run; the model's own device when None.
        repatch: ``repatch(model, (height, width))`` makes the copy at another patch size;
            ``vitviz.analysis.with_patch_size`` by default.
        fit: How the photo is fitted to the input (``vitviz.images.FITS``): the config's ``'crop'``, or the
            whole photo ``'letterbox'``-ed or ``'squash'``-ed; ``Pass.geometry`` says what the model saw.

    Returns:
        The frozen Pass.

    Raises:
        ValueError: ``target`` names no class of the model, or ``fit`` is not one of ``vitviz.images.FITS``.
        vitviz.images.ImageError: The image cannot be made into a model input.
    """
    import torch  # torch and timm: heavy, imported on first use (vitviz.pipeline is imported at start-up)

    from vitviz.analysis.predictions import imagenet_labels, top_k
    from vitviz.analysis.repatch import with_patch_size
    from vitviz.capture import capture, check_target

    if device is not None and model_device(model) != torch.device(device):
        model = model.to(device)
    if target is not None:
        target = check_target(target, int(getattr(model, "num_classes", 0) or 0))
    if patch_size is not None and _patch_pair(patch_size) != tuple(int(p) for p in model.patch_embed.patch_size):
        model = (repatch or with_patch_size)(model, _patch_pair(patch_size))
    config = preprocess.data_config(model, base=data_config)  # a re-patched copy may have another input size
    x, geometry = prepare_input(image, config, fit=fit)  # (1, 3, H, W) on the CPU
    x = x.to(model_device(model))
    result = capture(model, x, target=target)
    num_classes = _classes(model, result.output)
    probabilities, predictions = None, ()
    if num_classes:
        probabilities = torch.softmax(result.output[0].double(), dim=-1).numpy()  # (C,)
        names = labels if labels is not None else imagenet_labels(model)
        predictions = tuple(top_k(result.output[0], names, k=TOP_K))
    return Pass(
        model=model, data_config=config, image=image, x=x, geometry=geometry, capture=result,
        probabilities=probabilities, predictions=predictions,
        patch_size=tuple(int(p) for p in model.patch_embed.patch_size), target=target,
        finite=bool(torch.isfinite(result.output).all() and torch.isfinite(result.hidden_states).all()),
    )
