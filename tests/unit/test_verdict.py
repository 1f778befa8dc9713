"""One image's verdict (issue 23, item 5): curves read against the random band with its noise, stars only for
clear winners, and the plain-language sentences, on hand-made curves whose numbers are worked out here."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vitviz.evaluation.faithfulness import Faithfulness, PerturbationBand, PerturbationCurve
from vitviz.evaluation.verdict import join_names, read_curves, verdict, verdict_sentences, winners
from vitviz.i18n import language

FRACTIONS = np.arange(10) / 10


def _curve(auc: float, order: str, ties: tuple[float, ...] = ()) -> PerturbationCurve:
    """A flat curve with the given AUC (probability auc / 0.9 at every step); ``ties``: its tie orders' AUCs."""
    rows = np.array([[a / 0.9] * 10 for a in (ties or (auc,))])
    return PerturbationCurve(fractions=FRACTIONS, probabilities=rows.mean(0), logits=rows.mean(0),
                             predicted=np.zeros(10, int), removed=np.arange(10), auc=float(rows.mean(0)[0] * 0.9),
                             target=0, removal="tokens", order=order, tie_probabilities=rows,
                             tie_predicted=np.zeros((len(rows), 10), int))


def _band(aucs: tuple[float, ...], order: str) -> PerturbationBand:
    probs = np.array([[a / 0.9] * 10 for a in aucs])
    return PerturbationBand(fractions=FRACTIONS, probabilities=probs, aucs=np.array(aucs), removal="tokens",
                            order=order, seeds=tuple(range(len(aucs))))


BANDS = {"most": _band((0.40, 0.45, 0.50, 0.55, 0.60), "most"), "least": _band((0.40, 0.45, 0.50, 0.55, 0.60), "least")}
SIGMA_R = float(np.std([0.40, 0.45, 0.50, 0.55, 0.60], ddof=1))  # 0.0791


def _result(positive, negative):
    return Faithfulness(positive=positive, negative=negative, removal="tokens")


def test_a_curve_beats_random_only_beyond_twice_the_noise():
    results = {"good": _result(_curve(0.30, "most"), _curve(0.70, "least")),  # margins 0.20 = 2.53 σ
               "near": _result(_curve(0.36, "most"), _curve(0.55, "least")),  # 0.14 = 1.77 σ, 0.05
               "bad": _result(_curve(0.70, "most"), _curve(0.20, "least"))}
    readings = read_curves(results, BANDS)
    assert readings["good", "most"].noise == pytest.approx(SIGMA_R)
    assert readings["good", "most"].margin == pytest.approx(0.20)
    assert [readings[m, "most"].standing for m in results] == ["better", "inside", "worse"]
    assert [readings[m, "least"].standing for m in results] == ["better", "inside", "worse"]
    tied = read_curves({"tied": _result(_curve(0.30, "most", ties=(0.20, 0.40)), _curve(0.7, "least"))}, BANDS)
    spread = float(np.std([0.20, 0.40], ddof=1))
    assert tied["tied", "most"].noise == pytest.approx(math.hypot(SIGMA_R, spread))
    assert tied["tied", "most"].standing == "inside", "ties that move the AUC widen the noise"


def test_a_star_needs_a_clear_margin_over_the_runner_up_and_the_band():
    results = {"a": _result(_curve(0.10, "most"), _curve(0.70, "least")),
               "b": _result(_curve(0.30, "most"), _curve(0.69, "least")),
               "random": _result(_curve(0.01, "most"), _curve(0.99, "least"))}  # a chance level never wins
    readings = read_curves(results, BANDS)
    won = winners(readings, {o: b.noise for o, b in BANDS.items()})
    assert won["most"].best == "a" and won["most"].runner_up == "b"
    assert won["most"].margin == pytest.approx(0.20) and won["most"].noise == pytest.approx(SIGMA_R)
    assert won["most"].clear  # 0.20 > 2 · 0.079 and a beats the band
    assert won["least"].best == "a" and not won["least"].clear, "0.01 ahead of b is noise"
    alone = winners(read_curves({"c": _result(_curve(0.45, "most"), _curve(0.5, "least"))}, BANDS),
                    {o: b.noise for o, b in BANDS.items()})
    assert alone["most"].runner_up is None and not alone["most"].clear, "inside the band: no star"


class _Check:
    def __init__(self, flagged: bool) -> None:
        self.flagged = flagged


def test_the_verdict_combines_both_tests_and_leaves_the_chance_level_out():
    results = {"attnlrp": _result(_curve(0.20, "most"), _curve(0.80, "least")),
               "chefer2021": _result(_curve(0.25, "most"), _curve(0.75, "least")),
               "attention": _result(_curve(0.45, "most"), _curve(0.52, "least")),
               "gradcam": _result(_curve(0.75, "most"), _curve(0.50, "least")),
               "random": _result(_curve(0.50, "most"), _curve(0.50, "least"))}
    readings = read_curves(results, BANDS)
    checks = {k: _Check(k == "random") for k in results}
    specific = {"attnlrp": True, "chefer2021": True, "attention": False, "gradcam": True, "random": False}
    verdicts = verdict(readings, checks, specific)
    assert "random" not in verdicts
    assert {k: v.faithfulness for k, v in verdicts.items()} == {
        "attnlrp": "clear", "chefer2021": "clear", "attention": "chance", "gradcam": "worse"}
    assert [k for k, v in verdicts.items() if v.trusted] == ["attnlrp", "chefer2021"]
    titles = {"attnlrp": "AttnLRP", "chefer2021": "Chefer et al.", "attention": "raw attention",
              "gradcam": "Grad-CAM"}
    text = " ".join(verdict_sentences(verdicts, titles))
    assert text.startswith("On this image, AttnLRP and Chefer et al. beat a random order clearly in both tests and "
                           "pass the randomisation test.")
    assert "raw attention does no better than a random order" in text
    assert "Grad-CAM does worse than a random order" in text
    assert "raw attention does not depend on the class" in text
    checks["chefer2021"] = _Check(True)
    verdicts = verdict(readings, checks, specific)
    text = " ".join(verdict_sentences(verdicts, titles))
    assert "On this image, AttnLRP beats" in text and "Chefer et al. fails the randomisation test" in text
    with language("zh"):
        zh = verdict_sentences(verdicts, titles)
    assert zh and all("random order" not in s for s in zh)


def test_without_the_sanity_check_and_without_a_clear_map_the_sentences_say_so():
    results = {"a": _result(_curve(0.45, "most"), _curve(0.5, "least"))}
    verdicts = verdict(read_curves(results, BANDS), None, {"a": True})
    assert verdicts["a"].sanity is None
    assert verdict_sentences(verdicts, {"a": "A"})[0].startswith("On this image, no map beats a random order clearly")
    good = verdict(read_curves({"a": _result(_curve(0.1, "most"), _curve(0.9, "least"))}, BANDS), None, {"a": True})
    assert "randomisation test was not run" in verdict_sentences(good, {"a": "A"}, sanity_run=False)[0]


def test_names_are_joined_as_a_sentence_lists_them():
    assert join_names(["A"]) == "A" and join_names(["A", "B"]) == "A and B"
    assert join_names(["A", "B", "C"]) == "A, B and C"
