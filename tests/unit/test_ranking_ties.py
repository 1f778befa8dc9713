"""Random tie-breaking in the perturbation tests (issue 23, item 3): which orders exist, what they average, and
that a raster-order bias is gone; the clean output reused; per-pixel maps pooled to patches."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vitviz.evaluation import perturbation_curves
from vitviz.evaluation.ranking import pixel_ranking, removal_order, removal_orders, straddling_ties

NORM = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


class TinyViT(nn.Module):
    """Just enough of a timm ViT for token dropping: the logit of class 0 is the mean of the kept patch tokens'
    first channel (class 1 is its negation), so the removal order decides every number."""

    num_classes, num_prefix_tokens = 2, 0

    def __init__(self, grid: int = 4, patch: int = 2) -> None:
        super().__init__()
        self.grid, self.patch = grid, patch
        self.scale = nn.Parameter(torch.ones(()))

    def patch_embed(self, x):
        p = self.patch
        return nn.functional.avg_pool2d(x[:, :1], p).flatten(2).transpose(1, 2) * self.scale  # (B, N, 1)

    def _pos_embed(self, tokens):
        return tokens

    def blocks(self, hidden):
        return hidden

    def norm(self, hidden):
        return hidden

    def forward_head(self, hidden):
        mean = hidden[..., 0].mean(-1, keepdim=True)  # (B, 1)
        return torch.cat([mean, -mean], dim=-1)

    def forward(self, x):
        return self.forward_head(self.patch_embed(x))


def test_no_tie_that_straddles_a_step_means_one_order():
    scores = np.arange(16.0).reshape(4, 4)
    counts = [0, 1, 3, 4, 6, 8, 9, 11, 12, 14]
    assert not straddling_ties(scores, "most", counts)
    assert removal_orders(scores, "most", counts).shape == (1, 16)
    tied_inside = scores.copy()
    tied_inside[0, :2] = 0.0  # 0 and 1 tie, but both are removed last: no boundary between them
    assert not straddling_ties(tied_inside, "most", counts)
    flat = np.zeros((4, 4))
    assert straddling_ties(flat, "least", counts)
    orders = removal_orders(flat, "least", counts, tie_orders=5, seed=3)
    assert orders.shape == (5, 16) and len({tuple(o) for o in orders}) == 5
    assert all(sorted(o) == list(range(16)) for o in orders)


def test_ties_are_broken_by_a_seeded_draw_and_untied_values_keep_their_order():
    scores = np.array([[5.0, 1.0, 1.0, 1.0], [1.0, 7.0, 1.0, 0.0]])
    a = removal_order(scores, "most", seed=2, tie_order=0)
    assert np.array_equal(a, removal_order(scores, "most", seed=2, tie_order=0))
    assert not all(np.array_equal(a, removal_order(scores, "most", seed=2, tie_order=k)) for k in range(1, 6))
    assert list(a[:2]) == [5, 0] and a[-1] == 7 and set(a[2:7]) == {1, 2, 3, 4, 6}
    assert list(removal_order(scores, "most")[2:7]) == [1, 2, 3, 4, 6], "seed=None: the stable sort's index order"


def test_random_ties_remove_a_tied_group_evenly_where_raster_order_takes_the_top_rows_first():
    flat = np.zeros((8, 8))
    top = np.zeros(64, dtype=bool)
    top[:32] = True
    raster = removal_order(flat, "most")[:32]
    assert top[raster].mean() == 1.0  # raster order: the first half removed is the top half
    shares = [top[removal_order(flat, "most", seed=0, tie_order=k)[:32]].mean() for k in range(200)]
    assert np.mean(shares) == pytest.approx(0.5, abs=0.03)


def _image(seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("removal", ["tokens", "pixels"])
def test_a_tied_map_is_averaged_over_its_tie_orders_and_each_order_is_scored_as_it_removes(removal):
    model, x = TinyViT(), _image()
    scores = np.array([[3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    curve = perturbation_curves(model, x, {"m": scores}, 0, removal=removal, orders=("most",), tie_orders=6,
                                seed=1, **NORM)["m", "most"]
    assert curve.tie_probabilities.shape == (6, 10)
    np.testing.assert_allclose(curve.probabilities, curve.tie_probabilities.mean(axis=0))
    assert curve.auc == pytest.approx(curve.tie_aucs.mean())
    assert curve.tie_spread > 0, "different tie orders remove different patches of this image"
    np.testing.assert_allclose(curve.hit_rate(), (curve.tie_predicted == 0).mean(axis=0))
    # each tie order equals the curve of a map without ties that ranks exactly as that order does
    ranked = pixel_ranking(scores, (8, 8)) if removal == "pixels" else scores
    for k in range(6):
        order = removal_order(ranked, "most", seed=1, tie_order=k)
        untied = np.empty(order.size)
        untied[order] = np.arange(order.size, 0, -1)  # strictly decreasing along the order
        alone = perturbation_curves(model, x, {"m": untied.reshape(ranked.shape)} if removal == "tokens" else
                                    {"m": _pixels_relevance(untied.reshape(8, 8))}, 0, removal=removal,
                                    orders=("most",), **NORM)["m", "most"]
        np.testing.assert_allclose(alone.probabilities, curve.tie_probabilities[k], rtol=1e-6)


def _pixels_relevance(pixels: np.ndarray):
    from vitviz.attribution import Relevance
    from vitviz.layout import TokenLayout

    layout = TokenLayout((), (4, 4), (2, 2), (8, 8), "avg")
    patches = pixels.reshape(4, 2, 4, 2).sum(axis=(1, 3))
    return Relevance(patches=patches, method="m", target=0, layout=layout, pixels=pixels)


@pytest.mark.parametrize("removal", ["tokens", "pixels"])
def test_the_callers_clean_output_saves_the_unperturbed_forward_and_changes_nothing(removal):
    model, x = TinyViT(), _image(1)
    scores = np.random.default_rng(0).random((4, 4))
    calls = []
    handle = model.register_forward_pre_hook(lambda _m, args: calls.append(1))
    try:
        plain = perturbation_curves(model, x, {"m": scores}, 0, removal=removal, **NORM)
        before = len(calls)
        with torch.no_grad():
            clean = model(x)
        reused = perturbation_curves(model, x, {"m": scores}, 0, removal=removal, clean=clean, **NORM)
    finally:
        handle.remove()
    for key in plain:
        np.testing.assert_allclose(reused[key].probabilities, plain[key].probabilities, rtol=1e-12)
    if removal == "pixels":  # token dropping calls the model's parts, not model.forward
        reused_calls = len(calls) - before - 1  # less the clean pass made here
        assert reused_calls == before - 1, "the unperturbed pass runs without clean=, never with it"


def test_pooled_ranks_a_per_pixel_map_by_its_patch_sums_upsampled():
    pixels = np.random.default_rng(3).random((8, 8))
    relevance = _pixels_relevance(pixels)
    np.testing.assert_array_equal(pixel_ranking(relevance, (8, 8)), pixels)
    np.testing.assert_allclose(pixel_ranking(relevance, (8, 8), pooled=True),
                               pixel_ranking(relevance.patches, (8, 8)))
