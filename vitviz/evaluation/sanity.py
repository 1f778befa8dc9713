"""Sanity check of a map: does it change when the model it claims to explain is destroyed?

Protocol: **cascading model randomisation** (Adebayo et al. 2018, NeurIPS, "Sanity Checks for Saliency
Maps", Sec. 3.1). On a deep copy of the model (the model passed in is never touched):

1. step ``head``: the classifier is re-initialised: ``head`` (and ``head_dist`` of a distilled model),
   with what feeds it after the blocks (``fc_norm``, the attention-pooling ``attn_pool``);
2. step ``block L-1``: then also the top block;
3. …one more block at each step, from the top down, until block 0;
4. step ``final norm``: then the norm between the blocks and the head (``norm``);
5. step ``embeddings``: then the patch embedding (``patch_embed``, ``norm_pre``), the position embedding and
   the prefix tokens (class, distillation, register tokens): the model is now entirely re-initialised, as in
   Adebayo et al.'s cascade, which ends at the input layer.

The parts outside the blocks come last, so that the first steps are the classic cascade (head, then the blocks
from the top) and the last step leaves nothing the model learned. ``steps`` cuts the cascade after that many
steps.

Re-initialisation follows timm's own ViT init (``init_weights_vit_timm``): every ``Linear`` and ``Conv``
weight is drawn from a normal with std 0.02 (timm's ``trunc_normal_`` cuts at ±2, i.e. 100 std: never) and
its bias set to 0; every norm layer gets weight 1
and bias 0; any other parameter (LayerScale's gamma, the position embedding, the class and register tokens)
is drawn from a normal with that tensor's own mean and std. Draws come from a generator seeded with ``seed``,
so a check is reproducible.

At every step the method's map is recomputed for the same input and the same target class (the original
model's choice), and compared with the original map over the patches, with the three similarities Adebayo et
al. report: **Spearman rank correlation** of the signed maps and of their absolute values (ties get their
average rank), and **SSIM** (Wang et al. 2004: Gaussian window σ = 1.5, 7 patches wide or the grid's
smaller side, constants for a data range of 1) of the maps scaled to 0..1 by their own minimum and maximum.
A map is **flagged** when its signed rank correlation is still above
``threshold`` (0.9 by default) once the head *and* the top block are randomised: such a map does not
depend on what the model learned there. A method that never reads the head (raw attention, rollout:
``AttributionMethod.reads_head`` is False) keeps exactly its map at step ``head``; the result says so.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike
    from torch import nn

    from vitviz.attribution import AttributionMethod, Relevance


__all__ = ["FLAG_THRESHOLD", "METRICS", "SanityCheck", "cascade", "head_modules", "randomise_", "sanity_check",
           "spearman", "ssim"]

FLAG_THRESHOLD = 0.9
"""Rank correlation above which a map that survived the head and top-block randomisation is flagged."""
HEAD_PARTS = ("head", "head_dist", "fc_norm", "attn_pool")
EMBEDDING_MODULES = ("patch_embed", "norm_pre")
EMBEDDING_PARAMETERS = ("pos_embed", "cls_token", "dist_token", "reg_token")
METRICS = ("spearman", "spearman_abs", "ssim")
"""The similarities of each step's map with the original: signed and absolute Spearman, SSIM."""


@dataclass(frozen=True)
class SanityCheck:
    """One method's maps under cascading randomisation.

    Attributes:
        method: Registry key of the method.
        steps: Name of each step: ``'head'``, ``'block 11'``, ``'block 10'``, …
        correlations: (S,) Spearman rank correlation of each step's map with the original map (NaN where
            a map is constant).
        abs_correlations: (S,) the same of the absolute values (Adebayo et al.'s "absolute value" variant).
        ssim: (S,) structural similarity of each step's map with the original (both scaled to 0..1).
        maps: (S + 1, gh, gw) the original map first, then the map at each step.
        target: Class explained at every step (None for a method that ignores it).
        reads_head: Whether the method reads the classifier head at all.
        threshold: Rank correlation above which the map is flagged.
        flagged: True when the map still correlates above ``threshold`` after the head and the top block
            were randomised (the step ``block L-1``; the last step when fewer were run).
        seed: Seed of the re-initialisation.
    """

    method: str
    steps: tuple[str, ...]
    correlations: np.ndarray
    maps: np.ndarray
    target: int | None
    reads_head: bool
    threshold: float
    flagged: bool
    seed: int
    abs_correlations: np.ndarray | None = None
    ssim: np.ndarray | None = None

    def metric(self, name: str) -> np.ndarray:
        """(S,) the similarity ``name`` (one of :data:`METRICS`) at each step."""
        values = {"spearman": self.correlations, "spearman_abs": self.abs_correlations, "ssim": self.ssim}
        if name not in values or values[name] is None:
            raise ValueError(f"unknown or missing sanity metric {name!r}; known: {', '.join(METRICS)}")
        return values[name]

    @property
    def complete(self) -> bool:
        """Whether the cascade reached a fully re-initialised model (its last step is ``embeddings``)."""
        return bool(self.steps) and self.steps[-1] == "embeddings"

    @property
    def note(self) -> str:
        """A sentence for the reader: flagged or not, and whether the method reads the head."""
        parts = []
        if not self.reads_head:
            parts.append("This method never reads the classifier head, so randomising the head cannot change "
                         "its map (rank correlation 1 at that step).")
        at = self.steps[min(1, len(self.steps) - 1)]
        if self.flagged:
            parts.append(f"Flagged: its map still correlates above {self.threshold:g} with the original once "
                         f"the model is randomised up to {at!r}.")
        return " ".join(parts)


# --------------------------------------------------------------------------------------- pieces


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a flat array; ties get the average of their ranks."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.zeros(len(counts))
    np.add.at(sums, inverse, ranks)
    return (sums / counts)[inverse]


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation of two maps of the same shape (NaN when either is constant)."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"maps differ in shape: {np.shape(a)} vs {np.shape(b)}")
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


def _gaussian_window(size: int, sigma: float = 1.5) -> np.ndarray:
    """(size, size) Gaussian weights summing to 1."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    line = np.exp(-(offsets ** 2) / (2 * sigma ** 2))
    window = np.outer(line, line)
    return window / window.sum()


def _local_means(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Weighted means of every ``window``-sized block of ``image`` ("valid" positions only)."""
    size = window.shape[0]
    blocks = np.lib.stride_tricks.sliding_window_view(image, (size, size))  # (h', w', size, size)
    return np.einsum("ijkl,kl->ij", blocks, window)


def ssim(a: ArrayLike, b: ArrayLike, *, window: int = 7, sigma: float = 1.5) -> float:
    """Mean structural similarity (Wang et al. 2004) of two maps, each scaled to 0..1 by its min and max.

    Gaussian-weighted local statistics (σ = ``sigma``) over ``window`` × ``window`` blocks at every position where
    a block fits (the window shrinks to the largest odd size the map allows), constants ``C1 = 0.01²`` and
    ``C2 = 0.03²`` for a data range of 1; 1 for identical maps. A constant map scales to all zeros.
    """
    x, y = _unit(a), _unit(b)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"maps differ in shape or are not 2-D: {np.shape(a)} vs {np.shape(b)}")
    size = min(int(window), *x.shape)
    size -= 1 - size % 2  # odd
    weights = _gaussian_window(size, sigma)
    mx, my = _local_means(x, weights), _local_means(y, weights)
    vx = _local_means(x * x, weights) - mx ** 2
    vy = _local_means(y * y, weights) - my ** 2
    cov = _local_means(x * y, weights) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(index.mean())


def _unit(values: ArrayLike) -> np.ndarray:
    """A map scaled to 0..1 by its own finite minimum and maximum (constant or empty: zeros; NaN: its minimum)."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    if finite.size == 0 or finite.max() <= finite.min():
        return np.zeros_like(v)
    low, high = float(finite.min()), float(finite.max())
    return np.clip((np.nan_to_num(v, nan=low, posinf=high, neginf=low) - low) / (high - low), 0.0, 1.0)


def head_modules(model: nn.Module) -> list[nn.Module]:
    """The modules of the classifier head (see ``HEAD_PARTS``) that hold parameters."""
    import torch.nn as nn  # torch: heavy (see above)

    found = [getattr(model, name, None) for name in HEAD_PARTS]
    return [m for m in found if isinstance(m, nn.Module) and any(True for _ in m.parameters())]


def cascade(model: nn.Module) -> list[tuple[str, list[nn.Module], list[nn.Parameter]]]:
    """The randomisation steps of ``model``, in order: ``(name, modules, parameters)`` re-initialised at each
    (see the module docstring); steps with nothing to re-initialise are left out."""
    import torch.nn as nn  # torch: heavy (see above)

    blocks = list(getattr(model, "blocks", []))
    stages: list[tuple[str, list[nn.Module], list[nn.Parameter]]] = [("head", head_modules(model), [])]
    stages += [(f"block {i}", [blocks[i]], []) for i in reversed(range(len(blocks)))]
    norm = getattr(model, "norm", None)
    if isinstance(norm, nn.Module) and any(True for _ in norm.parameters()):
        stages.append(("final norm", [norm], []))
    modules = [m for name in EMBEDDING_MODULES if isinstance(m := getattr(model, name, None), nn.Module)]
    params = [p for name in EMBEDDING_PARAMETERS if isinstance(p := getattr(model, name, None), nn.Parameter)]
    if modules or params:
        stages.append(("embeddings", modules, params))
    return stages


def randomise_parameters_(params: list[nn.Parameter], generator: torch.Generator) -> None:
    """Draw each parameter anew from a normal with its own mean and std (std 0.02 for a constant tensor)."""
    import torch  # torch: heavy (see above)

    with torch.no_grad():
        for param in params:
            std = float(param.std()) if param.numel() > 1 else 0.0
            noise = torch.randn(param.shape, generator=generator, dtype=param.dtype).to(param.device)
            param.copy_(noise * (std or 0.02) + float(param.mean()))


def randomise_(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise every parameter of ``module`` in place (timm's ViT init; see the module doc)."""
    import torch  # torch: heavy; vitviz.evaluation imports without it (the CLI's summary)
    import torch.nn as nn  # torch: heavy (see above)

    def normal_like(tensor: torch.Tensor, mean: float, std: float) -> torch.Tensor:
        return torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype).to(tensor.device) * std + mean

    handled: set[int] = set()
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                sub.weight.copy_(normal_like(sub.weight, 0.0, 0.02))  # timm's trunc_normal_ cuts at ±2: never
                if sub.bias is not None:
                    sub.bias.zero_()
            elif isinstance(sub, (nn.LayerNorm, nn.GroupNorm)) or "Norm" in type(sub).__name__:
                for name, param in sub.named_parameters(recurse=False):
                    param.fill_(1.0 if name == "weight" else 0.0)
            else:
                continue
            handled.update(id(p) for p in sub.parameters(recurse=False))
    randomise_parameters_([p for p in module.parameters() if id(p) not in handled], generator)


def _patches(relevance: Relevance | np.ndarray) -> np.ndarray:
    return np.asarray(getattr(relevance, "patches", relevance), dtype=np.float64)


# --------------------------------------------------------------------------------------- the check


def sanity_check(
    model: nn.Module,
    x: torch.Tensor,
    method: str | AttributionMethod,
    target: int | None = None,
    *,
    steps: int | None = None,
    seed: int = 0,
    threshold: float = FLAG_THRESHOLD,
    original: Relevance | np.ndarray | None = None,
) -> SanityCheck:
    """Cascading randomisation of a copy of ``model``: the head, then blocks from the top down.

    Args:
        model: A timm ViT-family model (deep-copied under its capture lock; never changed).
        x: One normalised input (1, 3, H, W).
        method: An ``AttributionMethod`` or its registry key.
        target: Class to explain at every step; None for the original model's top class.
        steps: How many steps to run (head first, then one block each, then the final norm and the
            embeddings); default all (a fully re-initialised model at the end).
        seed: Seed of the re-initialisation.
        threshold: Rank correlation above which the map is flagged.
        original: The method's map on the unchanged model, when already computed.

    Returns:
        The SanityCheck.
    """
    import torch  # torch: heavy; vitviz.evaluation imports without it (the CLI's summary)

    from vitviz.attribution import get_method, resolve_target  # imports torch and timm: heavy, on first use
    from vitviz.capture import model_lock

    method = get_method(method) if isinstance(method, str) else method
    if method.class_specific:
        target = resolve_target(model, x, target)
    if original is None:
        original = method.attribute(model, x, target)
    with model_lock(model):
        victim = copy.deepcopy(model)
    victim.eval()
    stages = cascade(victim)
    if steps is not None:
        if int(steps) < 1:
            raise ValueError("a sanity check needs at least one step")
        stages = stages[: int(steps)]
    generator = torch.Generator().manual_seed(int(seed))
    reference = _patches(original)
    maps, correlations, absolute, similarity = [reference], [], [], []
    for _, modules, params in stages:
        for module in modules:
            randomise_(module, generator)
        randomise_parameters_(params, generator)
        current = _patches(method.attribute(victim, x, target))
        maps.append(current)
        correlations.append(spearman(reference, current))
        absolute.append(spearman(np.abs(reference), np.abs(current)))
        similarity.append(ssim(reference, current))
    correlations = np.asarray(correlations)
    judged = correlations[min(1, len(correlations) - 1)]
    return SanityCheck(
        method=method.key, steps=tuple(name for name, *_ in stages), correlations=correlations,
        abs_correlations=np.asarray(absolute), ssim=np.asarray(similarity),
        maps=np.stack(maps), target=target if method.class_specific else None,
        reads_head=bool(method.reads_head), threshold=float(threshold),
        flagged=bool(np.isfinite(judged) and judged > threshold), seed=int(seed),
    )
