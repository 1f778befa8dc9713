"""The pipeline: one image through one model, the one place that does it.

``run`` repatches (a FlexiViT-style copy at another patch size), prepares the input with the model's own data
config, moves it to the model's device, captures every layer's attention (and its gradient for a target) and
reads the top-k classes. The notebook's ``vitviz.explain`` and the app's cached ``forward`` both call it.
``run_batch`` does the same for several images in one batch and splits the result, one ``Pass`` per image (the
app's serving queue batches sessions' passes with it where batching pays, ``vitviz.serving``).

One device rule: the input always goes to the device of the model that runs. ``device`` names another one to
run on; the model is then moved there first (in place, as ``module.to`` does), so model and input never part.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
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

__all__ = ["TOP_K", "Pass", "model_device", "run", "run_batch"]

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
    return run_batch(model, [image], patch_size=patch_size, targets=None if target is None else [target],
                     data_config=data_config, labels=labels, device=device, repatch=repatch, fit=fit)[0]


def run_batch(
    model: nn.Module,
    images: Sequence[Image.Image],
    *,
    patch_size: int | tuple[int, int] | None = None,
    targets: Sequence[int] | None = None,
    data_config: Mapping[str, Any] | None = None,
    labels: list[str] | None = None,
    device: str | torch.device | None = None,
    repatch: Repatch | None = None,
    fit: str = "crop",
) -> list[Pass]:
    """``run`` for several images at once: one capture of the batch, split into one ``Pass`` per image.

    Each image is prepared on its own (as ``run`` prepares it), the inputs go through the model as one batch
    (B, 3, H, W), and each Pass holds only its own rows: its input, capture (batch 1), probabilities and top-k.
    Images in a batch do not see each other (a ViT in eval mode treats batch items independently), so each Pass
    equals ``run`` on that image alone up to floating-point rounding of the batched kernels.

    Args:
        model, patch_size, data_config, labels, device, repatch, fit: As for ``run``.
        images: Upright RGB images (at least one).
        targets: One class per image whose gradients are recorded, or None for none.

    Returns:
        One frozen Pass per image, in order.

    Raises:
        ValueError: No image, a count of targets other than the images', a target naming no class, or an unknown
            ``fit``.
        vitviz.images.ImageError: An image cannot be made into a model input.
    """
    import torch  # torch and timm: heavy, imported on first use (vitviz.pipeline is imported at start-up)

    from vitviz.analysis.predictions import imagenet_labels, top_k
    from vitviz.analysis.repatch import with_patch_size
    from vitviz.capture import capture, check_target

    if not images:
        raise ValueError("run_batch needs at least one image")
    if targets is not None and len(targets) != len(images):
        raise ValueError(f"{len(targets)} targets for {len(images)} images")
    if device is not None and model_device(model) != torch.device(device):
        model = model.to(device)
    if targets is not None:
        targets = [check_target(t, int(getattr(model, "num_classes", 0) or 0)) for t in targets]
    if patch_size is not None and _patch_pair(patch_size) != tuple(int(p) for p in model.patch_embed.patch_size):
        model = (repatch or with_patch_size)(model, _patch_pair(patch_size))
    config = preprocess.data_config(model, base=data_config)  # a re-patched copy may have another input size
    prepared = [prepare_input(image, config, fit=fit) for image in images]  # (1, 3, H, W) on the CPU, geometry
    x = torch.cat([item[0] for item in prepared]).to(model_device(model))  # (B, 3, H, W)
    result = capture(model, x, target=targets)
    num_classes = _classes(model, result.output)
    names = (labels if labels is not None else imagenet_labels(model)) if num_classes else None
    size = tuple(int(p) for p in model.patch_embed.patch_size)
    passes = []
    for i, (image, (_x, geometry)) in enumerate(zip(images, prepared)):
        own = _item(result, i)
        probabilities, predictions = None, ()
        if num_classes:
            probabilities = torch.softmax(own.output[0].double(), dim=-1).numpy()  # (C,)
            predictions = tuple(top_k(own.output[0], names, k=TOP_K))
        passes.append(Pass(
            model=model, data_config=config, image=image, x=x[i : i + 1] if len(images) > 1 else x,
            geometry=geometry, capture=own, probabilities=probabilities, predictions=predictions, patch_size=size,
            target=None if targets is None else targets[i],
            finite=bool(torch.isfinite(own.output).all() and torch.isfinite(own.hidden_states).all())))
    return passes


def _item(result: Capture, index: int) -> Capture:
    """Batch item ``index`` of a capture as a capture of batch 1 (a batch of one is returned as it is).

    A ``Capture`` is batch first everywhere: every tensor it holds, and every tensor of a tuple it holds, has the
    batch first; ``target`` holds one class per item. The rows are copied, so one item kept alive (in the app's
    cache) never keeps the other items' tensors.
    """
    import torch  # torch: heavy, imported on first use

    if result.batch_size == 1:
        return result

    def rows(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value[index : index + 1].clone()
        if isinstance(value, tuple) and value and all(isinstance(v, torch.Tensor) for v in value):
            return tuple(v[index : index + 1].clone() for v in value)
        return value

    fields = {f.name: rows(getattr(result, f.name)) for f in dataclasses.fields(result)}
    fields["target"] = None if result.target is None else (result.target[index],)
    return type(result)(**fields)
