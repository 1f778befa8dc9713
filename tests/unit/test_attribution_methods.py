"""Gradient and LRP attribution methods: what each paper promises, on every token layout.

Shared contract (every method x every layout): the map lies on the model's own patch grid, the model is
left exactly as it was (logits, hooks, swapped forwards, parameter gradients), also after an injected
error, class-specific maps depend on the target, and a call costs what ``passes`` says.
"""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from torch import nn

from vitviz.attribution import METHODS, get_method
from vitviz.layout import TokenLayout

GRADIENT_METHODS = ["chefer2021", "gradcam_attn", "gradcam", "cp_lrp", "attnlrp", "input_gradient",
                    "integrated_gradients"]

# Every token layout a well-known tool broke on: class token, registers, distillation token, no class
# token (average pooling), non-square input.
LAYOUTS = {
    "cls": ("vit_tiny_patch16_224", dict(img_size=32)),
    "registers": ("vit_tiny_patch16_224", dict(img_size=32, reg_tokens=4)),
    "distilled": ("deit_tiny_distilled_patch16_224", dict(img_size=32)),
    "avg_no_cls": ("vit_tiny_patch16_224", dict(img_size=32, class_token=False, global_pool="avg")),
    "non_square": ("vit_tiny_patch16_224", dict(img_size=(32, 48))),
}


def make_model(layout: str, depth: int = 2, num_classes: int = 5, seed: int = 0) -> nn.Module:
    name, kwargs = LAYOUTS[layout]
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, depth=depth, num_classes=num_classes, **kwargs).eval()


def make_input(model: nn.Module, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, *model.patch_embed.img_size, generator=generator).to(dtype)


def fast_method(key: str):
    """The registered method; integrated gradients with 4 steps where its step count does not matter."""
    from vitviz.attribution.integrated_gradients import IntegratedGradients

    return IntegratedGradients(steps=4) if key == "integrated_gradients" else get_method(key)


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def layout_model(request):
    return request.param, make_model(request.param)


def _model_state(model: nn.Module) -> list:
    """Everything a method could leave behind: hooks, instance forwards, parameter gradients, flags."""
    state = []
    for name, module in model.named_modules():
        state.append((name, len(module._forward_hooks), len(module._forward_pre_hooks),
                      len(module._backward_hooks), len(getattr(module, "_backward_pre_hooks", {})),
                      "forward" in module.__dict__, getattr(module, "fused_attn", None), module.training))
    state.extend((name, p.grad is None, p.requires_grad) for name, p in model.named_parameters())
    return state


@pytest.mark.parametrize("key", GRADIENT_METHODS)
def test_map_on_the_model_grid_and_model_untouched(layout_model, key):
    layout_name, model = layout_model
    x = make_input(model)
    with torch.no_grad():
        before = model(x)
    state = _model_state(model)
    relevance = fast_method(key).attribute(model, x, target=3)
    layout = TokenLayout.from_model(model, tuple(x.shape[-2:]))
    assert relevance.patches.shape == layout.grid_size
    assert relevance.layout == layout and relevance.target == 3 and relevance.method == key
    assert np.isfinite(relevance.patches).all()
    # Attention Grad-CAM keeps the positive part of a head-weighted mean: on a random 2x2-patch model it is
    # often 0 everywhere (tests/unit/test_gradcam_attn.py checks when); every other map is never all zero.
    assert key == "gradcam_attn" or np.abs(relevance.patches).sum() > 0
    if relevance.pixels is not None:
        assert relevance.pixels.shape == tuple(x.shape[-2:])
        ph, pw = layout.patch_size
        assert relevance.patches[-1, -1] == pytest.approx(relevance.pixels[-ph:, -pw:].sum())
    assert _model_state(model) == state
    with torch.no_grad():
        assert torch.equal(model(x), before)


@pytest.mark.parametrize("key", GRADIENT_METHODS)
def test_map_depends_on_the_target_class(layout_model, key):
    _, model = layout_model
    x = make_input(model)
    maps = [fast_method(key).attribute(model, x, target=t).patches for t in (0, 1, 2)]
    if key == "gradcam_attn":  # its positive part is often all zero on these tiny models: compare before it
        from vitviz.attribution.gradcam_attn import attention_gradcam_map, last_attention_and_gradient

        layout = TokenLayout.from_model(model, tuple(x.shape[-2:]))
        maps = [attention_gradcam_map(*last_attention_and_gradient(model, x, t, key)[:2], layout, positive=False)
                for t in (0, 1, 2)]
    assert get_method(key).class_specific
    assert not (np.allclose(maps[0], maps[1]) and np.allclose(maps[1], maps[2]))


@pytest.mark.parametrize("key", GRADIENT_METHODS)
def test_default_target_is_the_top_class_without_an_extra_pass(key):
    model = make_model("cls")
    x = make_input(model)
    with torch.no_grad():
        top = int(model(x)[0].argmax())
    calls = []
    handle = model.patch_embed.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
    try:
        relevance = get_method(key).attribute(model, x)
    finally:
        handle.remove()
    assert relevance.target == top
    expected = get_method(key).steps + 1 if key == "integrated_gradients" else 1
    assert sum(calls) == expected  # images through the network: one forward (IG: its path points)


@pytest.mark.parametrize("key", GRADIENT_METHODS)
def test_cost_is_one_forward_and_one_backward(key):
    model = make_model("cls")
    x = make_input(model)
    forwards, backwards = [], []
    handles = [
        model.register_forward_pre_hook(lambda _m, args: forwards.append(args[0].shape[0])),
        model.head.register_full_backward_hook(lambda _m, gin, gout: backwards.append(gout[0].shape[0])),
    ]
    try:
        get_method(key).attribute(model, x, target=1)
    finally:
        for handle in handles:
            handle.remove()
    method = get_method(key)
    if key == "integrated_gradients":
        assert sum(forwards) == sum(backwards) == method.steps + 1
        assert f"{method.steps + 1} forward" in method.passes
    else:
        assert forwards == backwards == [1]
        assert method.passes.startswith("1 forward + 1 backward")


@pytest.mark.parametrize("key", GRADIENT_METHODS)
def test_everything_restored_after_an_injected_error(key):
    model = make_model("registers")
    x = make_input(model)
    with torch.no_grad():
        before = model(x)
    state = _model_state(model)

    def boom(_module, _args, _output):
        raise RuntimeError("injected")

    handle = model.blocks[-1].mlp.fc2.register_forward_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="injected"):
            fast_method(key).attribute(model, x, target=0)
    finally:
        handle.remove()
    assert _model_state(model) == state
    with torch.no_grad():
        assert torch.equal(model(x), before)


@pytest.mark.parametrize("key", GRADIENT_METHODS)
def test_clear_errors(key):
    model = make_model("cls")
    with pytest.raises(ValueError, match="one image"):
        get_method(key).attribute(model, torch.zeros(2, 3, 32, 32), target=0)
    with pytest.raises(ValueError, match="out of range"):
        get_method(key).attribute(model, make_input(model), target=99)
    with pytest.raises(ValueError, match="out of range"):  # never counted from the end
        get_method(key).attribute(model, make_input(model), target=-1)
    headless = make_model("cls", num_classes=0)
    with pytest.raises(ValueError, match="classifier"):
        get_method(key).attribute(headless, make_input(headless))


# --- CP-LRP (AttnLRP as published: tests/unit/test_attnlrp_published.py) ---------------------------------------

def _zero_biases(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.zero_()
    return model


@pytest.mark.parametrize("layout_name", sorted(LAYOUTS))
def test_cp_lrp_conserves_the_logit_exactly_without_biases(layout_name):
    """With every bias zero the CP-LRP network is linear in (pixels, position embedding, prefix tokens),
    so gradient x input sums to the logit exactly (Euler): tolerance 1e-9 in float64."""
    from vitviz.attribution.conservation import decompose_logit

    model = _zero_biases(make_model(layout_name)).double()
    x = make_input(model, dtype=torch.float64)
    for target in (0, 4):
        result = decompose_logit(model, x, target, method="cp_lrp")
        with torch.no_grad():
            assert result.logit == pytest.approx(float(model(x)[0, target]), abs=1e-12)
        inputs = result.patches + result.position + sum(result.prefix.values())
        assert inputs == pytest.approx(result.logit, rel=1e-9, abs=1e-12)
        relevance = get_method("cp_lrp").attribute(model, x, target)
        assert relevance.total + result.position == pytest.approx(result.logit, rel=1e-9, abs=1e-12)


def test_cp_lrp_conserves_the_logit_with_biases_counting_their_share():
    """With biases, the bias terms hold the rest: Σ input + Σ bias ⊙ ∂logit/∂bias = logit (1e-9)."""
    from vitviz.attribution.conservation import decompose_logit
    from vitviz.attribution.cp_lrp import cp_lrp_rules

    model = make_model("registers").double()
    x = make_input(model, dtype=torch.float64)
    result = decompose_logit(model, x, 2, method="cp_lrp")
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    with cp_lrp_rules(model), torch.enable_grad():
        score = model(x)[0, 2]
        grads = torch.autograd.grad(score, biases)
    bias_share = sum(float((b.detach() * g).sum()) for b, g in zip(biases, grads))
    inputs = result.patches + result.position + sum(result.prefix.values())
    assert inputs + bias_share == pytest.approx(result.logit, rel=1e-9)
    assert bias_share == pytest.approx(sum(result.biases.values()), rel=1e-9)


def test_cp_lrp_one_block_equals_a_hand_linearisation():
    """One block, biases zero: relevance of the token sequence equals z ⊙ ∇ of the network written out by
    hand with the attention matrix, LayerNorm scales and GELU ratios frozen at their forward values."""
    from vitviz.attribution.cp_lrp import cp_lrp_rules

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=1, num_heads=2, embed_dim=8,
                              num_classes=3, pretrained=False).eval().double()
    _zero_biases(model)
    x = make_input(model, dtype=torch.float64)
    block, attn = model.blocks[0], model.blocks[0].attn
    with torch.no_grad():
        z = model._pos_embed(model.patch_embed(x))  # (1, N, D) sequence entering the block
    n, d, heads = z.shape[1], z.shape[2], attn.num_heads

    def std(t):
        return torch.sqrt(t.var(-1, unbiased=False, keepdim=True) + 1e-6)

    # Forward values, frozen.
    h1 = (z - z.mean(-1, keepdim=True)) / std(z) * block.norm1.weight
    q, k, _ = (h1 @ attn.qkv.weight.T).reshape(1, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    probs = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(-1)  # (1, H, N, N)
    mid = z + block.attn(block.norm1(z))
    s1, s_mid = std(z), std(mid)
    h2 = (mid - mid.mean(-1, keepdim=True)) / s_mid * block.norm2.weight
    pre = h2 @ block.mlp.fc1.weight.T
    ratio = torch.nn.functional.gelu(pre) / pre
    out = mid + block.mlp(block.norm2(mid))
    s_out = std(out)

    def linear_net(t):
        c1 = (t - t.mean(-1, keepdim=True)) / s1 * block.norm1.weight
        v = (c1 @ attn.qkv.weight.T).reshape(1, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)[2]
        a = (probs @ v).transpose(1, 2).reshape(1, n, d) @ attn.proj.weight.T
        m = t + a
        c2 = (m - m.mean(-1, keepdim=True)) / s_mid * block.norm2.weight
        o = m + ((c2 @ block.mlp.fc1.weight.T) * ratio) @ block.mlp.fc2.weight.T
        c3 = (o - o.mean(-1, keepdim=True)) / s_out * model.norm.weight
        return c3[:, 0] @ model.head.weight.T  # (1, classes)

    leaf = z.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(linear_net(leaf)[0, 1], leaf)
    with cp_lrp_rules(model), torch.enable_grad():
        leaf2 = z.clone().requires_grad_(True)
        hidden = model.norm(model.blocks(leaf2))
        (actual,) = torch.autograd.grad(model.forward_head(hidden)[0, 1], leaf2)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12)
    assert float((z * actual).sum()) == pytest.approx(float(linear_net(z)[0, 1].detach()), rel=1e-10)


def test_lrp_rules_keep_the_values_and_change_only_the_gradients():
    from vitviz.attribution._rules import identity_rule_forward
    from vitviz.attribution._rules import norm_forward as layer_norm_cp_forward

    torch.manual_seed(0)
    norm = nn.LayerNorm(6).double()
    nn.init.normal_(norm.weight)
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    y = layer_norm_cp_forward(norm)(x)
    torch.testing.assert_close(y, norm(x))
    g = torch.randn(4, 6, dtype=torch.float64)
    (grad,) = torch.autograd.grad(y, x, g)
    s = torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + norm.eps)
    wg = norm.weight * g
    torch.testing.assert_close(grad, (wg - wg.mean(-1, keepdim=True)) / s)  # centring only, 1/std constant

    act = nn.GELU()
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    y = identity_rule_forward(act)(x)
    torch.testing.assert_close(y, act(x))
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(x * grad, act(x).detach())  # identity rule: relevance in = relevance out


@pytest.mark.parametrize("key", ["cp_lrp", "attnlrp"])
def test_lrp_methods_refuse_models_their_rules_do_not_cover(key):
    model = timm.create_model("test_vit3", pretrained=False).eval()  # attention pooling head
    x = make_input(model)
    with pytest.raises(ValueError, match="attention pooling"):
        get_method(key).attribute(model, x, target=0)
    assert all("forward" not in m.__dict__ for m in model.modules())


# --- Grad-CAM --------------------------------------------------------------------------------------------

def test_gradcam_map_hand_checked():
    from vitviz.attribution.gradcam import gradcam_map

    tokens = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]])  # 3 patches, 2 channels
    grads = torch.tensor([[3.0, 0.0], [0.0, -3.0], [0.0, 0.0]])  # mean: w = (1, -1)
    torch.testing.assert_close(gradcam_map(tokens, grads), torch.tensor([1.0, 0.0, 0.0]))  # ReLU(1, -2, -2)


def test_gradcam_equals_a_manual_forward():
    """Independent reference: the model's forward written out with the last block's norm1 output as a leaf."""
    model = make_model("cls", depth=3)
    x = make_input(model)
    with torch.no_grad():
        h = model.norm_pre(model._pos_embed(model.patch_embed(x)))
        for block in model.blocks[:-1]:
            h = block(h)
    last = model.blocks[-1]
    t = last.norm1(h).detach().requires_grad_(True)
    mid = h + last.ls1(last.attn(t))
    out = mid + last.ls2(last.mlp(last.norm2(mid)))
    score = model.forward_head(model.norm(out))[0, 2]
    (grad,) = torch.autograd.grad(score, t)
    weights = grad[0, 1:].mean(0)
    expected = torch.relu(t[0, 1:].detach() @ weights).reshape(2, 2).double().numpy()
    relevance = get_method("gradcam").attribute(model, x, target=2)
    np.testing.assert_allclose(relevance.patches, expected, rtol=1e-5, atol=1e-7)
    assert (relevance.patches >= 0).all()


# --- Input gradient ----------------------------------------------------------------------------------------

def test_input_gradient_is_max_abs_gradient_summed_per_patch():
    model = make_model("non_square")
    x = make_input(model).requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[0, 4], x)
    pixels = grad[0].abs().amax(0).double().numpy()  # (32, 48)
    expected = pixels.reshape(2, 16, 3, 16).sum(axis=(1, 3))
    relevance = get_method("input_gradient").attribute(model, x.detach(), target=4)
    np.testing.assert_allclose(relevance.pixels, pixels, rtol=1e-6)
    np.testing.assert_allclose(relevance.patches, expected, rtol=1e-6)


# --- Integrated gradients --------------------------------------------------------------------------------

def test_integrated_gradients_exact_on_a_linear_model():
    """For f(x) = w·x the gradient is constant: IG = (x - x') ⊙ w whatever the step count."""
    from vitviz.attribution.integrated_gradients import integrated_gradients

    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    x, baseline = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    result = integrated_gradients(linear, x, 1, baseline=baseline, steps=3)
    expected = (x - baseline).double() * linear[1].weight[1].detach().double().view(1, 3, 4, 4)
    torch.testing.assert_close(result.attributions, expected)
    assert abs(result.completeness_gap) < 1e-5


def test_integrated_gradients_completeness_on_a_vit():
    """Σ IG = f(x) - f(black) up to the trapezoid error: ≤ 1 % at the default 32 steps, and shrinking."""
    from vitviz.attribution.integrated_gradients import black_baseline, integrated_gradients

    model = make_model("registers")
    x = make_input(model)
    gaps = []
    for steps in (4, 32):
        result = integrated_gradients(model, x, 3, steps=steps)
        with torch.no_grad():
            assert result.score == pytest.approx(float(model(x)[0, 3]), rel=1e-5)
            assert result.baseline_score == pytest.approx(float(model(black_baseline(model, x))[0, 3]), rel=1e-5)
        gaps.append(abs(result.completeness_gap))
    assert gaps[1] <= 0.01 * abs(result.score - result.baseline_score)
    assert gaps[1] < gaps[0]
    relevance = get_method("integrated_gradients").attribute(model, x, target=3)
    assert relevance.patches.sum() == pytest.approx(float(result.attributions.sum()), rel=1e-4)


def test_black_baseline_is_zero_in_pixel_space():
    from vitviz.attribution.integrated_gradients import black_baseline
    from vitviz.images import data_config

    model = make_model("cls")
    config = data_config(model)
    baseline = black_baseline(model, make_input(model))
    pixels = baseline[0, :, 0, 0] * torch.tensor(config["std"]) + torch.tensor(config["mean"])
    torch.testing.assert_close(pixels, torch.zeros(3))


# --- Registry ------------------------------------------------------------------------------------------

def test_registry_order_and_facts():
    assert list(METHODS) == ["attention", "rollout", "gradient_rollout", "chefer2021", "gradcam_attn", "gradcam",
                             "cp_lrp", "attnlrp", "input_gradient", "integrated_gradients", "random"]
    for key in GRADIENT_METHODS:
        method = METHODS[key]
        assert method.key == key and method.title and method.paper and method.class_specific
        assert method.reads_head
    assert "32 trapezoid steps" in METHODS["integrated_gradients"].passes


# --- Chefer et al. 2021 ------------------------------------------------------------------------------------

def test_lrp_linear_zplus_hand_checked():
    from vitviz.attribution._lrp import linear_zplus

    x = torch.tensor([1.0, -2.0])
    weight = torch.tensor([[1.0, -1.0], [2.0, 3.0]])
    # output 0: positive contributions x⁺w⁺ = 1·1 and x⁻w⁻ = (-2)(-1) = 2, z⁺ = 3; output 1 gets no relevance
    torch.testing.assert_close(linear_zplus(x, weight, torch.tensor([1.0, 0.0])), torch.tensor([1 / 3, 2 / 3]))
    # bias-free z⁺ ignores negative contributions: output 1 has x⁺w⁺ = 2 only (x⁻w⁺ = -6 is dropped)
    torch.testing.assert_close(linear_zplus(x, weight, torch.tensor([0.0, 5.0])), torch.tensor([5.0, 0.0]))


def test_lrp_add_split_hand_checked():
    from vitviz.attribution._lrp import add_split

    # c = a + b = (-1, 0); z rule gives a: -1, b: 2 (sum 1, not the 2 arriving: c₂ = 0 loses its share);
    # renormalised to the absolute shares 1/3 and 2/3 of the total 2.
    r_a, r_b = add_split(torch.tensor([1.0, 0.0]), torch.tensor([-2.0, 0.0]), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(r_a, torch.tensor([2 / 3, 0.0]))
    torch.testing.assert_close(r_b, torch.tensor([4 / 3, 0.0]))


def test_lrp_matmul_z_is_halved_gradient_times_input():
    """Independent reference: the z rule as x ⊙ ∂(Z · stop(R/Z))/∂x, by autograd, halved per operand."""
    from vitviz.attribution._lrp import matmul_z

    generator = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 4, generator=generator, dtype=torch.float64).requires_grad_(True)
    b = torch.randn(2, 4, 5, generator=generator, dtype=torch.float64).requires_grad_(True)
    relevance = torch.randn(2, 3, 5, generator=generator, dtype=torch.float64)
    z = a @ b
    grad_a, grad_b = torch.autograd.grad(z, [a, b], relevance / z.detach())
    r_a, r_b = matmul_z(a.detach(), b.detach(), relevance)
    torch.testing.assert_close(r_a, a.detach() * grad_a / 2)
    torch.testing.assert_close(r_b, b.detach() * grad_b / 2)
    assert float(r_a.sum() + r_b.sum()) == pytest.approx(float(relevance.sum()))


def test_chefer_aggregate_hand_checked():
    from vitviz.attribution.chefer2021 import aggregate

    grads = torch.ones(2, 2, 2, 2, dtype=torch.float64)
    cams = torch.tensor([[[[1.0, -1.0], [0.0, 2.0]], [[3.0, 1.0], [0.0, 0.0]]],
                         [[[0.0, 0.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]], dtype=torch.float64)
    first = torch.eye(2) + torch.tensor([[2.0, 0.5], [0.0, 1.0]])  # I + mean_h(relu)
    second = first + torch.tensor([[0.0, 0.0], [1.0, 0.0]]) @ first  # R ← R + Ā·R
    torch.testing.assert_close(aggregate(grads, cams), second.double())
    # the gradient weighs the relevance: a negative gradient switches a head's positive relevance off
    torch.testing.assert_close(aggregate(-grads[:1], cams[:1]), torch.eye(2, dtype=torch.float64)
                               + torch.tensor([[0.0, 0.5], [0.0, 0.0]], dtype=torch.float64))


@pytest.mark.parametrize("layout_name", sorted(LAYOUTS))
def test_chefer_lrp_conserves_relevance_through_every_block(layout_name):
    """Relevance 1 at the target logit reaches every block's input intact (αβ, z and addition rules all
    conserve): tolerance 1e-9 in float64, 1e-4 in float32."""
    from vitviz.attribution.chefer2021 import chefer_relevance

    model = make_model(layout_name, depth=3)
    result = chefer_relevance(model, make_input(model), 2)
    np.testing.assert_allclose(result.input_totals, 1.0, atol=1e-4)
    model = model.double()
    result = chefer_relevance(model, make_input(model, dtype=torch.float64), 2)
    np.testing.assert_allclose(result.input_totals, 1.0, atol=1e-9)
    assert result.readout.sum() == pytest.approx(1.0, abs=1e-9)
    assert (result.attention_totals != 0).all()


def test_chefer_class_token_model_reads_the_class_token_row():
    """With class-token pooling only the class token reaches the head: its LRP relevance is all 1 there, the
    map is the class row of R (the authors' read-out), and the last block's attention relevance lies in the
    class token's row only."""
    from vitviz.attribution.chefer2021 import _Recorder, chefer_relevance, lrp_attention_relevance

    model = make_model("cls", depth=3)
    x = make_input(model)
    result = chefer_relevance(model, x, 1)
    expected_readout = np.zeros(5)
    expected_readout[0] = 1.0
    np.testing.assert_allclose(result.readout, expected_readout, atol=1e-6)
    relevance = get_method("chefer2021").attribute(model, x, target=1)
    np.testing.assert_allclose(relevance.patches.ravel(), result.joint[0, 1:], rtol=1e-6)
    assert relevance.prefix["cls"] == pytest.approx(result.joint[0, 0])
    with torch.no_grad(), _Recorder(model) as rec:
        model(x)
    cams, _, _ = lrp_attention_relevance(model, rec, 1)
    assert cams[-1][:, 1:].abs().max() == 0 and cams[-1][:, 0].abs().max() > 0


def _z_rule(fn, operands, relevance):
    """Reference z rule by autograd: each operand ⊙ ∂(fn(operands) · stop(R / fn(operands)))/∂operand."""
    operands = [t.detach().requires_grad_(True) for t in operands]
    with torch.enable_grad():
        z = fn(*operands)
        grads = torch.autograd.grad(z, operands, relevance / z.detach())
    return [t.detach() * g for t, g in zip(operands, grads)]


def _zplus(x, weight, relevance):
    """Reference αβ (α = 1, β = 0): the z rule of the positive-contribution layer x⁺W⁺ᵀ + x⁻W⁻ᵀ."""
    w_pos, w_neg = weight.clamp(min=0), weight.clamp(max=0)
    r_pos, r_neg = _z_rule(lambda a, b: a @ w_pos.T + b @ w_neg.T, [x.clamp(min=0), x.clamp(max=0)], relevance)
    return r_pos + r_neg


def _add(a, b, relevance):
    r_a, r_b = _z_rule(torch.add, [a, b], relevance)
    sa, sb = r_a.sum(), r_b.sum()
    total = relevance.sum()
    return r_a * (sa.abs() / (sa.abs() + sb.abs()) * total / sa), r_b * (sb.abs() / (sa.abs() + sb.abs()) * total / sb)


def test_chefer_one_block_equals_a_reference_written_from_the_paper():
    """Independent reference: the forward recomputed from the parameters (no hooks), every rule as a
    z rule taken by autograd (the paper's Eq. 4-11), Ā = mean_h((∇A ⊙ R_A)⁺), map = row 0 of I + Ā."""
    torch.manual_seed(3)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=1, num_heads=3, num_classes=4,
                              pretrained=False).eval().double()
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 1:
                param.add_(0.1 * torch.randn_like(param))
    x = make_input(model, dtype=torch.float64)
    block, attn = model.blocks[0], model.blocks[0].attn
    n_heads, target = attn.num_heads, 2
    with torch.no_grad():
        z0 = model._pos_embed(model.patch_embed(x))[0]  # (N, D)
        n, d = z0.shape
        h1 = block.norm1(z0)
        q, k, v = attn.qkv(h1).reshape(n, 3, n_heads, -1).permute(1, 2, 0, 3)  # (H, N, d) each
    probs = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(-1).requires_grad_(True)  # (H, N, N)
    with torch.enable_grad():
        o = (probs @ v).transpose(0, 1).reshape(n, d)
        mid = z0 + attn.proj(o)
        hidden = block.mlp.act(block.mlp.fc1(block.norm2(mid)))
        out = mid + block.mlp.fc2(hidden)
        tokens = model.norm(out)
        logit = model.head(tokens[0])[target]
        (grad_probs,) = torch.autograd.grad(logit, probs)
    with torch.no_grad():
        tokens, mid, hidden, out, o = tokens.detach(), mid.detach(), hidden.detach(), out.detach(), o.detach()
        one_hot = torch.zeros(4, dtype=torch.float64)
        one_hot[target] = 1
        r_out = torch.zeros(n, d, dtype=torch.float64)
        r_out[0] = _zplus(tokens[0], model.head.weight, one_hot)
        r_mid, r_mlp = _add(mid, out - mid, r_out)
        r_hidden = _zplus(hidden, block.mlp.fc2.weight, r_mlp)
        r_mid = r_mid + _zplus(block.norm2(mid), block.mlp.fc1.weight, r_hidden)
        _, r_attn = _add(z0, mid - z0, r_mid)
        r_o = _zplus(o, attn.proj.weight, r_attn).reshape(n, n_heads, -1).transpose(0, 1)  # (H, N, d)
        r_probs, _ = _z_rule(torch.matmul, [probs.detach(), v], r_o)
        a_bar = (grad_probs * r_probs / 2).clamp(min=0).mean(0)  # (N, N)
        expected = (torch.eye(n, dtype=torch.float64) + a_bar)[0, 1:].reshape(2, 2).numpy()
    relevance = get_method("chefer2021").attribute(model, x, target=target)
    np.testing.assert_allclose(relevance.patches, expected, rtol=1e-7, atol=1e-12)


def _catalogue_architectures() -> list[str]:
    from vitviz.models import CATALOGUE

    names = {spec.timm_name.split(".")[0] for spec in CATALOGUE.values()}
    return sorted(name for name in names if timm.is_model(name))  # vitviz-shapes is vit_tiny underneath


@pytest.mark.slow
@pytest.mark.parametrize("arch", _catalogue_architectures())
def test_every_catalogue_architecture(arch):
    """Each catalogue architecture (one block, a 2x2 grid, a 5-class head): every method gives a finite map
    on its grid, and CP-LRP, AttnLRP and Chefer conserve (float64)."""
    from vitviz.attribution.chefer2021 import chefer_relevance
    from vitviz.attribution.conservation import decompose_logit

    torch.manual_seed(0)
    probe = timm.create_model(arch, pretrained=False, depth=1, num_classes=5)
    size = 2 * probe.patch_embed.patch_size[0]
    model = timm.create_model(arch, pretrained=False, depth=1, num_classes=5, img_size=size).eval().double()
    x = make_input(model, dtype=torch.float64)
    for key in ["chefer2021", "gradcam_attn", "cp_lrp", "attnlrp", "gradcam", "input_gradient"]:
        relevance = get_method(key).attribute(model, x, target=1)
        assert relevance.patches.shape == (2, 2) and np.isfinite(relevance.patches).all()
    np.testing.assert_allclose(chefer_relevance(model, x, 1).input_totals, 1.0, atol=1e-9)
    for method in ("cp_lrp", "attnlrp"):
        result = decompose_logit(model, x, 1, method=method)
        assert abs(result.residual) < 1e-9 * max(1.0, abs(result.logit))
