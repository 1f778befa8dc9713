"""Chefer, Gur & Wolf 2021 (CVPR), "Transformer Interpretability Beyond Attention Visualization".

The method, as the authors' code computes it for a ViT:

1. one forward pass, recording what every block computes (:class:`_Recorder`, forward hooks removed on
   exit, ``fused_attn`` switched off and restored, as ``vitviz.capture`` does);
2. one backward pass: the gradient ``∇A`` of the target logit with respect to every block's attention
   probabilities;
3. one LRP pass from the recorded activations, no model call (:func:`lrp_attention_relevance`): relevance
   1 at the target logit, propagated down through the head, the pooling and every block with the rules of
   ``vitviz.attribution._lrp`` (αβ with α = 1 for linear layers, the halved z rule for the two attention
   products, the renormalised z rule at the residual additions, identity for LayerNorm, softmax, GELU),
   which yields the relevance ``R_A`` of every block's attention probabilities;
4. per block ``Ā = E_h[(∇A ⊙ R_A)⁺]`` (mean over heads of the positive part), aggregated from the identity
   as ``R ← R + Ā·R`` from block ``start_layer`` (0 by default; the authors' Table 1 uses 1) to the last (the
   authors' ``compute_rollout_attention`` without row normalisation; :func:`aggregate`).

The map is the read-out row of ``R`` over the patch columns: the rows of the tokens the head reads,
weighted by their LRP relevance at the final norm (:attr:`CheferResult.readout`, which sums to 1). For a
class-token model that is exactly the class token's row, as in the authors' code; DeiT's two heads split
the relevance between the class and distillation tokens (addition rule); average pooling spreads it over
the patch tokens (z rule through the mean). Attention pooling is refused. The LRP pass uses the
recorded tensors in the model's dtype (the aggregation in float64); each linear layer costs it four
matrix products, about two backward passes' worth.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from vitviz.capture import eager_attention, model_lock
from vitviz.hooks import Edits
from vitviz.i18n import N_, _
from vitviz.layout import TokenLayout

from . import _lrp
from ._common import check_input, check_plain_blocks, class_target
from .base import AttributionMethod, Relevance, check_start_layer

if TYPE_CHECKING:
    from vitviz.capture import Capture


__all__ = ["Chefer2021", "CheferResult", "aggregate", "chefer_relevance"]

_BLOCK_FIELDS = ("x_in", "h1", "qkv", "q", "k", "probs", "o", "branch1", "h2", "a", "branch2")


@dataclass
class _BlockRecord:
    """What one block computed in the forward pass (batch of one)."""

    tensors: dict[str, list[torch.Tensor]] = field(default_factory=lambda: {n: [] for n in _BLOCK_FIELDS})

    def get(self, name: str) -> torch.Tensor:
        found = self.tensors[name]
        if len(found) != 1:
            raise RuntimeError(f"the hook for {name!r} fired {len(found)} times in one forward pass")
        return found[0]


class _Recorder:
    """Forward hooks that keep every tensor the LRP pass needs; ``fused_attn`` off while inside (one
    :class:`vitviz.hooks.Edits`, undone on exit as ``vitviz.capture`` does).

    Everything is detached except the attention probabilities, whose gradient is taken afterwards.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.blocks = [_BlockRecord() for _ in model.blocks]
        self.heads: dict[str, list[torch.Tensor]] = {"tokens": [], "head": [], "head_dist": []}
        self._edits = Edits()

    def _keep(self, bucket: list[torch.Tensor], which: str, graph: bool = False):
        def hook(_module, args, output=None):
            value = args[0] if which == "input" else output
            bucket.append(value if graph else value.detach())
        return hook

    def _register(self, edits: Edits) -> None:
        after, before = edits.forward_hook, edits.forward_pre_hook
        for block, record in zip(self.model.blocks, self.blocks):
            t, attn = record.tensors, block.attn
            before(block, self._keep(t["x_in"], "input"))
            before(attn, self._keep(t["h1"], "input"))
            after(attn.qkv, self._keep(t["qkv"], "output"))
            after(attn.q_norm, self._keep(t["q"], "output"))
            after(attn.k_norm, self._keep(t["k"], "output"))
            after(attn.attn_drop, self._keep(t["probs"], "output", graph=True))
            before(attn.proj, self._keep(t["o"], "input"))
            after(block.ls1, self._keep(t["branch1"], "output"))
            before(block.mlp.fc1, self._keep(t["h2"], "input"))
            before(block.mlp.fc2, self._keep(t["a"], "input"))
            after(block.ls2, self._keep(t["branch2"], "output"))
        after(self.model.norm, self._keep(self.heads["tokens"], "output"))
        before(self.model.head, self._keep(self.heads["head"], "input"))
        if getattr(self.model, "head_dist", None) is not None:
            before(self.model.head_dist, self._keep(self.heads["head_dist"], "input"))

    def __enter__(self) -> _Recorder:
        self._edits = Edits()
        try:
            eager_attention(self._edits, [block.attn for block in self.model.blocks])
            self._register(self._edits)
        except BaseException:
            self._edits.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._edits.close()  # never swallows the exception: returns None


def aggregate(grads: torch.Tensor, cams: torch.Tensor) -> torch.Tensor:
    """``R ← R + E_h[(∇A ⊙ R_A)⁺] · R`` over the blocks, from ``R = I``.

    Args:
        grads: (L, H, N, N) gradient of the target with respect to each block's attention probabilities.
        cams: (L, H, N, N) LRP relevance of each block's attention probabilities.

    Returns:
        (N, N) aggregated relevance; row i is what token i's output owes to each input token.
    """
    tokens = grads.shape[-1]
    joint = torch.eye(tokens, dtype=grads.dtype, device=grads.device)  # (N, N)
    for grad, cam in zip(grads, cams):
        a_bar = (grad * cam).clamp(min=0).mean(dim=0)  # (N, N)
        joint = joint + a_bar @ joint
    return joint


def _head_relevance(model: nn.Module, rec: _Recorder, target: int, tokens: torch.Tensor) -> torch.Tensor:
    """Relevance of the final (normed) tokens, from relevance 1 at the target logit: (N, D)."""
    heads = [(model.head, rec.heads["head"])]
    if getattr(model, "head_dist", None) is not None:
        heads.append((model.head_dist, rec.heads["head_dist"]))
    inputs = [bucket[-1][0] for _, bucket in heads]  # each (D,)
    one_hot = torch.zeros(model.head.out_features, dtype=tokens.dtype, device=tokens.device)
    one_hot[target] = 1.0
    shares = [one_hot]
    if len(heads) == 2:  # DeiT: logits = (head(cls) + head_dist(dist)) / 2, split by the addition rule
        parts = [(head.weight @ x)[target] / 2 for (head, _), x in zip(heads, inputs)]
        r_a, r_b = _lrp.add_split(parts[0].view(1), parts[1].view(1), torch.ones_like(parts[0].view(1)))
        shares = [one_hot * r_a.squeeze(), one_hot * r_b.squeeze()]
    relevance = torch.zeros_like(tokens)  # (N, D)
    pooled = [_lrp.linear_zplus(x, head.weight, r) for (head, _), x, r in zip(heads, inputs, shares)]
    if model.global_pool == "avg":
        start = 0 if getattr(model, "pool_include_prefix", False) else model.num_prefix_tokens
        relevance[start:] = _lrp.mean_z(tokens[start:], pooled[0])  # fc_norm: identity rule
    else:
        for index, r in enumerate(pooled):  # class token (and distillation token) read by the head(s)
            relevance[index] = r
    return relevance


def _block_relevance(block: nn.Module, record: _BlockRecord, relevance: torch.Tensor):
    """One block, top to bottom: returns (relevance of the block input, relevance of its attention)."""
    attn = block.attn

    def get(name: str) -> torch.Tensor:
        return record.get(name)[0]  # batch of one

    # x_out = mid + mlp(norm2(mid)), mid = x_in + attn(norm1(x_in)); LayerScale and drop path: identity.
    branch2, branch1 = get("branch2"), get("branch1")
    mid = get("x_in") + branch1
    r_mid, r_mlp = _lrp.add_split(mid, branch2, relevance)
    r_hidden = _lrp.linear_zplus(get("a"), block.mlp.fc2.weight, r_mlp)  # act, drop, norm: identity
    r_mid = r_mid + _lrp.linear_zplus(get("h2"), block.mlp.fc1.weight, r_hidden)  # norm2: identity
    r_in, r_attn = _lrp.add_split(get("x_in"), branch1, r_mid)
    r_o = _lrp.linear_zplus(get("o"), attn.proj.weight, r_attn)  # (N, H*d)
    tokens, heads = r_o.shape[0], attn.num_heads
    r_o = r_o.reshape(tokens, heads, -1).transpose(0, 1)  # (H, N, d)
    qkv = get("qkv").reshape(tokens, 3, heads, -1)  # (N, 3, H, d)
    v = qkv[:, 2].transpose(0, 1)  # (H, N, d)
    probs = record.get("probs")[0].detach()  # (H, N, N)
    r_probs, r_v = _lrp.matmul_z(probs, v, r_o)
    r_q, r_k_t = _lrp.matmul_z(get("q"), get("k").transpose(-2, -1), r_probs)  # softmax: identity
    r_qkv = torch.stack([r_q, r_k_t.transpose(-2, -1), r_v], dim=0).permute(2, 0, 1, 3)  # (N, 3, H, d)
    r_h1 = _lrp.linear_zplus(get("h1"), attn.qkv.weight, r_qkv.reshape(tokens, -1))  # norm1: identity
    return r_in + r_h1, r_probs


@dataclass(frozen=True)
class CheferResult:
    """Chefer 2021 relevance of one image.

    Attributes:
        joint: (N, N) aggregated relevance ``R`` (see :func:`aggregate`).
        readout: (N,) LRP relevance of each final token, summed over channels (the head's read-out weights).
        target: Class explained.
        input_totals: (L,) relevance summed at each block's input (LRP conserves it: 1 everywhere).
        attention_totals: (L,) relevance of each block's attention probabilities, summed.
    """

    joint: np.ndarray
    readout: np.ndarray
    target: int
    input_totals: np.ndarray
    attention_totals: np.ndarray


@torch.no_grad()
def lrp_attention_relevance(model: nn.Module, rec: _Recorder, target: int):
    """The LRP pass: ``(cams (L, H, N, N), input_totals (L,), readout (N,))`` from the recorded pass."""
    tokens = rec.heads["tokens"][-1][0]  # (N, D) after the final norm
    relevance = _head_relevance(model, rec, target, tokens)  # final norm: identity rule
    readout = relevance.sum(dim=-1)  # (N,)
    cams, totals = [], []
    for block, record in zip(reversed(model.blocks), reversed(rec.blocks)):
        relevance, r_probs = _block_relevance(block, record, relevance)
        cams.append(r_probs)
        totals.append(float(relevance.sum()))
    return torch.stack(cams[::-1]), np.array(totals[::-1]), readout


def chefer_relevance(model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                     start_layer: int = 0) -> CheferResult:
    """Chefer et al. 2021 for one image: one forward, one backward, one LRP pass.

    Args:
        model: A timm ViT or DeiT with plain attention blocks and token or average pooling.
        x: One normalised image (1, C, H, W).
        target: Class to explain; None takes the top class (read from the same forward pass).
        start_layer: First block aggregated (the authors' ``start_layer``: their Table 1 uses 1); the blocks
            below it count as the identity.
    """
    check_input(x)
    check_plain_blocks(model, "Chefer 2021", pools=("token", "avg"), layer_scale=True)
    with model_lock(model), torch.enable_grad():
        with _Recorder(model) as rec:
            logits = model(x.detach().requires_grad_(True))
        target = class_target(model, x, target, logits, "Chefer 2021")
        probs = [record.get("probs") for record in rec.blocks]
        grads = torch.autograd.grad(logits[0, target], probs)
    with torch.no_grad():
        cams, totals, readout = lrp_attention_relevance(model, rec, target)
        grads = torch.stack([g[0] for g in grads]).double()  # (L, H, N, N)
        if not 0 <= start_layer < len(grads):
            raise ValueError(_("start layer {start} is beyond this model's {layers} layers").format(
                start=start_layer, layers=len(grads)))
        joint = aggregate(grads[start_layer:], cams.double()[start_layer:])
    return CheferResult(joint=joint.cpu().numpy(), readout=readout.cpu().numpy(), target=target,
                        input_totals=totals,
                        attention_totals=cams.sum(dim=(1, 2, 3)).cpu().numpy())


class Chefer2021(AttributionMethod):
    """LRP relevance of the attention times its gradient, aggregated over blocks (see the module docstring).

    Args:
        start_layer: First block aggregated (0: every block). The authors' Table 1 uses 1
            (``generate_LRP(..., start_layer=1)``), which ``python -m vitviz.evaluate`` reproduces.
    """

    key = "chefer2021"
    title = N_("Chefer et al. 2021 (LRP × gradient)")
    paper = ("Chefer, Gur & Wolf 2021, CVPR, 'Transformer Interpretability Beyond Attention "
             "Visualization'")
    class_specific = True
    reads_head = True
    passes = N_("1 forward + 1 backward + 1 LRP pass (no model call; about 2 backward passes' arithmetic)")
    options = ("start_layer",)

    def __init__(self, start_layer: int = 0) -> None:
        self.start_layer = check_start_layer(start_layer)

    def attribute(self, model: nn.Module, x: torch.Tensor, target: int | None = None, *,
                  capture: Capture | None = None) -> Relevance:
        layout = TokenLayout.from_model(model, tuple(x.shape[-2:]))
        result = chefer_relevance(model, x, target, start_layer=self.start_layer)
        if result.joint.shape[0] != layout.num_tokens:
            raise ValueError(f"the model produced {result.joint.shape[0]} tokens, the layout says "
                             f"{layout.describe()}")
        row = result.readout @ result.joint  # (N,)
        prefix = row[: layout.num_prefix_tokens]
        return Relevance(
            patches=layout.to_grid(row[layout.patch_slice]).astype(np.float64), method=self.key,
            target=result.target, layout=layout, prefix=dict(zip(layout.prefix_names, map(float, prefix))),
        )
