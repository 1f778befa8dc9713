"""Where an LRP map's explained logit went: a decomposition whose parts sum to the logit.

An LRP-family map (CP-LRP, AttnLRP) distributes the target logit over the input pixels, but not all of it
reaches them. Every rule passes relevance on except for terms that the rule gives to something that is
not an input pixel:

- the patch tokens' **position embedding** and each **prefix token** (class, distillation, register token, as
  it enters block 0, with its position embedding where the model adds one) are inputs of their own;
- every **bias** (patch embedding, attention projections, MLP, LayerNorm, head) absorbs its share, ``b_j /
  z_j · R_j`` for the ε-rule and ``b'_j / z'_j · R_j`` for the γ-rule (with ``b' = b + γb^±``);
- AttnLRP's **softmax** rule (Achtibat et al. 2024, Prop. 3.1) is a Taylor expansion with a bias, which absorbs
  ``Σ R_out − Σ R_in`` at every attention matrix (CP-LRP sends no relevance through the softmax).

In the gradient × input form each share is ``t ⊙ ∂logit/∂t`` at its tensor ``t``, so one backward pass
gives them all: ``logit = patches + Σ prefix + position + Σ biases + softmax``, up to rounding, which
:attr:`LogitDecomposition.residual` reports (tested for both methods on every token layout).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from timm.layers import Mlp
from timm.layers.attention import Attention
from torch import nn

from vitviz.capture import model_lock
from vitviz.hooks import Edits
from vitviz.layout import TokenLayout

from ._common import pixel_relevance, recorded_output, scored_forward
from ._rules import CONV_GAMMA, LINEAR_GAMMA, attnlrp_rules
from .base import Relevance

__all__ = ["LogitDecomposition", "decompose_logit"]

BIAS_GROUPS = ("patch_embed", "attention", "mlp", "norm", "head")


@dataclass(frozen=True)
class LogitDecomposition:
    """The explained logit split into the parts an LRP map's rules send it to.

    Attributes:
        relevance: The map itself (pixels, patches, prefix tokens).
        method: ``'attnlrp'`` or ``'cp_lrp'``.
        logit: The explained logit.
        patches: Relevance of the input pixels, i.e. the map's sum.
        prefix: Prefix-token name -> relevance as it enters block 0 (embedding plus its position embedding).
        position: Relevance of the patch tokens' position embedding.
        biases: Group (``'patch_embed'``, ``'attention'``, ``'mlp'``, ``'norm'``, ``'head'``) -> relevance
            absorbed by the biases of that group.
        softmax: Relevance absorbed by the softmax rule's bias term (0 for CP-LRP).
        gammas: ``(conv_gamma, linear_gamma)`` of the γ-rule (zeros: the ε-rule everywhere).
    """

    relevance: Relevance
    method: str
    logit: float
    patches: float
    prefix: dict[str, float]
    position: float
    biases: dict[str, float] = field(default_factory=dict)
    softmax: float = 0.0
    gammas: tuple[float, float] = (0.0, 0.0)

    def parts(self) -> dict[str, float]:
        """Every part by name (``patches``, each prefix token, ``position``, ``bias:<group>``, ``softmax``)."""
        parts = {"patches": self.patches, **self.prefix, "position": self.position}
        parts.update({f"bias:{group}": value for group, value in self.biases.items()})
        parts["softmax"] = self.softmax
        return parts

    @property
    def total(self) -> float:
        """Sum of the parts; equals :attr:`logit` up to rounding."""
        return float(sum(self.parts().values()))

    @property
    def residual(self) -> float:
        """``logit − total``: what no part accounts for (rounding only, for the rules implemented here)."""
        return self.logit - self.total

    def shares(self) -> dict[str, float]:
        """Each part as a fraction of the logit (signed; they sum to 1)."""
        return {name: value / self.logit for name, value in self.parts().items()}


@contextmanager
def _biases_require_grad(biases: list[nn.Parameter]) -> Iterator[None]:
    """Let the biases take gradients while inside (their flags are restored on exit, also after an error)."""
    with Edits() as edits:
        for p in biases:
            edits.callback(p.requires_grad_, p.requires_grad)
            p.requires_grad_(True)
        yield


def _bias_groups(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every bias with its group (see :attr:`LogitDecomposition.biases`)."""

    owners: dict[int, str] = {}
    for name, module in model.named_modules():
        if name.startswith("patch_embed"):
            group = "patch_embed"
        elif isinstance(module, nn.LayerNorm) or type(module).__name__ in ("RmsNorm", "RMSNorm"):
            group = "norm"
        elif isinstance(module, (Attention, Mlp)):
            for sub in module.modules():
                owners.setdefault(id(sub), "attention" if isinstance(module, Attention) else "mlp")
            continue
        else:
            group = "head"
        owners.setdefault(id(module), group)
    groups = []
    for module in model.modules():
        bias = module._parameters.get("bias")
        if isinstance(bias, nn.Parameter):
            groups.append((owners.get(id(module), "head"), bias))
    return groups


def _sum(t: torch.Tensor | None, g: torch.Tensor | None) -> float:
    return 0.0 if t is None or g is None else float((t.detach().double() * g.double()).sum())


METHOD_NAMES = {"attnlrp": "AttnLRP", "cp_lrp": "CP-LRP"}


def _decompose(model: nn.Module, x: torch.Tensor, target: int | None, method: str,
               gammas: tuple[float, float]) -> LogitDecomposition:

    layout = TokenLayout.from_model(model, tuple(x.shape[-2:]))
    groups = _bias_groups(model)
    biases = [p for _, p in groups]
    record: list[tuple[torch.Tensor, torch.Tensor]] = []
    rules = attnlrp_rules(model, conv_gamma=gammas[0], linear_gamma=gammas[1], record=record,
                          attention="attnlrp" if method == "attnlrp" else "cp")
    with model_lock(model), _biases_require_grad(biases), torch.enable_grad(), rules:
        with recorded_output(model.patch_embed) as embedded, recorded_output(model.pos_drop) as seq:
            x_leaf, _logits, target, score = scored_forward(model, x, target, METHOD_NAMES[method])
        attn = [t for pair in record for t in pair]
        grads = torch.autograd.grad(score, [x_leaf, seq[-1], *biases, *attn], allow_unused=True)
    grad_x, grad_seq, grad_b, grad_attn = grads[0], grads[1], grads[2:2 + len(biases)], grads[2 + len(biases):]
    tokens = seq[-1].detach()  # (1, N, D) the sequence entering block 0
    patch_tokens = embedded[-1].detach().reshape(1, layout.num_patches, -1)  # (1, P, D)
    n_prefix = layout.num_prefix_tokens
    prefix = (tokens[0, :n_prefix].double() * grad_seq[0, :n_prefix].double()).sum(-1)  # (prefix,)
    bias_parts = dict.fromkeys(BIAS_GROUPS, 0.0)
    for (group, bias), grad in zip(groups, grad_b):
        bias_parts[group] += _sum(bias, grad)
    softmax = sum(_sum(probs, g_probs) - _sum(scores, g_scores)
                  for scores, probs, g_scores, g_probs in zip(attn[::2], attn[1::2], grad_attn[::2], grad_attn[1::2]))
    prefix_parts = dict(zip(layout.prefix_names, map(float, prefix)))
    position = _sum(tokens[:, layout.patch_slice] - patch_tokens, grad_seq[:, layout.patch_slice])
    relevance = pixel_relevance(x_leaf.detach() * grad_x, layout, method, target, prefix=prefix_parts)
    return LogitDecomposition(
        relevance=relevance, method=method, logit=float(score.detach()), patches=float(relevance.patches.sum()),
        prefix=prefix_parts, position=position,
        biases=bias_parts, softmax=float(softmax), gammas=gammas,
    )


def decompose_logit(model: nn.Module, x: torch.Tensor, target: int | None = None, *, method: str = "attnlrp",
                    conv_gamma: float = CONV_GAMMA, linear_gamma: float = LINEAR_GAMMA) -> LogitDecomposition:
    """One LRP pass that returns the map and every part of the logit it did not give to the pixels.

    Args:
        model: A timm ViT with plain attention blocks (left as it was: forwards, hooks and flags restored).
        x: One normalised image (1, C, H, W).
        target: Class to explain; None takes the top class.
        method: ``'attnlrp'`` (Achtibat et al. 2024, with the γ-rule below) or ``'cp_lrp'`` (Ali et al. 2022;
            the γ arguments are ignored).
        conv_gamma: γ of the patch embedding (AttnLRP only).
        linear_gamma: γ of the MLP and head linear layers (AttnLRP only).
    """
    if method not in METHOD_NAMES:
        raise ValueError(f"method must be 'attnlrp' or 'cp_lrp', not {method!r}")
    gammas = (float(conv_gamma), float(linear_gamma)) if method == "attnlrp" else (0.0, 0.0)
    return _decompose(model, x, target, method, gammas)
