"""Receptive fields: the effective one (Luo et al. 2016) and the theoretical one, for a ViT and a CNN.

References are independent of the library: a 3x3 convolution's footprint, a ViT patch's pixels, and the
textbook receptive-field arithmetic ``r_l = r_{l-1} + (k_l - 1) d_l j_{l-1}``, ``j_l = j_{l-1} s_l`` written
out here for the chains tested.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vitviz.analysis.receptive_field import (
    effective_receptive_field,
    gradient_mass,
    mass_radius,
    positive_copy,
    theoretical_receptive_field,
)


def textbook_fields(layers: list[tuple[int, int, int]]) -> list[int]:
    """Receptive field after each (kernel, stride, dilation) of a plain chain: the arithmetic of Araujo et al."""
    r, j, out = 1, 1, []
    for k, s, d in layers:
        r += (k - 1) * d * j
        j *= s
        out.append(r)
    return out


class Chain(nn.Module):
    """A plain chain of convolutions and pools whose outputs after ``marks`` are its feature levels (timm's
    ``feature_info`` / ``forward_intermediates`` contract, as the library reads any timm CNN)."""

    def __init__(self, layers: list[nn.Module], marks: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.marks = marks
        self.feature_info = [{'module': f'layers.{i}', 'num_chs': 4, 'reduction': 1} for i in marks]

    def forward_intermediates(self, x, intermediates_only=True):
        out = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.marks:
                out.append(x)
        return out


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if p.ndim == 1 else 0.0))
    return model.eval()


def test_a_single_3x3_convolution_s_erf_is_exactly_its_3x3_footprint():
    conv = _randomise(nn.Conv2d(3, 5, 3, padding=1))
    x = torch.randn(4, 3, 15, 15, generator=torch.Generator().manual_seed(1))
    erf = effective_receptive_field(lambda t: [conv(t)], x)
    support = erf.maps[0] > 0
    expected = np.zeros((15, 15), bool)
    expected[6:9, 6:9] = True  # the centre unit (7, 7) reads rows and columns 6..8
    assert (support == expected).all()
    assert erf.maps[0].sum() == pytest.approx(1.0) and erf.images == 4
    np.testing.assert_allclose(erf.centres[0], (7.5, 7.5))  # the centre of pixel (7, 7)
    # half the mass is never in the centre pixel alone (nine non-zero taps), all of it within sqrt(2)
    assert erf.radius90[0] <= np.sqrt(2) + 1e-9


def test_mass_radius_by_hand():
    m = np.zeros((5, 5))
    m[2, 2] = 0.5  # centre pixel: distance 0 from (2.5, 2.5)
    m[2, 4] = 0.3  # distance 2
    m[0, 0] = 0.2  # distance sqrt(8)
    assert mass_radius(m, (2.5, 2.5), 0.5) == 0.0
    assert mass_radius(m, (2.5, 2.5), 0.8) == pytest.approx(2.0)
    assert mass_radius(m, (2.5, 2.5), 0.9) == pytest.approx(np.sqrt(8))
    with pytest.raises(ValueError):
        mass_radius(m, (2.5, 2.5), 0.0)


@pytest.fixture(scope='module')
def small_vit():
    from vitviz.shapes.model import build_model, make_config

    torch.manual_seed(0)
    return build_model(make_config(embed_dim=32, depth=2, num_heads=2)).eval()


def test_a_vit_token_depends_on_its_own_patch_before_the_first_block_and_on_pixels_outside_it_after(small_vit):
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    erf = effective_receptive_field(small_vit, x)
    assert erf.names == ('embed', 'blocks.0', 'blocks.1')
    patch = np.zeros((96, 96), bool)
    patch[48:60, 48:60] = True  # centre token (4, 4) of the 8x8 grid of 12 px patches
    assert ((erf.maps[0] > 0) == patch).all()
    assert (erf.maps[1] > 0).all() and erf.maps[1][~patch].sum() > 0.01  # attention reaches every patch
    np.testing.assert_allclose(erf.centres, [(54.0, 54.0)] * 3)
    theory = theoretical_receptive_field(small_vit, 96)
    assert theory.size[0].tolist() == [12, 12] and np.isinf(theory.size[1:]).all()


@pytest.mark.parametrize('layers, marks', [
    ([(3, 1, 1), (3, 2, 1), ('max', 3, 2), (3, 1, 2), (5, 2, 1)], [0, 2, 4]),
    ([(7, 2, 1), ('avg', 2, 2), (3, 1, 3), (1, 2, 1), (3, 1, 1)], [1, 3, 4]),
])
def test_theoretical_field_of_a_chain_is_the_textbook_arithmetic(layers, marks):
    modules, plain = [], []
    for k, s, d in [(spec[1], spec[2], 1) if isinstance(spec[0], str) else spec for spec in layers]:
        plain.append((k, s, d))
    for spec in layers:
        if spec[0] == 'max':
            modules.append(nn.MaxPool2d(spec[1], spec[2], padding=spec[1] // 2))
        elif spec[0] == 'avg':
            modules.append(nn.AvgPool2d(spec[1], spec[2]))
        else:
            k, s, d = spec
            modules += [nn.Conv2d(4 if modules else 3, 4, k, s, padding=d * (k - 1) // 2, dilation=d)]
        modules.append(nn.ReLU())
    # marks count layers of the spec; each is followed by its ReLU in the module list
    chain = _randomise(Chain(modules, [2 * m + 1 for m in marks]))
    theory = theoretical_receptive_field(chain, 64)
    expected = [textbook_fields(plain)[m] for m in marks]
    assert theory.size[:, 0].tolist() == expected and theory.size[:, 1].tolist() == expected


@pytest.fixture(scope='module')
def resnet():
    import timm

    model = timm.create_model('resnet18', pretrained=False, num_classes=10, channels=(8, 8, 16, 16))
    return _randomise(model, seed=3)  # non-zero residual branches (timm zero-inits their last norm)


@pytest.fixture(scope='module')
def resnet_theory(resnet):
    return theoretical_receptive_field(resnet, 96)


def test_resnet18_fields_are_the_textbook_numbers_along_its_longest_path(resnet_theory):
    stem = [(7, 2, 1)]
    stages = [[(3, 2, 1)] + [(3, 1, 1)] * 4]  # max-pool, then 2 blocks of 2 convs
    stages += [[(3, 2, 1)] + [(3, 1, 1)] * 3 for _ in range(3)]  # first conv strided
    chain = stem + [layer for stage in stages for layer in stage]
    r = textbook_fields(chain)
    ends = [0] + list(np.cumsum([len(s) for s in stages]))
    theory = resnet_theory
    assert theory.names == ('act1', 'layer1', 'layer2', 'layer3', 'layer4')
    assert theory.size[:, 0].tolist() == [r[e] for e in ends] == [7, 43, 99, 211, 435]
    assert theory.jump.tolist() == [2, 4, 8, 16, 32]
    # 96 px: the centre units are (24, 24), (12, 12), (6, 6), (3, 3), (1, 1); unit i of stride j sits at i * j
    np.testing.assert_allclose(theory.centres[:, 0], [48.5, 48.5, 48.5, 48.5, 32.5])


def test_a_cnn_s_erf_lies_within_its_theoretical_field_at_every_stage(resnet, resnet_theory):
    x = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(4))
    theory = resnet_theory
    erf = effective_receptive_field(resnet, x, centres=theory.centres)
    for d in range(len(theory.names)):
        top, left, bottom, right = theory.box(d)
        ys, xs = np.nonzero(erf.maps[d])
        assert ys.min() >= top and ys.max() + 1 <= bottom and xs.min() >= left and xs.max() + 1 <= right
    assert (erf.maps[0] > 0).sum() == 49  # the stem's 7x7 kernel, all of it


def test_erf_radii_are_the_same_on_every_run(resnet, resnet_theory, small_vit):
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(5))
    for model, centres in ((resnet, resnet_theory.centres), (small_vit, None)):
        a, b = (effective_receptive_field(model, x, centres=centres) for _ in range(2))
        assert np.array_equal(a.radius50, b.radius50) and np.array_equal(a.radius90, b.radius90)
        assert np.array_equal(a.maps, b.maps)


def test_an_erf_pooled_with_fixed_images_gradients_is_the_erf_of_all_the_images(resnet, resnet_theory, small_vit):
    x = torch.randn(4, 3, 96, 96, generator=torch.Generator().manual_seed(6))
    for model, centres in ((resnet, resnet_theory.centres), (small_vit, None)):
        together = effective_receptive_field(model, x, centres=centres)
        pooled = effective_receptive_field(model, x[:1], centres=centres, pooled_with=gradient_mass(model, x[1:]))
        assert pooled.images == together.images == 4
        np.testing.assert_allclose(pooled.maps, together.maps, rtol=1e-5, atol=1e-10)  # float32 gradients, batched
        assert np.array_equal(pooled.radius50, together.radius50) and np.array_equal(pooled.radius90,
                                                                                     together.radius90)
    with pytest.raises(ValueError, match='another model'):
        effective_receptive_field(resnet, x[:1], pooled_with=gradient_mass(small_vit, x[1:]))


def test_the_positive_copy_leaves_the_model_alone(resnet):
    before = {k: v.clone() for k, v in resnet.state_dict().items()}
    pos = positive_copy(resnet)
    assert all(torch.equal(v, resnet.state_dict()[k]) for k, v in before.items())
    assert all(p.dtype == torch.float64 and (p >= 0).all() for p in pos.parameters())
