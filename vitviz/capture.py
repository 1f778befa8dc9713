"""Capture: one forward pass of a timm ViT that records every layer's real attention.

Two storage paths give the same attention probabilities (proved in ``tests/unit/test_capture.py``):

``'full'``
    Every attention module runs its unfused path for the duration of the capture (``fused_attn`` is set to
    False and restored afterwards) and a forward hook on ``attn_drop`` records the softmax output, the
    exact tensor the block multiplies with its values. Chosen when the whole ``(B, L, H, N, N)`` tensor fits
    ``FULL_STORAGE_BUDGET`` (ViT-B/16 at 224: 22 MB) and always when gradients are requested.
``'qk'``
    The fused kernel keeps running; hooks on ``q_norm`` / ``k_norm`` keep each block's queries and keys
    ``(B, H, N, d)``, and attention is computed on demand, one layer or one query row at a time. Chosen for
    large token counts (DINOv2-L/14 at 518: 1370 tokens, 2.9 GB of attention in float32, but 270 MB of
    queries and keys), so no view ever needs the whole tensor. Only for timm's plain ``Attention`` module,
    where the softmax of ``scale * q @ k.T`` is exactly what the fused kernel computes.

Captures on one model object are serialised by a per-model lock, and hooks ignore calls from other
threads, so concurrent sessions sharing a cached model never see each other's attention.
"""
from __future__ import annotations

import operator
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .hooks import Edits
from .i18n import _
from .layout import TokenLayout

__all__ = [
    "FULL_STORAGE_BUDGET",
    "AttentionRecorder",
    "Capture",
    "CaptureError",
    "attention_modules",
    "capture",
    "check_target",
    "eager_attention",
    "model_lock",
]

FULL_STORAGE_BUDGET = 256 * 2**20
"""Largest attention tensor, in bytes, that ``storage='auto'`` keeps whole."""

_FUSIONS = ("mean", "max", "min")
_MODEL_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


class CaptureError(RuntimeError):
    """The model's attention could not be captured (unsupported module, hook that never fired, ...)."""


def model_lock(model: nn.Module) -> threading.RLock:
    """The lock that serialises captures on ``model``.

    Hold it to read or copy the model while no capture has hooks registered or ``fused_attn`` switched
    off (e.g. ``copy.deepcopy`` for a re-patched copy).
    """
    with _LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.RLock()
        return lock


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention module of every transformer block, in depth order.

    Raises:
        CaptureError: When the model has no ``blocks`` or a block's attention cannot be recorded.
    """
    blocks = getattr(model, "blocks", None)
    if blocks is None or len(blocks) == 0:
        raise CaptureError(_(
            "{model} has no transformer blocks; vitviz captures ViT-family models "
            "(vit_*, deit*, eva*, flexivit_*, DINO/DINOv2)."
        ).format(model=type(model).__name__))
    modules = []
    for i, block in enumerate(blocks):
        attn = getattr(block, "attn", None)
        if attn is None or not hasattr(attn, "attn_drop") or not hasattr(attn, "fused_attn"):
            raise CaptureError(_(
                "block {index} uses {module}, an attention module vitviz cannot record "
                "(it needs timm's Attention/EvaAttention with an unfused path through attn_drop)."
            ).format(index=i, module=type(attn).__name__))
        modules.append(attn)
    return modules


def eager_attention(edits: Edits, modules: Sequence[nn.Module]) -> None:
    """Run each attention module on its unfused path (``fused_attn = False``) until ``edits`` ends.

    timm's fused kernel never forms the attention matrix; its eager path computes the softmax and passes it
    through ``attn_drop``, where a hook can see it. Setting the global flag after the model was built changes
    nothing, so each module's own flag is switched, and given back on exit.
    """
    for module in modules:
        edits.set(module, "fused_attn", False)


def _supports_qk(attn: nn.Module) -> bool:
    """True when softmax(scale * q_norm(q) @ k_norm(k).T) is exactly the module's attention."""
    from timm.layers import Attention  # timm: heavy; capturing itself needs torch only

    return type(attn) is Attention and getattr(attn, "gate", None) is None


def _bytes_full(batch: int, layers: int, heads: int, tokens: int) -> int:
    return 4 * batch * layers * heads * tokens * tokens


@dataclass(frozen=True, eq=False)
class Capture:
    """Everything one forward pass recorded. Batch first everywhere; N tokens, L layers, H heads.

    Attributes:
        layout: Token layout of the input that was captured.
        output: Model output (B, C): logits, or pooled features for a model without a head.
        hidden_states: Tokens (B, L+1, N, D): ``[:, 0]`` enters block 0, ``[:, i]`` leaves block i-1.
        storage: ``'full'`` or ``'qk'`` (see the module docstring).
        num_layers: L.
        num_heads: H.
        target: Class per batch item whose gradients were taken, or None.
    """

    layout: TokenLayout
    output: torch.Tensor
    hidden_states: torch.Tensor
    storage: str
    num_layers: int
    num_heads: int
    target: tuple[int, ...] | None
    _probs: tuple[torch.Tensor, ...] | None = None  # L × (B, H, N, N)
    _queries: tuple[torch.Tensor, ...] | None = None  # L × (B, H, N, d), already q_norm'ed
    _keys: tuple[torch.Tensor, ...] | None = None  # L × (B, H, N, d)
    _scales: tuple[float, ...] | None = None
    _grads: tuple[torch.Tensor, ...] | None = None  # L × (B, H, N, N)

    @property
    def batch_size(self) -> int:
        return int(self.output.shape[0])

    @property
    def num_tokens(self) -> int:
        return int(self.hidden_states.shape[2])

    def _check_layer(self, layer: int) -> int:
        if not -self.num_layers <= layer < self.num_layers:
            raise IndexError(f"layer {layer} out of range for {self.num_layers} layers")
        return layer % self.num_layers

    def attention(self, layer: int) -> torch.Tensor:
        """Attention probabilities of one layer, (B, H, N, N); each row sums to 1."""
        layer = self._check_layer(layer)
        if self._probs is not None:
            return self._probs[layer]
        q = self._queries[layer].float() * self._scales[layer]
        return (q @ self._keys[layer].float().transpose(-2, -1)).softmax(dim=-1)  # (B, H, N, N)

    def attention_row(self, layer: int, query: int) -> torch.Tensor:
        """One query token's attention over all tokens, every head: (B, H, N)."""
        layer = self._check_layer(layer)
        if not 0 <= query < self.num_tokens:
            raise IndexError(f"query token {query} out of range for {self.num_tokens} tokens")
        if self._probs is not None:
            return self._probs[layer][:, :, query, :]
        q = self._queries[layer][:, :, query : query + 1, :].float() * self._scales[layer]  # (B, H, 1, d)
        row = (q @ self._keys[layer].float().transpose(-2, -1)).softmax(dim=-1)  # (B, H, 1, N)
        return row[:, :, 0, :]

    def fused_attention(self, layer: int, fusion: str = "mean") -> torch.Tensor:
        """Attention of one layer with heads fused by ``'mean'``, ``'max'`` or ``'min'``: (B, N, N)."""
        if fusion not in _FUSIONS:
            raise ValueError(f"head fusion must be one of {_FUSIONS}, not {fusion!r}")
        attn = self.attention(layer)  # (B, H, N, N)
        if fusion == "mean":
            return attn.mean(dim=1)
        return attn.amax(dim=1) if fusion == "max" else attn.amin(dim=1)

    def attention_grad(self, layer: int) -> torch.Tensor:
        """Gradient of ``output[b, target[b]]`` w.r.t. one layer's attention probabilities, (B, H, N, N)."""
        if self._grads is None:
            raise ValueError("this capture holds no gradients: call capture(..., target=class_index)")
        return self._grads[self._check_layer(layer)]

    def attentions(self) -> torch.Tensor:
        """All layers' attention stacked, (B, L, H, N, N). Builds the whole tensor: small models only."""
        return torch.stack([self.attention(i) for i in range(self.num_layers)], dim=1)


class AttentionRecorder:
    """Context manager that records the attention of every block during forward passes.

    Inside the ``with`` block the model's hooks are live (and, for ``'full'`` storage, its attention modules
    run unfused); on exit every hook is removed and every ``fused_attn`` flag and the train/eval mode are
    restored, also when the forward pass raised. The recorder holds the model's capture lock for its whole
    life, so two recorders on one model never overlap.

    Args:
        model: A timm ViT-family model.
        storage: ``'full'`` (attention probabilities) or ``'qk'`` (queries and keys).
        keep_graph: Keep recorded attention in the autograd graph (for gradients; ``'full'`` only).
    """

    def __init__(self, model: nn.Module, storage: str = "full", keep_graph: bool = False) -> None:
        if storage not in ("full", "qk"):
            raise ValueError(f"storage must be 'full' or 'qk', not {storage!r}")
        if keep_graph and storage != "full":
            raise ValueError("gradients need storage='full'")
        self.model = model
        self.storage = storage
        self.keep_graph = keep_graph
        self.modules = attention_modules(model)
        if storage == "qk" and not all(_supports_qk(m) for m in self.modules):
            raise CaptureError(_("storage='qk' needs timm's plain Attention module in every block"))
        self._lock = model_lock(model)
        self._edits = Edits()
        self._owner: int | None = None
        self.clear()

    def clear(self) -> None:
        """Forget everything recorded so far."""
        layers = len(self.modules)
        self.probs: list[list[torch.Tensor]] = [[] for _ in range(layers)]
        self.queries: list[list[torch.Tensor]] = [[] for _ in range(layers)]
        self.keys: list[list[torch.Tensor]] = [[] for _ in range(layers)]
        self.hidden: list[torch.Tensor] = []  # one (B, L+1, N, D) tensor per forward pass

    def _mine(self) -> bool:
        return threading.get_ident() == self._owner

    def _store_hook(self, bucket: list[torch.Tensor], copy: bool = False):
        """Keep a module's output; ``copy`` for views (q, k) that would otherwise pin the whole qkv buffer.

        Tensors stay on the model's device until the pass ends: one transfer each, no sync per layer.
        """

        def hook(_module, _args, output):
            if self._mine():
                kept = output if self.keep_graph else output.detach()
                bucket.append(kept.clone() if copy else kept)

        return hook

    def _block_input_hook(self, _module, args):
        if self._mine():
            tokens = args[0].detach()  # (B, N, D)
            batch, num_tokens, dim = tokens.shape
            hidden = tokens.new_empty((batch, len(self.modules) + 1, num_tokens, dim))  # (B, L+1, N, D)
            hidden[:, 0] = tokens
            self.hidden.append(hidden)

    def _register(self, edits: Edits) -> None:
        blocks = self.model.blocks
        edits.forward_pre_hook(blocks[0], self._block_input_hook)
        for i, (block, attn) in enumerate(zip(blocks, self.modules)):
            edits.forward_hook(block, self._store_block_output(i))
            if self.storage == "full":
                edits.forward_hook(attn.attn_drop, self._store_hook(self.probs[i]))
            else:
                edits.forward_hook(attn.q_norm, self._store_hook(self.queries[i], True))
                edits.forward_hook(attn.k_norm, self._store_hook(self.keys[i], True))

    def _store_block_output(self, i: int):
        def hook(_module, _args, output):
            if self._mine():
                self.hidden[-1][:, i + 1] = output.detach()

        return hook

    def __enter__(self) -> AttentionRecorder:
        self._lock.acquire()
        self._edits = Edits()
        try:
            self._owner = threading.get_ident()
            if self.model.training:  # eval() walks every module: skip it when there is nothing to change
                self.model.eval()
                self._edits.callback(self.model.train)
            if self.storage == "full":
                eager_attention(self._edits, self.modules)
            self._register(self._edits)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._restore()  # never swallows the exception: returns None

    def _restore(self) -> None:
        try:
            self._edits.close()  # hooks removed, flags and the train/eval mode given back, in reverse order
        finally:
            self._owner = None
            self._lock.release()

    def check_fired(self, passes: int = 1) -> None:
        """Raise CaptureError unless every layer's hooks fired exactly ``passes`` times."""
        buckets = self.probs if self.storage == "full" else self.queries
        for i, bucket in enumerate(buckets):
            if len(bucket) != passes:
                raise CaptureError(_(
                    "the attention hook of layer {layer} ({module}) fired {fired} times in {passes} forward "
                    "pass(es); its attention cannot be trusted"
                ).format(layer=i, module=type(self.modules[i]).__name__, fired=len(bucket), passes=passes))


def _choose_storage(model: nn.Module, layout: TokenLayout, batch: int, storage: str, target) -> str:
    """The storage ``'auto'`` means, judged by what capturing *and* viewing cost.

    Capturing costs the same either way within noise at 197 tokens (ViT-B/16, CPU time side by side: full
    0.97×, qk 0.98× the fused forward; ``bench/README.md`` §1), but with ``qk`` every view recomputes
    ``softmax(q·kᵀ)`` for its layer (capture + every layer viewed once: full 1.00×, qk 1.02×), and a page
    views the same layers again on every rerun. So the whole tensor is kept while it fits
    ``FULL_STORAGE_BUDGET``; beyond it only queries and keys are (the full tensor would not fit, and the
    unfused forward alone costs ~1.5× the fused one at 1370 tokens).
    """
    modules = attention_modules(model)
    full = _bytes_full(batch, len(modules), int(modules[0].num_heads), layout.num_tokens)
    if target is not None:
        if storage == "qk":
            raise ValueError("gradients need storage='full' (or 'auto')")
        if full > FULL_STORAGE_BUDGET:
            raise CaptureError(_(
                "class-specific maps need every layer's attention and its gradient, {needed:,.0f} MB "
                "of memory for {tokens} tokens: too large (the limit is {limit:,.0f} MB). Use a smaller input "
                "size or a smaller model."
            ).format(needed=2 * full / 2**20, tokens=layout.num_tokens, limit=2 * FULL_STORAGE_BUDGET / 2**20))
        return "full"
    if storage != "auto":
        return storage
    if full <= FULL_STORAGE_BUDGET or not all(_supports_qk(m) for m in modules):
        return "full"  # small enough to keep whole, or the only exact path for this module type
    return "qk"


def check_target(target: int, num_classes: int) -> int:
    """``target`` as an index of one of the model's ``num_classes`` classes (the one check of a class index:
    capture, the pipeline, the attribution methods and the evaluation all ask it).

    Raises:
        ValueError: The model has no classifier (``num_classes`` 0), or ``target`` is not a whole number from 0
            to ``num_classes - 1`` (a negative index is refused, never counted from the end).
    """
    if not num_classes:
        raise ValueError(_("this model has no classifier head: there is no class to explain"))
    try:
        index = operator.index(target)
    except TypeError:
        raise ValueError(_("class index {target} is out of range: the model has {count} classes").format(
            target=repr(target), count=num_classes)) from None
    if not 0 <= index < num_classes:
        raise ValueError(_("class index {target} is out of range: the model has {count} classes").format(
            target=index, count=num_classes))
    return index


def _targets(model: nn.Module, target: int | Sequence[int] | None, batch: int) -> tuple[int, ...] | None:
    if target is None:
        return None
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    if np.ndim(target) == 0:  # an int, a numpy or 0-d torch integer
        return (check_target(target, num_classes),) * batch
    targets = tuple(check_target(t, num_classes) for t in target)
    if len(targets) != batch:
        raise ValueError(f"{len(targets)} targets for a batch of {batch}")
    return targets


def capture(
    model: nn.Module,
    x: torch.Tensor,
    *,
    target: int | Sequence[int] | None = None,
    storage: str = "auto",
) -> Capture:
    """Run one forward pass and record every layer's attention, tokens and output.

    Args:
        model: A timm ViT-family model (VisionTransformer, DeiT, Eva, DINOv2, FlexiViT, ...).
        x: Input batch (B, 3, H, W), already normalised for the model.
        target: Class index (or one per batch item) whose output's gradient w.r.t. every layer's attention
            is recorded, for gradient-weighted methods. Runs one backward pass.
        storage: ``'auto'``, ``'full'`` or ``'qk'`` (see the module docstring). ``'auto'`` keeps the full
            attention when it fits ``FULL_STORAGE_BUDGET`` and queries/keys otherwise.

    Returns:
        The frozen Capture.
    """
    if x.ndim != 4:
        raise ValueError(f"expected an image batch (B, 3, H, W), got shape {tuple(x.shape)}")
    batch = int(x.shape[0])
    layout = TokenLayout.from_model(model, tuple(x.shape[-2:]))
    targets = _targets(model, target, batch)
    storage = _choose_storage(model, layout, batch, storage, targets)
    recorder = AttentionRecorder(model, storage=storage, keep_graph=targets is not None)
    with recorder:
        if targets is None:
            with torch.no_grad():
                output = model(x)
            grads = None
        else:
            with torch.enable_grad():
                # The input requires grad so a graph exists even when the parameters are frozen.
                output = model(x.detach().requires_grad_(True))
                recorder.check_fired()
                score = output[torch.arange(batch), torch.tensor(targets)].sum()
                grads = torch.autograd.grad(score, [bucket[0] for bucket in recorder.probs])
        recorder.check_fired()
    return _build(recorder, layout, output, grads, targets)


def _build(recorder: AttentionRecorder, layout: TokenLayout, output, grads, targets) -> Capture:
    hidden_states = recorder.hidden[0].cpu()  # (B, L+1, N, D)
    if hidden_states.shape[2] != layout.num_tokens:
        raise CaptureError(_(
            "the model produced {count} tokens but its layout says {layout}; vitviz cannot place the tokens on "
            "the image"
        ).format(count=hidden_states.shape[2], layout=layout.describe()))
    modules = recorder.modules
    fields = dict(
        layout=layout,
        output=output.detach().cpu(),
        hidden_states=hidden_states,
        storage=recorder.storage,
        num_layers=len(modules),
        num_heads=int(modules[0].num_heads),
        target=targets,
    )
    if recorder.storage == "full":
        probs = tuple(bucket[0].detach().cpu() for bucket in recorder.probs)
        fields["_probs"] = probs
        if grads is not None:
            fields["_grads"] = tuple(g.detach().cpu() for g in grads)
    else:
        fields["_queries"] = tuple(bucket[0].cpu() for bucket in recorder.queries)
        fields["_keys"] = tuple(bucket[0].cpu() for bucket in recorder.keys)
        fields["_scales"] = tuple(float(m.scale) for m in modules)
    return Capture(**fields)
