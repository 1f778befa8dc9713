"""Token layout: which token is which, read from the model instead of assumed.

A ViT's token sequence is ``[prefix tokens..., patch tokens...]``. The prefix may hold a class token, a
distillation token (DeiT) and register tokens (DINOv2 with registers, "Vision Transformers Need
Registers"), or nothing at all (average or attention pooling). The patch grid depends on the input size
and the patch size, and need not be square. Every map in vitviz is built from a ``TokenLayout``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from vitviz.i18n import _

__all__ = ["TokenLayout"]


@dataclass(frozen=True)
class TokenLayout:
    """Where each token of a ViT's sequence sits.

    Attributes:
        prefix_names: Names of the prefix tokens in sequence order, e.g. ``('cls',)``, ``('cls', 'dist')``,
            ``('cls', 'reg0', 'reg1', 'reg2', 'reg3')``, or ``()``.
        grid_size: Patch rows and columns.
        patch_size: Patch height and width in model-input pixels.
        input_size: Model input height and width in pixels.
        global_pool: How the model pools tokens for its head (``'token'``, ``'avg'``, ``'map'``, ...).
    """

    prefix_names: tuple[str, ...]
    grid_size: tuple[int, int]
    patch_size: tuple[int, int]
    input_size: tuple[int, int]
    global_pool: str = "token"

    @property
    def num_prefix_tokens(self) -> int:
        return len(self.prefix_names)

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    @property
    def num_tokens(self) -> int:
        return self.num_prefix_tokens + self.num_patches

    @property
    def has_class_token(self) -> bool:
        return "cls" in self.prefix_names

    @property
    def class_index(self) -> int | None:
        """Index of the class token in the sequence, or None when the model has none."""
        return self.prefix_names.index("cls") if self.has_class_token else None

    @property
    def has_dist_token(self) -> bool:
        return "dist" in self.prefix_names

    @property
    def num_registers(self) -> int:
        return sum(name.startswith("reg") for name in self.prefix_names)

    @property
    def patch_slice(self) -> slice:
        """Slice of the patch tokens in the sequence."""
        return slice(self.num_prefix_tokens, self.num_tokens)

    def token_name(self, token: int) -> str:
        """Human-readable name of a token: a prefix name (``'cls'``, ``'reg0'``: names, never translated) or
        ``'patch (r, c)'`` in the current language."""
        if token < self.num_prefix_tokens:
            return self.prefix_names[token]
        row, col = self.patch_position(token)
        return _("patch ({row}, {col})").format(row=row, col=col)

    def patch_index(self, row: int, col: int) -> int:
        """Sequence index of the patch token at grid position ``(row, col)``."""
        rows, cols = self.grid_size
        if not (0 <= row < rows and 0 <= col < cols):
            raise IndexError(f"patch ({row}, {col}) is outside the {rows}x{cols} grid")
        return self.num_prefix_tokens + row * cols + col

    def patch_position(self, token: int) -> tuple[int, int]:
        """Grid position ``(row, col)`` of a patch token's sequence index."""
        offset = token - self.num_prefix_tokens
        if not 0 <= offset < self.num_patches:
            raise IndexError(f"token {token} is not a patch token")
        return divmod(offset, self.grid_size[1])

    def patch_centers(self) -> np.ndarray:
        """Centre ``(y, x)`` of every patch in model-input pixels, in sequence order.

        Returns:
            Array of shape (num_patches, 2).
        """
        rows, cols = self.grid_size
        ph, pw = self.patch_size
        ys = (np.arange(rows) + 0.5) * ph
        xs = (np.arange(cols) + 0.5) * pw
        yy, xx = np.meshgrid(ys, xs, indexing="ij")  # (rows, cols) each
        return np.stack([yy.ravel(), xx.ravel()], axis=1)  # (rows*cols, 2)

    def split(self, tokens: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Split per-token values into the prefix tokens' and the patch grid's: the one splitter of vitviz.

        Args:
            tokens: (..., N) values in sequence order (prefix first), numpy or torch (any device).

        Returns:
            ``(prefix, patches)``: float64 arrays (..., P) and (..., rows, cols).

        Raises:
            ValueError: When the last axis is not this layout's N tokens.
        """
        if hasattr(tokens, "detach"):  # a torch tensor, without importing torch here
            tokens = tokens.detach().cpu().double().numpy()
        values = np.asarray(tokens, dtype=np.float64)
        if values.ndim == 0 or values.shape[-1] != self.num_tokens:
            got = values.shape[-1] if values.ndim else 0
            raise ValueError(f"expected {self.num_prefix_tokens} prefix + {self.num_patches} patch values "
                             f"({self.describe()}), got {got}")
        prefix = values[..., : self.num_prefix_tokens]  # (..., P)
        patches = values[..., self.patch_slice].reshape(*values.shape[:-1], *self.grid_size)  # (..., gh, gw)
        return prefix, patches

    def to_grid(self, values: np.ndarray) -> np.ndarray:
        """Reshape per-patch values ``(..., num_patches)`` to ``(..., rows, cols)``."""
        values = np.asarray(values)
        return values.reshape(*values.shape[:-1], *self.grid_size)

    def describe(self) -> str:
        """One line such as ``'cls + 4 registers + 16×16 patches = 261 tokens'``, in the current language."""
        parts = []
        if self.has_class_token:
            parts.append("cls")
        if self.has_dist_token:
            parts.append("dist")
        if self.num_registers:
            parts.append(_("{count} registers").format(count=self.num_registers))
        parts.append(_("{rows}×{cols} patches").format(rows=self.grid_size[0], cols=self.grid_size[1]))
        return _("{parts} = {count} tokens").format(parts=" + ".join(parts), count=self.num_tokens)

    @classmethod
    def from_model(cls, model, input_size: tuple[int, int] | int | None = None) -> TokenLayout:
        """Read the layout of a timm ViT-family model for a given input size.

        Args:
            model: A timm model with ``patch_embed`` and ``num_prefix_tokens`` (VisionTransformer, Eva, ...).
            input_size: Model input ``(height, width)``; defaults to the model's configured image size.
        """
        patch_embed = model.patch_embed
        if input_size is None:
            input_size = tuple(patch_embed.img_size)
        elif isinstance(input_size, int):
            input_size = (input_size, input_size)
        input_size = (int(input_size[0]), int(input_size[1]))
        patch_size = tuple(int(p) for p in patch_embed.patch_size)
        if hasattr(patch_embed, "dynamic_feat_size"):
            grid = tuple(int(g) for g in patch_embed.dynamic_feat_size(input_size))
        else:
            grid = (input_size[0] // patch_size[0], input_size[1] // patch_size[1])
        return cls(
            prefix_names=_prefix_names(model),
            grid_size=grid,
            patch_size=patch_size,
            input_size=input_size,
            global_pool=str(getattr(model, "global_pool", "token") or ""),
        )


def _prefix_names(model) -> tuple[str, ...]:
    """Prefix token names in the order timm concatenates them: class, distillation, registers."""
    names: list[str] = []
    if getattr(model, "cls_token", None) is not None:
        names.append("cls")
    if getattr(model, "dist_token", None) is not None:
        names.append("dist")
    num_reg = int(getattr(model, "num_reg_tokens", 0) or 0)
    names.extend(f"reg{i}" for i in range(num_reg))
    expected = int(getattr(model, "num_prefix_tokens", len(names)))
    if expected != len(names):
        raise ValueError(
            f"cannot tell the model's prefix tokens apart: it declares {expected} prefix tokens, "
            f"vitviz found {names or 'none'}"
        )
    return tuple(names)
