"""FlexiViT-style training of the shapes ViT on the CPU, deterministic from a seed.

Every step draws one patch size from ``patch_sizes`` and runs :func:`~vitviz.shapes.flexi.flexi_features`,
which resamples the stored native-size patch kernel and position embeddings with timm's own functions, so
one set of weights learns to work at every patch size the app's slider offers.

Recipe (small ViT, synthetic data): cross-entropy on the class token plus token labelling (Jiang et al.
2021: a temporary linear head on the patch tokens learns each patch's soft label, object class or
background, from the exact masks; without it the ViT stayed at chance for thousands of steps), AdamW,
linear warm-up then cosine decay, label smoothing, gradient clipping, no weight decay on biases, norms,
position embeddings and the class token (timm's convention). Objects stand near upright (the default
``Style``), so there is no flip or rotation augmentation by default; ``augment=True`` adds the 8 symmetries of
the square, for data drawn at any orientation (``rotation=180``).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .dataset import TRAIN_SPLIT, normalize, pregenerate
from .families import TRAIN_MIX
from .flexi import flexi_features
from .generator import Style
from .model import build_model, make_config

__all__ = ['FitResult', 'StepForward', 'TrainConfig', 'TrainResult', 'dihedral', 'fit', 'load_init', 'model_config',
           'token_targets', 'train']

MASK_CELL = 4  # masks are kept as object-pixel counts per 4x4 cell (every trained patch size is a multiple)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the trained weights (with the torch version and thread count)."""

    seed: int = 0
    train_images: int = 90_000
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_steps: int = 200
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    image_size: int = 96
    patch_sizes: tuple[int, ...] = (8, 12, 16, 24)
    native_patch_size: int = 12
    architecture: str = 'vit_tiny_patch16_224'
    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 3.0
    threads: int = 2
    workers: int = 2
    clutter: tuple[float, float] = Style.clutter
    radius: tuple[float, float] = Style.radius
    outline: int = Style.outline
    rotation: float = Style.rotation
    token_label_weight: float = 0.5
    augment: bool = False
    mix: tuple[tuple[str, float], ...] | None = TRAIN_MIX
    init: str | None = None

    @property
    def style(self) -> Style:
        """The training images' style."""
        return Style(clutter=self.clutter, radius=self.radius, outline=self.outline, rotation=self.rotation)

    @property
    def steps(self) -> int:
        """Optimiser steps: whole batches per epoch times epochs."""
        return self.epochs * (self.train_images // self.batch_size)


@dataclass(frozen=True)
class TrainResult:
    """A trained model, its config dict and what happened on the way."""

    model: torch.nn.Module
    config: dict[str, Any]
    seconds: float
    generate_seconds: float
    losses: tuple[float, ...] = field(repr=False)
    accuracies: tuple[float, ...] = field(repr=False)


def dihedral(x: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
    """Apply one of the 8 symmetries of the square to each image: ``ops[b]`` in 0..7.

    ``ops % 4`` quarter turns, then a horizontal flip when ``ops >= 4``.

    Args:
        x: ``(B, C, H, W)`` square images.
        ops: ``(B,)`` int.
    """
    out = torch.empty_like(x)
    for op in range(8):
        idx = (ops == op).nonzero(as_tuple=True)[0]
        if idx.numel():
            y = torch.rot90(x[idx], op % 4, dims=(2, 3))  # (b, C, H, W)
            out[idx] = torch.flip(y, dims=(3,)) if op >= 4 else y
    return out


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    no_decay = set(getattr(model, 'no_weight_decay', lambda: set())())
    decay, keep = [], []
    for name, param in model.named_parameters():
        (keep if param.ndim <= 1 or name in no_decay else decay).append(param)
    return [{'params': decay, 'weight_decay': weight_decay}, {'params': keep, 'weight_decay': 0.0}]


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))


def model_config(cfg: TrainConfig) -> dict[str, Any]:
    """The shipped-config dict (without metrics) for a training config."""
    config = make_config(architecture=cfg.architecture, image_size=cfg.image_size,
                         native_patch_size=cfg.native_patch_size, patch_sizes=cfg.patch_sizes,
                         embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
                         mlp_ratio=cfg.mlp_ratio, seed=cfg.seed)
    config['training'] = {k: json_ready(v) for k, v in asdict(cfg).items()}
    return config


def json_ready(value: Any) -> Any:
    """Tuples (nested too) as lists, as they come back from JSON."""
    return [json_ready(v) for v in value] if isinstance(value, (tuple, list)) else value


def token_targets(cell_counts: torch.Tensor, labels: torch.Tensor, patch_size: int, cell: int,
                  num_classes: int) -> torch.Tensor:
    """Soft per-patch class targets from the object masks ("token labelling", Jiang et al. 2021).

    A patch the object covers by a fraction ``c`` gets probability ``c`` for the image's class and ``1 - c``
    for an extra background class (index ``num_classes``).

    Args:
        cell_counts: ``(B, H/cell, W/cell)`` object pixels per mask cell.
        labels: ``(B,)`` classes.
        patch_size: patch side; a multiple of ``cell``.
        cell: mask cell side in pixels.
        num_classes: number of object classes.

    Returns:
        ``(B, gh * gw, num_classes + 1)`` rows summing to 1.
    """
    k = patch_size // cell
    cover = F.avg_pool2d(cell_counts[:, None].float(), k)[:, 0] / (cell * cell)  # (B, gh, gw) in [0, 1]
    cover = cover.flatten(1)  # (B, gh*gw)
    target = torch.zeros(*cover.shape, num_classes + 1, device=cover.device)  # (B, gh*gw, C+1)
    target.scatter_(2, labels.view(-1, 1, 1).expand(-1, cover.shape[1], 1), cover[..., None])
    target[..., num_classes] = 1 - cover
    return target


# One training step's forward: images -> (logits (B, classes), dense features (B, cells, D), cell side in px).
# The dense features are what the token-labelling head reads: a ViT's patch tokens, a CNN's last feature map.
StepForward = Callable[[torch.nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor, int]]


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` did: losses and accuracies per step, and the time spent."""

    seconds: float
    generate_seconds: float
    losses: tuple[float, ...]
    accuracies: tuple[float, ...]


def load_init(model: torch.nn.Module, path: str, log: Callable[[str], None] = print) -> None:
    """Start from the float32 safetensors weights in ``path`` (strict)."""
    from safetensors.torch import load_file  # safetensors: only to start from saved weights

    model.load_state_dict({k: v.float() for k, v in load_file(path).items()}, strict=True)
    log(f'starting from the weights in {path}')


def fit(model: torch.nn.Module, config: dict[str, Any], cfg: TrainConfig, forward: StepForward, width: int, *,
        progress: bool = True, log: Callable[[str], None] = print, device: str = 'cpu',
        data: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> FitResult:
    """The training loop every shapes model shares: data, token labelling, AdamW, schedule, clipping.

    Generates the training set of ``cfg`` (unless ``data`` is given), then runs ``cfg.steps`` steps. Each step:
    cross-entropy of ``forward``'s logits plus ``token_label_weight`` times the token-labelling loss of a
    temporary linear head (``width`` -> classes + background) on ``forward``'s dense features, whose cells of
    ``cell`` pixels get soft labels from the object masks (:func:`token_targets`). Call it right after the
    model is built: the head's initialisation draws from torch's global generator.

    Args:
        model: the model to train (moved to ``device``, trained in place).
        config: the model's config dict (``classes``, ``mean``, ``std``).
        cfg: the recipe.
        forward: one step's forward (see ``StepForward``).
        width: feature width of the dense features.
        progress: show tqdm progress bars.
        log: where to write one-line summaries.
        device: where to train.
        data: ``(images, mask cell counts, labels)`` as :func:`~vitviz.shapes.dataset.pregenerate` returns them
            with ``mask_cell=MASK_CELL``: train on these instead of generating ``cfg``'s set.
    """
    from tqdm.auto import tqdm  # tqdm: the progress bars (tqdm comes with huggingface_hub), on first use

    model = model.to(device).train()
    num_classes = len(config['classes'])
    token_head = torch.nn.Linear(width, num_classes + 1).to(device)
    mean, std = config['mean'], config['std']

    t0 = time.perf_counter()
    if data is None:
        with tqdm(total=cfg.train_images, desc='generate', unit='img', disable=not progress) as bar:
            data = pregenerate(cfg.seed, cfg.train_images, split=TRAIN_SPLIT, image_size=cfg.image_size,
                               workers=cfg.workers, style=cfg.style, mask_cell=MASK_CELL, progress=bar.update,
                               mix=cfg.mix)
        log(f'generated {len(data[0])} training images in {time.perf_counter() - t0:.0f} s')
    gen_seconds = time.perf_counter() - t0
    images_t, cells_t, labels_t = (torch.from_numpy(a) for a in data)
    if len(images_t) != cfg.train_images:
        raise ValueError(f'{len(images_t)} training images given, the recipe has {cfg.train_images}')

    params = _param_groups(model, cfg.weight_decay) + [{'params': list(token_head.parameters()), 'weight_decay': 0.0}]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(cfg.seed)
    per_epoch = cfg.train_images // cfg.batch_size
    losses: list[float] = []
    accuracies: list[float] = []
    running: dict[int, list[float]] = {}  # decayed train accuracy per cell size (a ViT's patch size)
    t1 = time.perf_counter()
    bar = tqdm(total=cfg.steps, desc='train', unit='step', disable=not progress)
    for step in range(cfg.steps):
        if step % per_epoch == 0:
            order = torch.randperm(len(images_t), generator=gen)
        idx = order[(step % per_epoch) * cfg.batch_size:(step % per_epoch + 1) * cfg.batch_size]
        x = normalize(images_t[idx], mean, std)  # (B, 3, H, W)
        cell_counts = cells_t[idx]  # (B, H/cell, W/cell)
        if cfg.augment:
            ops = torch.randint(0, 8, (len(idx),), generator=gen)
            x, cell_counts = dihedral(x, ops), dihedral(cell_counts[:, None], ops)[:, 0]
        x, cell_counts = x.to(device), cell_counts.to(device)
        y = labels_t[idx].to(device)
        for group in opt.param_groups:
            group['lr'] = _lr_at(step, cfg)

        logits, dense, cell = forward(model, x)  # (B, classes), (B, cells, D)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        if cfg.token_label_weight > 0:
            dense_logits = token_head(dense)  # (B, cells, C+1)
            target = token_targets(cell_counts, y, cell, MASK_CELL, num_classes)  # (B, cells, C+1)
            token_loss = -(target * dense_logits.log_softmax(-1)).sum(-1).mean()
            loss = loss + cfg.token_label_weight * token_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()

        losses.append(loss.item())
        accuracies.append(float((logits.argmax(1) == y).float().mean()))
        r = running.setdefault(cell, [0.0, 0.0])
        r[0], r[1] = 0.95 * r[0] + accuracies[-1], 0.95 * r[1] + 1.0
        bar.update()
        if step % 20 == 0 or step == cfg.steps - 1:
            bar.set_postfix(loss=f'{np.mean(losses[-50:]):.3f}',
                            **{f'acc{q}': f'{v[0] / v[1]:.2f}' for q, v in sorted(running.items())})
    bar.close()
    seconds = time.perf_counter() - t1
    log(f'trained {cfg.steps} steps in {seconds:.0f} s; last loss {np.mean(losses[-50:]):.3f}')
    return FitResult(seconds=seconds, generate_seconds=gen_seconds, losses=tuple(losses),
                     accuracies=tuple(accuracies))


def train(cfg: TrainConfig, *, progress: bool = True, log: Callable[[str], None] = print,
          device: str = 'cpu', data: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> TrainResult:
    """Generate the training set and train a shapes ViT from scratch (or from ``cfg.init``).

    Each step: one patch size for the whole batch, the FlexiViT forward at that size, cross-entropy on the
    class token's logits plus ``token_label_weight`` times the token-labelling loss of a temporary linear
    head on the patch tokens (dropped afterwards: the returned model is a plain timm ViT). The loop is
    :func:`fit`.

    Args:
        cfg: the recipe.
        progress: show tqdm progress bars.
        log: where to write one-line summaries.
        device: where to train (the shipped weights come from the CPU; other devices give other numbers).
        data: train on these ``(images, mask cell counts, labels)`` instead of generating ``cfg``'s set (see
            :func:`fit`).

    Returns:
        The trained model (on the CPU, eval mode) with its config dict.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    config = model_config(cfg)
    model = build_model(config)
    if cfg.init:
        load_init(model, cfg.init, log)
    patch_rng = np.random.default_rng(cfg.seed)
    prefix = model.num_prefix_tokens

    def forward(m: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        p = int(patch_rng.choice(cfg.patch_sizes))
        tokens = flexi_features(m, x, p)  # (B, N, D)
        return m.forward_head(tokens), tokens[:, prefix:], p  # (B, classes), (B, gh*gw, D)

    done = fit(model, config, cfg, forward, cfg.embed_dim, progress=progress, log=log, device=device, data=data)
    config['training'].update(train_seconds=round(done.seconds), generate_seconds=round(done.generate_seconds),
                              torch=torch.__version__)
    return TrainResult(model=model.cpu().eval(), config=config, seconds=done.seconds,
                       generate_seconds=done.generate_seconds, losses=done.losses, accuracies=done.accuracies)
