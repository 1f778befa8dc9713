"""Cascading model randomisation (Adebayo et al. 2018): Spearman by hand, the copy, the steps, the flag."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vitviz.evaluation.sanity import FLAG_THRESHOLD, head_modules, randomise_, sanity_check, spearman


@pytest.fixture(scope="module")
def vit():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, img_size=64, depth=3).eval()
    x = torch.randn(1, 3, 64, 64)
    return model, x


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], np.exp([1, 2, 3, 4])) == pytest.approx(1.0), "ranks: monotone maps agree"
    # ties get average ranks: x ranks (1, 2.5, 2.5, 4), y ranks (1, 2, 3, 4); Pearson of the ranks by hand
    rx, ry = np.array([1, 2.5, 2.5, 4]) - 2.5, np.array([1, 2, 3, 4]) - 2.5
    assert spearman([0, 5, 5, 9], [1, 2, 3, 4]) == pytest.approx((rx @ ry) / np.sqrt((rx @ rx) * (ry @ ry)))
    assert np.isnan(spearman(np.ones((2, 2)), np.arange(4).reshape(2, 2)))


def test_randomise_follows_timms_init():
    layer = torch.nn.Sequential(torch.nn.Linear(400, 300), torch.nn.LayerNorm(300))
    with torch.no_grad():
        layer[1].weight.fill_(3.0)
    randomise_(layer, torch.Generator().manual_seed(0))
    assert float(layer[0].weight.detach().std()) == pytest.approx(0.02, rel=0.02)
    assert float(layer[0].bias.detach().abs().max()) == 0.0
    assert torch.equal(layer[1].weight, torch.ones(300)) and torch.equal(layer[1].bias, torch.zeros(300))


def test_the_model_passed_in_is_never_changed(vit):
    model, x = vit
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sanity_check(model, x, "attention", steps=2)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_raw_attention_ignores_the_head_and_follows_the_top_block(vit):
    model, x = vit
    result = sanity_check(model, x, "attention", steps=2)
    assert result.steps == ("head", "block 2")
    assert result.correlations[0] == pytest.approx(1.0), "attention never reads the head"
    assert not result.reads_head and "never reads the classifier head" in result.note
    assert result.correlations[1] < FLAG_THRESHOLD and not result.flagged
    np.testing.assert_allclose(result.maps[0], result.maps[1])  # the head step left the map as it was
    assert result.maps.shape == (3, 4, 4)


def test_a_map_that_ignores_the_model_is_flagged(vit):
    model, x = vit
    result = sanity_check(model, x, "random")
    assert result.steps == ("head", "block 2", "block 1", "block 0", "final norm", "embeddings")
    np.testing.assert_allclose(result.correlations, 1.0)
    assert result.flagged and "Flagged" in result.note


def test_a_class_specific_map_changes_with_the_head(vit):
    model, x = vit
    result = sanity_check(model, x, "gradient_rollout", steps=1, seed=3)
    top = int(model(x).argmax())
    assert result.target == top and result.reads_head
    assert result.correlations[0] < FLAG_THRESHOLD, "gradient rollout reads the head's gradient"
    again = sanity_check(model, x, "gradient_rollout", steps=1, seed=3)
    np.testing.assert_array_equal(again.maps, result.maps)  # seeded: the same check twice agrees


def test_head_modules_cover_distilled_and_pooled_heads():
    import timm

    deit = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, img_size=32, depth=1)
    assert {id(m) for m in head_modules(deit)} == {id(deit.head), id(deit.head_dist)}
    pooled = timm.create_model("test_vit3", pretrained=False, num_classes=10)
    assert id(pooled.attn_pool) in {id(m) for m in head_modules(pooled)}
