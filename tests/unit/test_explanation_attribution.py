"""The notebook API's new attribution pieces (issue 23): where an LRP map's logit went, shown beside the maps;
the one-release note for the key 'attnlrp'; the verdict; the capture's output reused by the curves."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

import vitviz
from vitviz.attribution.conservation import decompose_logit
from vitviz.evaluation import faithfulness

SAMPLE = Path(__file__).resolve().parents[2] / "vitviz" / "assets" / "samples" / "cat.jpg"


@pytest.fixture(scope="module")
def ex():
    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, img_size=64, depth=3).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():  # biases and embeddings that hold a share of the logit
            if param.ndim == 1 or name.endswith("_token") or name == "pos_embed":
                param.add_(0.05 * torch.randn_like(param))
    return vitviz.explain(model, SAMPLE)


def test_the_decomposition_is_the_libraries_and_its_map_is_the_methods_map(ex):
    for key in ("cp_lrp", "attnlrp"):
        d = ex.decomposition(key)
        reference = decompose_logit(ex.model, ex.input, ex.target_class(), method=key)
        assert d.logit == pytest.approx(reference.logit) and d.total == pytest.approx(d.logit, rel=1e-4, abs=1e-4)
        np.testing.assert_allclose(ex.relevance(key), reference.relevance.patches, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="only the LRP methods"):
        ex.decomposition("rollout")


def test_lrp_map_titles_give_their_share_and_the_conservation_figure_its_parts(ex):
    titles = [a["text"] for a in ex.fig_relevance(["rollout", "attnlrp"]).to_dict()["layout"]["annotations"]]
    d = ex.decomposition("attnlrp")
    assert titles[0] == "Attention rollout"
    assert titles[1].replace("<br>", " ") == f"AttnLRP ({d.patches / d.logit:.0%} of the logit)"
    bars = {t["name"]: t["x"] for t in ex.fig_conservation().to_dict()["data"]}
    shares = d.shares()
    assert bars["the map (input pixels)"][1] == pytest.approx(100 * shares["patches"])
    assert bars["softmax rule"][1] == pytest.approx(100 * shares["softmax"])
    assert sum(values[1] for values in bars.values()) == pytest.approx(100.0, abs=1e-3)


def test_the_key_attnlrp_says_once_that_it_named_cp_lrp_up_to_0_1(ex):
    from vitviz import explanation

    explanation._NOTED.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ex.fig_conservation(), ex.fig_relevance()  # the defaults name no key: nothing to note
        ex.relevance("cp_lrp")  # any other key: no note
    with pytest.warns(FutureWarning, match="up to vitviz 0.1 it named CP-LRP, which is now 'cp_lrp'"):
        ex.relevance("attnlrp")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ex.relevance("attnlrp")  # said once


def test_curves_reuse_the_capture_and_the_verdict_names_the_methods(ex):
    target = ex.target_class()
    relevance = ex.attribution("rollout")
    expected = faithfulness(ex.model, ex.input, relevance, target, "tokens", mean=ex.data_config["mean"],
                            std=ex.data_config["std"])
    np.testing.assert_allclose(ex.faithfulness("rollout").positive.probabilities, expected.positive.probabilities,
                               rtol=1e-6)
    sentences = ex.verdict(["attention", "rollout", "random"], sanity=False)
    assert sentences and sentences[0].startswith("On this image")
    assert any("Raw attention (last layer) and Attention rollout do not depend on the class" in s for s in sentences)
    assert not any("Random (baseline)" in s for s in sentences), "the chance level is not judged"
