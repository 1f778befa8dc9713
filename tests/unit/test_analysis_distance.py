"""Mean attention distance (ViT Fig. 7 right / Fig. 11) on hand-checked and closed-form cases."""
import itertools
import math

import numpy as np
import pytest
import timm
import torch

from vitviz.analysis import mean_attention_distance, patch_distances
from vitviz.capture import capture
from vitviz.layout import TokenLayout


def _mean_pairwise_distance(rows, cols, ph, pw):
    """Mean distance over all ordered pairs of patch centres (self pairs included), from pixel coordinates."""
    centres = [((r + 0.5) * ph, (c + 0.5) * pw) for r in range(rows) for c in range(cols)]
    total = sum(math.dist(a, b) for a, b in itertools.product(centres, centres))
    return total / len(centres) ** 2


def test_hand_checked_two_patches():
    layout = TokenLayout(("cls",), (1, 2), (10, 20), (10, 40))  # centres (5, 10) and (5, 30): 20 px apart
    attn = np.zeros((1, 3, 3, 3))
    attn[0, 0] = [[1, 0, 0], [0, 0, 1], [0, 1, 0]]  # head 0: each patch looks at the other
    attn[0, 1] = [[1, 0, 0], [0, 0.5, 0.5], [0, 0.5, 0.5]]  # head 1: half on itself
    attn[0, 2] = [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]  # head 2: half on cls, half on the other patch
    np.testing.assert_allclose(mean_attention_distance(attn, layout), [[20.0, 10.0, 20.0]])


def test_attention_on_the_query_itself_gives_zero():
    layout = TokenLayout(("cls", "reg0"), (3, 4), (16, 16), (48, 64))
    attn = np.broadcast_to(np.eye(14), (2, 3, 14, 14))
    np.testing.assert_array_equal(mean_attention_distance(attn, layout), np.zeros((2, 3)))


@pytest.mark.parametrize("grid, patch", [((4, 4), (16, 16)), ((3, 5), (16, 16)), ((3, 5), (8, 12))])
def test_uniform_attention_gives_mean_pairwise_distance(grid, patch):
    layout = TokenLayout(("cls",), grid, patch, (grid[0] * patch[0], grid[1] * patch[1]))
    n = layout.num_tokens
    attn = np.zeros((1, 2, n, n))
    attn[..., 0] = 0.3  # mass on the class token is left out and the rest re-normalised
    attn[..., 1:] = 0.7 / layout.num_patches
    expected = _mean_pairwise_distance(*grid, *patch)
    np.testing.assert_allclose(mean_attention_distance(attn, layout), expected, rtol=1e-12)


def test_patch_distances_use_non_square_patches():
    layout = TokenLayout((), (2, 2), (8, 12), (16, 24))
    d = patch_distances(layout)
    assert d[0, 1] == 12 and d[0, 2] == 8 and d[0, 3] == pytest.approx(math.hypot(8, 12))
    np.testing.assert_array_equal(d, d.T)


def test_capture_matches_loop_reference():
    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, img_size=(32, 48), depth=2).eval()
    cap = capture(model, torch.randn(1, 3, 32, 48))
    layout = cap.layout
    attn = cap.attentions()[0].double().numpy()  # (L, H, N, N)
    centres = layout.patch_centers()
    expected = np.zeros(attn.shape[:2])
    for layer, head in np.ndindex(*attn.shape[:2]):
        per_query = []
        for q in range(layout.num_patches):
            weights = attn[layer, head, 1 + q, 1:]
            weights = weights / weights.sum()
            per_query.append(sum(w * math.dist(centres[q], centres[k]) for k, w in enumerate(weights)))
        expected[layer, head] = np.mean(per_query)
    np.testing.assert_allclose(mean_attention_distance(cap), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="need a layout"):
        mean_attention_distance(attn)
