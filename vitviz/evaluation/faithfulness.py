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

Fractions are 0.0, 0.1, …, 0.9 by default: Chefer's steps 10 %…90 % plus the unperturbed input. A step
removes ``floor(fraction · n)`` of the n patches (tokens) or pixels, like their ``int(base_size * step)``.

The AUC is the trapezoidal area under the curve of the target's softmax probability over the fractions
(so at most 0.9 with the default steps; multiply by 100 to read it on the scale of Chefer's table). Their
released script records top-1 accuracy at the nine steps and leaves the area to the reader; here one
image has a probability, not an accuracy, and ``PerturbationCurve.predicted`` keeps the top class at
every step so that a data-set evaluation can take the accuracy curve (``PerturbationCurve.hits``).

One concept in one file (over 450 lines): the perturbation test, its two removals (tokens, pixels), its
curves, their AUC and the random band share the rankings and the model passes.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vitviz.images.preprocess import data_config

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vitviz.attribution import Relevance

__all__ = [
    "DEFAULT_FRACTIONS",
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
ORDERS = ("most", "least")
ORDER_NAMES = {"most": "positive perturbation", "least": "negative perturbation"}


@dataclass(frozen=True)
class PerturbationCurve:
    """The target class's score while more and more of the input is removed.

    Attributes:
        fractions: (S,) fraction of patches (tokens) or pixels removed at each step, increasing.
        probabilities: (S,) softmax probability of ``target`` at each step.
        logits: (S,) logit of ``target`` at each step.
        predicted: (S,) top class at each step.
        removed: (S,) how many patches (tokens) or pixels were removed at each step.
        auc: Trapezoidal area under ``probabilities`` over ``fractions``.
        target: Class whose probability is followed.
        removal: ``'tokens'`` or ``'pixels'``.
        order: ``'most'`` (positive perturbation) or ``'least'`` (negative perturbation).
    """

    fractions: np.ndarray
    probabilities: np.ndarray
    logits: np.ndarray
    predicted: np.ndarray
    removed: np.ndarray
    auc: float
    target: int
    removal: str
    order: str

    @property
    def hits(self) -> np.ndarray:
        """(S,) whether the top class is still ``target`` at each step (Chefer's accuracy, one image)."""
        return self.predicted == self.target

    @property
    def name(self) -> str:
        """Chefer's name of the order: ``'positive perturbation'`` or ``'negative perturbation'``."""
        return ORDER_NAMES[self.order]


@dataclass(frozen=True)
class Faithfulness:
    """Both perturbation curves of one map.

    Attributes:
        positive: Most relevant removed first (deletion); lower AUC is better.
        negative: Least relevant removed first; higher AUC is better.
        removal: ``'tokens'`` or ``'pixels'``.
        method: Registry key of the method whose map was tested ('' for a bare array).
    """

    positive: PerturbationCurve
    negative: PerturbationCurve
    removal: str
    method: str = ""

    @property
    def fractions(self) -> np.ndarray:
        return self.positive.fractions

    @property
    def positive_auc(self) -> float:
        return self.positive.auc

    @property
    def negative_auc(self) -> float:
        return self.negative.auc


@dataclass(frozen=True)
class PerturbationBand:
    """Curves of several random orders: the chance level a map must beat.

    Attributes:
        fractions: (S,) fractions removed.
        probabilities: (R, S) target probability per random order and step.
        aucs: (R,) AUC of each random order.
        removal: ``'tokens'`` or ``'pixels'``.
        order: The order the random maps were read in (for a random map both orders are chance).
        seeds: Seeds of the random maps (``vitviz.attribution.RandomMap``).
    """

    fractions: np.ndarray
    probabilities: np.ndarray
    aucs: np.ndarray
    removal: str
    order: str
    seeds: tuple[int, ...]

    @property
    def mean(self) -> np.ndarray:
        return self.probabilities.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        return self.probabilities.std(axis=0)

    @property
    def low(self) -> np.ndarray:
        return self.probabilities.min(axis=0)

    @property
    def high(self) -> np.ndarray:
        return self.probabilities.max(axis=0)

    @property
    def auc_mean(self) -> float:
        return float(self.aucs.mean())

    @property
    def auc_std(self) -> float:
        return float(self.aucs.std())


# ----------------------------------------------------------------------------------------- helpers


def area_under_curve(fractions: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoidal area under ``values`` over ``fractions`` (sklearn's ``auc``, numpy's ``trapezoid``)."""
    x = np.asarray(fractions, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


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


def _scores(relevance: Relevance | np.ndarray) -> np.ndarray:
    """(gh, gw) float64 scores from a ``Relevance`` or an array; NaN ranks as least relevant."""
    patches = getattr(relevance, "patches", relevance)
    scores = np.asarray(patches, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"a relevance map must be (grid_h, grid_w), got shape {scores.shape}")
    return np.where(np.isfinite(scores), scores, -np.inf)


def removal_order(scores: np.ndarray, order: str) -> np.ndarray:
    """Flat indices of ``scores`` in the order they are removed (ties: lower index first).

    Args:
        scores: Relevance of each patch (any shape; flattened row-major, the token order).
        order: ``'most'`` removes the highest score first, ``'least'`` the lowest first.
    """
    flat = np.asarray(scores, dtype=np.float64).reshape(-1)
    _check_choice(order, ORDERS, "order")
    key = -flat if order == "most" else flat
    return np.argsort(key, kind="stable")


def pixel_ranking(relevance: Relevance | np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """(H, W) per-pixel scores for Chefer's pixel removal.

    A method's own per-pixel map (``Relevance.pixels``) is used as it is; a (gh, gw) map is upsampled
    bilinearly (``align_corners=False``, as ``torch.nn.functional.interpolate`` in Chefer's code).
    """
    import torch  # torch: heavy; vitviz.evaluation imports without it (the CLI's summary)
    import torch.nn.functional as F

    pixels = getattr(relevance, "pixels", None)
    if pixels is not None and tuple(np.shape(pixels)) == tuple(input_size):
        return np.asarray(pixels, dtype=np.float64)
    scores = torch.as_tensor(_scores(relevance))
    scores = torch.nan_to_num(scores, neginf=float(scores[torch.isfinite(scores)].min()) if
                              torch.isfinite(scores).any() else 0.0)
    up = F.interpolate(scores[None, None], size=tuple(input_size), mode="bilinear", align_corners=False)
    return up[0, 0].numpy()  # (H, W)


def _mean_std(model: nn.Module, x: torch.Tensor, mean: Sequence[float] | None,
              std: Sequence[float] | None) -> tuple[torch.Tensor, torch.Tensor]:
    import torch  # torch: heavy; vitviz.evaluation imports without it (the CLI's summary)

    if mean is None or std is None:
        config = data_config(model)
        mean = config["mean"] if mean is None else mean
        std = config["std"] if std is None else std
    as_tensor = lambda v: torch.as_tensor(v, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)  # noqa: E731
    return as_tensor(mean), as_tensor(std)


def _device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # a parameter-free model (tests)
        import torch  # torch: heavy; vitviz.evaluation imports without it (the CLI's summary)

        return torch.device("cpu")


# ------------------------------------------------------------------------------------ model passes


def _check_token_model(model: nn.Module) -> None:
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

    _check_token_model(model)
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


def _token_outputs(model: nn.Module, x: torch.Tensor, orders: np.ndarray, counts: Sequence[int]) -> torch.Tensor:
    """(R, S, C) outputs: R removal orders × S steps, one stacked batch per step."""
    import torch  # torch: heavy; vitviz.evaluation imports without it (the CLI's summary)

    tokens = embed_tokens(model, x)  # (1, P + N, D)
    outputs = []
    for count in counts:
        kept = np.sort(orders[:, count:], axis=1)  # (R, N - count), in sequence order
        if count == 0:
            out = forward_kept_tokens(model, x, kept[:1], tokens=tokens).expand(len(orders), -1)
        else:
            out = forward_kept_tokens(model, x, kept, tokens=tokens)
        outputs.append(out)
    return torch.stack(outputs, dim=1)  # (R, S, C)


def _pixel_outputs(model: nn.Module, x: torch.Tensor, orders: np.ndarray, counts: Sequence[int], baseline: torch.Tensor,
                   batch_size: int) -> torch.Tensor:
    """(R, S, C) outputs: R pixel orders × S steps, removed pixels set to ``baseline`` (1, 3, 1, 1)."""
    import torch  # torch: heavy; vitviz.evaluation imports without it (the CLI's summary)

    height, width = x.shape[-2:]
    steps = [(r, s) for r in range(len(orders)) for s, count in enumerate(counts) if count]
    clean = model(x)[0]  # (C,)
    outputs = clean[None, None].repeat(len(orders), len(counts), 1)  # (R, S, C)
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
) -> dict[tuple[str, str], PerturbationCurve]:
    """Perturbation curves of several maps of one image in both orders at once, in shared batches.

    Token dropping runs one stacked batch per step (every curve keeps the same number of tokens there);
    pixel removal runs ``batch_size`` perturbed images per forward pass. The unperturbed input runs once.

    Args:
        model: A timm ViT-family classifier in eval mode (left untouched; the capture lock is held).
        x: One normalised input (1, 3, H, W).
        scores: Name -> map, each a ``Relevance`` or a (gh, gw) array; for pixel removal a ``Relevance``
            with ``pixels`` of the input size is ranked per pixel.
        target: Class whose probability is followed; None for the top class of the unperturbed input.
        removal: ``'tokens'`` (token dropping) or ``'pixels'`` (Chefer's protocol).
        orders: Which of ``'most'`` (positive perturbation) and ``'least'`` (negative perturbation) to run.
        fractions: Increasing fractions in [0, 1); default 0.0, 0.1, …, 0.9.
        batch_size: Perturbed images per forward pass (pixel removal).
        mean, std: Normalisation of ``x`` per channel; default the model's data config.

    Returns:
        ``(name, order)`` -> PerturbationCurve.
    """
    import torch  # torch: heavy, imported on first use

    from vitviz.capture import check_target, model_lock

    _check_choice(removal, REMOVALS, "removal")
    for order in orders:
        _check_choice(order, ORDERS, "order")
    steps = _check_fractions(fractions)
    if not int(getattr(model, "num_classes", 0) or 0):
        raise ValueError("perturbation tests need a classifier: this model has no class scores")
    if target is not None:
        target = check_target(target, int(model.num_classes))
    if removal == "tokens":
        _check_token_model(model)
    if getattr(x, "ndim", 0) != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one image (1, 3, H, W), got shape {tuple(getattr(x, 'shape', ()))}")
    x = x.to(_device(model))
    keys = [(name, order) for name in scores for order in orders]
    with model_lock(model), torch.no_grad():
        if removal == "tokens":
            ranked = {name: _scores(scores[name]) for name in scores}
            rankings = np.stack([removal_order(ranked[name], order) for name, order in keys])  # (R, N)
            counts = [removed_count(f, rankings.shape[1]) for f in steps]
            outputs = _token_outputs(model, x, rankings, counts)
        else:
            size = tuple(int(s) for s in x.shape[-2:])
            ranked = {name: pixel_ranking(scores[name], size) for name in scores}
            rankings = np.stack([removal_order(ranked[name], order) for name, order in keys])  # (R, H·W)
            counts = [removed_count(f, rankings.shape[1]) for f in steps]
            mean_t, std_t = _mean_std(model, x, mean, std)
            outputs = _pixel_outputs(model, x, rankings, counts, (0.0 - mean_t) / std_t, batch_size)
        logits = outputs.double()  # (R, S, C)
        if target is None:
            target = int(logits[0, 0].argmax())
        probabilities = torch.softmax(logits, dim=-1)[..., target].cpu().numpy()  # (R, S)
        predicted = logits.argmax(dim=-1).cpu().numpy()  # (R, S)
        target_logits = logits[..., target].cpu().numpy()  # (R, S)
    return {
        key: PerturbationCurve(
            fractions=steps.copy(), probabilities=probabilities[i], logits=target_logits[i],
            predicted=predicted[i], removed=np.asarray(counts), auc=area_under_curve(steps, probabilities[i]),
            target=int(target), removal=removal, order=key[1],
        )
        for i, key in enumerate(keys)
    }


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
        batch_size=batch_size, mean=mean, std=std,
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
) -> Faithfulness:
    """Both perturbation curves of one map (positive: most relevant first; negative: least first).

    Arguments as :func:`perturbation_curves`; ``relevance`` is a ``Relevance`` or a (gh, gw) array.
    """
    curves = perturbation_curves(
        model, x, {"map": relevance}, target, removal=removal, fractions=fractions, batch_size=batch_size,
        mean=mean, std=std,
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
        mean=mean, std=std,
    )
    rows = [curves[str(s), order] for s in seeds]
    return PerturbationBand(
        fractions=rows[0].fractions, probabilities=np.stack([c.probabilities for c in rows]),
        aucs=np.asarray([c.auc for c in rows]), removal=removal, order=order, seeds=seeds,
    )
