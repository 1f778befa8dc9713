"""The one signature every attribution method shares: model, input, target → relevance over the patch grid.

An attribution method answers "which patches made the model output *this*?" (captum's ``attribute``
entry point; Quantus' metrics take any such map). Raw attention says where a token looked, which is a
different question; it is registered here too, so that the metrics can judge it beside the others.

Every method is a small class with class-level facts (what it reads, what it costs) and one
:meth:`AttributionMethod.attribute` call. Methods that change how gradients flow through a stock timm
model do so inside a context manager that restores every module and flag (as ``vitviz.capture`` does).
Methods never call metrics; metrics (``vitviz.evaluation``) call methods.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from vitviz.i18n import _
from vitviz.layout import TokenLayout

if TYPE_CHECKING:
    from torch import nn

    from vitviz.capture import Capture


__all__ = ["AttributionMethod", "Relevance", "check_start_layer", "resolve_target"]


@dataclass(frozen=True)
class Relevance:
    """One method's answer for one image and one target.

    Attributes:
        patches: (gh, gw) float64 relevance of each patch; larger means more relevant to ``target``.
        method: Registry key of the method that produced it.
        target: Class index explained, or None for a method that ignores the target.
        layout: Token layout of the input that was explained.
        prefix: Prefix-token name -> relevance (class token, registers, ...), where the method assigns any.
        pixels: (H, W) float64 relevance of each model-input pixel, for methods that produce one
            (gradient methods, LRP); ``patches`` is then its sum over each patch.
    """

    patches: np.ndarray
    method: str
    target: int | None
    layout: TokenLayout
    prefix: dict[str, float] | None = None
    pixels: np.ndarray | None = None

    @property
    def total(self) -> float:
        """Relevance summed over the patches (and prefix tokens, where assigned)."""
        return float(self.patches.sum() + sum((self.prefix or {}).values()))


class AttributionMethod:
    """Base class: subclasses set the class attributes and implement :meth:`attribute`.

    Class attributes:
        key: Registry key, e.g. ``'rollout'``.
        title: Human name for figures and tables, e.g. ``'Attention rollout'``, in English (marked ``N_()``;
            :attr:`display_title` gives it in the current language).
        paper: Citation of the method's paper (shown in the app and the docs).
        class_specific: True when the map depends on the target class.
        reads_head: True when the map depends on the classifier head's weights (a sanity check that
            randomises the head can only change such maps).
        passes: What one call costs, e.g. ``'1 forward'`` or ``'1 forward + 1 backward'``, in English
            (:attr:`cost` gives it in the current language).
        conserves: True for the LRP family, whose :meth:`decompose` says where the explained logit went
            (``vitviz.attribution.conservation``).
        options: Names of the constructor's options (e.g. ``('start_layer',)``), each kept as an attribute;
            :meth:`settings` reads them and :meth:`configured` makes a copy with other values.
    """

    key: ClassVar[str] = ""
    title: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    class_specific: ClassVar[bool] = False
    reads_head: ClassVar[bool] = False
    passes: ClassVar[str] = "1 forward"
    conserves: ClassVar[bool] = False
    options: ClassVar[tuple[str, ...]] = ()

    def settings(self) -> dict[str, object]:
        """This instance's options (``{'start_layer': 1}``; empty for a method without options)."""
        return {name: getattr(self, name) for name in self.options}

    def configured(self, **options: object) -> AttributionMethod:
        """A new instance with ``options`` changed (those this method does not take are ignored)."""
        return type(self)(**{**self.settings(), **{k: v for k, v in options.items() if k in self.options}})

    def decompose(self, model: nn.Module, x: torch.Tensor, target: int | None = None):
        """Where the explained logit went (``LogitDecomposition``): LRP-family methods only (:attr:`conserves`)."""
        raise NotImplementedError(f"{self.key} does not decompose the logit")

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                  capture: Capture | None = None) -> Relevance:
        """Relevance of every patch of ``x`` for ``target``.

        Args:
            model: A timm ViT-family model (left exactly as it was: hooks removed, flags restored).
            x: One normalised input image (1, 3, H, W) on the model's device.
            target: Class index to explain; None explains the model's top class (see
                :func:`resolve_target`). Methods that are not class specific ignore it.
            capture: A ``vitviz.capture.Capture`` of this model on this input, reused when given by
                methods that read attention; methods that need other passes ignore it.

        Returns:
            The Relevance over the model's own patch grid.
        """
        raise NotImplementedError

    @property
    def display_title(self) -> str:
        """:attr:`title` in the current language (for figures, tables and widgets)."""
        return _(self.title)

    @property
    def cost(self) -> str:
        """:attr:`passes` in the current language."""
        return _(self.passes)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r}>"


def resolve_target(model: nn.Module, x: torch.Tensor, target: int | None,
                   output: torch.Tensor | None = None) -> int | None:
    """The class to explain: ``target`` if given, else the top class of ``output`` (run once if absent).

    Returns None for a headless model (no classifier), which has nothing class specific to explain.
    """
    if target is not None:
        return int(target)
    if not int(getattr(model, "num_classes", 0) or 0):
        return None
    if output is None:
        with torch.no_grad():
            output = model(x)
    return int(output[0].argmax())


def check_start_layer(value: object) -> int:
    """A ``start_layer`` option: a whole number ≥ 0 (a clear error otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"start_layer must be a whole number >= 0, not {value!r}")
    return int(value)
