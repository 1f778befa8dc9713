"""Sanity check of a map: does it change when the model it claims to explain is destroyed?

Protocol: **cascading model randomisation** (Adebayo et al. 2018, NeurIPS, "Sanity Checks for Saliency
Maps", Sec. 3.1). On a deep copy of the model (the model passed in is never touched):

1. step ``head``: the classifier is re-initialised: ``head`` (and ``head_dist`` of a distilled model),
   with what feeds it after the blocks (``fc_norm``, the attention-pooling ``attn_pool``);
2. step ``block L-1``: then also the top block;
3. …one more block at each step, from the top down, until block 0 (or ``steps`` steps in all).

Re-initialisation follows timm's own ViT init (``init_weights_vit_timm``): every ``Linear`` and ``Conv``
weight is drawn from a normal with std 0.02 (timm's ``trunc_normal_`` cuts at ±2, i.e. 100 std: never) and
its bias set to 0; every norm layer gets weight 1
and bias 0; any other parameter (LayerScale's gamma) is drawn from a normal with that tensor's own mean
and std. Draws come from a generator seeded with ``seed``, so a check is reproducible.

At every step the method's map is recomputed for the same input and the same target class (the original
model's choice), and compared with the original map by **Spearman rank correlation** over the patches
(ties get their average rank). A map is **flagged** when its rank correlation is still above
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


__all__ = ["FLAG_THRESHOLD", "SanityCheck", "head_modules", "randomise_", "sanity_check", "spearman"]

FLAG_THRESHOLD = 0.9
"""Rank correlation above which a map that survived the head and top-block randomisation is flagged."""
HEAD_PARTS = ("head", "head_dist", "fc_norm", "attn_pool")


@dataclass(frozen=True)
class SanityCheck:
    """One method's maps under cascading randomisation.

    Attributes:
        method: Registry key of the method.
        steps: Name of each step: ``'head'``, ``'block 11'``, ``'block 10'``, …
        correlations: (S,) Spearman rank correlation of each step's map with the original map (NaN where
            a map is constant).
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


def head_modules(model: nn.Module) -> list[nn.Module]:
    """The modules of the classifier head (see ``HEAD_PARTS``) that hold parameters."""
    import torch.nn as nn  # torch: heavy (see above)

    found = [getattr(model, name, None) for name in HEAD_PARTS]
    return [m for m in found if isinstance(m, nn.Module) and any(True for _ in m.parameters())]


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
        for param in module.parameters():
            if id(param) not in handled:
                std = float(param.std()) if param.numel() > 1 else 0.02
                param.copy_(normal_like(param, float(param.mean()), std or 0.02))


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
        steps: How many steps to run (head first, then one block each); default all (1 + number of blocks).
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
    blocks = list(getattr(victim, "blocks", []))
    stages: list[tuple[str, list[nn.Module]]] = [("head", head_modules(victim))]
    stages += [(f"block {i}", [blocks[i]]) for i in reversed(range(len(blocks)))]
    if steps is not None:
        if int(steps) < 1:
            raise ValueError("a sanity check needs at least one step")
        stages = stages[: int(steps)]
    generator = torch.Generator().manual_seed(int(seed))
    reference = _patches(original)
    maps, correlations = [reference], []
    for _, modules in stages:
        for module in modules:
            randomise_(module, generator)
        current = _patches(method.attribute(victim, x, target))
        maps.append(current)
        correlations.append(spearman(reference, current))
    correlations = np.asarray(correlations)
    judged = correlations[min(1, len(correlations) - 1)]
    return SanityCheck(
        method=method.key, steps=tuple(name for name, _ in stages), correlations=correlations,
        maps=np.stack(maps), target=target if method.class_specific else None,
        reads_head=bool(method.reads_head), threshold=float(threshold),
        flagged=bool(np.isfinite(judged) and judged > threshold), seed=int(seed),
    )
