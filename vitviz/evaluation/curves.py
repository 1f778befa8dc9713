"""What a perturbation test measures: the target's score over the fractions removed, for one order
(:class:`PerturbationCurve`), both orders of one map (:class:`Faithfulness`) and random orders (the chance band,
:class:`PerturbationBand`), with the area under a curve. :mod:`.faithfulness` makes them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ORDER_NAMES", "Faithfulness", "PerturbationBand", "PerturbationCurve", "area_under_curve"]

ORDER_NAMES = {"most": "positive perturbation", "least": "negative perturbation"}


@dataclass(frozen=True)
class PerturbationCurve:
    """The target class's score while more and more of the input is removed.

    Attributes:
        fractions: (S,) fraction of patches (tokens) or pixels removed at each step, increasing.
        probabilities: (S,) softmax probability of ``target`` at each step (the mean over the tie orders).
        logits: (S,) logit of ``target`` at each step (the mean over the tie orders).
        predicted: (S,) top class at each step (of the first tie order).
        removed: (S,) how many patches (tokens) or pixels were removed at each step.
        auc: Trapezoidal area under ``probabilities`` over ``fractions``.
        target: Class whose probability is followed.
        removal: ``'tokens'`` or ``'pixels'``.
        order: ``'most'`` (positive perturbation) or ``'least'`` (negative perturbation).
        tie_probabilities: (K, S) probability of ``target`` for each random tie-breaking order (K = 1 when the
            map's ties change no step).
        tie_predicted: (K, S) top class for each tie-breaking order.
    """

    fractions: np.ndarray
    probabilities: np.ndarray
    logits: np.ndarray
    predicted: np.ndarray
    removed: np.ndarray
    auc: float
    target: int
    removal: str
    order: str
    tie_probabilities: np.ndarray | None = None
    tie_predicted: np.ndarray | None = None

    @property
    def tie_aucs(self) -> np.ndarray:
        """(K,) AUC of each tie-breaking order (their mean is :attr:`auc`)."""
        rows = self.probabilities[None] if self.tie_probabilities is None else self.tie_probabilities
        return np.asarray([area_under_curve(self.fractions, row) for row in rows])

    @property
    def tie_spread(self) -> float:
        """Standard deviation of :attr:`tie_aucs` (0 with one order): how much the ties alone move the AUC."""
        aucs = self.tie_aucs
        return float(aucs.std(ddof=1)) if aucs.size > 1 else 0.0

    def hit_rate(self, reference: int | None = None) -> np.ndarray:
        """(S,) share of the tie orders whose top class is still ``reference`` (default the target) at each step:
        Chefer's accuracy for one image."""
        predicted = self.predicted[None] if self.tie_predicted is None else self.tie_predicted
        return (np.asarray(predicted) == (self.target if reference is None else reference)).mean(axis=0)

    @property
    def hits(self) -> np.ndarray:
        """(S,) :meth:`hit_rate` of the target."""
        return self.hit_rate()

    @property
    def name(self) -> str:
        """Chefer's name of the order: ``'positive perturbation'`` or ``'negative perturbation'``."""
        return ORDER_NAMES[self.order]


@dataclass(frozen=True)
class Faithfulness:
    """Both perturbation curves of one map.

    Attributes:
        positive: Most relevant removed first (deletion); lower AUC is better.
        negative: Least relevant removed first; higher AUC is better.
        removal: ``'tokens'`` or ``'pixels'``.
        method: Registry key of the method whose map was tested ('' for a bare array).
    """

    positive: PerturbationCurve
    negative: PerturbationCurve
    removal: str
    method: str = ""

    @property
    def fractions(self) -> np.ndarray:
        return self.positive.fractions

    @property
    def positive_auc(self) -> float:
        return self.positive.auc

    @property
    def negative_auc(self) -> float:
        return self.negative.auc


@dataclass(frozen=True)
class PerturbationBand:
    """Curves of several random orders: the chance level a map must beat.

    Attributes:
        fractions: (S,) fractions removed.
        probabilities: (R, S) target probability per random order and step.
        aucs: (R,) AUC of each random order.
        removal: ``'tokens'`` or ``'pixels'``.
        order: The order the random maps were read in (for a random map both orders are chance).
        seeds: Seeds of the random maps (``vitviz.attribution.RandomMap``).
    """

    fractions: np.ndarray
    probabilities: np.ndarray
    aucs: np.ndarray
    removal: str
    order: str
    seeds: tuple[int, ...]

    @property
    def mean(self) -> np.ndarray:
        return self.probabilities.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        return self.probabilities.std(axis=0)

    @property
    def low(self) -> np.ndarray:
        return self.probabilities.min(axis=0)

    @property
    def high(self) -> np.ndarray:
        return self.probabilities.max(axis=0)

    @property
    def auc_mean(self) -> float:
        return float(self.aucs.mean())

    @property
    def auc_std(self) -> float:
        """Standard deviation of the random orders' AUCs (population; see :attr:`noise` for the estimate)."""
        return float(self.aucs.std())

    @property
    def noise(self) -> float:
        """Sample standard deviation (ddof = 1) of the random orders' AUCs: how much this image's AUC moves when
        the removal order changes by chance (``vitviz.evaluation.verdict`` reads curves against it)."""
        return float(self.aucs.std(ddof=1)) if self.aucs.size > 1 else float("nan")




def area_under_curve(fractions: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoidal area under ``values`` over ``fractions`` (sklearn's ``auc``, numpy's ``trapezoid``)."""
    x = np.asarray(fractions, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
