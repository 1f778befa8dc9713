"""The notebook API of attribution and its evaluation: Explanation.relevance / faithfulness / sanity."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch

import vitviz
from vitviz import analysis
from vitviz.attribution import get_method
from vitviz.evaluation import faithfulness, sanity_check

SAMPLE = Path(__file__).resolve().parents[2] / "vitviz" / "assets" / "samples" / "cat.jpg"


@pytest.fixture(scope="module")
def ex():
    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, img_size=64, depth=3).eval()
    return vitviz.explain(model, SAMPLE)


def test_the_registry_lives_with_the_methods_and_its_old_name_still_answers():
    from vitviz.attribution import METHODS

    assert {"attention", "rollout", "gradient_rollout", "random"} <= set(METHODS)
    assert "METHODS" not in analysis.__all__
    with pytest.warns(DeprecationWarning, match="vitviz.attribution.METHODS"):
        assert analysis.METHODS is METHODS
    with pytest.raises(AttributeError):
        analysis.NOT_A_THING  # noqa: B018


def test_relevance_is_the_methods_map_on_the_grid(ex):
    rollout = ex.relevance("rollout")
    assert rollout.shape == ex.layout.grid_size == (4, 4)
    np.testing.assert_allclose(rollout, ex.rollout().final_map)
    direct = get_method("gradient_rollout").attribute(ex.model, ex.input, ex.predictions[0].index)
    np.testing.assert_allclose(ex.relevance("gradient_rollout"), direct.patches, rtol=1e-6)
    assert ex.relevance("rollout") is rollout, "computed once, then kept"


def test_class_specific_maps_follow_the_target(ex):
    first, second = ex.predictions[0].index, ex.predictions[1].index
    assert ex.attribution("gradient_rollout").target == first
    assert not np.allclose(ex.relevance("gradient_rollout", second), ex.relevance("gradient_rollout", first))
    assert ex.relevance("rollout", second) is ex.relevance("rollout", first), "rollout ignores the class"
    with pytest.raises(ValueError, match="out of range"):
        ex.relevance("gradient_rollout", 10_000)
    with pytest.raises(ValueError, match="unknown attribution method"):
        ex.relevance("nope")


@pytest.mark.parametrize("removal", ["tokens", "pixels"])
def test_faithfulness_is_the_metric_on_the_methods_map(ex, removal):
    result = ex.faithfulness("rollout", removal=removal)
    expected = faithfulness(ex.model, ex.input, ex.relevance("rollout"), ex.predictions[0].index, removal)
    np.testing.assert_array_equal(result.fractions, np.arange(10) / 10)
    np.testing.assert_allclose(result.positive.probabilities, expected.positive.probabilities, rtol=1e-6)
    np.testing.assert_allclose(result.negative.probabilities, expected.negative.probabilities, rtol=1e-6)
    assert result.positive_auc == pytest.approx(expected.positive_auc)
    assert result.positive.target == ex.predictions[0].index
    assert result.positive.probabilities[0] == pytest.approx(ex.predictions[0].probability, rel=1e-5)
    assert ex.faithfulness("rollout", removal=removal) is result


def test_random_band_and_sanity(ex):
    band = ex.random_baseline("tokens", seeds=(0, 1, 2))
    assert band.probabilities.shape == (3, 10) and band.seeds == (0, 1, 2)
    check = ex.sanity("attention", steps=2)
    direct = sanity_check(ex.model, ex.input, "attention", steps=2)
    np.testing.assert_allclose(check.correlations, direct.correlations)
    assert check.steps == ("head", "block 2") and not check.reads_head
    assert ex.sanity("attention", steps=2) is check


def test_a_model_without_classifier_says_so():
    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, img_size=64, depth=2, num_classes=0).eval()
    ex = vitviz.explain(model, SAMPLE)
    assert ex.relevance("attention").shape == (4, 4)
    with pytest.raises(ValueError, match="no classifier"):
        ex.faithfulness("attention")
    with pytest.raises(ValueError, match="no classifier"):
        ex.gradient_rollout()


def test_figures_show_every_method_asked_for(ex):
    keys = ["attention", "rollout", "random"]
    maps = ex.fig_relevance(keys)
    assert [t.type for t in maps.data].count("heatmap") == 3
    curves = ex.fig_faithfulness(keys)
    named = {t.name for t in curves.data}
    assert {"Raw attention (last layer)", "Attention rollout", "Random (baseline)"} <= named
    positive = next(t for t in curves.data if t.name == "Attention rollout")
    np.testing.assert_allclose(positive.y, ex.faithfulness("rollout").positive.probabilities)
    sanity = ex.fig_sanity(["attention"], steps=2)
    assert list(sanity.data[0].x) == ["original", "classifier head", "block 2"]
