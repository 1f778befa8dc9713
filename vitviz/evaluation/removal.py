"""How a perturbation test removes what a map ranks, and what the model then outputs at every step.

Two removals (:mod:`.faithfulness` states both protocols and their papers): ``tokens``, where the removed patch
tokens are dropped from the sequence after the embedding (:func:`forward_kept_tokens`), and ``pixels``, where the
removed pixels are set to a baseline value (:func:`pixel_outputs`). Each turns a set of removal orders and
steps into the model's outputs, batched.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from vitviz.images.preprocess import data_config

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["check_token_model", "clean_output", "embed_tokens", "forward_kept_tokens", "model_device",
           "normalisation", "pixel_outputs", "token_outputs"]


def normalisation(model: nn.Module, x: torch.Tensor, mean: Sequence[float] | None,
              std: Sequence[float] | None) -> tuple[torch.Tensor, torch.Tensor]:
    import torch  # torch: heavy; vitviz.evaluation imports without it (the CLI's summary)

    if mean is None or std is None:
        config = data_config(model)
        mean = config["mean"] if mean is None else mean
        std = config["std"] if std is None else std
    as_tensor = lambda v: torch.as_tensor(v, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)  # noqa: E731
    return as_tensor(mean), as_tensor(std)


def model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # a parameter-free model (tests)
        import torch  # torch: heavy; vitviz.evaluation imports without it (the CLI's summary)

        return torch.device("cpu")


def check_token_model(model: nn.Module) -> None:
    needed = ("patch_embed", "_pos_embed", "blocks", "norm", "forward_head")
    missing = [name for name in needed if not hasattr(model, name)]
    if missing:
        raise ValueError(
            "token dropping needs a timm VisionTransformer-style model (patch_embed, _pos_embed, blocks, norm, "
            f"forward_head); this model lacks {', '.join(missing)}. Use removal='pixels'."
        )


def embed_tokens(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, P + N, D) the tokens that enter block 0: patch embedding, prefix tokens, position embedding."""
    tokens = model.patch_embed(x)  # (B, gh, gw, D) or (B, N, D)
    tokens = model._pos_embed(tokens)  # (B, P + N, D)
    tokens = model.patch_drop(tokens) if hasattr(model, "patch_drop") else tokens
    return model.norm_pre(tokens) if hasattr(model, "norm_pre") else tokens


def forward_kept_tokens(model: nn.Module, x: torch.Tensor, keep: torch.Tensor | Sequence[int] | np.ndarray, *,
                        tokens: torch.Tensor | None = None) -> torch.Tensor:
    """Output of ``model`` on one image when only the patch tokens ``keep`` are fed to it (token dropping).

    The prefix tokens (class, distillation, registers) are always kept. Each row of ``keep`` is one
    batch item; all rows keep the same number of patches, so the batch stacks.

    Args:
        model: A timm VisionTransformer-style model in eval mode.
        x: One normalised input (1, 3, H, W).
        keep: (B, K) int patch indices (row-major over the grid) to keep per batch item.
        tokens: The output of :func:`embed_tokens` for ``x``, when already computed.

    Returns:
        (B, C) the model's output (logits) for each batch item.
    """
    import torch  # torch: heavy; vitviz.evaluation imports without it (the CLI's summary)

    check_token_model(model)
    keep = torch.as_tensor(keep, dtype=torch.long, device=x.device)
    if keep.ndim != 2:
        raise ValueError(f"keep must be (batch, kept patches), got shape {tuple(keep.shape)}")
    tokens = embed_tokens(model, x) if tokens is None else tokens  # (1, P + N, D)
    num_prefix = int(getattr(model, "num_prefix_tokens", 0))
    batch, width = keep.shape[0], tokens.shape[-1]
    tokens = tokens.expand(batch, -1, -1)  # (B, P + N, D)
    patches = torch.gather(tokens[:, num_prefix:], 1, keep[..., None].expand(-1, -1, width))  # (B, K, D)
    hidden = torch.cat([tokens[:, :num_prefix], patches], dim=1)  # (B, P + K, D)
    hidden = model.norm(model.blocks(hidden))
    return model.forward_head(hidden)  # (B, C)


def token_outputs(model: nn.Module, x: torch.Tensor, orders: np.ndarray, counts: Sequence[int],
                   clean: torch.Tensor) -> torch.Tensor:
    """(R, S, C) outputs: R removal orders × S steps, one stacked batch per step; ``clean`` (C,) where nothing
    is removed."""
    import torch  # torch: heavy; vitviz.evaluation imports without it (the CLI's summary)

    tokens = embed_tokens(model, x)  # (1, P + N, D)
    outputs = []
    for count in counts:
        if count == 0:
            outputs.append(clean[None].expand(len(orders), -1))
            continue
        kept = np.sort(orders[:, count:], axis=1)  # (R, N - count), in sequence order
        outputs.append(forward_kept_tokens(model, x, kept, tokens=tokens))
    return torch.stack(outputs, dim=1)  # (R, S, C)


def pixel_outputs(model: nn.Module, x: torch.Tensor, orders: np.ndarray, counts: Sequence[int], baseline: torch.Tensor,
                   batch_size: int, clean: torch.Tensor) -> torch.Tensor:
    """(R, S, C) outputs: R pixel orders × S steps, removed pixels set to ``baseline`` (1, 3, 1, 1); ``clean``
    (C,) where nothing is removed."""
    import torch  # torch: heavy; vitviz.evaluation imports without it (the CLI's summary)

    height, width = x.shape[-2:]
    steps = [(r, s) for r in range(len(orders)) for s, count in enumerate(counts) if count]
    outputs = clean.to(x.dtype)[None, None].repeat(len(orders), len(counts), 1)  # (R, S, C)
    orders_t = torch.as_tensor(orders, device=x.device)
    for start in range(0, len(steps), batch_size):
        chunk = steps[start:start + batch_size]
        masks = torch.zeros(len(chunk), height * width, dtype=torch.bool, device=x.device)
        for i, (r, s) in enumerate(chunk):
            masks[i, orders_t[r, :counts[s]]] = True
        masks = masks.reshape(len(chunk), 1, height, width)  # (b, 1, H, W)
        perturbed = torch.where(masks, baseline, x)  # (b, 3, H, W)
        out = model(perturbed)  # (b, C)
        for i, (r, s) in enumerate(chunk):
            outputs[r, s] = out[i]
    return outputs


def clean_output(model: nn.Module, x: torch.Tensor, clean: torch.Tensor | None) -> torch.Tensor:
    """(C,) the model's output on the unperturbed input: ``clean`` when the caller has it, else one forward."""
    if clean is None:
        return model(x)[0]
    clean = clean.detach().to(x.device)
    return clean.reshape(-1) if clean.ndim == 1 or clean.shape[0] == 1 else clean[0]
