"""Feature PCA (DINO-style RGB) and token norms (registers paper) on tokens with known structure."""
import numpy as np
import pytest
import timm
import torch

from vitviz.analysis import feature_pca, token_norm_map, token_norms
from vitviz.capture import capture
from vitviz.layout import TokenLayout

LAYOUT = TokenLayout(("cls",), (4, 5), (16, 16), (64, 80))
D = 16


def _structured_tokens(seed=0):
    """cls + 20 patch tokens made of three known patterns along three orthonormal feature directions."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(20, 3))
    patterns, _ = np.linalg.qr(raw - raw.mean(axis=0))  # (20, 3) centred, orthonormal
    directions, _ = np.linalg.qr(rng.normal(size=(D, 3)))  # (D, 3) orthonormal
    patches = 2.0 + (patterns * [9.0, 3.0, 1.0]) @ directions.T  # (20, D)
    cls = 100.0 * rng.normal(size=(1, D))  # a huge prefix token that must not enter the decomposition
    return np.concatenate([cls, patches]), patterns


def _expected_rgb(patterns):
    rgb = np.empty_like(patterns)
    for k in range(3):
        p = patterns[:, k]
        p = p if p[np.abs(p).argmax()] > 0 else -p  # sign rule: largest-magnitude score positive
        rgb[:, k] = (p - p.min()) / (p.max() - p.min())
    return rgb.reshape(4, 5, 3)


def test_first_three_components_become_rgb():
    tokens, patterns = _structured_tokens()
    rgb = feature_pca(tokens, LAYOUT)
    assert rgb.shape == (4, 5, 3) and rgb.min() == 0.0 and rgb.max() == 1.0
    np.testing.assert_allclose(rgb, _expected_rgb(patterns), atol=1e-9)
    np.testing.assert_allclose(feature_pca(tokens[1:], LAYOUT), rgb, atol=1e-12)  # patches-only input


def test_colours_are_stable_under_sign_shift_and_rotation():
    tokens, _ = _structured_tokens(seed=1)
    rgb = feature_pca(tokens, LAYOUT)
    rotation, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(D, D)))
    for variant in (-tokens, tokens + 5.0, tokens @ rotation, torch.from_numpy(tokens).float()):
        np.testing.assert_allclose(feature_pca(variant, LAYOUT), rgb, atol=1e-5)


def test_layer_and_batch_selection():
    tokens, _ = _structured_tokens(seed=3)
    other, _ = _structured_tokens(seed=4)
    states = np.stack([other, tokens, other])  # (L+1, N, D)
    np.testing.assert_allclose(feature_pca(states, LAYOUT, layer=1), feature_pca(tokens, LAYOUT), atol=1e-12)
    batch = np.stack([states[::-1], states])  # (B, L+1, N, D)
    np.testing.assert_allclose(feature_pca(batch, LAYOUT, layer=1, item=1), feature_pca(tokens, LAYOUT), atol=1e-12)
    with pytest.raises(ValueError, match="need a layer"):
        feature_pca(states, LAYOUT)


def test_fewer_than_three_feature_dimensions_leave_grey():
    rng = np.random.default_rng(5)
    rgb = feature_pca(rng.normal(size=(20, 2)), LAYOUT)
    assert np.all(rgb[..., 2] == 0.5) and rgb[..., 0].min() == 0.0 and rgb[..., 0].max() == 1.0


def test_token_norms_and_map():
    states = np.zeros((2, 21, 2))
    states[1, 0] = [3.0, 4.0]  # cls after block 0: norm 5
    states[1, 1 + 7] = [6.0, 8.0]  # patch (1, 2) after block 0: norm 10
    norms = token_norms(states)
    assert norms.shape == (2, 21) and norms[1, 0] == 5.0 and norms[1, 8] == 10.0 and norms[0].sum() == 0
    grid, prefix = token_norm_map(norms, LAYOUT, layer=-1)
    assert grid.shape == (4, 5) and grid[1, 2] == 10.0 and grid.sum() == 10.0
    assert prefix == {"cls": 5.0}


def test_capture_inputs():
    torch.manual_seed(0)
    model = timm.create_model("test_vit2", pretrained=False, img_size=(48, 64), depth=2).eval()
    cap = capture(model, torch.randn(2, 3, 48, 64))
    hidden = cap.hidden_states[1].double().numpy()  # (L+1, N, D) of item 1
    np.testing.assert_allclose(token_norms(cap, item=1), np.sqrt((hidden**2).sum(-1)), rtol=1e-6)
    rgb = feature_pca(cap, cap.layout, layer=2, item=1)
    assert rgb.shape == (3, 4, 3)
    np.testing.assert_allclose(rgb, feature_pca(hidden[2], cap.layout), atol=1e-5)


def test_non_finite_tokens_give_nan_image_not_an_exception():
    tokens, _ = _structured_tokens()
    tokens[3, 0] = np.nan
    rgb = feature_pca(tokens, LAYOUT)
    assert rgb.shape == (4, 5, 3) and np.isnan(rgb).all()
