"""Raw attention views: the right row, the right head, the right place on the grid, prefix kept apart."""
import numpy as np
import pytest
import timm
import torch

from vitviz.analysis import attention_grid, attention_map, query_index, split_tokens
from vitviz.capture import capture
from vitviz.layout import TokenLayout

LAYOUT = TokenLayout(("cls", "reg0"), (2, 3), (16, 16), (32, 48))  # 2 prefix + 6 patches = 8 tokens


def _random_attention(layers=3, heads=4, tokens=8, seed=0):
    e = np.exp(np.random.default_rng(seed).normal(size=(layers, heads, tokens, tokens)))
    return e / e.sum(axis=-1, keepdims=True)


def test_query_index_forms():
    assert query_index("cls", LAYOUT) == 0 and query_index("reg0", LAYOUT) == 1
    assert query_index((1, 2), LAYOUT) == 2 + 1 * 3 + 2  # row-major after the prefix
    assert query_index(np.int64(5), LAYOUT) == 5
    with pytest.raises(ValueError, match="no class token"):
        query_index("cls", TokenLayout(("reg0",), (2, 3), (16, 16), (32, 48)))
    with pytest.raises(IndexError):
        query_index((2, 0), LAYOUT)
    with pytest.raises(IndexError):
        query_index(8, LAYOUT)


def test_map_of_one_head_is_that_row_on_the_grid():
    attn = _random_attention()
    result = attention_map(attn, layer=1, head=2, query=(1, 0), layout=LAYOUT)
    q = 2 + 3  # patch (1, 0)
    assert result.query == q and result.layer == 1 and result.head == 2
    # hand placement: patch (r, c) is token 2 + 3r + c
    for r in range(2):
        for c in range(3):
            assert result.patches[r, c] == attn[1, 2, q, 2 + 3 * r + c]
    assert result.prefix == {"cls": attn[1, 2, q, 0], "reg0": attn[1, 2, q, 1]}
    assert result.patches.sum() + sum(result.prefix.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("head, reduce", [("mean", np.mean), ("max", np.max), ("min", np.min)])
def test_head_fusion(head, reduce):
    attn = _random_attention(seed=1)
    result = attention_map(torch.from_numpy(attn), layer=-1, head=head, query="cls", layout=LAYOUT)
    expected = reduce(attn[2, :, 0, :], axis=0)
    assert result.layer == 2 and result.head == head
    np.testing.assert_allclose(result.patches, expected[2:].reshape(2, 3), atol=1e-12)
    assert result.prefix["reg0"] == pytest.approx(expected[1])
    with pytest.raises(IndexError):
        attention_map(attn, layer=0, head=4, layout=LAYOUT)
    with pytest.raises(ValueError, match="one of"):
        attention_map(attn, layer=0, head="median", layout=LAYOUT)


@pytest.mark.parametrize("head", ["mean", "max", "min", 1])
def test_shares_never_exceed_one(head):
    attn = _random_attention(seed=3)
    result = attention_map(attn, layer=0, head=head, query="cls", layout=LAYOUT)
    shares = result.shares()
    assert list(shares) == ["cls", "reg0", "all patches"]
    assert sum(shares.values()) == pytest.approx(1.0) and max(shares.values()) <= 1.0
    row = {"mean": attn[0, :, 0].mean(0), "max": attn[0, :, 0].max(0), "min": attn[0, :, 0].min(0)}.get(head)
    row = attn[0, 1, 0] if row is None else row
    # hand check: each share is the fused row's value over the fused row's total (max sums above 1)
    assert shares["cls"] == pytest.approx(row[0] / row.sum())
    assert shares["all patches"] == pytest.approx(row[2:].sum() / row.sum())
    if head == "max":
        assert row.sum() > 1.0, "the case that showed 247.6 %"


def test_grid_of_layers_and_heads():
    attn = _random_attention(seed=2)
    grid = attention_grid(attn, query="reg0", layout=LAYOUT)
    assert grid.shape == (3, 4, 2, 3)
    np.testing.assert_array_equal(grid, attn[:, :, 1, 2:].reshape(3, 4, 2, 3))
    assert attention_grid(attn, (0, 1), LAYOUT, layers=[-1]).shape == (1, 4, 2, 3)


def test_layout_split_gives_prefix_then_patch_grid():
    values = np.arange(2 * 8).reshape(2, 8)
    prefix, grid = LAYOUT.split(values)
    np.testing.assert_array_equal(prefix, [[0, 1], [8, 9]])
    np.testing.assert_array_equal(grid[1], [[10, 11, 12], [13, 14, 15]])
    prefix_t, grid_t = LAYOUT.split(torch.arange(8.0))  # torch in, float64 numpy out
    assert grid_t.dtype == np.float64 and prefix_t.tolist() == [0.0, 1.0] and grid_t.shape == (2, 3)
    with pytest.raises(ValueError, match="2 prefix \\+ 6 patch values"):
        LAYOUT.split(np.zeros(7))


def test_old_split_tokens_warns_and_keeps_its_order():
    with pytest.warns(DeprecationWarning, match="TokenLayout.split"):
        grid, prefix = split_tokens(np.arange(8), LAYOUT)
    assert prefix.tolist() == [0, 1] and grid.shape == (2, 3)


class _RowsOnly:
    """A Capture stand-in that refuses to build full attention matrices."""

    def __init__(self, cap):
        self._cap = cap
        self.layout, self.num_layers, self.num_heads = cap.layout, cap.num_layers, cap.num_heads

    def attention_row(self, layer, query):
        return self._cap.attention_row(layer, query)

    def fused_attention(self, layer, fusion="mean"):
        raise AssertionError("a single query's view must not build (N, N) matrices")


def test_capture_views_use_one_query_row_and_agree_across_storage():
    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, img_size=(32, 48), depth=2, reg_tokens=1).eval()
    x = torch.randn(2, 3, 32, 48)
    full, qk = capture(model, x, storage="full"), capture(model, x, storage="qk")
    assert full.layout.prefix_names == ("cls", "reg0") and full.layout.grid_size == (2, 3)
    probs = full.attentions()[1].double().numpy()  # (L, H, N, N) of batch item 1
    result = attention_map(_RowsOnly(qk), layer=1, head="mean", query=(0, 2), item=1)
    expected = probs[1, :, 4, :].mean(axis=0)
    np.testing.assert_allclose(result.patches, expected[2:].reshape(2, 3), atol=1e-6)
    assert result.prefix["cls"] == pytest.approx(expected[0], abs=1e-6)
    grid = attention_grid(_RowsOnly(qk), query="cls", item=1)
    np.testing.assert_allclose(grid, probs[:, :, 0, 2:].reshape(2, 2, 2, 3), atol=1e-6)
