"""AttnLRP as published (Achtibat et al. 2024) and the decomposition of the explained logit.

Each rule is checked on a case small enough to work out by hand (or against the paper's explicit formula),
the composition by conservation (the parts sum to the logit, for AttnLRP and CP-LRP, on every token
layout), and the whole against the authors' ``lxt`` (skipped where lxt is not installed).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from torch import nn

from vitviz.attribution import get_method
from vitviz.attribution._rules import (
    attention_forward,
    attnlrp_rules,
    gamma_forward,
    identity_rule_forward,
    norm_forward,
    uniform,
)
from vitviz.attribution.attnlrp import AttnLRP
from vitviz.attribution.conservation import decompose_logit

ROOT = Path(__file__).resolve().parents[2]

LAYOUTS = {
    "cls": ("vit_tiny_patch16_224", dict(img_size=32)),
    "registers": ("vit_tiny_patch16_224", dict(img_size=32, reg_tokens=4)),
    "distilled": ("deit_tiny_distilled_patch16_224", dict(img_size=32)),
    "avg_pool": ("vit_tiny_patch16_224", dict(img_size=32, class_token=False, global_pool="avg")),
}
SETTINGS = [("attnlrp", 0.0, 0.0), ("attnlrp", 0.25, 0.05), ("cp_lrp", 0.0, 0.0)]


def make_model(layout: str, depth: int = 2, seed: int = 0) -> nn.Module:
    """A random float64 ViT whose biases, norms, prefix tokens and position embedding are all non-trivial."""
    name, kwargs = LAYOUTS[layout]
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, depth=depth, num_classes=5, **kwargs).eval().double()
    with torch.no_grad():
        for pname, param in model.named_parameters():
            if param.ndim == 1 or pname.endswith("_token") or pname == "pos_embed":
                param.add_(0.1 * torch.randn_like(param))
    return model


def make_input(model: nn.Module, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, *model.patch_embed.img_size, generator=generator, dtype=torch.float64)


def model_state(model: nn.Module) -> list:
    """Everything a method could leave behind: hooks, instance forwards, parameter gradients and flags."""
    state = [(name, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
              "forward" in m.__dict__, m.training) for name, m in model.named_modules()]
    return state + [(name, p.grad is None, p.requires_grad) for name, p in model.named_parameters()]


# --- each rule on a case worked out by hand ---------------------------------------------------------------

def test_uniform_rule_gives_each_factor_of_a_2x2_product_half_by_hand():
    """C = A B with R_C = C: R_A[j, i] = Σ_p A_ji B_ip / 2 and R_B[i, p] = Σ_j A_ji B_ip / 2 (Prop. 3.3)."""
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[5.0, 6.0], [7.0, 8.0]], dtype=torch.float64, requires_grad=True)
    c = uniform(a) @ uniform(b)
    torch.testing.assert_close(c, a @ b)
    grad_a, grad_b = torch.autograd.grad(c.sum(), [a, b])  # upstream gradient 1: R_C = C
    torch.testing.assert_close(a * grad_a, torch.tensor([[5.5, 15.0], [16.5, 30.0]], dtype=torch.float64))
    torch.testing.assert_close(b * grad_b, torch.tensor([[10.0, 12.0], [21.0, 24.0]], dtype=torch.float64))
    assert float((a * grad_a + b * grad_b).detach().sum()) == pytest.approx(float(c.detach().sum()))  # 67 + 67


def test_gamma_rule_on_a_2x2_linear_layer_by_hand():
    """x = (1, -2), γ = 0.5. Output 0 is positive (3.5): positive contributions 1.5 and 3, bias 0.5 + γ·0.5;
    output 1 is negative (-1): negative contributions 2 and -1.5, bias -2 + γ·(-2). Each output's relevance
    is shared in proportion; the bias keeps its share."""
    layer = nn.Linear(2, 2).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.5]]))
        layer.bias.copy_(torch.tensor([0.5, -2.0]))
    x = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    z = gamma_forward(layer, 0.5)(x)
    torch.testing.assert_close(z, layer(x))  # (3.5, -1): values unchanged
    grad_x, grad_b = torch.autograd.grad(z.sum(), [x, layer.bias])  # R_j = z_j
    # Output 0: 1.5/5.25·3.5 = 1, 3/5.25·3.5 = 2, bias 0.75/5.25·3.5 = 0.5.
    # Output 1: 2/-2.5·(-1) = 0.8, -1.5/-2.5·(-1) = -0.6, bias -3/-2.5·(-1) = -1.2.
    torch.testing.assert_close(x * grad_x, torch.tensor([1.8, 1.4], dtype=torch.float64))
    torch.testing.assert_close(layer.bias * grad_b, torch.tensor([0.5, -1.2], dtype=torch.float64))


def test_gamma_zero_is_the_plain_gradient_and_the_conv_follows_the_linear_rule():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 2, stride=2).double()
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    (plain,) = torch.autograd.grad(conv(x).sum(), x)
    (gamma0,) = torch.autograd.grad(gamma_forward(conv, 0.0)(x).sum(), x)
    torch.testing.assert_close(gamma0, plain)
    # The 2x2-stride-2 convolution is a linear layer on each patch: the same γ-rule relevance.
    linear = nn.Linear(12, 4).double()
    with torch.no_grad():
        linear.weight.copy_(conv.weight.reshape(4, 12))
        linear.bias.copy_(conv.bias)
    (grad_conv,) = torch.autograd.grad(gamma_forward(conv, 0.3)(x).sum(), x)
    patches = x.detach().reshape(3, 2, 2, 2, 2).permute(1, 3, 0, 2, 4).reshape(4, 12).requires_grad_(True)
    (grad_lin,) = torch.autograd.grad(gamma_forward(linear, 0.3)(patches).sum(), patches)
    relevance_conv = (x * grad_conv).detach().reshape(3, 2, 2, 2, 2).permute(1, 3, 0, 2, 4).reshape(4, 12)
    torch.testing.assert_close(relevance_conv, patches.detach() * grad_lin)


def test_layer_norm_rule_is_the_epsilon_rule_on_the_centring_by_hand():
    """x = (1, 3): centred (-1, 1), σ = 1, y = (-1, 1). With R_y = (-2, 5): R_x0 = 1·(½·2 - ½·5) = -1.5 and
    R_x1 = 3·(-½·2 + ½·5) = 4.5 (Prop. 3.4: identity on 1/σ, ε-rule on x - mean)."""
    norm = nn.LayerNorm(2, eps=0.0, elementwise_affine=False).double()
    x = torch.tensor([1.0, 3.0], dtype=torch.float64, requires_grad=True)
    y = norm_forward(norm)(x)
    torch.testing.assert_close(y, norm(x))
    (grad,) = torch.autograd.grad(y, x, torch.tensor([2.0, 5.0], dtype=torch.float64))  # R_y = y ⊙ g
    torch.testing.assert_close(x * grad, torch.tensor([-1.5, 4.5], dtype=torch.float64))


def test_identity_rule_passes_each_activation_relevance_on_unchanged():
    act = nn.GELU()
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    y = identity_rule_forward(act)(x)
    torch.testing.assert_close(y, act(x))
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(x * grad, act(x).detach())  # Eq. 9: R_in = R_out


def _explicit_attention_lrp(attn: nn.Module, x: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """The paper's rules written out explicitly (relevance in, relevance out) for one timm Attention, (N, D)."""
    n, heads, d = x.shape[0], attn.num_heads, attn.head_dim
    w_qkv, b_qkv = attn.qkv.weight, attn.qkv.bias
    qkv = x @ w_qkv.T + b_qkv  # (N, 3HD)
    q, k, v = qkv.reshape(n, 3, heads, d).permute(1, 2, 0, 3)  # (H, N, d) each
    qs = q * attn.scale
    scores = qs @ k.transpose(-2, -1)  # (H, N, N)
    probs = scores.softmax(-1)
    o = probs @ v  # (H, N, d)
    o_flat = o.transpose(0, 1).reshape(n, heads * d)
    y = o_flat @ attn.proj.weight.T + attn.proj.bias
    r_o = (o_flat * ((relevance / y) @ attn.proj.weight)).reshape(n, heads, d).transpose(0, 1)  # Eq. 8
    s = r_o / (2 * o)  # Prop. 3.3 on A v
    r_a, r_v = probs * (s @ v.transpose(-2, -1)), v * (probs.transpose(-2, -1) @ s)
    r_s = scores * (r_a - probs * r_a.sum(-1, keepdim=True))  # Prop. 3.1
    t = r_s / (2 * scores)  # Prop. 3.3 on q kᵀ (the scale is a constant factor: identity)
    r_q, r_k = qs * (t @ k), k * (t.transpose(-2, -1) @ qs)
    r_qkv = torch.stack([r_q, r_k, r_v]).permute(2, 0, 1, 3).reshape(n, 3 * heads * d)
    return x * ((r_qkv / qkv) @ w_qkv)  # Eq. 8


def test_attention_rules_equal_the_papers_explicit_formulas():
    torch.manual_seed(0)
    block = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=1, embed_dim=8, num_heads=2,
                              pretrained=False).double().blocks[0]
    attn = block.attn
    with torch.no_grad():
        attn.qkv.bias.normal_()
        attn.proj.bias.normal_()
    x = torch.randn(1, 5, 8, dtype=torch.float64, requires_grad=True)
    out = attention_forward(attn, "attnlrp", None)(x)
    torch.testing.assert_close(out, attn(x))
    g = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, g)
    expected = _explicit_attention_lrp(attn, x.detach()[0], (out.detach() * g)[0])
    torch.testing.assert_close((x * grad).detach()[0], expected, rtol=1e-9, atol=1e-12)


# --- the composition: where the logit went ----------------------------------------------------------------

@pytest.mark.parametrize("method,conv_gamma,linear_gamma", SETTINGS)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_parts_sum_to_the_explained_logit(layout, method, conv_gamma, linear_gamma):
    model = make_model(layout)
    x = make_input(model)
    for target in (0, 3):
        d = decompose_logit(model, x, target, method=method, conv_gamma=conv_gamma, linear_gamma=linear_gamma)
        with torch.no_grad():
            assert d.logit == pytest.approx(float(model(x)[0, target]), abs=1e-12)
        assert abs(d.residual) < 1e-10 * max(1.0, abs(d.logit))
        assert d.total == pytest.approx(d.logit, abs=1e-10)
        assert d.patches == pytest.approx(float(d.relevance.pixels.sum()), rel=1e-12)
        assert set(d.prefix) == set(d.relevance.layout.prefix_names)
        assert all(abs(v) > 1e-8 for v in d.biases.values())  # every group's biases hold a share
        assert sum(d.shares().values()) == pytest.approx(1.0, abs=1e-9)
        if method == "cp_lrp":
            assert d.softmax == 0.0
        else:
            assert abs(d.softmax) > 1e-6  # relevance reaches the softmax; its bias term keeps some


@pytest.mark.parametrize("name", ["test_vit", "test_vit2", "test_vit4"])
def test_timms_tiny_registered_models_conserve(name):
    """Class token with dynamic size; register + average pooling + LayerScale; the same with RMSNorm."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=4).eval().double()
    x = torch.randn(1, 3, 32, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for method in ("attnlrp", "cp_lrp"):
        d = decompose_logit(model, x, 1, method=method)
        assert d.relevance.patches.shape == (2, 3)
        assert abs(d.residual) < 1e-10 * max(1.0, abs(d.logit))


def test_without_biases_only_the_softmax_keeps_relevance_from_the_inputs():
    model = make_model("registers")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.zero_()
    x = make_input(model)
    d = decompose_logit(model, x, 2, conv_gamma=0.25, linear_gamma=0.05)
    assert all(v == 0.0 for v in d.biases.values())
    inputs = d.patches + sum(d.prefix.values()) + d.position
    assert inputs + d.softmax == pytest.approx(d.logit, rel=1e-10)


def test_the_cp_lrp_method_is_its_decomposition_and_the_plain_gradient_under_the_cp_rules():
    model = make_model("distilled")
    x = make_input(model)
    today = get_method("cp_lrp").attribute(model, x, 1)
    d = decompose_logit(model, x, 1, method="cp_lrp")
    np.testing.assert_array_equal(d.relevance.pixels, today.pixels)
    with attnlrp_rules(model, attention="cp"), torch.enable_grad():
        leaf = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(leaf)[0, 1], leaf)
    np.testing.assert_allclose((leaf.detach() * grad)[0].sum(0).numpy(), today.pixels, rtol=1e-10, atol=1e-14)


def test_the_bundled_shapes_model_conserves_its_logit():
    from vitviz.shapes import load_shapes_model

    model = load_shapes_model()[0].double()
    x = torch.randn(1, 3, *model.patch_embed.img_size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for method in ("attnlrp", "cp_lrp"):
        d = decompose_logit(model, x, None, method=method)
        assert abs(d.residual) < 1e-9 * max(1.0, abs(d.logit))


# --- the method: invariants --------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_map_on_the_model_grid_model_untouched_and_logits_unchanged_under_the_rules(layout):
    model = make_model(layout)
    x = make_input(model)
    before = model_state(model)
    with torch.no_grad():
        logits = model(x)
    relevance = AttnLRP().attribute(model, x, 4)
    assert relevance.patches.shape == relevance.layout.grid_size == (2, 2)
    assert relevance.pixels.shape == (32, 32) and np.isfinite(relevance.pixels).all()
    assert set(relevance.prefix or {}) == set(relevance.layout.prefix_names)
    assert model_state(model) == before
    with attnlrp_rules(model, conv_gamma=0.25, linear_gamma=0.05), torch.no_grad():
        torch.testing.assert_close(model(x), logits, rtol=1e-12, atol=1e-12)
    assert model_state(model) == before


def test_map_depends_on_the_target_and_on_the_rules():
    model = make_model("cls")
    x = make_input(model)
    method = AttnLRP()
    assert not np.allclose(method.attribute(model, x, 0).patches, method.attribute(model, x, 3).patches)
    attnlrp = decompose_logit(model, x, 0, conv_gamma=0.0, linear_gamma=0.0).relevance.pixels
    assert not np.allclose(attnlrp, get_method("cp_lrp").attribute(model, x, 0).pixels)  # not CP-LRP
    assert not np.allclose(attnlrp, method.attribute(model, x, 0).pixels)  # γ changes the map


def test_everything_restored_after_an_injected_error():
    model = make_model("registers")
    x = make_input(model)
    before = model_state(model)
    with pytest.raises(RuntimeError, match="injected"):
        with attnlrp_rules(model, conv_gamma=0.25, linear_gamma=0.05):
            raise RuntimeError("injected")
    assert model_state(model) == before
    model.head.register_forward_hook(lambda *_: (_ for _ in ()).throw(RuntimeError("injected in the head")))
    before = model_state(model)
    with pytest.raises(RuntimeError, match="injected in the head"):
        AttnLRP().attribute(model, x, 0)
    assert model_state(model) == before


def test_refuses_attention_pooling_with_a_clear_message_and_restores():
    model = timm.create_model("test_vit3", pretrained=False).eval()
    with pytest.raises(ValueError, match="attention pooling"):
        AttnLRP().attribute(model, torch.randn(1, 3, *model.patch_embed.img_size), 0)
    assert all("forward" not in m.__dict__ for m in model.modules())


# --- parity with the authors' lxt -------------------------------------------------------------------------

@pytest.mark.slow
def test_parity_with_lxt_on_every_layout():
    """bench/attnlrp_parity.py in a subprocess (lxt patches classes globally): AttnLRP against lxt on Hugging
    Face's ViT and DeiT and on timm's four layouts, CP-LRP against lxt on torchvision's ViT. With lxt's two
    1e-10 stabilisers set to 0 the maps agree to rounding."""
    probe = subprocess.run([sys.executable, "-c", "import lxt.efficient, zennit, torchvision, transformers"],
                           capture_output=True, text=True)
    if probe.returncode:
        pytest.skip("lxt (the authors' AttnLRP, with zennit, torchvision and transformers<4.55) is not importable "
                    "here; run this test with a venv that has them (see bench/attnlrp_parity.py)")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "attnlrp_parity.py"), "--seeds", "1", "--depth", "2",
                          "--img-size", "32", "--exact", "--json"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    worst = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(worst) >= {"timm:attnlrp", "hf:attnlrp", "torchvision:cp_lrp"}
    assert max(worst.values()) < 1e-10, worst
