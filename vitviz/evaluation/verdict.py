"""What one image's tests say, in plain words: each curve against the random band, each order's winner, and one
verdict that combines faithfulness with the sanity check.

The numbers of one image are deterministic, so "noise" here is what moves an AUC for reasons that say nothing
about the map:

* **the random band's spread** ``σ_R``: the sample standard deviation (ddof = 1) of the AUCs of the random
  removal orders drawn beside the curves (:attr:`PerturbationBand.noise`). It is how much this image's AUC
  moves when the order changes by chance, under the same protocol;
* **the tie spread** ``σ_T``: the standard deviation of a map's AUC over its random tie-breaking orders
  (:attr:`PerturbationCurve.tie_spread`; 0 for a map whose ties change no step).

A curve is read against the random band with the noise ``√(σ_R² + σ_T²)``: it **beats a random order clearly**
when its AUC is better than the band's mean by more than twice that noise, is **worse than a random order** when
it is worse by more than twice, and lies **inside the random band** otherwise. The better side is the lower AUC
for the positive perturbation (most relevant removed first) and the higher for the negative one.

A column's **winner** (the best AUC of an order) gets a star only when it beats the random band clearly *and*
beats the runner-up by more than twice their paired noise ``√(σ_R² + σ_T(best)² + σ_T(runner-up)²)``: two maps
whose AUCs differ by less than a chance reordering moves them cannot be told apart on one image, and the page
then says "no clear winner on this image". This is deliberately strict: it guards against starring noise (the
"★ 0.826 against 0.823 with a random spread of ±0.050" of issue 23), at the price of few stars on one image.
The data-set tables (``summary.py``) use the paired standard error over images instead.

A map **passes the randomisation test** when it is not flagged by :func:`vitviz.evaluation.sanity_check` (its
rank correlation with the original falls to at most 0.9 once the head and the top block are re-initialised).
The chance level itself (the ``random`` method) is left out of the verdict.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vitviz.i18n import _, ngettext

if TYPE_CHECKING:
    from .faithfulness import Faithfulness, PerturbationBand
    from .sanity import SanityCheck

__all__ = ["BASELINES", "NOISE_FACTOR", "CurveReading", "MethodVerdict", "OrderWinner", "join_names",
           "read_curves", "verdict", "verdict_sentences", "winners"]

NOISE_FACTOR = 2.0
"""A difference is clear when it exceeds this many times its noise."""
BASELINES = ("random",)
"""Methods that are chance levels: read against the band like any map, but left out of the verdict."""
STANDINGS = ("better", "inside", "worse")


@dataclass(frozen=True)
class CurveReading:
    """One method's curve of one order, read against the random band.

    Attributes:
        method: Registry key of the method.
        order: ``'most'`` (positive perturbation, lower AUC is better) or ``'least'`` (negative, higher is better).
        auc: The curve's AUC.
        random_mean: Mean AUC of the random orders.
        noise: ``√(σ_R² + σ_T²)`` (see the module docstring).
        tie_spread: ``σ_T`` of this curve.
        margin: How much better than the random mean, in the order's direction (negative: worse).
    """

    method: str
    order: str
    auc: float
    random_mean: float
    noise: float
    tie_spread: float
    margin: float

    @property
    def standing(self) -> str:
        """``'better'`` (beats a random order clearly), ``'inside'`` (inside the random band) or ``'worse'``."""
        if not math.isfinite(self.noise):
            return "inside"
        if self.margin > NOISE_FACTOR * self.noise:
            return "better"
        return "worse" if self.margin < -NOISE_FACTOR * self.noise else "inside"


@dataclass(frozen=True)
class OrderWinner:
    """The best curve of one order and whether it wins clearly.

    Attributes:
        order: ``'most'`` or ``'least'``.
        best: Method with the best AUC.
        runner_up: Method with the second best (None with one method).
        margin: The best's advantage over the runner-up (≥ 0).
        noise: Their paired noise ``√(σ_R² + σ_T(best)² + σ_T(runner-up)²)``.
        beats_random: Whether the best beats the random band clearly.
    """

    order: str
    best: str
    runner_up: str | None
    margin: float
    noise: float
    beats_random: bool

    @property
    def clear(self) -> bool:
        """A star: the best beats the random band and the runner-up by more than their noise."""
        if not self.beats_random:
            return False
        return self.runner_up is None or (math.isfinite(self.noise) and self.margin > NOISE_FACTOR * self.noise)


@dataclass(frozen=True)
class MethodVerdict:
    """What one image says about one method.

    Attributes:
        method: Registry key.
        faithfulness: ``'clear'`` (beats a random order clearly in both orders), ``'partial'`` (in one, and worse
            in none), ``'chance'`` (inside the random band in both), ``'worse'`` (worse than random in at least
            one), or None without curves.
        sanity: ``'passes'``, ``'fails'`` (flagged), or None when the randomisation test was not run.
        class_specific: Whether the map depends on the class explained.
    """

    method: str
    faithfulness: str | None
    sanity: str | None
    class_specific: bool

    @property
    def trusted(self) -> bool:
        """Beats a random order clearly in both orders and passes the randomisation test (when it was run)."""
        return self.faithfulness == "clear" and self.sanity != "fails"


def read_curves(results: Mapping[str, Faithfulness], bands: Mapping[str, PerturbationBand]
                ) -> dict[tuple[str, str], CurveReading]:
    """Every method's curves read against the random band of their order (``bands``: ``'most'`` / ``'least'``)."""
    readings = {}
    for method, result in results.items():
        for order, curve in (("most", result.positive), ("least", result.negative)):
            band = bands.get(order)
            if band is None:
                continue
            sign = -1.0 if order == "most" else 1.0
            noise = math.hypot(band.noise, curve.tie_spread) if math.isfinite(band.noise) else float("nan")
            readings[method, order] = CurveReading(
                method=method, order=order, auc=float(curve.auc), random_mean=band.auc_mean, noise=noise,
                tie_spread=curve.tie_spread, margin=sign * (float(curve.auc) - band.auc_mean))
    return readings


def winners(readings: Mapping[tuple[str, str], CurveReading], band_noise: Mapping[str, float],
            baselines: Sequence[str] = BASELINES) -> dict[str, OrderWinner]:
    """Each order's best method among the readings (chance levels left out) and whether it wins clearly.

    Args:
        readings: From :func:`read_curves`.
        band_noise: Order -> ``σ_R`` of its random band.
        baselines: Methods that never win.
    """
    found = {}
    for order in ("most", "least"):
        ranked = sorted((r for (m, o), r in readings.items() if o == order and m not in baselines),
                        key=lambda r: r.margin, reverse=True)
        if not ranked:
            continue
        best, second = ranked[0], (ranked[1] if len(ranked) > 1 else None)
        noise = math.sqrt(band_noise.get(order, float("nan")) ** 2 + best.tie_spread ** 2
                          + (second.tie_spread ** 2 if second else 0.0))
        found[order] = OrderWinner(order=order, best=best.method, runner_up=second.method if second else None,
                                   margin=best.margin - second.margin if second else 0.0, noise=noise,
                                   beats_random=best.standing == "better")
    return found


def _faithfulness(standings: Sequence[str]) -> str | None:
    if not standings:
        return None
    if "worse" in standings:
        return "worse"
    better = standings.count("better")
    if better == len(standings) == 2:
        return "clear"
    return "partial" if better else "chance"


def verdict(readings: Mapping[tuple[str, str], CurveReading], checks: Mapping[str, SanityCheck] | None,
            class_specific: Mapping[str, bool], baselines: Sequence[str] = BASELINES) -> dict[str, MethodVerdict]:
    """One :class:`MethodVerdict` per method of ``class_specific`` (chance levels left out), in its order."""
    out = {}
    for method, specific in class_specific.items():
        if method in baselines:
            continue
        standings = [r.standing for (m, _o), r in readings.items() if m == method]
        check = (checks or {}).get(method)
        sanity = None if check is None else ("fails" if check.flagged else "passes")
        out[method] = MethodVerdict(method=method, faithfulness=_faithfulness(standings), sanity=sanity,
                                    class_specific=bool(specific))
    return out


def join_names(names: Sequence[str]) -> str:
    """``'A'``, ``'A and B'``, ``'A, B and C'`` in the current language."""
    names = list(names)
    if len(names) < 2:
        return "".join(names)
    return _("{names} and {last}").format(names=_(", ").join(names[:-1]), last=names[-1])


def verdict_sentences(verdicts: Mapping[str, MethodVerdict], titles: Mapping[str, str], *,
                      sanity_run: bool = True) -> list[str]:
    """The verdict as sentences in the current language: which maps to trust on this image, then the rest."""
    def where(test) -> list[str]:
        return [k for k, v in verdicts.items() if test(v)]

    def say(template: str, keys: Sequence[str]) -> str:
        return template.format(methods=join_names([titles.get(k, k) for k in keys]))

    sentences = []
    trusted = where(lambda v: v.trusted)
    if trusted and sanity_run:
        sentences.append(say(ngettext(
            "On this image, {methods} beats a random order clearly in both tests and passes the randomisation test.",
            "On this image, {methods} beat a random order clearly in both tests and pass the randomisation test.",
            len(trusted)), trusted))
    elif trusted:
        sentences.append(say(ngettext(
            "On this image, {methods} beats a random order clearly in both tests (the randomisation test was not "
            "run).",
            "On this image, {methods} beat a random order clearly in both tests (the randomisation test was not "
            "run).", len(trusted)), trusted))
    elif any(v.faithfulness is not None for v in verdicts.values()):
        sentences.append(_("On this image, no map beats a random order clearly in both tests while passing the "
                           "randomisation test."))
    if keys := where(lambda v: v.faithfulness == "partial"):
        sentences.append(say(ngettext(
            "{methods} beats a random order clearly in only one of the two tests.",
            "{methods} beat a random order clearly in only one of the two tests.", len(keys)), keys))
    if keys := where(lambda v: v.faithfulness == "chance"):
        sentences.append(say(ngettext(
            "{methods} does no better than a random order: its curves lie inside the random band.",
            "{methods} do no better than a random order: their curves lie inside the random band.", len(keys)), keys))
    if keys := where(lambda v: v.faithfulness == "worse"):
        sentences.append(say(ngettext(
            "{methods} does worse than a random order in at least one test: the patches it ranks first matter less "
            "to the model than patches picked at random.",
            "{methods} do worse than a random order in at least one test: the patches they rank first matter less "
            "to the model than patches picked at random.", len(keys)), keys))
    if keys := where(lambda v: v.sanity == "fails"):
        sentences.append(say(ngettext(
            "{methods} fails the randomisation test: its map barely changes when the model is randomised, so it "
            "cannot show what the model learned.",
            "{methods} fail the randomisation test: their maps barely change when the model is randomised, so they "
            "cannot show what the model learned.", len(keys)), keys))
    if keys := where(lambda v: not v.class_specific):
        sentences.append(say(ngettext(
            "{methods} does not depend on the class: it shows the same map whatever class is explained.",
            "{methods} do not depend on the class: they show the same map whatever class is explained.",
            len(keys)), keys))
    return sentences
