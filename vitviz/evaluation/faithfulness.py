"""Per-image faithfulness: remove patches in the order a map ranks them and watch the target class fade.

Two orders (the names of Chefer, Gur & Wolf 2021, CVPR, Sec. 4, "perturbation tests"):

* **positive perturbation** (``order="most"``, "deletion"): the most relevant patches go first. A faithful
  map makes the target probability drop fast: the *lower* the AUC, the better.
* **negative perturbation** (``order="least"``): the least relevant patches go first. A faithful map keeps
  the prediction alive for long: the *higher* the AUC, the better.

Two kinds of removal:

* ``removal="tokens"``, **token dropping** (Jain et al. 2022, "Missingness Bias in Model Debugging", ICLR):
  the removed patch tokens are not fed to the model at all. The input is embedded once (patch embedding,
  position embedding, prefix tokens), the removed patch tokens are dropped from the sequence, and the kept
  ones run through the blocks, the final norm and the head. Average pooling then averages the kept
  tokens only. No baseline value is needed, so no out-of-distribution colour is shown to the model.
* ``removal="pixels"``, **Chefer's protocol** (``baselines/ViT/pertubation_eval_from_hdf5.py`` of
  github.com/hila-chefer/Transformer-Explainability): the (gh, gw) map is upsampled bilinearly to the
  input size (their ``interpolate(scale_factor=16, mode='bilinear')``; a method's own per-pixel map is
  used as it is), the top ``int(H·W·fraction)`` pixels are set to 0 in [0, 1] pixel space (so to
  ``-mean/std`` after normalisation), all channels of a pixel at once; the map is negated for the
  negative perturbation (their ``--neg``).

Ties in a map's ranking are broken at random with a seed, and the curve is averaged over several such orders
where a tie changes what a step removes (:mod:`vitviz.evaluation.ranking`; 4 orders by default).

Fractions are 0.0, 0.1, …, 0.9 by default: Chefer's steps 10 %…90 % plus the unperturbed input. A step
removes ``floor(fraction · n)`` of the n patches (tokens) or pixels, like their ``int(base_size * step)``.

The AUC is the trapezoidal area under the curve of the target's softmax probability over the fractions
(so at most 0.9 with the default steps; multiply by 100 to read it on the scale of Chefer's table). Their
released script records top-1 accuracy at the nine steps and leaves the area to the reader; here one
image has a probability, not an accuracy, and ``PerturbationCurve.predicted`` keeps the top class at
every step so that a data-set evaluation can take the accuracy curve (``PerturbationCurve.hit_rate``).

The rankings are in :mod:`.ranking`, the two removals' model passes in :mod:`.removal`, and the curves, their
AUC and the random band in :mod:`.curves`; this module runs the test.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .curves import Faithfulness, PerturbationBand, PerturbationCurve, area_under_curve
from .ranking import (
    DEFAULT_TIE_ORDERS,
    ORDERS,
    check_order,
    map_scores,
    pixel_ranking,
    removal_order,
    removal_orders,
)
from .removal import (
    check_token_model,
    clean_output,
    embed_tokens,
    forward_kept_tokens,
    model_device,
    normalisation,
    pixel_outputs,
    token_outputs,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vitviz.attribution import Relevance

__all__ = [
    "DEFAULT_FRACTIONS",
    "DEFAULT_TIE_ORDERS",
    "Faithfulness",
    "PerturbationBand",
    "PerturbationCurve",
    "ORDERS",
    "REMOVALS",
    "area_under_curve",
    "faithfulness",
    "embed_tokens",
    "forward_kept_tokens",
    "perturbation_curve",
    "perturbation_curves",
    "pixel_ranking",
    "random_baseline",
    "removal_order",
    "removed_count",
]

DEFAULT_FRACTIONS = tuple(i / 10 for i in range(10))
"""0.0, 0.1, …, 0.9: the unperturbed input and Chefer's nine steps."""
REMOVALS = ("tokens", "pixels")


# ----------------------------------------------------------------------------------------- helpers


def removed_count(fraction: float, total: int) -> int:
    """``floor(fraction · total)``, robust to float noise (0.3 · 10 is 3, not 2)."""
    return int(np.floor(fraction * total + 1e-9))


def _check_fractions(fractions: Iterable[float] | None) -> np.ndarray:
    values = np.asarray(DEFAULT_FRACTIONS if fractions is None else list(fractions), dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("fractions must be a non-empty list of numbers")
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() >= 1:
        raise ValueError("every fraction must be in [0, 1): at least one patch is always kept")
    if np.any(np.diff(values) <= 0):
        raise ValueError("fractions must increase")
    return values


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}, not {value!r}")
    return value


def perturbation_curves(
    model: nn.Module,
    x: torch.Tensor,
    scores: Mapping[str, Relevance | np.ndarray],
    target: int | None = None,
    *,
    removal: str = "tokens",
    orders: Sequence[str] = ORDERS,
    fractions: Iterable[float] | None = None,
    batch_size: int = 16,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    tie_orders: int = DEFAULT_TIE_ORDERS,
    seed: int | None = 0,
    pooled: bool = False,
    clean: torch.Tensor | None = None,
) -> dict[tuple[str, str], PerturbationCurve]:
    """Perturbation curves of several maps of one image in both orders at once, in shared batches.

    Token dropping runs one stacked batch per step (every curve keeps the same number of tokens there);
    pixel removal runs ``batch_size`` perturbed images per forward pass. The unperturbed input runs once (not
    at all when ``clean`` is given). Ties in a map are broken at random (:mod:`vitviz.evaluation.ranking`): a
    map whose ties change a step gets ``tie_orders`` orders, and its curve is their mean.

    Args:
        model: A timm ViT-family classifier in eval mode (left untouched; the capture lock is held).
        x: One normalised input (1, 3, H, W).
        scores: Name -> map, each a ``Relevance`` or a (gh, gw) array; for pixel removal a ``Relevance``
            with ``pixels`` of the input size is ranked per pixel (unless ``pooled``).
        target: Class whose probability is followed; None for the top class of the unperturbed input.
        removal: ``'tokens'`` (token dropping) or ``'pixels'`` (Chefer's protocol).
        orders: Which of ``'most'`` (positive perturbation) and ``'least'`` (negative perturbation) to run.
        fractions: Increasing fractions in [0, 1); default 0.0, 0.1, …, 0.9.
        batch_size: Perturbed images per forward pass (pixel removal).
        mean, std: Normalisation of ``x`` per channel; default the model's data config.
        tie_orders: Random tie-breaking orders averaged where ties matter (≥ 1).
        seed: Seed of the tie-breaking; None breaks ties by index (lower first), one order.
        pooled: Pixel removal ranks every map at patch resolution (a per-pixel map summed over each patch,
            then upsampled bilinearly like any patch map) instead of per pixel.
        clean: The model's output on ``x`` (1, C) or (C,), when the caller already has it (e.g. a capture's).

    Returns:
        ``(name, order)`` -> PerturbationCurve.
    """
    import torch  # torch: heavy, imported on first use

    from vitviz.capture import check_target, model_lock

    _check_choice(removal, REMOVALS, "removal")
    for order in orders:
        check_order(order)
    steps = _check_fractions(fractions)
    if not int(getattr(model, "num_classes", 0) or 0):
        raise ValueError("perturbation tests need a classifier: this model has no class scores")
    if target is not None:
        target = check_target(target, int(model.num_classes))
    if removal == "tokens":
        check_token_model(model)
    if getattr(x, "ndim", 0) != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one image (1, 3, H, W), got shape {tuple(getattr(x, 'shape', ()))}")
    x = x.to(model_device(model))
    keys = [(name, order) for name in scores for order in orders]
    if removal == "tokens":
        ranked = {name: map_scores(scores[name]) for name in scores}
    else:
        size = tuple(int(s) for s in x.shape[-2:])
        ranked = {name: pixel_ranking(scores[name], size, pooled=pooled) for name in scores}
    total = next(iter(ranked.values())).size if ranked else 0
    counts = [removed_count(f, total) for f in steps]
    per_key = [removal_orders(ranked[name], order, counts, tie_orders=tie_orders, seed=seed) for name, order in keys]
    rankings = np.concatenate(per_key) if per_key else np.zeros((0, total), dtype=np.int64)  # (R, n)
    with model_lock(model), torch.no_grad():
        unperturbed = clean_output(model, x, clean)
        if removal == "tokens":
            outputs = token_outputs(model, x, rankings, counts, unperturbed)
        else:
            mean_t, std_t = normalisation(model, x, mean, std)
            outputs = pixel_outputs(model, x, rankings, counts, (0.0 - mean_t) / std_t, batch_size, unperturbed)
        logits = outputs.double()  # (R, S, C)
        if target is None:
            target = int(unperturbed.argmax())
        probabilities = torch.softmax(logits, dim=-1)[..., target].cpu().numpy()  # (R, S)
        predicted = logits.argmax(dim=-1).cpu().numpy()  # (R, S)
        target_logits = logits[..., target].cpu().numpy()  # (R, S)
    curves, start = {}, 0
    for key, rows in zip(keys, per_key):
        span = slice(start, start + len(rows))
        start += len(rows)
        mean_probability = probabilities[span].mean(axis=0)  # (S,) over the tie orders
        curves[key] = PerturbationCurve(
            fractions=steps.copy(), probabilities=mean_probability, logits=target_logits[span].mean(axis=0),
            predicted=predicted[span][0], removed=np.asarray(counts),
            auc=area_under_curve(steps, mean_probability), target=int(target), removal=removal, order=key[1],
            tie_probabilities=probabilities[span], tie_predicted=predicted[span],
        )
    return curves


def perturbation_curve(
    model: nn.Module,
    x: torch.Tensor,
    relevance: Relevance | np.ndarray,
    target: int | None = None,
    *,
    removal: str = "tokens",
    order: str = "most",
    fractions: Iterable[float] | None = None,
    batch_size: int = 16,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    tie_orders: int = DEFAULT_TIE_ORDERS,
    seed: int | None = 0,
    pooled: bool = False,
    clean: torch.Tensor | None = None,
) -> PerturbationCurve:
    """One map's perturbation curve: the target probability as patches are removed in the map's order.

    Protocol (see the module doc): ``removal='tokens'`` drops the removed patch tokens from the sequence
    (Jain et al. 2022); ``removal='pixels'`` sets the removed pixels to 0 in [0, 1] space after upsampling
    the map bilinearly (Chefer et al. 2021). ``order='most'`` removes the most relevant first (positive
    perturbation, lower AUC is better); ``order='least'`` the least relevant first (negative
    perturbation, higher AUC is better). Arguments as :func:`perturbation_curves`.
    """
    return perturbation_curves(
        model, x, {"map": relevance}, target, removal=removal, orders=(order,), fractions=fractions,
        batch_size=batch_size, mean=mean, std=std, tie_orders=tie_orders, seed=seed, pooled=pooled, clean=clean,
    )["map", order]


def faithfulness(
    model: nn.Module,
    x: torch.Tensor,
    relevance: Relevance | np.ndarray,
    target: int | None = None,
    removal: str = "tokens",
    *,
    fractions: Iterable[float] | None = None,
    batch_size: int = 16,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    tie_orders: int = DEFAULT_TIE_ORDERS,
    seed: int | None = 0,
    pooled: bool = False,
    clean: torch.Tensor | None = None,
) -> Faithfulness:
    """Both perturbation curves of one map (positive: most relevant first; negative: least first).

    Arguments as :func:`perturbation_curves`; ``relevance`` is a ``Relevance`` or a (gh, gw) array.
    """
    curves = perturbation_curves(
        model, x, {"map": relevance}, target, removal=removal, fractions=fractions, batch_size=batch_size,
        mean=mean, std=std, tie_orders=tie_orders, seed=seed, pooled=pooled, clean=clean,
    )
    return Faithfulness(positive=curves["map", "most"], negative=curves["map", "least"], removal=removal,
                        method=str(getattr(relevance, "method", "")))


def random_baseline(
    model: nn.Module,
    x: torch.Tensor,
    target: int | None = None,
    *,
    removal: str = "tokens",
    order: str = "most",
    seeds: Iterable[int] = range(5),
    fractions: Iterable[float] | None = None,
    batch_size: int = 16,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    grid_size: tuple[int, int] | None = None,
    clean: torch.Tensor | None = None,
) -> PerturbationBand:
    """Curves of random orders (the map of ``vitviz.attribution.RandomMap(seed)`` per seed), as a band.

    A random map ranks the patches by chance, so both of its orders are chance; ``order`` is kept so the
    band is computed by the very protocol of the curve it is drawn beside. ``grid_size`` defaults to the
    model's patch grid at the size of ``x``; other arguments as :func:`perturbation_curves`.
    """
    from vitviz.attribution import RandomMap  # imports torch and timm: heavy, on first use

    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("the random baseline needs at least one seed")
    if grid_size is None:
        maps = {str(seed): RandomMap(seed).attribute(model, x) for seed in seeds}
    else:
        maps = {str(seed): np.random.default_rng(seed).random(tuple(grid_size)) for seed in seeds}
    curves = perturbation_curves(
        model, x, maps, target, removal=removal, orders=(order,), fractions=fractions, batch_size=batch_size,
        mean=mean, std=std, clean=clean,
    )
    rows = [curves[str(s), order] for s in seeds]
    return PerturbationBand(
        fractions=rows[0].fractions, probabilities=np.stack([c.probabilities for c in rows]),
        aucs=np.asarray([c.auc for c in rows]), removal=removal, order=order, seeds=seeds,
    )
