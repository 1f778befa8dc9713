"""The numbers behind the "How a ViT works" page, recomputed step by step from the model's own weights.

Each step is computed by hand (patch flattening, the linear projection, the dot products of one query with
its keys, the softmax, the classifier) and checked against what the real forward pass produced (the
``Capture``), so the page can show the formula, the real numbers and the proof that they are the ones the
model used. :func:`shown_keys` picks the keys the page lists for a query.

The page asks for these on every rerun, while a control moves: the model's intermediate results they compare
with (the patch embedding of the whole input, the tokens entering block 0, one layer's queries and keys) are
kept per model, input and capture (:func:`_memo`, a small LRU that holds weak references), so moving the
query patch, the layer or the head recomputes only the step it changes. :data:`MODEL_CALLS` counts the
model-module calls for tests.
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .patches import patchify

__all__ = [
    "EmbeddingStep",
    "AttentionStep",
    "ClassifierStep",
    "supports_walkthrough",
    "embed_patch",
    "embed_patches",
    "first_tokens",
    "attention_numbers",
    "classifier_numbers",
    "shown_keys",
    "MODEL_CALLS",
]

MODEL_CALLS = {"count": 0}
"""How many times the model's own modules were run here (memo misses only)."""
MEMO_SIZE = 24
"""Entries kept: one layer's queries and keys are 1.2 MB for ViT-B/16 at 224."""
_MEMO: OrderedDict[tuple, tuple[tuple, Any]] = OrderedDict()  # key → (weak references, value)
_MEMO_LOCK = threading.Lock()


def _memo(name: str, objects: tuple, args: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()``, kept for the same ``objects`` (by identity, while they live) and ``args``.

    The objects (model, input tensor, capture) are held by weak reference, so an entry never keeps them alive
    and an object that died cannot be mistaken for a new one at the same address.
    """
    key = (name, tuple(id(o) for o in objects), args)
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
        if hit is not None and all(ref() is o for ref, o in zip(hit[0], objects)):
            _MEMO.move_to_end(key)
            return hit[1]
    value = compute()
    with _MEMO_LOCK:
        MODEL_CALLS["count"] += 1
        for stale in [k for k, (refs, _) in _MEMO.items() if any(ref() is None for ref in refs)]:
            del _MEMO[stale]  # its model, input or capture is gone: never asked for again
        _MEMO[key] = (tuple(weakref.ref(o) for o in objects), value)
        while len(_MEMO) > MEMO_SIZE:
            _MEMO.popitem(last=False)
    return value


def _on(model, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` on the model's device: the capture keeps its tensors on the CPU, the model may be elsewhere."""
    return tensor.to(next(model.parameters()).device)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _patch_vectors(model, x: torch.Tensor, layout) -> torch.Tensor:
    """(N, C·ph·pw) every patch of input ``x`` (1, 3, H, W) flattened, on the model's device."""
    return _on(model, torch.from_numpy(patchify(x[0], layout.patch_size)).float())


def supports_walkthrough(model) -> bool:
    """True for a timm ``VisionTransformer`` with plain ``Attention`` blocks (what the steps recompute)."""
    from timm.layers import Attention  # timm: a heavy import (~6 s), made only when a page asks
    from timm.models.vision_transformer import VisionTransformer

    return isinstance(model, VisionTransformer) and all(type(b.attn) is Attention for b in model.blocks)


@dataclass(frozen=True)
class EmbeddingStep:
    """One patch, flattened and projected by the patch embedding.

    Attributes:
        pixels: (C·ph·pw,) the flattened patch in the model's (normalised) input, in the (C, ph, pw)
            order of the patch-embedding convolution's weight.
        embedding: (D,) ``W · pixels + b`` computed by hand.
        error: Largest absolute difference to the token the model's patch embedding produced.
    """

    pixels: np.ndarray
    embedding: np.ndarray
    error: float


@torch.no_grad()
def embed_patch(model, x: torch.Tensor, layout, row: int, col: int) -> EmbeddingStep:
    """Flatten patch (row, col) of input ``x`` (1, 3, H, W) and project it with the patch embedding."""
    vectors = _patch_vectors(model, x, layout)  # (N, C·ph·pw)
    index = row * layout.grid_size[1] + col
    proj = model.patch_embed.proj
    weight = proj.weight.reshape(proj.weight.shape[0], -1)  # (D, C·ph·pw)
    embedding = vectors[index] @ weight.T + (proj.bias if proj.bias is not None else 0.0)  # (D,)
    embedding = model.patch_embed.norm(embedding[None])[0]  # Identity for most ViTs
    # (1, N, D) or (1, gh, gw, D)
    reference = _memo("patch_embed", (model, x), (), lambda: model.patch_embed(_on(model, x)))
    reference = reference.reshape(reference.shape[0], -1, reference.shape[-1])[0, index]  # (D,)
    return EmbeddingStep(_numpy(vectors[index]), _numpy(embedding), float((embedding - reference).abs().max()))


@torch.no_grad()
def embed_patches(model, x: torch.Tensor, layout) -> tuple[np.ndarray, np.ndarray]:
    """Every patch of input ``x`` (1, 3, H, W), flattened and projected as :func:`embed_patch` does for one.

    Returns:
        ``(pixels (N, C·ph·pw), embeddings (N, D))``, float32, patches row-major.
    """
    vectors = _patch_vectors(model, x, layout)  # (N, C·ph·pw)
    proj = model.patch_embed.proj
    weight = proj.weight.reshape(proj.weight.shape[0], -1)  # (D, C·ph·pw)
    embeddings = vectors @ weight.T + (proj.bias if proj.bias is not None else 0.0)  # (N, D)
    embeddings = model.patch_embed.norm(embeddings)  # Identity for most ViTs
    return _numpy(vectors), _numpy(embeddings)


@torch.no_grad()
def first_tokens(model, x: torch.Tensor, capture) -> tuple[np.ndarray, float]:
    """The token sequence entering block 0: patch tokens, prefix tokens and position embeddings added.

    Returns:
        ``(tokens (N, D), error)``: the sequence made by the model's own ``_pos_embed`` (and ``norm_pre``),
        and its largest difference to the tokens the capture recorded entering block 0.
    """
    def compute():
        tokens = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(_on(model, x)))))[0]  # (N, D)
        recorded = _on(model, capture.hidden_states[0, 0])  # (N, D)
        return _numpy(tokens), float((tokens - recorded).abs().max())

    return _memo("first_tokens", (model, x, capture), (), compute)


@dataclass(frozen=True)
class AttentionStep:
    """Scaled dot-product attention of one query token in one layer and head, by hand.

    Attributes:
        layer, head, query: Where.
        head_dim: d, the size of one head's queries and keys.
        dots: (N,) q·k for every key token.
        scaled: (N,) q·k / √d.
        weights: (N,) softmax of ``scaled``: the attention row.
        error: Largest difference to the attention row the capture recorded.
    """

    layer: int
    head: int
    query: int
    head_dim: int
    dots: np.ndarray
    scaled: np.ndarray
    weights: np.ndarray
    error: float


def _queries_keys(model, capture, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every token's query and key in ``layer``, from the tokens entering it: ``(q, k)``, (1, H, N, d) each."""
    block = model.blocks[layer]
    attn = block.attn
    tokens = _on(model, capture.hidden_states[:1, layer])  # (1, N, D) entering the block
    n = tokens.shape[1]
    qkv = attn.qkv(block.norm1(tokens))  # (1, N, 3·H·d)
    qkv = qkv.reshape(1, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)  # (3, 1, H, N, d)
    return attn.q_norm(qkv[0]), attn.k_norm(qkv[1])  # (1, H, N, d) each


@torch.no_grad()
def attention_numbers(model, capture, layer: int, head: int, query: int) -> AttentionStep:
    """Recompute softmax(q·k/√d) for one query from the tokens entering ``layer`` (``supports_walkthrough``)."""
    attn = model.blocks[layer].attn
    q, k = _memo("queries_keys", (model, capture), (layer,), lambda: _queries_keys(model, capture, layer))
    dots = k[0, head] @ q[0, head, query]  # (N,)
    scaled = dots * attn.scale  # scale = d ** -0.5
    weights = scaled.softmax(dim=-1)  # (N,)
    recorded = _on(model, capture.attention_row(layer, query)[0, head])  # (N,)
    return AttentionStep(
        layer=layer, head=head, query=query, head_dim=int(attn.head_dim),
        dots=_numpy(dots.double()), scaled=_numpy(scaled.double()), weights=_numpy(weights.double()),
        error=float((weights - recorded).abs().max()),
    )


@dataclass(frozen=True)
class ClassifierStep:
    """The read-out: final norm, pooling (class token or average), linear head.

    Attributes:
        pooled: (D,) the feature vector the head reads (after ``fc_norm``).
        logits: (C,) the head's output, recomputed from the last block's tokens.
        error: Largest difference to the output the capture recorded.
    """

    pooled: np.ndarray
    logits: np.ndarray
    error: float


@torch.no_grad()
def classifier_numbers(model, capture) -> ClassifierStep:
    """Recompute the model's output from the tokens leaving the last block."""
    tokens = model.norm(_on(model, capture.hidden_states[:1, -1]))  # (1, N, D)
    pooled = model.fc_norm(model.pool(tokens))  # (1, D)
    logits = model.head(pooled)  # (1, C)
    error = float((logits - _on(model, capture.output[:1])).abs().max())
    return ClassifierStep(_numpy(pooled[0]), _numpy(logits[0]), error)


def shown_keys(weights: np.ndarray, layout, query: int, top: int = 3) -> list[int]:
    """The key tokens the walk-through lists for ``query``: every prefix token, the query itself, its right and
    lower neighbours, the grid's first and last patch, then the ``top`` keys with the largest weights.

    Args:
        weights: (N,) the query's attention row (:attr:`AttentionStep.weights`).
        layout: The model's ``TokenLayout``.
        query: The query's token index (a patch).
        top: How many of the largest weights to add.

    Returns:
        Token indices, each once, in that order.
    """
    gh, gw = layout.grid_size
    row, col = layout.patch_position(query)
    keys = list(range(layout.num_prefix_tokens)) + [query]
    for r, c in ((row, col + 1), (row + 1, col), (0, 0), (gh - 1, gw - 1)):
        if 0 <= r < gh and 0 <= c < gw:
            keys.append(layout.patch_index(r, c))
    keys += [int(k) for k in np.argsort(-weights, kind="stable")[:top]]
    return list(dict.fromkeys(keys))  # unique, in order
