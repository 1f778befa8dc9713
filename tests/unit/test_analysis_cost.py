"""Cost: FLOPs counted by torch's FlopCounterMode on hand-checkable cases, tokens and the N^2 attention term."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from vitviz.analysis.cost import count_flops, measure_cost, patch_costs, patch_tokens


def test_a_linear_layer_costs_two_flops_per_multiply_add():
    assert count_flops(nn.Linear(10, 20), torch.randn(3, 10)) == (2 * 3 * 10 * 20, 0)


def test_a_convolution_costs_two_flops_per_multiply_add_of_its_kernel_at_every_output_pixel():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    total, attention = count_flops(conv, torch.randn(1, 3, 5, 5))
    assert total == 2 * (8 * 5 * 5) * (3 * 3 * 3) and attention == 0
    strided = nn.Conv2d(3, 8, 2, stride=2)  # a ViT patch embedding: one output per 2x2 patch
    assert count_flops(strided, torch.randn(1, 3, 6, 6))[0] == 2 * (8 * 3 * 3) * (3 * 2 * 2)


def test_tokens_are_input_over_patch_squared():
    assert patch_tokens(96, 12) == 64 and patch_tokens((96, 96), 8) == 144 and patch_tokens((224, 224), 16) == 196
    assert patch_tokens((96, 144), 24) == 4 * 6
    with pytest.raises(ValueError):
        patch_tokens(96, 10)


@pytest.fixture(scope='module')
def vit():
    from vitviz.shapes.model import build_model, make_config

    torch.manual_seed(0)
    return build_model(make_config(embed_dim=32, depth=2, num_heads=2)).eval()


def test_a_vit_s_attention_flops_grow_with_the_square_of_its_tokens(vit):
    costs = {c.patch_size: c for c in patch_costs(vit, (8, 12, 16, 24), repeats=1, warmup=0)}
    depth, width = 2, 32
    for p, c in costs.items():
        n = patch_tokens(96, p) + 1  # the class token attends too
        assert c.tokens == patch_tokens(96, p) and c.grid == (96 // p, 96 // p)
        assert c.cost.attention_flops == depth * 2 * (2 * n * n * width)  # Q K^T and A V: N x N x D each
    flops = [costs[p].cost.flops for p in (8, 12, 16, 24)]
    assert flops == sorted(flops, reverse=True)  # a larger patch means fewer tokens and less compute
    assert costs[12].cost.parameters == sum(q.numel() for q in vit.parameters())


def test_counting_leaves_the_model_s_fused_attention_alone(vit):
    flags = [m.fused_attn for m in vit.modules() if hasattr(m, 'fused_attn')]
    cost = measure_cost(vit, 96, repeats=1, warmup=0)
    assert [m.fused_attn for m in vit.modules() if hasattr(m, 'fused_attn')] == flags
    assert cost.attention_flops > 0 and cost.flops > cost.attention_flops and cost.input_size == (96, 96)


def _hand_counted_vit_flops(patch: int, side: int, *, width: int = 32, depth: int = 2, mlp_ratio: int = 3,
                            classes: int = 10) -> int:
    """FLOPs of a timm ViT forward counted by hand (multiply-add = 2), with one class token.

    Patch embedding: one ``3 p^2 -> D`` product per patch. Each block: QKV (``D -> 3D``), ``Q K^T`` and ``A V``
    (``T x T x D`` each), the output projection (``D -> D``) and the MLP (``D -> rD -> D``) over all ``T`` tokens.
    The head reads the class token (``D -> classes``). Norms, softmax and GELU are not products: not counted.
    """
    n = (side // patch) ** 2
    t = n + 1
    d = width
    embed = 2 * n * d * 3 * patch * patch
    block = 2 * t * d * 3 * d + 2 * (2 * t * t * d) + 2 * t * d * d + 2 * (2 * t * d * mlp_ratio * d)
    return embed + depth * block + 2 * d * classes


def test_a_vit_s_flops_equal_a_count_by_hand_at_every_patch_size(vit):
    for c in patch_costs(vit, (8, 12, 16, 24), repeats=1, warmup=0):
        assert c.cost.flops == _hand_counted_vit_flops(c.patch_size, 96)


def test_the_attention_pairs_are_the_square_of_the_whole_sequence(vit):
    costs = {c.patch_size: c for c in patch_costs(vit, (12, 24), repeats=1, warmup=0)}
    assert costs[12].prefix_tokens == 1 and costs[12].attention_pairs == (64 + 1) ** 2
    assert costs[24].attention_pairs == (16 + 1) ** 2  # half the patch side: a quarter of the tokens


def test_a_patch_size_that_does_not_divide_the_input_runs_on_the_nearest_input_it_divides(vit):
    (cost,) = patch_costs(vit, (10,), repeats=1, warmup=0)
    assert cost.cost.input_size == (100, 100) and cost.grid == (10, 10) and cost.tokens == 100
    assert cost.cost.flops == _hand_counted_vit_flops(10, 100)


def test_the_bundled_model_s_accuracy_per_patch_size_is_its_model_card_s_table():
    import json
    import re
    from pathlib import Path

    from vitviz.shapes.model import CONFIG_PATH, patch_accuracy

    card = (Path(__file__).resolve().parents[2] / 'docs' / 'model_card.md').read_text(encoding='utf-8')
    table = card.split('### Accuracy per patch size')[1].split('###')[0]
    rows = re.findall(r'^\| (\d+)(?: \(native\))? \| \d+×\d+ \| \d+ \| ([\d.]+)% \|$', table, flags=re.M)
    accuracy = patch_accuracy(json.loads(CONFIG_PATH.read_text()))
    assert rows and {int(p): float(a) for p, a in rows} == {p: round(100 * a, 1) for p, a in accuracy.items()}
    assert patch_accuracy({'metrics': {}}) == {} and patch_accuracy({}) == {}
