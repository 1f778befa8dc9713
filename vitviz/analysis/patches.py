"""Patch grid geometry and patch extraction, as a ViT's patch embedding sees its input.

A ViT (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", Sec. 3.1) cuts its input into
non-overlapping ``p x p`` patches in row-major order and projects each flattened patch linearly; timm does
this with a ``Conv2d(kernel=p, stride=p)``. When ``p`` does not divide the input, the strided convolution
drops the last rows/columns (``'crop'``), while timm's ``dynamic_img_pad`` pads zeros at the bottom and
right first (``'pad'``). ``PatchGrid`` says which happened and by how many pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..i18n import _
from ._convert import to_numpy

if TYPE_CHECKING:
    from PIL import Image

    from ._convert import Array


__all__ = ["PatchGrid", "patch_grid", "patchify", "patch_tiles"]

_MODES = ("crop", "pad")


def _pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a (height, width) pair, got {value!r}")
    return int(pair[0]), int(pair[1])


@dataclass(frozen=True)
class PatchGrid:
    """How an image of a given size is cut into patches.

    Attributes:
        image_size: Image (height, width) in pixels before any crop or pad.
        patch_size: Patch (height, width) in pixels.
        mode: ``'crop'`` (remainder rows/columns dropped) or ``'pad'`` (zeros added).
        grid_size: Patch rows and columns.
        crop: Pixel rows and columns dropped at the bottom and right (zero in ``'pad'`` mode).
        pad: Pixel rows and columns of zeros added at the bottom and right (zero in ``'crop'`` mode).
    """

    image_size: tuple[int, int]
    patch_size: tuple[int, int]
    mode: str
    grid_size: tuple[int, int]
    crop: tuple[int, int]
    pad: tuple[int, int]

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    @property
    def covered_size(self) -> tuple[int, int]:
        """(height, width) in pixels that the patches cover (image minus crop, or plus pad)."""
        return self.grid_size[0] * self.patch_size[0], self.grid_size[1] * self.patch_size[1]

    @property
    def exact(self) -> bool:
        """True when the patch size divides the image: nothing cropped or padded."""
        return self.crop == (0, 0) and self.pad == (0, 0)

    def boxes(self) -> np.ndarray:
        """Every patch's box ``(top, left, height, width)`` in image pixels, in sequence (row-major) order.

        In ``'pad'`` mode the last row/column of boxes reaches past the image into the padding.

        Returns:
            Integer array of shape (num_patches, 4).
        """
        rows, cols = self.grid_size
        ph, pw = self.patch_size
        top, left = np.meshgrid(np.arange(rows) * ph, np.arange(cols) * pw, indexing="ij")  # (rows, cols) each
        sizes = np.broadcast_to([ph, pw], (self.num_patches, 2))
        return np.concatenate([np.stack([top.ravel(), left.ravel()], axis=1), sizes], axis=1)  # (N, 4)

    def describe(self) -> str:
        """One line such as ``'14×14 patches of 16×16 px; 4 px rows and 0 px columns cropped at the
        bottom/right'``, in the current language."""
        values = dict(rows=self.grid_size[0], cols=self.grid_size[1], height=self.patch_size[0],
                      width=self.patch_size[1])
        if self.exact:
            return _("{rows}×{cols} patches of {height}×{width} px; the patch size divides the image").format(
                **values)
        if self.mode == "crop":
            text = _("{rows}×{cols} patches of {height}×{width} px; {cut_rows} px rows and {cut_cols} px columns "
                     "cropped at the bottom/right")
        else:
            text = _("{rows}×{cols} patches of {height}×{width} px; {cut_rows} px rows and {cut_cols} px columns "
                     "padded with zeros at the bottom/right")
        cut_rows, cut_cols = self.crop if self.mode == "crop" else self.pad
        return text.format(cut_rows=cut_rows, cut_cols=cut_cols, **values)


def patch_grid(
    image_size: tuple[int, int] | int,
    patch_size: tuple[int, int] | int,
    mode: str = "crop",
) -> PatchGrid:
    """Cut an image of ``image_size`` into patches of ``patch_size``, any sizes allowed.

    Args:
        image_size: Image (height, width) in pixels (an int means square).
        patch_size: Patch (height, width) in pixels (an int means square).
        mode: ``'crop'`` drops the rows/columns that do not fill a whole patch (what timm's strided
            convolution does); ``'pad'`` adds zero rows/columns at the bottom/right (timm's
            ``dynamic_img_pad=True``).

    Returns:
        The PatchGrid.

    Raises:
        ValueError: For an unknown mode, or an image smaller than one patch in ``'crop'`` mode.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, not {mode!r}")
    image_size = _pair(image_size, "image_size")
    patch_size = _pair(patch_size, "patch_size")
    if mode == "crop":
        grid = (image_size[0] // patch_size[0], image_size[1] // patch_size[1])
        if 0 in grid:
            raise ValueError(f"an image of {image_size} px is smaller than one {patch_size} px patch")
        crop = (image_size[0] - grid[0] * patch_size[0], image_size[1] - grid[1] * patch_size[1])
        pad = (0, 0)
    else:
        grid = (math.ceil(image_size[0] / patch_size[0]), math.ceil(image_size[1] / patch_size[1]))
        pad = (grid[0] * patch_size[0] - image_size[0], grid[1] * patch_size[1] - image_size[1])
        crop = (0, 0)
    return PatchGrid(image_size, patch_size, mode, grid, crop, pad)


def _fit(x: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """Crop or zero-pad the last two axes of ``x`` (..., H, W) to the grid's covered size."""
    height, width = grid.covered_size
    x = x[..., :height, :width]
    pad = [(0, 0)] * (x.ndim - 2) + [(0, grid.pad[0]), (0, grid.pad[1])]
    return np.pad(x, pad) if grid.pad != (0, 0) else x


def patchify(x: Array, patch_size: tuple[int, int] | int, mode: str = "crop") -> np.ndarray:
    """Flatten an image into the patch vectors a ViT's patch embedding multiplies with its weights.

    The order matches timm's ``Conv2d`` patch embedding exactly: patches row-major over the grid, and each
    vector laid out as ``(C, ph, pw)`` flattened, the layout of ``proj.weight.reshape(D, -1)``. So
    ``patchify(x) @ W.reshape(D, -1).T + b`` equals the patch embedding's output tokens.

    Args:
        x: Image (C, H, W) or batch (B, C, H, W), numpy or torch.
        patch_size: Patch (height, width) in pixels (an int means square).
        mode: ``'crop'`` or ``'pad'``, as in :func:`patch_grid`.

    Returns:
        float64 array (N, C*ph*pw), or (B, N, C*ph*pw) for a batch.
    """
    x = to_numpy(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"expected (C, H, W) or (B, C, H, W), got shape {x.shape}")
    batched = x.ndim == 4
    x = x if batched else x[None]  # (B, C, H, W)
    grid = patch_grid(x.shape[-2:], patch_size, mode)
    x = _fit(x, grid)  # (B, C, gh*ph, gw*pw)
    b, c = x.shape[:2]
    (gh, gw), (ph, pw) = grid.grid_size, grid.patch_size
    x = x.reshape(b, c, gh, ph, gw, pw)  # (B, C, gh, ph, gw, pw)
    x = x.transpose(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, ph, pw)
    x = x.reshape(b, gh * gw, c * ph * pw)  # (B, N, C*ph*pw)
    return x if batched else x[0]


def patch_tiles(image: Image.Image | Array, patch_size: tuple[int, int] | int, mode: str = "crop") -> np.ndarray:
    """Cut a channels-last image into patch tiles for display, in sequence order.

    Args:
        image: Image (H, W, C) or (H, W), e.g. a uint8 RGB array; its dtype is kept.
        patch_size: Patch (height, width) in pixels (an int means square).
        mode: ``'crop'`` or ``'pad'`` (pads with zeros, i.e. black), as in :func:`patch_grid`.

    Returns:
        Array (N, ph, pw, C), or (N, ph, pw) for a 2-D image.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    chw = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)  # (C, H, W)
    grid = patch_grid(chw.shape[-2:], patch_size, mode)
    chw = _fit(chw, grid)  # (C, gh*ph, gw*pw)
    c = chw.shape[0]
    (gh, gw), (ph, pw) = grid.grid_size, grid.patch_size
    tiles = chw.reshape(c, gh, ph, gw, pw).transpose(1, 3, 2, 4, 0)  # (gh, gw, ph, pw, C)
    tiles = tiles.reshape(gh * gw, ph, pw, c)  # (N, ph, pw, C)
    return tiles[..., 0] if image.ndim == 2 else tiles
