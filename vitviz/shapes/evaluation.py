"""How good is the shapes ViT, and do its attention maps point at the object?

Everything is measured on freshly generated images (a seed/split that training never used), through the
same library path the app takes: ``with_patch_size`` (timm ``set_input_size``) for other patch sizes,
``vitviz.capture.capture`` for attention and its gradients, and ``vitviz.analysis`` for the maps. A
regression anywhere on that path shows up here as a drop in localisation.

Maps (all read out at the class token, over the patch grid):

``rollout``
    attention rollout (Abnar & Zuidema 2020), head mean, no discarding.
``attention``
    raw last-layer class-token attention, head mean.
``gradient_rollout``
    gradient-weighted rollout (Chefer et al. 2021) for the ground-truth class.

Scores per image, against the object mask (the protocols live in :mod:`vitviz.analysis.localisation`,
which the data-set evaluation ``python -m vitviz.evaluate`` shares):

pointing game
    the map's arg-max patch overlaps the object (the original pointing game accepts a hit within 15 px of
    the object on 224 px images; overlap of a 12 px patch is the same tolerance at our scale). A stricter
    variant needs the object to cover at least half of that patch.
top-region IoU
    the ``k`` highest patches, ``k`` = object area in patches (rounded, at least 1), as a pixel region,
    against the mask.
mass on object
    share of the map's total that falls on the object (each patch's value weighted by the fraction of it the
    object covers).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from vitviz.analysis import attention_map, gradient_rollout, position_similarity, rollout, with_patch_size
from vitviz.analysis.localisation import patch_coverage, pointing_hits, top_region_iou
from vitviz.capture import capture
from vitviz.layout import TokenLayout

from .dataset import EVAL_SPLIT, normalize, pregenerate
from .generator import Style

__all__ = [
    'METHODS',
    'Localisation',
    'evaluate',
    'patch_coverage',
    'pointing_hits',
    'position_locality',
    'relevance_maps',
    'top_region_iou',
]

METHODS: tuple[str, ...] = ('rollout', 'attention', 'gradient_rollout')
EVAL_SEED = 20_251_127  # held-out images: a seed (and split) training never used


@dataclass(frozen=True)
class Localisation:
    """Mean localisation scores of one method at one patch size.

    Attributes:
        pointing: share of images whose arg-max patch overlaps the object.
        pointing_strict: share whose arg-max patch is at least half object.
        iou: mean IoU of the top-k patch region with the mask.
        mass: mean share of the map on the object.
        chance_pointing: mean share of patches that overlap the object (a uniformly random patch's hit rate).
        chance_mass: mean share of the image that is object (a flat map's mass on the object).
    """

    pointing: float
    pointing_strict: float
    iou: float
    mass: float
    chance_pointing: float
    chance_mass: float


def relevance_maps(model: torch.nn.Module, x: torch.Tensor, labels: Iterable[int],
                   methods: Iterable[str] = METHODS) -> dict[str, np.ndarray]:
    """Class-token relevance over the patch grid for each method, through ``vitviz`` capture and analysis.

    Args:
        model: a timm ViT at the patch size to evaluate.
        x: ``(B, 3, H, W)`` normalised images.
        labels: class per image whose gradients weight ``gradient_rollout``.
        methods: names from :data:`METHODS`.

    Returns:
        method -> ``(B, gh, gw)`` float64.
    """
    methods = tuple(methods)
    labels = [int(v) for v in labels]
    cap = capture(model, x, target=labels if 'gradient_rollout' in methods else None)
    out: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    attn = cap.attentions()  # (B, L, H, N, N)
    grads = (torch.stack([cap.attention_grad(i) for i in range(cap.num_layers)], dim=1)
             if 'gradient_rollout' in methods else None)  # (B, L, H, N, N)
    for i in range(cap.batch_size):
        if 'rollout' in methods:
            out['rollout'].append(rollout(attn[i], layout=cap.layout).final_map)
        if 'attention' in methods:
            out['attention'].append(attention_map(cap, layer=-1, head='mean', query='cls', item=i).patches)
        if 'gradient_rollout' in methods:
            out['gradient_rollout'].append(gradient_rollout(attn[i], grads[i], layout=cap.layout).final_map)
    return {m: np.stack(v) for m, v in out.items()}  # (B, gh, gw) each


def position_locality(model: torch.nn.Module) -> dict[str, float]:
    """Do learned position embeddings encode 2-D neighbourhood? (Dosovitskiy et al. 2021, Fig. 7.)

    Uses ``vitviz.analysis.position_similarity`` at the model's own grid.

    Returns:
        ``neighbour``: mean cosine similarity of each position to its 4-neighbours; ``far``: mean similarity
        of pairs at least half the grid side apart (Euclidean, in patches); ``gap``: their difference.
    """
    layout = TokenLayout.from_model(model, tuple(model.patch_embed.img_size))
    sim = position_similarity(model, layout)  # (gh, gw, gh, gw)
    gh, gw = layout.grid_size
    rr, cc = np.meshgrid(np.arange(gh), np.arange(gw), indexing='ij')
    dist = np.hypot(rr[:, :, None, None] - rr[None, None], cc[:, :, None, None] - cc[None, None])  # (gh,gw,gh,gw)
    neighbour = float(sim[np.isclose(dist, 1.0)].mean())
    far = float(sim[dist >= max(gh, gw) / 2].mean())
    return {'neighbour': neighbour, 'far': far, 'gap': neighbour - far}


def _localisation(maps: np.ndarray, masks: np.ndarray, patch_size: int) -> Localisation:
    cover = patch_coverage(masks, patch_size)  # (B, gh, gw)
    b = maps.shape[0]
    weights = np.clip(maps, 0, None).reshape(b, -1)  # (B, gh*gw)
    mass = (weights * cover.reshape(b, -1)).sum(1) / np.maximum(weights.sum(1), 1e-12)
    return Localisation(
        pointing=float(pointing_hits(maps, cover).mean()),
        pointing_strict=float(pointing_hits(maps, cover, 0.5).mean()),
        iou=float(top_region_iou(maps, masks, patch_size).mean()),
        mass=float(mass.mean()),
        chance_pointing=float((cover > 0).reshape(b, -1).mean(1).mean()),
        chance_mass=float(masks.mean()),
    )


def evaluate(model: torch.nn.Module, config: dict[str, Any], *, seed: int = EVAL_SEED, count: int = 2000,
             patch_sizes: Iterable[int] | None = None, methods: Iterable[str] = METHODS,
             localise_count: int | None = None, batch_size: int = 100, style: Style = Style(),
             progress: Callable[[int], None] | None = None,
             mix: tuple[tuple[str, float], ...] | None = None) -> dict[str, Any]:
    """Accuracy at every patch size and localisation of every method, on fresh images.

    Each patch size runs on a copy made by ``vitviz.analysis.with_patch_size`` (timm's ``set_input_size``),
    exactly as the app re-patchifies.

    Args:
        model: the trained model (any patch size it was stored at).
        config: its config dict (``mean``, ``std``, ``patch_sizes``, ``model_args``).
        seed: held-out data set seed (``split`` is :data:`~vitviz.shapes.dataset.EVAL_SPLIT`).
        count: images for accuracy.
        patch_sizes: defaults to ``config['patch_sizes']``.
        methods: localisation methods, from :data:`METHODS`.
        localise_count: images for localisation (the first ones of the set); defaults to ``count``.
        batch_size: images per forward pass.
        style: style of the evaluation images (classic generator).
        mix: draw the images in style families instead: ``(family, weight)`` pairs
            (:mod:`vitviz.shapes.families`); ``(('paint_solid', 1.0),)`` for one family.
        progress: optional callable receiving the number of images just processed.

    Returns:
        A JSON-ready dict: ``accuracy`` {patch: float}, ``localisation`` {patch: {method: {score: float}}},
        ``position_locality``, and the evaluation set's ``seed``/``count``.
    """
    start = time.perf_counter()
    patch_sizes = list(config['patch_sizes'] if patch_sizes is None else patch_sizes)
    localise_count = count if localise_count is None else min(localise_count, count)
    images, masks, labels = pregenerate(seed, count, split=EVAL_SPLIT, image_size=config['model_args']['img_size'],
                                        style=style, mix=mix)
    x_all = normalize(images, config['mean'], config['std'])  # (count, 3, H, W)
    result: dict[str, Any] = {'eval_seed': seed, 'eval_split': EVAL_SPLIT, 'eval_count': count,
                              'localise_count': localise_count, 'accuracy': {}, 'localisation': {}}
    model = model.eval()
    for p in patch_sizes:
        m = with_patch_size(model, p)
        with torch.no_grad():
            preds = torch.cat([m(x_all[i:i + batch_size]).argmax(1) for i in range(0, count, batch_size)])
        result['accuracy'][str(p)] = float((preds.numpy() == labels).mean())
        maps = {k: [] for k in methods}
        for i in range(0, localise_count, batch_size):
            j = min(i + batch_size, localise_count)
            for k, v in relevance_maps(m, x_all[i:j], labels[i:j], methods).items():
                maps[k].append(v)
            if progress:
                progress(j - i)
        result['localisation'][str(p)] = {
            k: asdict(_localisation(np.concatenate(v), masks[:localise_count], p)) for k, v in maps.items()}
    result['position_locality'] = position_locality(model)
    result['eval_seconds'] = round(time.perf_counter() - start)
    return result
