"""Geometry: which part of the photo the model input shows, and points mapped between the two frames.

Coordinates: points are ``(y, x)`` in continuous pixel coordinates, ``(0, 0)`` being the top-left corner
of the top-left pixel, so pixel ``(r, c)`` covers ``[r, r + 1) x [c, c + 1)`` and has its centre at
``(r + 0.5, c + 0.5)``. In this frame a resize is a pure scale and a crop a pure shift, which is exactly
how PIL resamples.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["InputGeometry", "image_size"]

@dataclass(frozen=True)
class InputGeometry:
    """Which part of the original image the model input shows, and how to map points between them.

    The model input is the axis-aligned box ``crop_box`` of the original, resampled to ``input_size``.
    The box may reach outside the image where the transform padded it. Points are (y, x) in continuous
    pixel coordinates (see the module docstring): pixel (r, c) has its centre at (r + 0.5, c + 0.5), so
    patch (i, j) of size p covers the input box from (i * p, j * p) to ((i + 1) * p, (j + 1) * p).

    Attributes:
        original_size: (height, width) of the decoded, upright image.
        input_size: (height, width) of the model input.
        crop_box: (top, left, height, width) in original pixels (continuous coordinates).
    """

    original_size: tuple[int, int]
    input_size: tuple[int, int]
    crop_box: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        if min(self.original_size) < 1 or min(self.input_size) < 1 or min(self.crop_box[2:]) <= 0:
            raise ValueError(f"degenerate geometry: {self}")

    @property
    def scale(self) -> tuple[float, float]:
        """(y, x) model-input pixels per original pixel."""
        return self.input_size[0] / self.crop_box[2], self.input_size[1] / self.crop_box[3]

    def input_to_original(self, yx: np.ndarray | Sequence) -> np.ndarray:
        """Map (..., 2) points (y, x) from model-input pixels to original pixels."""
        points = _points(yx)
        top_left = np.array(self.crop_box[:2])
        return top_left + points / np.array(self.scale)

    def original_to_input(self, yx: np.ndarray | Sequence) -> np.ndarray:
        """Map (..., 2) points (y, x) from original pixels to model-input pixels."""
        points = _points(yx)
        top_left = np.array(self.crop_box[:2])
        return (points - top_left) * np.array(self.scale)


def _points(yx: np.ndarray | Sequence) -> np.ndarray:
    """``yx`` as a float64 array of shape (..., 2)."""
    points = np.asarray(yx, dtype=np.float64)
    if points.ndim == 0 or points.shape[-1] != 2:
        raise ValueError(f"expected points of shape (..., 2), got {points.shape}")
    return points


def image_size(image: Image.Image | np.ndarray) -> tuple[int, int]:
    """``(height, width)`` of a PIL image or an image array, without converting it."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    height, width = np.shape(image)[:2]
    return int(height), int(width)
