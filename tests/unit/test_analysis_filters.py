"""Principal components of the patch-embedding filters (ViT Fig. 7 left) against an eigen-decomposition."""
import numpy as np
import pytest
import timm
import torch

from vitviz.analysis import embedding_filters

D, C, P = 40, 3, 4


def _hand_made_weight():
    """40 filters spread mostly along three known orthonormal directions, with scales 10, 4 and 1."""
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(C * P * P, C * P * P)))  # orthonormal columns
    raw = rng.normal(size=(D, 3))
    loadings, _ = np.linalg.qr(raw - raw.mean(axis=0))  # centred, orthonormal: no mixing between directions
    coeffs = loadings * [10.0, 4.0, 1.0]
    flat = 5.0 + coeffs @ basis[:, :3].T + 1e-3 * rng.normal(size=(D, C * P * P))
    return flat.reshape(D, C, P, P), basis[:, :3].T


def _eigen_reference(weight):
    """PCA the long way: eigenvectors of the filters' covariance, largest first."""
    flat = weight.reshape(len(weight), -1)
    centred = flat - flat.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(values)[::-1]
    return vectors[:, order].T, values[order] / values.sum()


def test_components_and_variance_match_eigen_decomposition():
    weight, directions = _hand_made_weight()
    result = embedding_filters(weight, n=5)
    vectors, ratios = _eigen_reference(weight)
    comps = result.components.reshape(5, -1)
    # same subspace direction (up to sign) and same explained-variance ratio for every component
    np.testing.assert_allclose(np.abs(np.sum(comps * vectors[:5], axis=1)), 1.0, atol=1e-8)
    np.testing.assert_allclose(result.explained_variance_ratio, ratios[:5], atol=1e-10)
    # the three planted directions come out first, in order of their scale
    np.testing.assert_allclose(np.abs(np.sum(comps[:3] * directions, axis=1)), 1.0, atol=1e-4)
    assert result.explained_variance_ratio[0] > result.explained_variance_ratio[1] > result.explained_variance_ratio[2]
    assert result.explained_variance_ratio[:3].sum() > 0.99


def test_signs_are_fixed_and_tiles_are_scaled_components():
    weight, _ = _hand_made_weight()
    result = embedding_filters(weight, n=4)
    flipped = embedding_filters(-weight, n=4)  # same filters up to sign: same components after sign fixing
    np.testing.assert_allclose(flipped.components, result.components, atol=1e-10)
    comps = result.components.reshape(4, -1)
    assert (comps[np.arange(4), np.abs(comps).argmax(axis=1)] > 0).all()
    tiles = result.tiles
    assert tiles.shape == (4, P, P, 3) and tiles.min() >= 0 and tiles.max() <= 1
    assert np.allclose(tiles.reshape(4, -1).max(axis=1), 1.0)  # the peak weight maps to 1, zero to 0.5
    k, y, x, ch = 2, 1, 3, 2
    peak = np.abs(result.components[k]).max()
    assert tiles[k, y, x, ch] == pytest.approx(0.5 + 0.5 * result.components[k, ch, y, x] / peak)


def test_mean_filter_does_not_change_components():
    weight, _ = _hand_made_weight()
    shifted = weight + np.random.default_rng(3).normal(size=(1, C, P, P))  # same offset added to every filter
    np.testing.assert_allclose(embedding_filters(shifted, 3).components, embedding_filters(weight, 3).components,
                               atol=1e-9)


def test_count_is_capped_by_rank_and_ratios_sum_to_one():
    weight, _ = _hand_made_weight()
    result = embedding_filters(torch.from_numpy(weight), n=100)
    assert len(result.tiles) == D  # min(D, C*P*P) = 40 components exist
    assert result.explained_variance_ratio.sum() == pytest.approx(1.0)


def test_model_and_single_channel_filters():
    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, img_size=32, depth=1)
    result = embedding_filters(model)
    assert result.tiles.shape == (28, 16, 16, 3)
    np.testing.assert_array_equal(result.tiles, embedding_filters(model.patch_embed.proj.weight).tiles)
    grey = embedding_filters(np.random.default_rng(0).normal(size=(8, 1, 4, 4)), n=3)
    assert grey.tiles.shape == (3, 4, 4, 3)
    assert np.array_equal(grey.tiles[..., 0], grey.tiles[..., 2])
    with pytest.raises(ValueError, match="2 input channels"):
        embedding_filters(np.zeros((8, 2, 4, 4)))


def test_non_finite_weights_give_nan_not_an_exception():
    weight, _ = _hand_made_weight()
    weight[0, 0, 0, 0] = np.inf
    result = embedding_filters(weight, n=5)
    assert result.tiles.shape == (5, P, P, 3) and np.isnan(result.tiles).all()
    assert np.isnan(result.explained_variance_ratio).all()


def test_first_components_equal_a_smaller_decomposition():
    """The app decomposes once and slices (``EmbeddingFilters.first``): the same numbers as asking for fewer."""
    weight = torch.randn(40, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    many = embedding_filters(weight, n=30)
    assert len(many.first(50).tiles) == 30, "never more than were decomposed"
    for n in (0, 1, 7, 30):
        few, sliced = embedding_filters(weight, n=n), many.first(n)
        np.testing.assert_array_equal(sliced.tiles, few.tiles)
        np.testing.assert_array_equal(sliced.components, few.components)
        np.testing.assert_array_equal(sliced.explained_variance_ratio, few.explained_variance_ratio)
