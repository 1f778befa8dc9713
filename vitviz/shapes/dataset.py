"""Shapes images as tensors: a map-style torch ``Dataset`` and fast in-memory batches.

A data set is ``(seed, split, length)``: item ``i`` is :func:`~vitviz.shapes.generator.generate` on its own
random stream, so items can be made in any order, in any process, and always come out the same.
Training uses ``split=0``; evaluation uses other seeds or splits, which training never sees.
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from torch.utils.data import Dataset

from .families import generate_mix
from .generator import Style, generate, generate_batch, sample_rng

__all__ = ['ShapesDataset', 'TRAIN_SPLIT', 'EVAL_SPLIT', 'Mix', 'mix_batch', 'normalize', 'pregenerate']

TRAIN_SPLIT = 0
EVAL_SPLIT = 1


def normalize(images: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` (or one ``(H, W, 3)``) images to normalised float ``(B, 3, H, W)``.

    The same arithmetic as timm's eval transform at the model's own input size (``ToTensor`` then
    ``Normalize``); resizing is the identity because the images are already the input size.
    """
    x = torch.as_tensor(images)
    if x.ndim == 3:
        x = x[None]  # (1, H, W, 3)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, H, W)
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


class ShapesDataset(Dataset):
    """``length`` generated images of data set ``(seed, split)``.

    Each item is ``(image, label, mask)``: normalised float ``(3, H, W)``, int label and bool ``(H, W)``
    mask tensor.
    """

    def __init__(self, seed: int, length: int, *, split: int = EVAL_SPLIT, image_size: int = 96,
                 style: Style = Style(), mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.5, 0.5, 0.5)) -> None:
        self.seed, self.length, self.split, self.image_size = seed, length, split, image_size
        self.style = style
        self.mean, self.std = tuple(mean), tuple(std)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        sample = generate(sample_rng(self.seed, index, self.split), self.image_size, style=self.style)
        image = normalize(sample.image, self.mean, self.std)[0]  # (3, H, W)
        return image, sample.label, torch.from_numpy(sample.mask)


Mix = tuple[tuple[str, float], ...]


def mix_batch(seed: int, count: int, mix: Mix, *, split: int = 0, start: int = 0,
              image_size: int = 96) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`~vitviz.shapes.generator.generate_batch`, each image drawn in a family picked from ``mix``.

    Args:
        mix: ``(family, weight)`` pairs (see :mod:`vitviz.shapes.families`); one pair for a single family.
    """
    samples = [generate_mix(sample_rng(seed, start + i, split), mix, image_size) for i in range(count)]
    images = np.stack([smp.image for smp in samples])  # (count, H, W, 3)
    masks = np.stack([smp.mask for smp in samples])  # (count, H, W)
    labels = np.array([smp.label for smp in samples], dtype=np.int64)
    return images, masks, labels


def _chunk(args: tuple) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    seed, split, start, count, image_size, keep_masks, style, mask_cell, mix = args
    if mix is None:
        images, masks, labels = generate_batch(seed, count, split=split, start=start, image_size=image_size,
                                               style=style)
    else:
        images, masks, labels = mix_batch(seed, count, mix, split=split, start=start, image_size=image_size)
    if keep_masks and mask_cell > 1:
        n, h, w = masks.shape
        cells = masks.reshape(n, h // mask_cell, mask_cell, w // mask_cell, mask_cell)  # (n, h/c, c, w/c, c)
        masks = cells.sum(axis=(2, 4), dtype=np.int32).astype(np.uint8)  # (n, h/c, w/c) object pixels per cell
    return images, (masks if keep_masks else None), labels


def pregenerate(seed: int, count: int, *, split: int = TRAIN_SPLIT, image_size: int = 96, workers: int = 1,
                chunk: int = 500, keep_masks: bool = True, style: Style = Style(), mask_cell: int = 1,
                progress=None, mix: Mix | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Items ``0 .. count-1`` of data set ``(seed, split)`` in memory, made by ``workers`` processes.

    The result does not depend on ``workers`` or ``chunk`` (each item has its own random stream).

    Args:
        seed: data set seed.
        count: number of images.
        split: data set split.
        image_size: image side in pixels.
        workers: processes to draw with (1: in this process).
        chunk: images per task.
        keep_masks: also return the masks (training does not need them).
        style: image difficulty (see :class:`~vitviz.shapes.generator.Style`).
        mask_cell: when above 1, each mask comes back as uint8 counts of object pixels per
            ``mask_cell x mask_cell`` cell, ``(count, H/cell, W/cell)``, to save memory (cell <= 15).
        progress: optional callable receiving the number of images just finished.
        mix: draw each image in a style family picked from these ``(family, weight)`` pairs
            (:mod:`vitviz.shapes.families`) instead of the classic generator with ``style``.

    Returns:
        ``images (count, H, W, 3)`` uint8, ``masks (count, H, W)`` bool (or None), ``labels (count,)`` int64.
    """
    mix = None if mix is None else tuple((str(f), float(w)) for f, w in mix)
    tasks = [(seed, split, s, min(chunk, count - s), image_size, keep_masks, style, mask_cell, mix)
             for s in range(0, count, chunk)]
    parts = []
    if workers <= 1:
        for task in tasks:
            parts.append(_chunk(task))
            if progress:
                progress(task[3])
    else:
        with ProcessPoolExecutor(workers) as pool:
            for task, part in zip(tasks, pool.map(_chunk, tasks)):
                parts.append(part)
                if progress:
                    progress(task[3])
    images = np.concatenate([part[0] for part in parts])  # (count, H, W, 3)
    masks = np.concatenate([part[1] for part in parts]) if keep_masks else None  # (count, H, W)
    labels = np.concatenate([part[2] for part in parts])
    return images, masks, labels
