"""The sanity check reaches a fully re-initialised model and reports what Adebayo et al. report (issue 23, item 4):
signed and absolute Spearman and SSIM, each against an independent computation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vitviz.evaluation.sanity import cascade, randomise_, randomise_parameters_, sanity_check, spearman, ssim


def _naive_ssim(a: np.ndarray, b: np.ndarray, size: int, sigma: float = 1.5) -> float:
    """Wang et al. 2004 written out window by window, with the maps min-max scaled to 0..1."""
    def unit(v):
        return (v - v.min()) / (v.max() - v.min())

    x, y = unit(np.asarray(a, float)), unit(np.asarray(b, float))
    offsets = np.arange(size) - (size - 1) / 2
    w = np.exp(-offsets[:, None] ** 2 / (2 * sigma ** 2) - offsets[None, :] ** 2 / (2 * sigma ** 2))
    w /= w.sum()
    c1, c2, values = 0.01 ** 2, 0.03 ** 2, []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            px, py = x[i:i + size, j:j + size], y[i:i + size, j:j + size]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_equals_the_window_by_window_formula_and_is_one_for_the_same_map():
    rng = np.random.default_rng(0)
    a, b = rng.random((14, 14)), rng.random((14, 14))
    assert ssim(a, b) == pytest.approx(_naive_ssim(a, b, 7), rel=1e-10)
    assert ssim(a, 3 * a + 2) == pytest.approx(1.0), "scaled to 0..1 first: an affine copy is the same map"
    assert ssim(a, b) == pytest.approx(ssim(b, a))
    small_a, small_b = rng.random((4, 6)), rng.random((4, 6))  # the window shrinks to 3, the largest odd size
    assert ssim(small_a, small_b) == pytest.approx(_naive_ssim(small_a, small_b, 3), rel=1e-10)
    assert ssim(a, 1 - a) < 0, "an inverted map is dissimilar"


def test_absolute_spearman_sees_a_sign_flip_as_the_same_map():
    a = np.array([[-3.0, 1.0], [2.0, -0.5]])
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(np.abs(a), np.abs(-a)) == pytest.approx(1.0)


@pytest.mark.parametrize("layout", [dict(), dict(reg_tokens=4, class_token=False, global_pool="avg")])
def test_the_cascade_ends_with_every_parameter_re_initialised(layout):
    import timm

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=3, num_classes=4,
                              **layout)
    stages = cascade(model)
    names = [name for name, *_ in stages]
    # average pooling normalises in fc_norm, part of the head step; its `norm` is an Identity
    norm = [] if layout else ["final norm"]
    assert names == ["head", "block 2", "block 1", "block 0", *norm, "embeddings"]
    covered = {id(p) for _, modules, params in stages for m in modules for p in m.parameters()}
    covered |= {id(p) for *_, params in stages for p in params}
    assert covered == {id(p) for p in model.parameters()}, "nothing the model learned is left"
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    for _, modules, params in stages:
        for module in modules:
            randomise_(module, generator)
        randomise_parameters_(params, generator)
    for name in ("pos_embed", "patch_embed.proj.weight", *(["cls_token"] if not layout else ["reg_token"])):
        assert not torch.equal(before[name], dict(model.named_parameters())[name]), name


def test_a_check_to_the_end_reports_three_similarities_at_every_step():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, img_size=64, depth=2).eval()
    x = torch.randn(1, 3, 64, 64)
    result = sanity_check(model, x, "input_gradient")
    assert result.complete and result.steps[-2:] == ("final norm", "embeddings")
    assert len(result.correlations) == len(result.abs_correlations) == len(result.ssim) == len(result.steps)
    for i in range(len(result.steps)):
        original, current = result.maps[0], result.maps[i + 1]
        assert result.correlations[i] == pytest.approx(spearman(original, current))
        assert result.abs_correlations[i] == pytest.approx(spearman(np.abs(original), np.abs(current)))
        assert result.ssim[i] == pytest.approx(ssim(original, current))
    np.testing.assert_array_equal(result.metric("ssim"), result.ssim)
    with pytest.raises(ValueError, match="metric"):
        result.metric("pearson")
    assert sanity_check(model, x, "input_gradient", steps=2).steps == ("head", "block 1")
