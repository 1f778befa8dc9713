"""Per-image faithfulness: token dropping, Chefer's pixel protocol, AUCs and the random band.

Constructed models whose answer is known stand in for a ViT: they have the submodules token dropping reads
(``patch_embed``, ``_pos_embed``, ``blocks``, ``norm``, ``forward_head``) and a forward pass made of them.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vitviz.evaluation import (
    area_under_curve,
    faithfulness,
    forward_kept_tokens,
    perturbation_curve,
    perturbation_curves,
    pixel_ranking,
    random_baseline,
    removal_order,
    removed_count,
)

GRID = (4, 4)
PATCH = 4


class PatchSumModel(nn.Module):
    """Logit 0 = Σ over the kept patches of ``weight[patch] × mean intensity of the patch`` (in [0, 1]
    pixel space); logit 1 = ``bias``. A class token (zero) leads the sequence and is ignored by the head.

    The true relevance of patch i for class 0 is ``weight[i] × intensity[i]``: removing a patch (dropping
    its token, or zeroing its pixels) lowers logit 0 by exactly that much.
    """

    num_prefix_tokens = 1
    num_classes = 2

    def __init__(self, weight: np.ndarray, bias: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", torch.as_tensor(weight, dtype=torch.float32).reshape(-1))
        self.bias = float(bias)
        self.blocks = nn.Identity()
        self.norm = nn.Identity()

    def patch_embed(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x * 0.5 + 0.5  # undo mean 0.5 / std 0.5
        means = nn.functional.avg_pool2d(pixels.mean(1, keepdim=True), PATCH)  # (B, 1, gh, gw)
        return means.flatten(2).transpose(1, 2)  # (B, N, 1)

    def _pos_embed(self, tokens: torch.Tensor) -> torch.Tensor:
        index = torch.arange(tokens.shape[1], dtype=tokens.dtype)[None, :, None].expand_as(tokens)
        cls = torch.zeros_like(tokens[:, :1]).expand(-1, -1, 2)
        return torch.cat([cls, torch.cat([tokens, index], dim=-1)], dim=1)  # (B, 1 + N, 2): value, patch index

    def forward_head(self, hidden: torch.Tensor) -> torch.Tensor:
        patches = hidden[:, 1:]  # (B, K, 2)
        weights = self.weight[patches[..., 1].long()]  # (B, K)
        logit = (weights * patches[..., 0]).sum(1)
        return torch.stack([logit, torch.full_like(logit, self.bias)], dim=1)  # (B, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.norm(self.blocks(self._pos_embed(self.patch_embed(x)))))


class PresenceModel(PatchSumModel):
    """Logit j = 10 while patch j's token is fed to the model, else 0: shows which tokens were kept."""

    num_classes = GRID[0] * GRID[1]

    def __init__(self) -> None:
        super().__init__(np.ones(self.num_classes))

    def forward_head(self, hidden: torch.Tensor) -> torch.Tensor:
        index = hidden[:, 1:, 1].long()  # (B, K)
        out = torch.zeros(hidden.shape[0], self.num_classes)
        return out.scatter(1, index, 10.0)


def _image(seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """A normalised input (mean = std = 0.5) and its per-patch mean intensities in [0, 1]."""
    rng = np.random.default_rng(seed)
    pixels = torch.as_tensor(rng.random((1, 3, GRID[0] * PATCH, GRID[1] * PATCH)), dtype=torch.float32)
    intensity = nn.functional.avg_pool2d(pixels.mean(1, keepdim=True), PATCH)[0, 0].numpy()
    return (pixels - 0.5) / 0.5, intensity


def _sum_model(seed: int = 1) -> tuple[PatchSumModel, np.ndarray]:
    weight = np.random.default_rng(seed).random(GRID) * 4  # all positive: every patch supports class 0
    return PatchSumModel(weight, bias=weight.sum() / 4).eval(), weight


NORM = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


# ------------------------------------------------------------------------------------- small pieces


def test_auc_is_the_trapezoid_by_hand():
    # (0.1 · (1 + 0.5) / 2) + (0.1 · (0.5 + 0.25) / 2) + (0.2 · (0.25 + 0) / 2) = 0.075 + 0.0375 + 0.025
    assert area_under_curve([0.0, 0.1, 0.2, 0.4], [1.0, 0.5, 0.25, 0.0]) == pytest.approx(0.1375)
    assert area_under_curve(np.arange(10) / 10, np.ones(10)) == pytest.approx(0.9)


def test_removed_count_floors_without_float_noise():
    assert [removed_count(f, 10) for f in (0.0, 0.1, 0.3, 0.7, 0.9)] == [0, 1, 3, 7, 9]
    assert removed_count(0.1, 224 * 224) == int(224 * 224 * 0.1)  # Chefer's int(base_size * step)
    assert removed_count(0.5, 196) == 98 and removed_count(0.9, 196) == 176


def test_removal_order_most_and_least():
    scores = np.array([[0.2, 0.9], [0.5, 0.1]])
    assert removal_order(scores, "most").tolist() == [1, 2, 0, 3]
    assert removal_order(scores, "least").tolist() == [3, 0, 2, 1]
    with pytest.raises(ValueError, match="order"):
        removal_order(scores, "top")


def test_pixel_ranking_is_bilinear_upsampling_like_chefer():
    scores = np.arange(16, dtype=float).reshape(4, 4)
    up = pixel_ranking(scores, (16, 16))
    reference = nn.functional.interpolate(torch.as_tensor(scores)[None, None], scale_factor=4, mode="bilinear")
    np.testing.assert_allclose(up, reference[0, 0].numpy())


# ---------------------------------------------------------------------------------- token dropping


@pytest.mark.parametrize(
    "name, kwargs",
    [("test_vit", {}), ("test_vit2", {"num_classes": 10}), ("test_vit3", {"num_classes": 10}),
     ("deit_tiny_distilled_patch16_224", {"img_size": 64, "depth": 2})],
    ids=["cls", "registers-avg-pool", "attention-pool", "cls+dist"],
)
def test_dropping_nothing_is_the_normal_forward(name, kwargs):
    import timm

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    x = torch.randn(2, 3, *model.patch_embed.img_size)[:1]
    with torch.no_grad():
        expected = model(x)
        kept = forward_kept_tokens(model, x, torch.arange(model.patch_embed.num_patches)[None].repeat(3, 1))
    torch.testing.assert_close(kept, expected.expand(3, -1), rtol=1e-5, atol=1e-5)


def test_avg_pool_averages_the_kept_tokens_only():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_vit2", pretrained=False, num_classes=10).eval()
    x = torch.randn(1, 3, *model.patch_embed.img_size)
    keep = torch.tensor([[3, 17, 42, 90]])
    captured = {}
    model.fc_norm.register_forward_hook(lambda m, args, out: captured.setdefault("pooled", args[0]))
    with torch.no_grad():
        forward_kept_tokens(model, x, keep)
        hidden = model.norm(model.blocks(torch.cat([
            model.norm_pre(model._pos_embed(model.patch_embed(x)))[:, :1],
            model.norm_pre(model._pos_embed(model.patch_embed(x)))[:, 1:][:, keep[0]],
        ], dim=1)))
    torch.testing.assert_close(captured["pooled"], hidden[:, 1:].mean(1))


def test_dropping_a_known_patch_set_lowers_the_logit_by_its_share():
    model, weight = _sum_model()
    x, intensity = _image()
    keep = torch.tensor([[0, 5, 6, 15], [1, 2, 3, 4]])
    with torch.no_grad():
        out = forward_kept_tokens(model, x, keep)
    expected = [(weight * intensity).reshape(-1)[k].sum() for k in keep.numpy()]
    np.testing.assert_allclose(out[:, 0].numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("order", ["most", "least"])
def test_the_kept_tokens_follow_the_relevance_order(order):
    model = PresenceModel().eval()
    x, _ = _image()
    scores = np.random.default_rng(3).random(GRID)
    fractions = np.arange(10) / 10
    ranking = removal_order(scores, order)
    counts = [removed_count(f, 16) for f in fractions]
    for patch in (int(ranking[0]), int(ranking[5]), int(ranking[-1])):
        curve = perturbation_curve(model, x, scores, patch, removal="tokens", order=order, fractions=fractions)
        rank = int(np.flatnonzero(ranking == patch)[0])
        present = [rank >= c for c in counts]  # removed once rank < count
        np.testing.assert_array_equal(curve.logits, np.where(present, 10.0, 0.0))
        np.testing.assert_array_equal(curve.removed, counts)


# ------------------------------------------------------------------------------------- the curves


@pytest.mark.parametrize("removal", ["tokens", "pixels"])
def test_true_relevance_beats_random_beats_reversed(removal):
    model, weight = _sum_model()
    x, intensity = _image()
    truth = weight * intensity
    kwargs = dict(removal=removal, **NORM)
    perfect = perturbation_curve(model, x, truth, 0, order="most", **kwargs)
    reversed_ = perturbation_curve(model, x, -truth, 0, order="most", **kwargs)
    band = random_baseline(model, x, 0, order="most", seeds=range(8), grid_size=GRID, **kwargs)
    # deletion in true-relevance order drops fastest: the logit falls by the largest shares first
    assert np.all(np.diff(perfect.logits) <= 1e-6), "removing relevance can only lower this model's logit"
    assert np.all(perfect.probabilities <= reversed_.probabilities + 1e-9)
    assert perfect.auc < band.aucs.min() and band.aucs.max() < reversed_.auc
    if removal == "tokens":  # exact: the logit is the sum of the kept shares
        assert np.all(perfect.probabilities <= band.low + 1e-9)
        assert np.all(band.high <= reversed_.probabilities + 1e-9)
        order = removal_order(truth, "most")
        kept_share = [truth.reshape(-1)[order[c:]].sum() for c in perfect.removed]
        np.testing.assert_allclose(perfect.logits, kept_share, rtol=1e-5)
        probability = 1 / (1 + np.exp(-(np.asarray(kept_share) - model.bias)))
        np.testing.assert_allclose(perfect.probabilities, probability, rtol=1e-5)
        assert perfect.auc == pytest.approx(area_under_curve(perfect.fractions, probability), rel=1e-6)


def test_faithfulness_has_both_orders_and_chefers_names():
    model, weight = _sum_model()
    x, intensity = _image()
    result = faithfulness(model, x, weight * intensity, 0, "tokens")
    assert result.positive.order == "most" and result.positive.name == "positive perturbation"
    assert result.negative.order == "least" and result.negative.name == "negative perturbation"
    assert result.positive_auc < result.negative_auc, "a faithful map: low positive, high negative AUC"
    np.testing.assert_array_equal(result.fractions, np.arange(10) / 10)
    assert result.positive.probabilities[0] == result.negative.probabilities[0], "0 % removed: the same input"


def test_pixel_protocol_matches_chefers_code():
    """An independent re-computation in the style of pertubation_eval_from_hdf5.py: upsample, min-max,
    top pixels, scatter 0 in [0, 1] space, normalise, run. The bilinear map has ties near the border: here
    they are broken by index (``seed=None``), as the stable sort of this reference does."""
    model, _ = _sum_model()
    x, _ = _image()
    scores = np.random.default_rng(5).random(GRID)
    curves = perturbation_curves(model, x, {"m": scores}, 0, removal="pixels", seed=None, **NORM)
    data = x * 0.5 + 0.5  # [0, 1]
    vis = nn.functional.interpolate(torch.as_tensor(scores, dtype=torch.float32)[None, None],
                                    scale_factor=PATCH, mode="bilinear")
    vis = (vis - vis.min()) / (vis.max() - vis.min())
    base_size = data.shape[-1] * data.shape[-2]
    for order, sign in (("most", 1), ("least", -1)):
        expected = []
        for step in [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]:
            # torch.topk as in their code, but stable: topk leaves the order of tied pixels unspecified
            idx = torch.sort((sign * vis).reshape(1, -1), dim=-1, descending=True, stable=True)[1]
            idx = idx[:, :int(base_size * step)]
            perturbed = data.clone().reshape(1, 3, -1)
            perturbed.scatter_(-1, idx[:, None].repeat(1, 3, 1), 0)
            with torch.no_grad():
                out = model((perturbed.reshape(data.shape) - 0.5) / 0.5)
            expected.append(torch.softmax(out.double(), 1)[0, 0].item())
        np.testing.assert_allclose(curves["m", order].probabilities, expected, rtol=1e-5)


def test_pixel_removal_reads_mean_and_std_from_the_model():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False).eval()
    x = torch.randn(1, 3, *model.patch_embed.img_size)
    scores = np.random.default_rng(0).random(model.patch_embed.grid_size)
    seen = []
    model.patch_embed.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    perturbation_curve(model, x, scores, removal="pixels", fractions=[0.0, 0.5])
    perturbed = seen[-1][0]  # (3, H, W)
    mean = torch.tensor(model.pretrained_cfg["mean"]).reshape(3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).reshape(3, 1, 1)
    zeroed = (perturbed * std + mean).abs().amax(0) < 1e-5  # pixels at 0 in [0, 1] space
    assert zeroed.sum() == removed_count(0.5, x.shape[-1] * x.shape[-2])


def test_curves_batch_on_a_real_vit_and_the_default_target_is_the_top_class():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_vit2", pretrained=False, num_classes=10).eval()
    x = torch.randn(1, 3, *model.patch_embed.img_size)
    scores = np.random.default_rng(0).random(model.patch_embed.grid_size)
    result = faithfulness(model, x, scores, removal="tokens")
    with torch.no_grad():
        top = int(model(x).argmax())
        keep = torch.as_tensor(np.sort(removal_order(scores, "most")[removed_count(0.4, 100):]))[None]
        expected = torch.softmax(forward_kept_tokens(model, x, keep).double(), -1)[0, top].item()
    assert result.positive.target == top
    assert result.positive.probabilities[4] == pytest.approx(expected, rel=1e-5)


def test_bad_arguments_say_what_is_wrong():
    model, weight = _sum_model()
    x, _ = _image()
    with pytest.raises(ValueError, match="removal"):
        perturbation_curve(model, x, weight, 0, removal="blur")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        perturbation_curve(model, x, weight, 0, fractions=[0.0, 1.0])
    with pytest.raises(ValueError, match="grid_h, grid_w"):
        perturbation_curve(model, x, weight.reshape(-1), 0)
    headless = PatchSumModel(weight)
    headless.num_classes = 0
    with pytest.raises(ValueError, match="classifier"):
        perturbation_curve(headless, x, weight, 0)
    not_a_vit = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2)).eval()
    not_a_vit.num_classes = 2
    with pytest.raises(ValueError, match="VisionTransformer"):
        perturbation_curve(not_a_vit, x, weight, 0)
