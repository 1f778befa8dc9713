"""Parity of vitviz's AttnLRP (``attnlrp``) and CP-LRP (``cp_lrp``) with the authors' ``lxt`` (Achtibat et al.).

lxt patches torchvision's and Hugging Face's ViT classes, not timm's. This script builds random timm ViTs
(every bias, LayerNorm parameter, prefix token and the position embedding perturbed, so that no rule sees a
trivial case), copies the weights into models lxt patches, and compares the relevance maps (gradient × input
summed over colour channels, and summed per patch) in float64:

- ``hf``: AttnLRP. Hugging Face ``ViTForImageClassification`` (class token) and
  ``DeiTForImageClassificationWithTeacher`` (class + distillation token) under lxt's own AttnLRP patches (its
  attention wrapper that divides the query/key/value gradients by 4/4/2, its LayerNorm and identity-rule
  patches) and zennit's γ-rule made gradient × input by lxt's ``monkey_patch_zennit``, as lxt's ViT example
  does, on the patch embedding and the MLP and head layers;
- ``timm``: AttnLRP on every token layout (class token, registers, distillation token, average pooling):
  the timm model itself with lxt's functions attached to its modules (the attention wrapper around
  PyTorch's ``scaled_dot_product_attention``, the LayerNorm and identity-rule patches, zennit's γ-rule);
- ``torchvision``: CP-LRP. torchvision's ``VisionTransformer`` under lxt's default patches for it (which are
  CP-LRP inside attention) against ``vitviz.attribution.attnlrp`` (today's CP-LRP).

zennit's γ-rule adds a stabiliser (1e-6 by default) to its denominators; it is set to 1e-30 here so that
the comparison measures the rules, not the stabiliser (``--stabilizer 1e-6`` shows its effect). lxt's
identity rule computes ``act(x) / (x + 1e-10)``, and its zennit bridge divides by ``x ± 1e-10``: these leave
differences of order 1e-8 (``--exact`` sets both to 0, to show that they are all that is left).

Needs ``lxt`` (PyPI, with ``zennit``, ``torchvision`` and ``transformers`` < 4.55, whose ``bert`` module lxt 2.1
imports); none of them is a vitviz dependency and no line of lxt is copied into vitviz. A venv beside the main
environment (torch and timm shared, nothing of the main environment changed)::

    python -m venv --system-site-packages /work/venvs/lxt
    /work/venvs/lxt/bin/pip install lxt==2.1 "transformers>=4.50,<4.54"
    /work/venvs/lxt/bin/pip uninstall -y kernels   # pulled in by transformers 5, needs a newer hub
    /work/venvs/lxt/bin/python bench/attnlrp_parity.py [--seeds 5] [--exact] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import types
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LAYOUTS = {
    "cls": ("vit_tiny_patch16_224", {}),
    "registers": ("vit_tiny_patch16_224", {"reg_tokens": 4}),
    "distilled": ("deit_tiny_distilled_patch16_224", {}),
    "avg_pool": ("vit_tiny_patch16_224", {"class_token": False, "global_pool": "avg"}),
}


def random_timm(layout: str, seed: int, depth: int, img_size: int, num_classes: int):
    import timm
    import torch

    name, kwargs = LAYOUTS[layout]
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, img_size=img_size, depth=depth, num_classes=num_classes,
                              **kwargs).eval().double()
    with torch.no_grad():
        for pname, param in model.named_parameters():
            if param.ndim == 1 or pname.endswith("_token") or pname == "pos_embed":
                param.add_(0.1 * torch.randn_like(param))
    return model


def vitviz_maps(model, x, target: int, gammas: tuple[float, float] | None):
    """vitviz's pixel map (H, W): AttnLRP with ``gammas``, or CP-LRP when ``gammas`` is None."""
    from vitviz.attribution import get_method
    from vitviz.attribution.attnlrp import AttnLRP

    method = get_method("cp_lrp") if gammas is None else AttnLRP(*gammas)
    return method.attribute(model, x, target).pixels


# --- the models lxt patches, with the timm weights copied across ----------------------------------------

def _split_qkv(state: dict, block: str, out: dict, prefix: str) -> None:
    for kind in ("weight", "bias"):
        q, k, v = state[f"{block}attn.qkv.{kind}"].chunk(3)
        out.update({f"{prefix}query.{kind}": q, f"{prefix}key.{kind}": k, f"{prefix}value.{kind}": v})


def hf_model(model, layout: str):
    """Hugging Face ViT (class token) or DeiT with teacher (distillation token) holding ``model``'s weights."""
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher, ViTConfig, ViTForImageClassification

    depth, dim = len(model.blocks), model.embed_dim
    common = dict(hidden_size=dim, num_hidden_layers=depth, num_attention_heads=model.blocks[0].attn.num_heads,
                  intermediate_size=model.blocks[0].mlp.fc1.out_features, image_size=model.patch_embed.img_size[0],
                  patch_size=model.patch_embed.patch_size[0], qkv_bias=True, layer_norm_eps=model.norm.eps,
                  hidden_act="gelu", num_labels=model.num_classes, attn_implementation="sdpa")
    distilled = layout == "distilled"
    config = DeiTConfig(**common) if distilled else ViTConfig(**common)
    theirs = (DeiTForImageClassificationWithTeacher if distilled else ViTForImageClassification)(config).double()
    root = "deit" if distilled else "vit"
    t = model.state_dict()
    out = {f"{root}.embeddings.cls_token": t["cls_token"], f"{root}.embeddings.position_embeddings": t["pos_embed"],
           f"{root}.embeddings.patch_embeddings.projection.weight": t["patch_embed.proj.weight"],
           f"{root}.embeddings.patch_embeddings.projection.bias": t["patch_embed.proj.bias"],
           f"{root}.layernorm.weight": t["norm.weight"], f"{root}.layernorm.bias": t["norm.bias"]}
    if distilled:
        out[f"{root}.embeddings.distillation_token"] = t["dist_token"]
        for ours, hf in (("head", "cls_classifier"), ("head_dist", "distillation_classifier")):
            out.update({f"{hf}.weight": t[f"{ours}.weight"], f"{hf}.bias": t[f"{ours}.bias"]})
    else:
        out.update({"classifier.weight": t["head.weight"], "classifier.bias": t["head.bias"]})
    for i in range(depth):
        b, h = f"blocks.{i}.", f"{root}.encoder.layer.{i}."
        _split_qkv(t, b, out, h + "attention.attention.")
        for ours, hf in (("attn.proj", "attention.output.dense"), ("norm1", "layernorm_before"),
                         ("norm2", "layernorm_after"), ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")):
            out.update({f"{h}{hf}.weight": t[f"{b}{ours}.weight"], f"{h}{hf}.bias": t[f"{b}{ours}.bias"]})
    missing, unexpected = theirs.load_state_dict(out, strict=False)
    assert not unexpected and all("mask_token" in k for k in missing), (missing, unexpected)
    return theirs.eval()


def torchvision_model(model):
    """torchvision ``VisionTransformer`` holding the weights of a class-token timm ``model``."""
    from torchvision.models.vision_transformer import VisionTransformer

    depth = len(model.blocks)
    theirs = VisionTransformer(image_size=model.patch_embed.img_size[0], patch_size=model.patch_embed.patch_size[0],
                               num_layers=depth, num_heads=model.blocks[0].attn.num_heads, hidden_dim=model.embed_dim,
                               mlp_dim=model.blocks[0].mlp.fc1.out_features, num_classes=model.num_classes).double()
    t = model.state_dict()
    out = {"class_token": t["cls_token"], "encoder.pos_embedding": t["pos_embed"],
           "conv_proj.weight": t["patch_embed.proj.weight"], "conv_proj.bias": t["patch_embed.proj.bias"],
           "encoder.ln.weight": t["norm.weight"], "encoder.ln.bias": t["norm.bias"],
           "heads.head.weight": t["head.weight"], "heads.head.bias": t["head.bias"]}
    for i in range(depth):
        b, h = f"blocks.{i}.", f"encoder.layers.encoder_layer_{i}."
        out[h + "self_attention.in_proj_weight"] = t[b + "attn.qkv.weight"]
        out[h + "self_attention.in_proj_bias"] = t[b + "attn.qkv.bias"]
        for ours, tv in (("attn.proj", "self_attention.out_proj"), ("norm1", "ln_1"), ("norm2", "ln_2"),
                         ("mlp.fc1", "mlp.0"), ("mlp.fc2", "mlp.3")):
            out.update({f"{h}{tv}.weight": t[f"{b}{ours}.weight"], f"{h}{tv}.bias": t[f"{b}{ours}.bias"]})
    theirs.load_state_dict(out, strict=True)
    return theirs.eval()


# --- lxt's rules ----------------------------------------------------------------------------------------

def patch_hf_with_lxt() -> None:
    """lxt's AttnLRP patches for Hugging Face's ViT and DeiT (as its ``attnLRP`` maps for other models)."""
    import torch
    import transformers.models.deit.modeling_deit as modeling_deit
    import transformers.models.vit.modeling_vit as modeling_vit
    from lxt.efficient import monkey_patch, monkey_patch_zennit
    from lxt.efficient.patches import layer_norm_forward, non_linear_forward, patch_attention, patch_method
    from transformers.activations import GELUActivation

    monkey_patch(modeling_vit, patch_map={
        modeling_vit: patch_attention,
        modeling_deit: patch_attention,
        torch.nn.LayerNorm: partial(patch_method, layer_norm_forward),
        GELUActivation: partial(patch_method, non_linear_forward, keep_original=True),
    })
    monkey_patch_zennit()


def patch_timm_with_lxt(model) -> None:
    """Attach lxt's AttnLRP functions to a timm model's own modules (instance attributes)."""
    import torch
    import torch.nn.functional as F
    from lxt.efficient.patches import layer_norm_forward, non_linear_forward, wrap_attention_forward
    from timm.layers.attention import Attention

    def sdpa(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        return F.scaled_dot_product_attention(query, key, value, scale=scaling), None

    lxt_attention = wrap_attention_forward(sdpa)  # lxt divides the q/k/v gradients by 4/4/2

    def attention_forward(self, x, attn_mask=None, is_causal=False):  # timm's own computation, through lxt
        batch, tokens, _ = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out, _ = lxt_attention(self, self.q_norm(q), self.k_norm(k), v, None, scaling=self.scale)
        return self.proj(self.norm(out.transpose(1, 2).reshape(batch, tokens, -1)))

    for module in model.modules():
        if type(module) is Attention:
            module.forward = types.MethodType(attention_forward, module)
        elif isinstance(module, torch.nn.LayerNorm):
            module.forward = types.MethodType(layer_norm_forward, module)
        elif isinstance(module, torch.nn.GELU):
            original = getattr(type(module), "original_forward", type(module).forward)  # lxt may patch the class
            module.original_forward = types.MethodType(original, module)
            module.forward = types.MethodType(non_linear_forward, module)


def without_stabilisers() -> None:
    """Set to 0 the 1e-10 of lxt's identity rule, ``act(x) / (x + 1e-10)``, and of its zennit bridge, which
    divides relevance by ``x ± 1e-10``."""
    import lxt.efficient.zennit_patches as bridge
    from lxt.efficient.rules import identity_rule_implicit_fn

    identity_rule_implicit_fn.forward.__defaults__ = (0.0,)
    stabilize = bridge.stabilize
    bridge.stabilize = lambda x, epsilon=0.0, **kwargs: stabilize(x, epsilon=0.0, **kwargs)


def lxt_map(model, x, target: int, gammas: tuple[float, float], linear_names, conv_names, stabilizer: float):
    """Gradient × input of ``model`` (already patched by lxt) with zennit's γ-rule on the named layers."""
    import torch
    import zennit.rules as z_rules
    from zennit.core import Composite

    def module_map(_ctx, name, module):
        if gammas[0] and isinstance(module, torch.nn.Conv2d) and name in conv_names:
            return z_rules.Gamma(gammas[0], stabilizer=stabilizer)
        if gammas[1] and isinstance(module, torch.nn.Linear) and name.endswith(linear_names):
            return z_rules.Gamma(gammas[1], stabilizer=stabilizer)
        return None

    composite = Composite(module_map=module_map)
    composite.register(model)
    try:
        leaf = x.clone().requires_grad_(True)
        output = model(leaf)
        logits = output if isinstance(output, torch.Tensor) else output.logits
        (grad,) = torch.autograd.grad(logits[0, target], leaf)
    finally:
        composite.remove()
    return (leaf.detach() * grad)[0].sum(0).numpy()


# --- comparison -----------------------------------------------------------------------------------------

def compare(theirs, ours, patch: int) -> tuple[float, float]:
    """Worst relative difference of the pixel maps and of the patch maps (max |diff| / max |theirs|)."""
    import numpy as np

    def patches(m):
        h, w = m.shape
        return m.reshape(h // patch, patch, w // patch, patch).sum(axis=(1, 3))

    pixel = float(np.abs(theirs - ours).max() / np.abs(theirs).max())
    tp, op = patches(theirs), patches(ours)
    return pixel, float(np.abs(tp - op).max() / np.abs(tp).max())


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--gamma", type=float, nargs=2, default=None, metavar=("CONV", "LINEAR"),
                        help="γ of the patch embedding and of the MLP/head layers (default: vitviz's)")
    parser.add_argument("--stabilizer", type=float, default=1e-30, help="zennit's γ-rule stabiliser")
    parser.add_argument("--exact", action="store_true",
                        help="set lxt's two 1e-10 stabilisers to 0 (a diagnostic: what is left is the rules)")
    parser.add_argument("--json", action="store_true", help="print one JSON line with the worst differences")
    args = parser.parse_args(argv)

    import torch

    from vitviz.attribution._rules import CONV_GAMMA, LINEAR_GAMMA

    gamma_settings = [(0.0, 0.0), tuple(args.gamma) if args.gamma else (CONV_GAMMA, LINEAR_GAMMA)]
    cases = []  # (family, layout, seed, target, gammas, model, x, ours); vitviz runs before lxt patches anything
    for seed in range(args.seeds):
        for layout in LAYOUTS:
            model = random_timm(layout, seed, args.depth, args.img_size, 10)
            x = torch.randn(1, 3, args.img_size, args.img_size, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(100 + seed))
            for target in (0, 7):
                for gammas in gamma_settings:
                    ours = vitviz_maps(model, x, target, gammas)
                    cases.append(("timm", layout, seed, target, gammas, model, x, ours))
                    if layout in ("cls", "distilled"):
                        cases.append(("hf", layout, seed, target, gammas, model, x, ours))
                if layout == "cls":
                    ours = vitviz_maps(model, x, target, None)
                    cases.append(("torchvision", layout, seed, target, None, model, x, ours))

    from lxt.efficient import monkey_patch
    from torchvision.models import vision_transformer

    patch_hf_with_lxt()
    if args.exact:
        without_stabilisers()
    monkey_patch(vision_transformer)  # lxt's default for torchvision's ViT: CP-LRP inside attention
    mlp_head = (".fc1", ".fc2", "head", "head_dist", ".intermediate.dense", "classifier")
    worst: dict[str, float] = {}
    print("family       layout     seed target gammas        pixels rel.  patches rel.")
    for family, layout, seed, target, gammas, model, x, ours in cases:
        with torch.no_grad():
            reference = model(x)
        if family == "timm":
            theirs_model = random_timm(layout, seed, args.depth, args.img_size, 10)
            theirs_model.load_state_dict(model.state_dict())
            patch_timm_with_lxt(theirs_model)
            names = (("patch_embed.proj",), mlp_head)
        elif family == "hf":
            theirs_model = hf_model(model, layout)
            layers = tuple(f"layer.{i}.output.dense" for i in range(len(model.blocks)))
            names = (("deit.embeddings.patch_embeddings.projection", "vit.embeddings.patch_embeddings.projection"),
                     mlp_head + layers + ("cls_classifier", "distillation_classifier"))
        else:
            theirs_model = torchvision_model(model)
            names = ((), ())
        with torch.no_grad():
            out = theirs_model(x)
            logits = out if isinstance(out, torch.Tensor) else out.logits
        assert torch.allclose(logits, reference, atol=1e-12), f"{family}/{layout}: the two models disagree"
        theirs = lxt_map(theirs_model, x, target, gammas or (0.0, 0.0), names[1], names[0], args.stabilizer)
        pixel, patch = compare(theirs, ours, model.patch_embed.patch_size[0])
        key = f"{family}:{'cp_lrp' if gammas is None else 'attnlrp'}"
        worst[key] = max(worst.get(key, 0.0), patch)
        worst[key + ":pixels"] = max(worst.get(key + ":pixels", 0.0), pixel)
        setting = str(gammas or "CP-LRP")
        print(f"{family:12s} {layout:10s} {seed:4d} {target:6d} {setting:13s} {pixel:12.1e} {patch:13.1e}")
    for key, value in worst.items():
        print(f"worst relative difference {key}: {value:.1e}")
    if args.json:
        print(json.dumps(worst))
    return worst


if __name__ == "__main__":
    main()
