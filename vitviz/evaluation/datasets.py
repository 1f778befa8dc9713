"""The images a data-set evaluation runs over: generated shapes with their masks, or a folder of images.

Both are map-style data sets (``len`` and ``[index]``, as ``torch.utils.data.DistributedSampler`` needs)
whose items are :class:`EvalImage`: one model input with a stable id, its label where known and its object
mask where known. The id names the image whatever the process or the world size, so results can be
resumed and gathered by id.

- :class:`ShapesEvalSet`: ``count`` held-out images of :mod:`vitviz.shapes` (a seed and split that training
  never used), drawn at the model's input size, each with its exact object mask and label.
- :class:`ImageFolderSet`: a folder of images. With class subfolders (the ``torchvision`` ImageFolder
  layout) each image is labelled by its folder; a flat folder of images has no labels, and the evaluation
  then explains the predicted class. A folder that holds both loose images and class folders is refused
  unless the layout is named (``layout='classes'`` or ``'flat'``): guessing would drop images silently.
  Images are prepared by timm's eval transform for the model (:func:`vitviz.images.prepare_input`).

A folder's files are hostile input: an image that cannot be evaluated (empty, corrupt, a decompression
bomb, a symbolic link, larger than :data:`MAX_IMAGE_BYTES`, unreadable) raises :class:`BadImage` naming it
and saying why, and the evaluation skips it. File names are kept as text whatever their encoding (bytes
that are not UTF-8 become ``\\xNN``).
"""
from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "LAYOUTS",
    "MAX_IMAGE_BYTES",
    "BadImage",
    "EvalImage",
    "ImageFolderSet",
    "ShapesEvalSet",
    "class_indices",
    "printable",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
LAYOUTS = ("auto", "classes", "flat")
MAX_IMAGE_BYTES = 256 * 2**20
"""Largest image file read (a bigger one is skipped before a byte is read)."""
_NAMES_SHOWN = 5


class BadImage(ValueError):
    """An image of a data set that cannot be evaluated; the evaluation skips it.

    Attributes:
        image_id: The image's id.
        index: Its position in the data set.
        reason: Why, in one sentence.
    """

    def __init__(self, image_id: str, index: int, reason: str) -> None:
        super().__init__(f"{printable(image_id)}: {reason}")
        self.image_id, self.index, self.reason = image_id, index, reason


def printable(text: str) -> str:
    """``text`` safe to print on one line: control characters and the like as escapes."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


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
        # heavy: torch (through vitviz.shapes.dataset), loaded when shapes are evaluated
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

    def index_of(self, image_id: str) -> int | None:
        """The position of the image with this id, or None when it is not in this set."""
        prefix = f"shapes:{self.seed}:{self.split}:"
        tail = image_id[len(prefix):] if image_id.startswith(prefix) else ""
        index = int(tail) if tail.isdigit() and str(int(tail)) == tail else -1
        return index if 0 <= index < self.count else None

    def __getitem__(self, index: int) -> EvalImage:
        # heavy: torch (through vitviz.shapes.dataset), loaded when shapes are evaluated
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

    Labels follow :func:`class_indices`. Files are sorted by name, so the order (and every id) is the same
    on every machine. ``found`` says in one line what the folder holds and what was left out.

    Args:
        root: The folder.
        data_config: timm data config of the model (input size, mean, std, crop).
        labels: The model's class names (None for a model without them).
        num_classes: The model's number of classes (0 for a headless model).
        use_labels: False ignores the class folders' names (every image unlabelled).
        layout: ``'auto'`` (class folders, or a flat folder; refused when it holds both), ``'classes'`` (the
            loose images are left out) or ``'flat'`` (the subfolders are left out).

    Raises:
        ValueError: not a folder, no images, or both loose images and class folders with ``layout='auto'``.
    """

    has_masks = False

    def __init__(self, root: str | Path, data_config: Mapping[str, Any], labels: Sequence[str] | None = None,
                 num_classes: int = 0, use_labels: bool = True, layout: str = "auto") -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"{printable(str(self.root))} is not a folder of images")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
        self.data_config = dict(data_config)
        listing = _Listing(self.root)
        if layout == "auto" and listing.folders and listing.images:
            raise ValueError(
                f"{printable(str(self.root))} holds both {_count(listing.images, 'loose image')} "
                f"({_names(listing.images)}) and {_count(listing.folders, 'class folder')} "
                f"({_names([f + '/' for f in listing.folders])}): say which with --layout classes (the loose "
                "images are left out) or --layout flat (the subfolders are left out)")
        by_class = layout == "classes" or (layout == "auto" and bool(listing.folders))
        if by_class:
            self.class_names = [_text(f) for f in listing.folders]
            self.files = [self.root / f / name for f in listing.folders for name in listing.inside[f]]
            to_model = class_indices(self.class_names, labels, num_classes) if use_labels else {}
            self.labels = [to_model.get(i) for i, f in enumerate(listing.folders) for _ in listing.inside[f]]
        else:
            self.class_names = []
            self.files = [self.root / name for name in listing.images]
            self.labels = [None] * len(self.files)
        self.found = listing.describe(by_class)
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {printable(str(self.root))} "
                             f"{'in its class folders' if by_class else 'itself'}: {self.found}")
        self._ids = [_text(f.relative_to(self.root).as_posix()) for f in self.files]
        self._index = {image_id: i for i, image_id in enumerate(self._ids)}

    def __len__(self) -> int:
        return len(self.files)

    def image_id(self, index: int) -> str:
        """The id of image ``index``: its path relative to the folder (bytes that are not UTF-8 as ``\\xNN``)."""
        return self._ids[index]

    def index_of(self, image_id: str) -> int | None:
        """The position of the image with this id, or None when it is not in this set."""
        return self._index.get(image_id)

    def __getitem__(self, index: int) -> EvalImage:
        """Image ``index``, prepared for the model.

        Raises:
            BadImage: the file cannot be evaluated (the reason says why).
        """
        # heavy: torch (through vitviz.images' preprocessing), loaded when a photo is read
        from vitviz.images import ImageError, load_image, prepare_input

        image_id = self.image_id(index)
        try:
            x, _ = prepare_input(load_image(_read(self.files[index])), self.data_config)  # (1, 3, H, W)
        except ImageError as exc:
            raise BadImage(image_id, index, str(exc)) from exc
        except OSError as exc:
            raise BadImage(image_id, index, f"cannot be read ({exc.strerror or type(exc).__name__})") from exc
        return EvalImage(id=image_id, index=index, x=x, label=self.labels[index], mask=None)

    def describe(self) -> dict[str, Any]:
        """What identifies this set's images (for the run record)."""
        return {"kind": "folder", "root": _text(str(self.root.resolve())), "classes": len(self.class_names),
                "input_size": list(self.data_config.get("input_size", []))}


class _Listing:
    """What a folder holds: loose image files, subfolders that hold images, and what is neither."""

    def __init__(self, root: Path) -> None:
        self.images: list[str] = []
        self.folders: list[str] = []
        self.inside: dict[str, list[str]] = {}
        self.other: list[str] = []
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.name.startswith("."):
                self.other.append(entry.name)
            elif entry.is_dir(follow_symlinks=False):
                images = _image_names(Path(entry.path))
                if images:
                    self.folders.append(entry.name)
                    self.inside[entry.name] = images
                else:
                    self.other.append(entry.name + "/")
            elif _is_image_name(entry):
                self.images.append(entry.name)
            else:
                self.other.append(entry.name)

    def describe(self, by_class: bool) -> str:
        """One line: what is evaluated, and what is left out (with the first names)."""
        if by_class:
            used = (f"{_count(self.folders, 'class folder')} "
                    f"({_count([n for f in self.folders for n in self.inside[f]], 'image')})")
            left = [(self.images, "loose image", None), (self.other, "other entry", "other entries")]
        else:
            used = _count(self.images, "image")
            left = [([f + "/" for f in self.folders], "subfolder with images", "subfolders with images"),
                    (self.other, "other entry", "other entries")]
        ignored = [f"{_count(names, one, many)} ignored: {_names(names)}" for names, one, many in left if names]
        return "; ".join([used, *ignored])


def _is_image_name(entry: os.DirEntry) -> bool:
    """A file (or a link, skipped later with its reason) named like an image."""
    return os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and (
        entry.is_symlink() or not entry.is_dir(follow_symlinks=False))


def _image_names(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if not e.name.startswith(".") and _is_image_name(e))


def _read(path: Path) -> bytes:
    """The bytes of an image file: never through a link, never from a device or pipe, never too many.

    Raises:
        ImageError: a link, not a regular file, or larger than :data:`MAX_IMAGE_BYTES`.
        OSError: it cannot be read.
    """
    # heavy: torch (through vitviz.images' preprocessing), loaded when a photo is read
    from vitviz.images import ImageError

    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise ImageError("a symbolic link (not followed)", "not_image")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError("not a regular file", "not_image")
    if info.st_size > MAX_IMAGE_BYTES:
        raise ImageError(f"larger than {MAX_IMAGE_BYTES // 2**20} MB ({info.st_size} bytes)", "too_large")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    with os.fdopen(os.open(path, flags), "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # replaced since it was looked at
            raise ImageError("not a regular file", "not_image")
        return handle.read(MAX_IMAGE_BYTES)


def _text(name: str) -> str:
    """A file name as text whatever its encoding: bytes that are not UTF-8 as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _count(items: Sequence, one: str, many: str | None = None) -> str:
    return f"{len(items)} {one if len(items) == 1 else many or one + 's'}"


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(printable(_text(n)) for n in names[:_NAMES_SHOWN])
    return shown + (f", … ({len(names) - _NAMES_SHOWN} more)" if len(names) > _NAMES_SHOWN else "")


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
