"""Capture records the model's real attention: proved against the model's own computation."""
from __future__ import annotations

import gc
import threading

import pytest
import timm
import torch
import torch.nn.functional as F

import vitviz.capture as capture_module
from vitviz.capture import AttentionRecorder, CaptureError, attention_modules, capture


def _model(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


def _inputs(model, batch: int = 2, seed: int = 1, size=None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    size = size or tuple(model.patch_embed.img_size)
    return torch.randn(batch, 3, *size, generator=generator)


# Cover class token (test_vit), registers + no class token + avg pool (test_vit2), and qk-norm / other
# variants (test_vit3/4); deit distilled and DINOv2 registers are real architectures shrunk to a small input.
MODELS = {
    "test_vit": dict(),
    "test_vit2": dict(),
    "test_vit3": dict(),
    "deit_tiny_distilled_patch16_224": dict(img_size=64),
    "vit_small_patch14_reg4_dinov2": dict(img_size=56, depth=3),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
    return _model(request.param, **MODELS[request.param])


def _hidden_hooks(model):
    """Independent record of every attention module's input and output (no vitviz code involved)."""
    seen = {"inputs": [], "outputs": []}
    handles = []
    for attn in attention_modules(model):
        def hook(_m, args, out, seen=seen):
            seen["inputs"].append(args[0].detach())
            seen["outputs"].append(out.detach())
        handles.append(attn.register_forward_hook(hook))
    return seen, handles


@pytest.mark.parametrize("storage", ["full", "qk"])
def test_output_with_capture_equals_plain_fused_forward(model, storage):
    x = _inputs(model)
    for attn in attention_modules(model):
        attn.fused_attn = True
    with torch.no_grad():
        plain = model(x)
    result = capture(model, x, storage=storage)
    assert result.storage == storage
    torch.testing.assert_close(result.output, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("storage", ["full", "qk"])
def test_attention_times_values_reproduces_each_layers_output(model, storage):
    """For every layer: captured A @ V (V recomputed from the block's qkv weights) → proj == block output."""
    x = _inputs(model)
    seen, handles = _hidden_hooks(model)
    try:
        result = capture(model, x, storage=storage)
    finally:
        for h in handles:
            h.remove()
    for layer, attn in enumerate(attention_modules(model)):
        inp, out = seen["inputs"][layer], seen["outputs"][layer]
        B, N, C = inp.shape
        qkv = F.linear(inp, attn.qkv.weight, attn.qkv.bias)
        v = qkv.reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)[2]  # (B, H, N, d)
        probs = result.attention(layer)  # (B, H, N, N)
        torch.testing.assert_close(probs.sum(-1), torch.ones(B, attn.num_heads, N), atol=1e-5, rtol=0)
        mixed = (probs @ v).transpose(1, 2).reshape(B, N, -1)  # (B, N, H*d)
        expected = attn.proj(attn.norm(mixed))
        torch.testing.assert_close(expected, out, atol=2e-5, rtol=1e-4)


def test_qk_storage_equals_full_storage(model):
    x = _inputs(model)
    full = capture(model, x, storage="full")
    qk = capture(model, x, storage="qk")
    for layer in range(full.num_layers):
        torch.testing.assert_close(qk.attention(layer), full.attention(layer), atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(qk.attention_row(layer, 3), full.attention(layer)[:, :, 3], atol=1e-6, rtol=1e-4)
        for fusion in ("mean", "max", "min"):
            torch.testing.assert_close(qk.fused_attention(layer, fusion), full.fused_attention(layer, fusion),
                                       atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(qk.hidden_states, full.hidden_states, atol=1e-5, rtol=1e-5)


def test_hidden_states_are_block_inputs_and_outputs(model):
    x = _inputs(model)
    result = capture(model, x)
    with torch.no_grad():
        tokens = model.norm_pre(model._pos_embed(model.patch_embed(x)))
        torch.testing.assert_close(result.hidden_states[:, 0], tokens, atol=1e-5, rtol=1e-5)
        for i, block in enumerate(model.blocks):
            tokens = block(tokens)
            torch.testing.assert_close(result.hidden_states[:, i + 1], tokens, atol=1e-4, rtol=1e-4)
    assert result.hidden_states.shape[:3] == (2, len(model.blocks) + 1, result.layout.num_tokens)


def test_flags_restored_and_hooks_removed_after_success_and_error(model):
    modules = attention_modules(model)
    flags = [i % 2 == 0 for i in range(len(modules))]  # mixed on purpose
    for m, flag in zip(modules, flags):
        m.fused_attn = flag
    model.train()  # capture runs in eval mode and gives the mode back
    capture(model, _inputs(model))
    assert [m.fused_attn for m in modules] == flags and model.training
    bad = torch.randn(1, 5, *model.patch_embed.img_size)  # wrong channel count: fails inside forward
    with pytest.raises(RuntimeError):
        capture(model, bad)
    assert [m.fused_attn for m in modules] == flags and model.training
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    model.eval()
    for m in modules:
        m.fused_attn = True


def test_hook_that_never_fires_is_an_error():
    model = _model("test_vit")
    recorder = AttentionRecorder(model)
    with recorder:
        model.blocks[0](model._pos_embed(model.patch_embed(_inputs(model))))  # only layer 0 runs
        with pytest.raises(CaptureError, match="layer 1"):
            recorder.check_fired()
    assert all(not m._forward_hooks for m in model.modules())


def test_unsupported_attention_module_is_refused():
    model = _model("test_vit")
    model.blocks[1].attn = torch.nn.MultiheadAttention(64, 2)  # no unfused path through attn_drop
    with pytest.raises(CaptureError, match="block 1 uses MultiheadAttention"):
        capture(model, _inputs(model))


def test_relative_position_models_are_captured_too():
    model = _model("test_vit_relpos")
    x = _inputs(model, batch=1)
    with torch.no_grad():
        plain = model(x)
    result = capture(model, x)
    torch.testing.assert_close(result.output, plain, atol=1e-5, rtol=1e-5)
    assert result.layout.num_prefix_tokens == model.num_prefix_tokens
    assert result.layout.num_tokens == result.attention(0).shape[-1]


def test_eva_rope_models_use_the_exact_path():
    """EVA applies RoPE between q_norm and the softmax, so only the unfused path is exact there."""
    model = _model("eva02_tiny_patch14_224", img_size=56, depth=2)
    x = _inputs(model, batch=1)
    with torch.no_grad():
        plain = model(x)
    result = capture(model, x)
    assert result.storage == "full"
    torch.testing.assert_close(result.output, plain, atol=1e-5, rtol=1e-5)
    attn = result.attention(1)
    torch.testing.assert_close(attn.sum(-1), torch.ones(attn.shape[:-1]), atol=1e-5, rtol=0)
    with pytest.raises(CaptureError, match="qk"):
        capture(model, x, storage="qk")


def test_gradients_match_finite_differences():
    """d output[target] / d A_l, checked by nudging layer l's attention through a hook."""
    model = _model("test_vit")
    x = _inputs(model, batch=1)
    target, layer = 7, 1
    result = capture(model, x, target=target)
    grad = result.attention_grad(layer)[0]  # (H, N, N)
    direction = torch.randn(grad.shape, generator=torch.Generator().manual_seed(3))
    eps = 1e-3

    def nudged_output(sign: float) -> float:
        attn = attention_modules(model)[layer]
        handle = attn.attn_drop.register_forward_hook(lambda m, a, out: out + sign * eps * direction)
        attn.fused_attn = False
        try:
            with torch.no_grad():
                return model(x)[0, target].item()
        finally:
            handle.remove()
            attn.fused_attn = True

    numeric = (nudged_output(1.0) - nudged_output(-1.0)) / (2 * eps)
    analytic = (grad * direction).sum().item()
    assert analytic == pytest.approx(numeric, rel=2e-2, abs=1e-4)
    assert result.target == (target,)
    other = capture(model, x, target=target + 1)
    assert not torch.allclose(other.attention_grad(layer), result.attention_grad(layer))


def test_auto_storage_switches_to_qk_for_large_token_counts(monkeypatch):
    model = _model("test_vit")
    x = _inputs(model, batch=1)
    assert capture(model, x).storage == "full"
    monkeypatch.setattr(capture_module, "FULL_STORAGE_BUDGET", 1024)
    big = capture(model, x)
    assert big.storage == "qk" and big._probs is None
    with pytest.raises(CaptureError, match="too large"):  # gradients need the real matrices: refused
        capture(model, x, target=1)
    monkeypatch.setattr(capture_module, "FULL_STORAGE_BUDGET", 256 * 2**20)
    assert capture(model, x, target=1).storage == "full"


@pytest.mark.parametrize(
    "name, kwargs, size, prefix, grid",
    [
        ("test_vit", {}, (160, 160), ("cls",), (10, 10)),
        ("test_vit2", {}, (160, 160), ("reg0",), (10, 10)),
        ("deit_tiny_distilled_patch16_224", dict(img_size=64), (64, 64), ("cls", "dist"), (4, 4)),
        ("vit_small_patch14_reg4_dinov2", dict(img_size=56, depth=2), (56, 56),
         ("cls", "reg0", "reg1", "reg2", "reg3"), (4, 4)),
        ("test_vit", dict(dynamic_img_size=True), (96, 160), ("cls",), (6, 10)),  # non-square
        ("vit_small_patch16_224", dict(img_size=(48, 80), depth=2), (48, 80), ("cls",), (3, 5)),
    ],
)
def test_layout_matches_the_tokens_the_model_produced(name, kwargs, size, prefix, grid):
    model = _model(name, **kwargs)
    result = capture(model, _inputs(model, batch=1, size=size))
    layout = result.layout
    assert layout.prefix_names == prefix and layout.grid_size == grid
    assert layout.num_tokens == result.num_tokens == result.attention(0).shape[-1]
    assert layout.class_index == (0 if "cls" in prefix else None)
    assert layout.input_size == size


def test_concurrent_captures_on_one_model_match_sequential_results():
    model = _model("test_vit")
    inputs = [_inputs(model, batch=1, seed=s) for s in range(8)]
    sequential = [capture(model, x) for x in inputs]
    results: list = [None] * 8
    errors: list = []
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = capture(model, inputs[i], storage="qk" if i % 2 else "full")
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and all(r is not None for r in results)
    for alone, together in zip(sequential, results):
        torch.testing.assert_close(together.output, alone.output, atol=1e-5, rtol=1e-5)
        for layer in range(alone.num_layers):
            torch.testing.assert_close(together.attention(layer), alone.attention(layer), atol=1e-6, rtol=1e-4)


def test_plain_forward_from_another_thread_is_not_recorded():
    model = _model("test_vit")
    x = _inputs(model, batch=1)
    with AttentionRecorder(model) as recorder:
        other = threading.Thread(target=lambda: model(x))
        other.start()
        other.join()
        assert all(len(bucket) == 0 for bucket in recorder.probs)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_no_memory_growth_over_100_captures():
    model = _model("test_vit")
    x = _inputs(model, batch=1)
    for _ in range(10):
        capture(model, x)
    gc.collect()
    before = _rss_bytes()
    for _ in range(100):
        capture(model, x)
    gc.collect()
    grown = _rss_bytes() - before
    one_capture = 6 * 101 * 101 * 4 * 2  # generous reference: a few captures' worth may stay in allocators
    assert grown < 30 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB ({one_capture} B per capture)"


def test_batches_are_captured_item_by_item():
    model = _model("test_vit")
    x = _inputs(model, batch=3)
    batched = capture(model, x)
    for i in range(3):
        alone = capture(model, x[i : i + 1])
        torch.testing.assert_close(batched.attention(2)[i : i + 1], alone.attention(2), atol=1e-6, rtol=1e-4)


def test_bad_arguments():
    model = _model("test_vit")
    with pytest.raises(ValueError, match="batch"):
        capture(model, torch.randn(3, 160, 160))
    with pytest.raises(ValueError, match="targets"):
        capture(model, _inputs(model, batch=2), target=[1, 2, 3])
    result = capture(model, _inputs(model, batch=1))
    with pytest.raises(IndexError):
        result.attention(99)
    with pytest.raises(ValueError, match="no gradients"):
        result.attention_grad(0)
    with pytest.raises(ValueError, match="fusion"):
        result.fused_attention(0, "median")


def test_gradients_work_on_a_frozen_model_from_load_model():
    from vitviz.models import load_model

    loaded = load_model("test_vit", pretrained=False)
    assert not any(p.requires_grad for p in loaded.model.parameters())
    result = capture(loaded.model, _inputs(loaded.model, batch=1), target=2)
    assert all(result.attention_grad(i).abs().sum() > 0 for i in range(result.num_layers))
    assert not any(p.requires_grad for p in loaded.model.parameters())
