"""vitviz-shapes-cnn: the small CNN trained like vitviz-shapes, to set beside it.

The network is timm's own ResNet (``timm.create_model('resnet18', ...)``: ``BasicBlock``, the 7x7 stem and
max-pool, four stages of two blocks) with a quarter of ResNet-18's channels in its stages (16, 32, 64, 128).
That makes it the ViT's twin in size: 0.72 M parameters and 46 M multiply-adds per 96 px image, against the
ViT's 0.73 M and 50 M at its native patch size 12. Because it is a stock timm model, everything the library does
with "any timm CNN" (``feature_info``, the last stage for Grad-CAM, ``forward_intermediates``) is what it does
with this one.

The recipe is :class:`~vitviz.shapes.training.TrainConfig` itself, the same object the ViT is trained with, and
the same loop (:func:`~vitviz.shapes.training.fit`): data, batch, steps, AdamW, learning rate, schedule, label
smoothing, clipping and token labelling (here a linear head on the cells of the last feature map, 32 px each,
in place of the ViT's patch tokens). Only the ViT's FlexiViT patch-size draw has no CNN counterpart.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from .dataset import EVAL_SPLIT, normalize, pregenerate
from .generator import CLASSES
from .model import ASSETS_DIR, MEAN, STD, save_shapes_model
from .training import TrainResult, fit, json_ready, load_init

__all__ = [
    'CNN_CONFIG_PATH',
    'CNN_WEIGHTS_PATH',
    'VIT_ONLY_FIELDS',
    'accuracy',
    'build_cnn',
    'cnn_forward',
    'load_shapes_cnn',
    'make_cnn_config',
    'recipe',
    'save_shapes_cnn',
    'train_cnn',
]

CNN_CONFIG_PATH = ASSETS_DIR / 'shapes_cnn.json'
CNN_WEIGHTS_PATH = ASSETS_DIR / 'shapes_cnn.safetensors'

# TrainConfig fields that describe the ViT, not the recipe: a CNN's architecture lives in its own config.
VIT_ONLY_FIELDS = ('patch_sizes', 'native_patch_size', 'architecture', 'embed_dim', 'depth', 'num_heads', 'mlp_ratio')


def make_cnn_config(*, architecture: str = 'resnet18', channels: tuple[int, ...] = (16, 32, 64, 128),
                    layers: tuple[int, ...] = (2, 2, 2, 2), image_size: int = 96, seed: int = 0) -> dict[str, Any]:
    """The config dict of a shapes CNN (the schema of ``shapes_cnn.json``), with empty metrics.

    Args:
        architecture: a timm ResNet name whose defaults ``model_args`` override.
        channels: output channels of each stage.
        layers: blocks per stage.
        image_size: square input side in pixels.
        seed: training seed.
    """
    if len(channels) != len(layers):
        raise ValueError(f'{len(channels)} stage widths for {len(layers)} stages')
    return {
        'name': 'vitviz-shapes-cnn',
        'architecture': architecture,
        'model_args': {'layers': list(layers), 'channels': list(channels), 'num_classes': len(CLASSES)},
        'image_size': image_size,
        'mean': list(MEAN),
        'std': list(STD),
        'interpolation': 'bicubic',
        'crop_pct': 1.0,
        'classes': list(CLASSES),
        'seed': seed,
        'metrics': {},
    }


def build_cnn(config: dict[str, Any]) -> torch.nn.Module:
    """A randomly initialised CNN for ``config``, whose ``pretrained_cfg`` prepares images as in training."""
    import timm  # timm: only when a CNN is built

    args = dict(config['model_args'])
    args['layers'], args['channels'] = tuple(args['layers']), tuple(args['channels'])
    size = config['image_size']
    overlay = dict(mean=tuple(config['mean']), std=tuple(config['std']), input_size=(3, size, size),
                   test_input_size=(3, size, size), interpolation=config['interpolation'],
                   crop_pct=config['crop_pct'], num_classes=args['num_classes'], url='', hf_hub_id=None)
    return timm.create_model(config['architecture'], pretrained=False, pretrained_cfg_overlay=overlay, **args)


def save_shapes_cnn(model: torch.nn.Module, config: dict[str, Any], weights_path: Path | str = CNN_WEIGHTS_PATH,
                    config_path: Path | str = CNN_CONFIG_PATH) -> None:
    """Write the weights (float32 safetensors, BatchNorm statistics included) and the config JSON."""
    save_shapes_model(model, config, weights_path, config_path)


def load_shapes_cnn(device: str | torch.device = 'cpu', weights_path: Path | str = CNN_WEIGHTS_PATH,
                    config_path: Path | str = CNN_CONFIG_PATH) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the shipped shapes CNN from its JSON config and load its safetensors weights.

    Returns:
        ``(model, config)``: the model in eval mode, and the config dict (classes, mean/std, metrics, ...).
    """
    config = json.loads(Path(config_path).read_text())
    model = build_cnn(config)
    state = {k: v.to(model.state_dict()[k].dtype) for k, v in load_file(str(weights_path)).items()}
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), config


def recipe(cfg: Any) -> dict[str, Any]:
    """The recipe fields of a :class:`~vitviz.shapes.training.TrainConfig` as JSON (no ViT architecture)."""
    return {k: json_ready(v) for k, v in asdict(cfg).items() if k not in VIT_ONLY_FIELDS}


def cnn_forward(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One training forward: logits, the last feature map's cells as tokens, and a cell's side in pixels.

    Returns:
        ``(B, classes)`` logits, ``(B, h * w, C)`` cells, cell side (input side / feature-map side).
    """
    fmap = model.forward_features(x)  # (B, C, h, w)
    cell = x.shape[-1] // fmap.shape[-1]
    if cell * fmap.shape[-1] != x.shape[-1] or cell * fmap.shape[-2] != x.shape[-2]:
        raise ValueError(f'feature map {tuple(fmap.shape[-2:])} does not tile the input {tuple(x.shape[-2:])}')
    return model.forward_head(fmap), fmap.flatten(2).transpose(1, 2), cell  # (B, classes), (B, h*w, C)


def train_cnn(cfg: Any, config: dict[str, Any] | None = None, *, progress: bool = True, log=print,
              device: str = 'cpu', data: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None):
    """Train a shapes CNN with recipe ``cfg`` (a ``TrainConfig``; its ViT fields are ignored).

    Args:
        cfg: the recipe (``cfg.init``: start from these safetensors weights).
        config: the CNN's config (default :func:`make_cnn_config` with ``cfg``'s seed and image size).
        progress: show tqdm progress bars.
        log: where to write one-line summaries.
        device: where to train.
        data: train on these ``(images, mask cell counts, labels)`` instead of generating ``cfg``'s set.

    Returns:
        A :class:`~vitviz.shapes.training.TrainResult` whose model is a plain timm ResNet (CPU, eval mode).
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    config = dict(config or make_cnn_config(image_size=cfg.image_size, seed=cfg.seed))
    model = build_cnn(config)
    if cfg.init:
        load_init(model, cfg.init, log)
    done = fit(model, config, cfg, cnn_forward, model.num_features, progress=progress, log=log, device=device,
               data=data)
    config['training'] = dict(recipe(cfg), train_seconds=round(done.seconds),
                              generate_seconds=round(done.generate_seconds), torch=torch.__version__)
    return TrainResult(model=model.cpu().eval(), config=config, seconds=done.seconds,
                       generate_seconds=done.generate_seconds, losses=done.losses, accuracies=done.accuracies)


def accuracy(model: torch.nn.Module, config: dict[str, Any], *, seed: int, count: int,
             mix: tuple[tuple[str, float], ...] | None, batch_size: int = 100) -> float:
    """Share of ``count`` held-out images (split 1 of ``seed``, in ``mix``) whose class ``model`` predicts.

    The images are those :func:`vitviz.shapes.evaluation.evaluate` draws for the same arguments, so a CNN and
    the ViT are scored on the very same pictures.
    """
    images, _, labels = pregenerate(seed, count, split=EVAL_SPLIT, image_size=config['image_size'],
                                    keep_masks=False, mix=mix)
    x = normalize(images, config['mean'], config['std'])  # (count, 3, H, W)
    model = model.eval()
    with torch.no_grad():
        preds = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, count, batch_size)])
    return float((preds.numpy() == labels).mean())
