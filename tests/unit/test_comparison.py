"""vitviz.compare_cnn: the notebook API returns the analyses' own numbers, on the images it says it used."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch


@pytest.fixture(scope='module')
def pair():
    import timm

    from vitviz.shapes.model import build_model, make_config

    torch.manual_seed(0)
    vit = build_model(make_config(embed_dim=32, depth=2, num_heads=2)).eval()
    cnn = timm.create_model('resnet18', pretrained=False, num_classes=10, layers=(1, 1, 1, 1),
                            channels=(8, 8, 8, 8), pretrained_cfg_overlay=dict(
                                input_size=(3, 64, 64), mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)).eval()
    return vit, cnn


@pytest.fixture(scope='module')
def comparison(pair):
    from vitviz import compare_cnn

    image = np.random.default_rng(0).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    return compare_cnn(*pair, image, erf_images=3, cka_shapes=4, patch_sizes=(12, 24), timing_repeats=1)


@pytest.mark.slow
def test_compare_cnn_reports_the_images_it_used(comparison):
    from vitviz.shapes.model import ASSETS_DIR

    samples = sum(p.suffix.lower() in ('.png', '.jpg', '.jpeg') for p in (ASSETS_DIR / 'samples').iterdir())
    assert comparison.cka_sources == {'image': 1, 'samples': samples, 'shapes': 4}
    assert comparison.cka_images == 1 + samples + 4 and comparison.vit_erf.images == comparison.cnn_erf.images == 3


@pytest.mark.slow
def test_compare_cnn_numbers_are_the_analyses_numbers(pair, comparison):
    from vitviz.analysis.cka import cka_matrix, layer_grams
    from vitviz.analysis.receptive_field import effective_receptive_field
    from vitviz.comparison import _inputs, comparison_images

    vit, cnn = pair
    images, _ = comparison_images(np.random.default_rng(0).integers(0, 256, (120, 90, 3), dtype=np.uint8),
                                  samples=False, shapes=2)
    x_cnn = _inputs(cnn, images)
    assert x_cnn.shape == (3, 3, 64, 64)  # each model gets its own preprocessing
    direct = effective_receptive_field(cnn, x_cnn)  # all three images in one run
    np.testing.assert_array_equal(direct.radius90, comparison.cnn_erf.radius90)
    np.testing.assert_allclose(direct.maps, comparison.cnn_erf.maps, rtol=1e-5, atol=1e-10)
    assert comparison.cka.shape == (3, 5)  # ViT: embed + 2 blocks; CNN: stem + 4 stages
    cka_set, _ = comparison_images(images[0], shapes=4)
    expected = cka_matrix(layer_grams(vit, _inputs(vit, cka_set)), layer_grams(cnn, _inputs(cnn, cka_set)))
    np.testing.assert_allclose(comparison.cka, expected, atol=1e-9)
    assert comparison.attention_distance.shape == (2,) and comparison.attention_distance_heads.shape == (2, 2)
    assert [c.tokens for c in comparison.patch_costs] == [64, 16]
    # 7x7/2 stem; 3x3/2 max-pool; one block of two 3x3 convs per stage, the first strided from stage 2 on
    assert comparison.cnn_theory.size[:, 0].tolist() == [7, 11 + 2 * 4 + 2 * 4, 27 + 2 * 4 + 2 * 8,
                                                         51 + 2 * 8 + 2 * 16, 99 + 2 * 16 + 2 * 32]
    assert np.isinf(comparison.vit_theory.size[1:]).all() and comparison.vit_cost.attention_flops > 0


@pytest.mark.slow
def test_a_pair_reference_compares_each_image_as_compare_cnn_does(pair, comparison):
    from vitviz.comparison import pair_reference

    image = np.random.default_rng(0).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    reference = pair_reference(*pair, erf_images=3, cka_shapes=4, patch_sizes=(12, 24), timing_repeats=1)
    again = reference.compare(image)
    np.testing.assert_allclose(again.cka, comparison.cka, atol=1e-12)
    np.testing.assert_array_equal(again.vit_erf.radius50, comparison.vit_erf.radius50)
    np.testing.assert_allclose(again.attention_distance_heads, comparison.attention_distance_heads, rtol=1e-12)
    other = reference.compare(image[::-1].copy())  # another image: its own numbers, the same fixed images
    assert other.cka_images == comparison.cka_images and not np.allclose(other.cka, comparison.cka)
    with pytest.raises(ValueError, match='at least one'):
        pair_reference(*pair, erf_images=1, cka_shapes=0, cka_samples=False, patch_sizes=(), timing_repeats=1)


def test_import_vitviz_stays_cheap():
    code = 'import sys, vitviz; vitviz.compare_cnn, vitviz.CnnComparison; print("torch" in sys.modules)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == 'False'  # torch and timm load when a comparison runs, not on import
