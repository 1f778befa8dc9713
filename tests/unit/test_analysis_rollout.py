"""Attention rollout and gradient rollout against straightforward float64 loop references."""
import math

import numpy as np
import pytest
import timm
import torch

from vitviz.analysis import discard_lowest, gradient_rollout, rollout
from vitviz.analysis.rollout_matrices import fuse_heads
from vitviz.capture import capture
from vitviz.layout import TokenLayout

CLS_LAYOUT = TokenLayout(("cls",), (2, 3), (16, 16), (32, 48))  # 7 tokens
REG_LAYOUT = TokenLayout(("reg0",), (2, 3), (16, 16), (32, 48))  # no class token


def _random_attention(layers=4, heads=3, tokens=7, seed=0):
    logits = np.random.default_rng(seed).normal(scale=2.0, size=(layers, heads, tokens, tokens))
    e = np.exp(logits)
    return e / e.sum(axis=-1, keepdims=True)  # rows sum to 1


def _reference_rollout(attn, fusion, ratio, keep_column, layers):
    """Abnar & Zuidema rollout written out with loops, one entry at a time."""
    _, heads, n, _ = attn.shape
    joint = np.eye(n)
    steps = []
    for layer in layers:
        fused = np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                values = [attn[layer, h, i, j] for h in range(heads)]
                fused[i, j] = {"mean": sum(values) / heads, "max": max(values), "min": min(values)}[fusion]
        for i in range(n):
            candidates = sorted((fused[i, j], j) for j in range(n) if j != i and j != keep_column)
            for _, j in candidates[: math.floor(ratio * len(candidates) + 1e-9)]:
                fused[i, j] = 0.0
        step = np.zeros((n, n))
        for i in range(n):
            row = [0.5 * (i == j) + 0.5 * fused[i, j] for j in range(n)]
            step[i] = np.array(row) / sum(row)
        new = np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                new[i, j] = sum(step[i, k] * joint[k, j] for k in range(n))  # R_l = Â_l · R_{l-1}
        joint = new
        steps.append(joint)
    return np.stack(steps)


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("start, end", [(0, None), (1, 3), (-2, None)])
def test_rollout_matches_loop_reference(fusion, ratio, start, end):
    attn = _random_attention()
    layers = range(4)[start:end]
    expected = _reference_rollout(attn, fusion, ratio, keep_column=0, layers=layers)
    result = rollout(attn, fusion, ratio, start, end, layout=CLS_LAYOUT, keep_joint=True)
    assert result.layers == tuple(layers)
    np.testing.assert_allclose(result.cumulative, expected, atol=1e-12)
    np.testing.assert_allclose(result.joint, expected[-1], atol=1e-12)
    np.testing.assert_allclose(result.maps, expected[:, 0, 1:].reshape(-1, 2, 3), atol=1e-12)  # class-token row
    np.testing.assert_allclose(result.prefix, expected[:, 0, :1], atol=1e-12)
    assert result.readout == "cls" and result.from_class_token
    np.testing.assert_allclose(result.cumulative.sum(axis=-1), 1.0, atol=1e-12)  # row-stochastic throughout


@pytest.mark.parametrize("fusion, ratio", [("mean", 0.0), ("max", 0.5), ("min", 0.9)])
@pytest.mark.parametrize("start, end", [(0, None), (1, 3), (-2, None), (2, 3)])
@pytest.mark.parametrize("layout", [CLS_LAYOUT, REG_LAYOUT], ids=["cls", "no-cls"])
def test_readout_rows_without_joint_match_loop_reference(fusion, ratio, start, end, layout):
    """The default path forms no N x N product, only the read-out rows, top layer down: same maps."""
    attn = _random_attention(seed=7)
    layers = range(4)[start:end]
    expected = _reference_rollout(attn, fusion, ratio, keep_column=layout.class_index, layers=layers)
    rows = expected[:, 0] if layout.class_index is not None else expected[:, 1:].mean(axis=1)  # (L', N)
    result = rollout(attn, fusion, ratio, start, end, layout=layout)
    assert result.joint is None and result.cumulative is None and result.layers == tuple(layers)
    np.testing.assert_allclose(result.maps, rows[:, 1:].reshape(-1, 2, 3), atol=1e-12)
    np.testing.assert_allclose(result.prefix, rows[:, :1], atol=1e-12)
    assert result.readout == ("cls" if layout.class_index is not None else "mean_patches")
    with_joint = rollout(attn, fusion, ratio, start, end, layout=layout, keep_joint=True)
    np.testing.assert_allclose(with_joint.maps, result.maps, atol=1e-12)
    np.testing.assert_allclose(with_joint.prefix, result.prefix, atol=1e-12)


def test_readout_rows_of_a_longer_model_match_the_joint_path():
    """12 layers, 50 tokens: each step's row is its own chain, not the last layer's row repeated."""
    layout = TokenLayout(("cls",), (7, 7), (16, 16), (112, 112))
    attn = _random_attention(layers=12, heads=4, tokens=50, seed=8)
    fast = rollout(attn, "max", 0.7, layout=layout)
    slow = rollout(attn, "max", 0.7, layout=layout, keep_joint=True)
    np.testing.assert_allclose(fast.maps, slow.maps, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(slow.cumulative[:, 0, 1:].reshape(-1, 7, 7), fast.maps, rtol=1e-10, atol=1e-14)
    assert not np.allclose(fast.maps[0], fast.maps[-1])


def test_torch_and_list_inputs_equal_numpy():
    attn = _random_attention(seed=1)
    base = rollout(attn, layout=CLS_LAYOUT, keep_joint=True)
    as_list = rollout([torch.from_numpy(a).float() for a in attn], layout=CLS_LAYOUT, keep_joint=True)
    np.testing.assert_allclose(as_list.joint, base.joint, atol=1e-6)


def test_product_order_is_later_layer_on_the_left():
    attn = _random_attention(layers=2, seed=2)
    steps = [0.5 * np.eye(7) + 0.5 * a.mean(axis=0) for a in attn]
    result = rollout(attn, layout=CLS_LAYOUT, keep_joint=True)
    np.testing.assert_allclose(result.joint, steps[1] @ steps[0], atol=1e-12)
    assert not np.allclose(result.joint, steps[0] @ steps[1])


def test_identity_attention_gives_identity_rollout():
    attn = np.broadcast_to(np.eye(7), (3, 2, 7, 7))
    for fusion in ("mean", "max", "min"):
        result = rollout(attn, fusion, discard_ratio=0.5, layout=CLS_LAYOUT, keep_joint=True)
        np.testing.assert_allclose(result.cumulative, np.broadcast_to(np.eye(7), (3, 7, 7)), atol=1e-15)
        assert np.all(result.maps == 0) and np.all(result.prefix == 1)


def test_zero_discard_equals_plain_rollout():
    attn = _random_attention(seed=3)
    plain = rollout(attn, "max", layout=CLS_LAYOUT, keep_joint=True)
    zero = rollout(attn, "max", discard_ratio=0.0, layout=CLS_LAYOUT, keep_joint=True)
    np.testing.assert_array_equal(plain.cumulative, zero.cumulative)


def test_head_fusions_are_ordered_and_differ():
    attn = _random_attention(seed=4)
    fused = {f: fuse_heads(attn[0], f) for f in ("mean", "max", "min")}
    assert np.all(fused["max"] >= fused["mean"]) and np.all(fused["mean"] >= fused["min"])
    assert np.all(fused["max"] > fused["min"])
    maps = {f: rollout(attn, f, layout=CLS_LAYOUT).final_map for f in ("mean", "max", "min")}
    assert not np.allclose(maps["mean"], maps["max"]) and not np.allclose(maps["mean"], maps["min"])


def test_discard_never_drops_own_token_or_class_column():
    n = 7
    rng = np.random.default_rng(5)
    attn = rng.uniform(0.5, 1.0, size=(n, n))
    attn[np.arange(n), np.arange(n)] = 0.01  # own entries and the class column are each row's weakest
    attn[:, 0] = 0.001
    kept = discard_lowest(attn, 0.9, keep_column=0)
    assert np.all(np.diag(kept) > 0) and np.all(kept[:, 0] > 0)
    zeros = (kept == 0).sum(axis=1)
    assert zeros[0] == math.floor(0.9 * (n - 1))  # class row: only its own entry is protected
    assert np.all(zeros[1:] == math.floor(0.9 * (n - 2)))
    # the survivors are each row's largest discardable entries
    for i in range(1, n):
        free = [j for j in range(n) if j not in (0, i)]
        survivors = [j for j in free if kept[i, j] > 0]
        assert min(attn[i, survivors]) >= max(attn[i, [j for j in free if kept[i, j] == 0]])
    unprotected = discard_lowest(attn, 0.9)  # without a class column to keep, it goes first
    assert np.all(unprotected[1:, 0] == 0) and np.all(np.diag(unprotected) > 0)
    with pytest.raises(ValueError):
        discard_lowest(attn, 1.0)


def test_model_without_class_token_reads_mean_of_patch_rows():
    attn = _random_attention(seed=6)
    result = rollout(attn, layout=REG_LAYOUT)
    expected = _reference_rollout(attn, "mean", 0.0, keep_column=None, layers=range(4))
    assert result.readout == "mean_patches" and not result.from_class_token
    np.testing.assert_allclose(result.maps, expected[:, 1:, 1:].mean(axis=1).reshape(-1, 2, 3), atol=1e-12)
    np.testing.assert_allclose(result.prefix, expected[:, 1:, :1].mean(axis=1), atol=1e-12)
    bare = rollout(attn)  # without a layout: joint attention only
    assert bare.maps is None and bare.readout is None
    np.testing.assert_allclose(bare.joint, expected[-1], atol=1e-12)


def test_invalid_arguments():
    attn = _random_attention()
    with pytest.raises(ValueError, match="head_fusion"):
        rollout(attn, "median")
    with pytest.raises(ValueError, match="no layers"):
        rollout(attn, start_layer=3, end_layer=3)
    with pytest.raises(ValueError, match="does not match"):
        rollout(attn, layout=TokenLayout(("cls",), (2, 2), (16, 16), (32, 32)))


# ---- real model: capture path and gradient rollout ----

@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return timm.create_model("test_vit", pretrained=False, img_size=48, depth=3, num_classes=5).eval()


@pytest.fixture(scope="module")
def image():
    return torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(1))


class _LayerByLayer:
    """A Capture stand-in that only answers per-layer questions and counts them."""

    def __init__(self, cap):
        self._cap, self.calls = cap, []
        self.layout, self.num_layers, self.num_heads = cap.layout, cap.num_layers, cap.num_heads

    def fused_attention(self, layer, fusion="mean"):
        self.calls.append(layer)
        return self._cap.fused_attention(layer, fusion)

    def attention_row(self, layer, query):
        return self._cap.attention_row(layer, query)

    def attentions(self):
        raise AssertionError("rollout must not build the whole (L, H, N, N) tensor")


@pytest.mark.parametrize("storage", ["full", "qk"])
def test_rollout_from_capture_goes_layer_by_layer(model, image, storage):
    cap = capture(model, image, storage=storage)
    spy = _LayerByLayer(cap)
    result = rollout(spy, "max", 0.3, keep_joint=True)
    assert spy.calls == [0, 1, 2] and result.cumulative is None
    reference = rollout(capture(model, image, storage="full").attentions()[0], "max", 0.3, layout=cap.layout,
                        keep_joint=True)
    np.testing.assert_allclose(result.joint, reference.joint, atol=1e-6)
    np.testing.assert_allclose(result.maps, reference.maps, atol=1e-6)
    assert result.maps.shape == (3, 3, 3)


@pytest.mark.parametrize("storage", ["full", "qk"])
def test_rollout_rows_from_capture_visit_each_layer_once(model, image, storage):
    cap = capture(model, image, storage=storage)
    spy = _LayerByLayer(cap)
    result = rollout(spy, "mean", 0.5, start_layer=1)
    assert sorted(spy.calls) == [1, 2] and result.joint is None  # top layer first, each layer once
    reference = rollout(cap.attentions()[0], "mean", 0.5, start_layer=1, layout=cap.layout, keep_joint=True)
    np.testing.assert_allclose(result.maps, reference.maps, atol=1e-6)
    np.testing.assert_allclose(result.prefix, reference.prefix, atol=1e-6)


def _attention_and_grads(model, x, target):
    """Attention probabilities and d logit[target] / d attention, recorded by hand (no vitviz capture)."""
    saved, handles = [], []
    flags = [block.attn.fused_attn for block in model.blocks]
    for block in model.blocks:
        block.attn.fused_attn = False
        handles.append(block.attn.attn_drop.register_forward_hook(lambda m, i, o: saved.append(o)))
    try:
        logits = model(x)
        grads = torch.autograd.grad(logits[0, target], saved)
    finally:
        for h in handles:
            h.remove()
        for block, flag in zip(model.blocks, flags):
            block.attn.fused_attn = flag
    return [a[0].detach().double().numpy() for a in saved], [g[0].double().numpy() for g in grads]


def _reference_gradient_rollout(attns, grads):
    """Chefer et al. 2021 written out: Ā = mean_h max(0, ∇A ⊙ A); R ← R + Ā R from R = I."""
    n = attns[0].shape[-1]
    joint = np.eye(n)
    for attn, grad in zip(attns, grads):
        weighted = np.zeros((n, n))
        for h in range(attn.shape[0]):
            weighted += np.maximum(grad[h] * attn[h], 0.0) / attn.shape[0]
        joint = joint + weighted @ joint
    return joint


def test_gradient_rollout_matches_hand_computation(model, image):
    attns, grads = _attention_and_grads(model, image, target=2)
    expected = _reference_gradient_rollout(attns, grads)
    layout = TokenLayout.from_model(model)
    from_arrays = gradient_rollout(attns, grads, layout=layout, keep_joint=True)
    np.testing.assert_allclose(from_arrays.joint, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(from_arrays.final_map, expected[0, 1:].reshape(3, 3), rtol=1e-9, atol=1e-12)
    assert from_arrays.method == "gradient_rollout" and from_arrays.readout == "cls"
    # the same from vitviz's own capture (float32 there, so a looser tolerance)
    from_capture = gradient_rollout(capture(model, image, target=2), keep_joint=True)
    np.testing.assert_allclose(from_capture.joint, expected, rtol=1e-4, atol=1e-6)
    # the first steps equal the reference truncated to the first layers: gradients stay with their layer
    np.testing.assert_allclose(from_arrays.cumulative[0], _reference_gradient_rollout(attns[:1], grads[:1]),
                               atol=1e-12)
    assert not np.allclose(gradient_rollout(attns, grads[::-1], layout=layout, keep_joint=True).joint, expected)


@pytest.mark.parametrize("start, end", [(0, None), (1, None), (0, 2)])
def test_gradient_rollout_rows_match_hand_computation(model, image, start, end):
    """Default (no joint): each step's map equals the reference's class-token row over the same layers."""
    attns, grads = _attention_and_grads(model, image, target=2)
    layout = TokenLayout.from_model(model)
    layers = range(3)[start:end]
    result = gradient_rollout(attns, grads, start, end, layout=layout)
    assert result.joint is None and result.layers == tuple(layers)
    for k, last in enumerate(layers):
        expected = _reference_gradient_rollout(attns[layers[0]:last + 1], grads[layers[0]:last + 1])
        np.testing.assert_allclose(result.maps[k], expected[0, 1:].reshape(3, 3), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(result.prefix[k], expected[0, :1], rtol=1e-9, atol=1e-12)
    from_capture = gradient_rollout(capture(model, image, target=2), start_layer=start, end_layer=end)
    np.testing.assert_allclose(from_capture.maps, result.maps, rtol=1e-4, atol=1e-6)


def test_gradient_rollout_depends_on_target_class(model, image):
    first = gradient_rollout(capture(model, image, target=0)).final_map
    second = gradient_rollout(capture(model, image, target=3)).final_map
    assert not np.allclose(first, second, rtol=1e-3)


def test_gradient_rollout_checks_alignment(model, image):
    attns, grads = _attention_and_grads(model, image, target=1)
    with pytest.raises(ValueError, match="gradient layers"):
        gradient_rollout(attns, grads[:-1])
    with pytest.raises(ValueError, match="gradient shape"):
        gradient_rollout(attns, [g[:1] for g in grads])
    with pytest.raises(ValueError, match="needs the gradients"):
        gradient_rollout(attns)
    with pytest.raises(ValueError, match="no gradients"):
        gradient_rollout(capture(model, image))  # captured without a target


@pytest.mark.parametrize("fusion, ratio", [("mean", 0.0), ("max", 0.5), ("min", 0.3)])
def test_precomputed_steps_give_the_same_rollout_without_reading_attention(model, image, fusion, ratio):
    """``rollout_steps`` once, then any layer range from them: the same maps, and no layer read again."""
    from vitviz.analysis import rollout_steps

    cap = capture(model, image)
    spy = _LayerByLayer(cap)
    steps = rollout_steps(spy, fusion, ratio)
    assert sorted(spy.calls) == [0, 1, 2]
    for start, end in [(0, None), (1, None), (2, None), (0, 2)]:
        expected = rollout(cap, fusion, ratio, start, end)
        reused = rollout(spy, fusion, ratio, start, end, steps=steps)
        np.testing.assert_array_equal(reused.maps, expected.maps)
        np.testing.assert_array_equal(reused.prefix, expected.prefix)
        assert reused.layers == expected.layers
        joint = rollout(spy, fusion, ratio, start, end, steps=steps, keep_joint=True)
        np.testing.assert_allclose(joint.joint, rollout(cap, fusion, ratio, start, end, keep_joint=True).joint,
                                   rtol=1e-12)
    assert sorted(spy.calls) == [0, 1, 2], "rolling out again from the steps reads no attention"
    with pytest.raises(ValueError, match="2 step matrices for 3 layers"):
        rollout(cap, fusion, ratio, steps=steps[:2])


def test_precomputed_gradient_steps_give_the_same_rollout(model, image):
    from vitviz.analysis import gradient_rollout_steps

    cap = capture(model, image, target=2)
    steps = gradient_rollout_steps(cap)
    assert len(steps) == 3 and all(s.shape == (10, 10) for s in steps)
    attns, grads = _attention_and_grads(model, image, target=2)
    np.testing.assert_allclose(steps[1], _reference_gradient_rollout(attns[1:2], grads[1:2]), rtol=1e-4, atol=1e-6)
    for start, end in [(0, None), (1, None), (0, 2)]:
        expected = gradient_rollout(cap, start_layer=start, end_layer=end)
        reused = gradient_rollout(cap, start_layer=start, end_layer=end, steps=steps)
        np.testing.assert_array_equal(reused.maps, expected.maps)
        np.testing.assert_array_equal(reused.prefix, expected.prefix)
    from_arrays = gradient_rollout_steps(attns, grads)
    np.testing.assert_allclose(from_arrays[2], steps[2], rtol=1e-4, atol=1e-6)
