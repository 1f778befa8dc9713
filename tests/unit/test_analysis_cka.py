"""Linear CKA (Kornblith et al. 2019) against a reference written here from the paper's HSIC formula."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vitviz.analysis.cka import cka_matrix, gram_bank, layer_grams, linear_cka


def hsic_reference(x: np.ndarray, y: np.ndarray) -> float:
    """CKA from Kornblith et al. 2019, Sec. 3: HSIC(K, L) = tr(K H L H) / (n - 1)^2 with linear kernels."""
    n = len(x)
    k, l_ = x @ x.T, y @ y.T
    h = np.eye(n) - np.ones((n, n)) / n

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def feature_space_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Their Eq. 5: ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on column-centred features."""
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 7))
    y = x @ rng.normal(size=(7, 5)) + 0.5 * rng.normal(size=(20, 5))  # related, not identical
    return x, y


def test_cka_matches_the_hsic_formula_and_the_feature_space_formula(features):
    x, y = features
    assert linear_cka(x, y) == pytest.approx(hsic_reference(x, y), rel=1e-10)
    assert linear_cka(x, y) == pytest.approx(feature_space_reference(x, y), rel=1e-10)
    assert 0.2 < linear_cka(x, y) < 0.99


def test_cka_of_a_layer_with_itself_is_one(features):
    x, _ = features
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling_but_not_to_any_linear_map(features):
    x, y = features
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(7, 7)))  # orthogonal
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(3.7 * x, 0.01 * y) == pytest.approx(base, rel=1e-10)
    stretch = np.diag([10.0, 1, 1, 1, 1, 1, 0.1])  # invertible but not orthogonal: CKA may change
    assert abs(linear_cka(x @ stretch, y) - base) > 1e-3


def test_features_of_any_shape_are_flattened_per_example():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(6, 3, 4, 4))
    assert linear_cka(maps, maps.reshape(6, -1)) == pytest.approx(1.0)
    assert linear_cka(torch.from_numpy(maps), maps[:, ::-1]) == pytest.approx(1.0)  # a permutation of features
    with pytest.raises(ValueError):
        linear_cka(maps, maps[:5])


def test_every_depth_of_a_model_against_itself_has_ones_on_the_diagonal():
    from vitviz.shapes.model import build_model, make_config

    torch.manual_seed(0)
    vit = build_model(make_config(embed_dim=32, depth=2, num_heads=2)).eval()
    x = torch.randn(9, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    grams = layer_grams(vit, x, batch_size=4)  # 3 batches: the Gram matrices must span them
    assert len(grams) == 3 and grams[0].shape == (9, 9)
    m = cka_matrix(grams, grams)
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-12)
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    with torch.no_grad():
        t0 = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))  # (9, N, D) entering block 1
        t1 = vit.blocks[0](t0)  # (9, N, D)
    ref = hsic_reference(t0.double().reshape(9, -1).numpy(), t1.double().reshape(9, -1).numpy())
    assert m[0, 1] == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize('max_bytes', [2 ** 30, 0], ids=['features kept', 'fixed set run again'])
def test_a_bank_of_fixed_images_adds_new_ones_as_if_all_had_been_run_together(max_bytes):
    from vitviz.shapes.model import build_model, make_config

    torch.manual_seed(0)
    vit = build_model(make_config(embed_dim=32, depth=2, num_heads=2)).eval()
    x = torch.randn(7, 3, 96, 96, generator=torch.Generator().manual_seed(4))
    bank = gram_bank(vit, x[2:], batch_size=2, max_bytes=max_bytes)  # 5 fixed images, in 3 batches
    assert (bank.features is None) == (max_bytes == 0) and bank.images == 5
    together = layer_grams(vit, x)
    added = layer_grams(vit, x[:2], bank=bank)
    assert [g.shape for g in added] == [(7, 7)] * 3
    for a, b in zip(added, together):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(b).max())
    np.testing.assert_allclose(cka_matrix(added, added), cka_matrix(together, together), atol=1e-12)
    with pytest.raises(ValueError, match='depths'):
        layer_grams(build_model(make_config(embed_dim=32, depth=1, num_heads=2)).eval(), x[:1], bank=bank)
