"""The images a data-set evaluation runs over: generated shapes with their masks, or a folder of images.

Both are map-style data sets (``len`` and ``[index]``, as ``torch.utils.data.DistributedSampler`` needs)
whose items are :class:`EvalImage`: one model input with a stable id, its label where known and its object
mask where known. The id names the image whatever the process or the world size, so results can be
resumed and gathered by id.

- :class:`ShapesEvalSet`: ``count`` held-out images of :mod:`vitviz.shapes` (a seed and split that training
  never used), drawn at the model's input size, each with its exact object mask and label.
- :class:`ImageFolderSet`: a folder of images. With class subfolders (the ``torchvision`` ImageFolder
  layout) each image is labelled by its folder; a flat folder of images has no labels, and the evaluation
  then explains the predicted class. Images are prepared by timm's eval transform for the model
  (:func:`vitviz.images.prepare_input`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "EvalImage",
    "ImageFolderSet",
    "ShapesEvalSet",
    "class_indices",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class EvalImage:
    """One image of an evaluation set.

    Attributes:
        id: Stable name of the image (``'shapes:<seed>:<split>:<index>'`` or its path in the folder).
        index: Position in the data set.
        x: ``(1, 3, H, W)`` normalised model input (CPU tensor).
        label: Class index in the model's classes, or None when unknown.
        mask: ``(H, W)`` bool object mask over the model input, or None when unknown.
    """

    id: str
    index: int
    x: Any
    label: int | None
    mask: np.ndarray | None


class ShapesEvalSet:
    """Held-out shapes images with masks, generated on demand (each a pure function of its seed).

    Args:
        seed: Data-set seed (``vitviz.shapes.evaluation.EVAL_SEED`` is the one the model card uses).
        count: Number of images.
        image_size: Square side in pixels (the model's input side).
        mean: Normalisation mean (the model's data config).
        std: Normalisation standard deviation.
        labels: The model's class names; images are labelled only when every shapes class is among them
            (the shapes model), else the evaluation explains the predicted class.
        split: Data-set split (``vitviz.shapes.dataset.EVAL_SPLIT`` by default; training uses 0).
    """

    has_masks = True

    def __init__(self, seed: int, count: int, image_size: int, mean: Sequence[float], std: Sequence[float],
                 labels: Sequence[str] | None = None, split: int | None = None) -> None:
        from vitviz.shapes.dataset import EVAL_SPLIT
        from vitviz.shapes.generator import CLASSES

        if count < 1:
            raise ValueError(f"the shapes set needs at least one image, not {count}")
        self.seed, self.count, self.image_size = int(seed), int(count), int(image_size)
        self.split = EVAL_SPLIT if split is None else int(split)
        self.mean, self.std = tuple(mean), tuple(std)
        self.class_names = list(CLASSES)
        self._to_model = _by_name(self.class_names, labels)

    def __len__(self) -> int:
        return self.count

    def image_id(self, index: int) -> str:
        """The id of image ``index``, without drawing it."""
        return f"shapes:{self.seed}:{self.split}:{index}"

    def __getitem__(self, index: int) -> EvalImage:
        from vitviz.shapes.dataset import normalize
        from vitviz.shapes.generator import generate, sample_rng

        if not 0 <= index < self.count:
            raise IndexError(index)
        sample = generate(sample_rng(self.seed, index, self.split), self.image_size)
        label = None if self._to_model is None else self._to_model.get(sample.label)
        return EvalImage(id=self.image_id(index), index=index,
                         x=normalize(sample.image, self.mean, self.std), label=label, mask=sample.mask)

    def describe(self) -> dict[str, Any]:
        """What identifies this set's images (for the run record; ``count`` is left out on purpose)."""
        return {"kind": "shapes", "seed": self.seed, "split": self.split, "image_size": self.image_size}


class ImageFolderSet:
    """Every image under ``root``: labelled by class subfolder, or unlabelled when the folder is flat.

    Labels follow :func:`class_indices`. Files are sorted by path, so the order (and every id) is the same
    on every machine.

    Args:
        root: The folder.
        data_config: timm data config of the model (input size, mean, std, crop).
        labels: The model's class names (None for a model without them).
        num_classes: The model's number of classes (0 for a headless model).
        use_labels: False ignores the class folders (every image unlabelled).
    """

    has_masks = False

    def __init__(self, root: str | Path, data_config: Mapping[str, Any], labels: Sequence[str] | None = None,
                 num_classes: int = 0, use_labels: bool = True) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"{self.root} is not a folder of images")
        self.data_config = dict(data_config)
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and _images(p))
        if folders:
            self.class_names = [p.name for p in folders]
            self.files = [f for p in folders for f in _images(p)]
            to_model = class_indices(self.class_names, labels, num_classes) if use_labels else {}
            self.labels = [to_model.get(self.class_names.index(f.parent.name)) for f in self.files]
        else:
            self.class_names = []
            self.files = _images(self.root)
            self.labels = [None] * len(self.files)
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.root} or its class subfolders")

    def __len__(self) -> int:
        return len(self.files)

    def image_id(self, index: int) -> str:
        """The id of image ``index``: its path relative to the folder."""
        return self.files[index].relative_to(self.root).as_posix()

    def __getitem__(self, index: int) -> EvalImage:
        from vitviz.images import load_image, prepare_input

        path = self.files[index]
        x, _ = prepare_input(load_image(path), self.data_config)  # (1, 3, H, W)
        return EvalImage(id=self.image_id(index), index=index, x=x,
                         label=self.labels[index], mask=None)

    def describe(self) -> dict[str, Any]:
        """What identifies this set's images (for the run record)."""
        return {"kind": "folder", "root": str(self.root.resolve()), "classes": len(self.class_names),
                "input_size": list(self.data_config.get("input_size", []))}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _name(text: str) -> str:
    return text.strip().lower().replace("_", " ")


def _by_name(class_names: Sequence[str], model_labels: Sequence[str] | None) -> dict[int, int] | None:
    """``class_indices`` when the model's labels name every class, else None."""
    lookup = {_name(label): i for i, label in enumerate(model_labels or ())}
    if not lookup or not all(_name(c) in lookup for c in class_names):
        return None
    return {i: lookup[_name(c)] for i, c in enumerate(class_names)}


def class_indices(class_names: Sequence[str], model_labels: Sequence[str] | None,
                  num_classes: int = 0) -> dict[int, int]:
    """Map a data set's class positions to the model's class indices.

    In this order: by name, when every class name is one of the model's labels (case and ``_`` vs space
    ignored; for ImageNet labels, the first comma-separated synonym counts too); else by number, when every
    name is an integer below ``num_classes``; else by sorted position, when there are exactly
    ``num_classes`` classes (torchvision's ImageFolder convention: ImageNet's synset folders sorted are its
    class order).

    Args:
        class_names: The data set's class names, in its order.
        model_labels: The model's class names, or None.
        num_classes: The model's number of classes.

    Returns:
        data-set class position -> model class index.

    Raises:
        ValueError: when none of the rules applies.
    """
    if model_labels:
        lookup: dict[str, int] = {}
        for i, label in enumerate(model_labels):
            for alias in (label, label.split(",")[0]):
                lookup.setdefault(_name(alias), i)
        if all(_name(c) in lookup for c in class_names):
            return {i: lookup[_name(c)] for i, c in enumerate(class_names)}
    num_classes = num_classes or (len(model_labels) if model_labels else 0)
    if all(c.isdigit() and int(c) < num_classes for c in class_names):
        return {i: int(c) for i, c in enumerate(class_names)}
    if num_classes and len(class_names) == num_classes:
        return dict(enumerate(range(num_classes)))
    raise ValueError(
        f"cannot match the {len(class_names)} class folders (e.g. {', '.join(class_names[:3])}) to the model's "
        f"{num_classes} classes: name them after the model's labels, number them, or give exactly one folder "
        "per class in the model's order; or evaluate the predicted class with --target predicted")
