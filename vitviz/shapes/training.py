"""FlexiViT-style training of the shapes ViT on the CPU, deterministic from a seed.

Every step draws one patch size from ``patch_sizes`` and runs :func:`~vitviz.shapes.flexi.flexi_forward`,
which resamples the stored native-size patch kernel and position embeddings with timm's own functions, so
one set of weights learns to work at every patch size the app's slider offers.

Recipe (small ViT, synthetic data): AdamW, linear warm-up then cosine decay, label smoothing, gradient
clipping, no weight decay on biases, norms, position embeddings and the class token (timm's convention),
and the 8 flips/rotations of the square as augmentation (every class is closed under them).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .dataset import TRAIN_SPLIT, normalize, pregenerate
from .flexi import flexi_forward
from .model import build_model, make_config

__all__ = ['TrainConfig', 'TrainResult', 'dihedral', 'train']


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the trained weights (with the torch version and thread count)."""

    seed: int = 0
    train_images: int = 60_000
    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_steps: int = 300
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    image_size: int = 96
    patch_sizes: tuple[int, ...] = (8, 12, 16, 24)
    native_patch_size: int = 12
    architecture: str = 'vit_tiny_patch16_224'
    embed_dim: int = 128
    depth: int = 6
    num_heads: int = 4
    mlp_ratio: float = 3.0
    threads: int = 2
    workers: int = 2

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
    config['training'] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}
    return config


def train(cfg: TrainConfig, *, progress: bool = True, log: Callable[[str], None] = print,
          device: str = 'cpu', data: tuple[np.ndarray, np.ndarray] | None = None) -> TrainResult:
    """Generate the training set and train a shapes ViT from scratch.

    Args:
        cfg: the recipe.
        progress: show tqdm progress bars.
        log: where to write one-line summaries.
        device: where to train (the shipped weights come from the CPU; other devices give other numbers).
        data: already generated ``(images, labels)`` of this config's training set, to share between runs.

    Returns:
        The trained model (on the CPU, eval mode) with its config dict.
    """
    from tqdm.auto import tqdm

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    config = model_config(cfg)
    model = build_model(config).to(device).train()
    mean, std = config['mean'], config['std']

    t0 = time.perf_counter()
    if data is None:
        with tqdm(total=cfg.train_images, desc='generate', unit='img', disable=not progress) as bar:
            images, _, labels = pregenerate(cfg.seed, cfg.train_images, split=TRAIN_SPLIT,
                                            image_size=cfg.image_size, workers=cfg.workers, keep_masks=False,
                                            progress=bar.update)
    else:
        images, labels = data[0][:cfg.train_images], data[1][:cfg.train_images]
    gen_seconds = time.perf_counter() - t0
    log(f'generated {len(images)} training images in {gen_seconds:.0f} s')
    images_t, labels_t = torch.from_numpy(images), torch.from_numpy(labels)

    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(cfg.seed)
    patch_rng = np.random.default_rng(cfg.seed)
    per_epoch = cfg.train_images // cfg.batch_size
    losses: list[float] = []
    hits = {p: [0, 0] for p in cfg.patch_sizes}  # running train accuracy per patch size (last ~200 steps)
    t1 = time.perf_counter()
    bar = tqdm(total=cfg.steps, desc='train', unit='step', disable=not progress)
    for step in range(cfg.steps):
        if step % per_epoch == 0:
            order = torch.randperm(len(images_t), generator=gen)
        idx = order[(step % per_epoch) * cfg.batch_size:(step % per_epoch + 1) * cfg.batch_size]
        x = normalize(images_t[idx], mean, std)  # (B, 3, H, W)
        x = dihedral(x, torch.randint(0, 8, (len(idx),), generator=gen)).to(device)
        y = labels_t[idx].to(device)
        p = int(patch_rng.choice(cfg.patch_sizes))
        for group in opt.param_groups:
            group['lr'] = _lr_at(step, cfg)
        logits = flexi_forward(model, x, p)  # (B, num_classes)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        h = hits[p]
        h[0] = 0.98 * h[0] + float((logits.argmax(1) == y).float().mean())
        h[1] = 0.98 * h[1] + 1.0
        bar.update()
        if step % 20 == 0 or step == cfg.steps - 1:
            bar.set_postfix(loss=f'{np.mean(losses[-50:]):.3f}',
                            **{f'acc{q}': f'{v[0] / v[1]:.2f}' for q, v in hits.items() if v[1]})
    bar.close()
    seconds = time.perf_counter() - t1
    log(f'trained {cfg.steps} steps in {seconds:.0f} s; last loss {np.mean(losses[-50:]):.3f}')
    config['training'].update(train_seconds=round(seconds), generate_seconds=round(gen_seconds),
                              torch=torch.__version__)
    return TrainResult(model=model.cpu().eval(), config=config, seconds=seconds, generate_seconds=gen_seconds,
                       losses=tuple(losses))
