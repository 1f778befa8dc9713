"""The shipped vitviz-shapes ViT: its config, how to build it, save it and load it.

The model is a plain timm ``VisionTransformer`` made by ``timm.create_model(<vit name>, pretrained=False,
**model_args)``, so every code path the app takes for it (capture, rollout, ``set_input_size``) is the one
hub models take. Its config JSON (``vitviz/assets/shapes_vit.json``) holds everything needed to rebuild
and preprocess for it; the weights sit next to it as ``shapes_vit.safetensors``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .generator import CLASSES

__all__ = [
    'ASSETS_DIR',
    'CONFIG_PATH',
    'WEIGHTS_PATH',
    'build_model',
    'load_shapes_model',
    'make_config',
    'patch_accuracy',
    'save_shapes_model',
]

ASSETS_DIR = Path(__file__).resolve().parent.parent / 'assets'
CONFIG_PATH = ASSETS_DIR / 'shapes_vit.json'
WEIGHTS_PATH = ASSETS_DIR / 'shapes_vit.safetensors'

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def make_config(*, architecture: str = 'vit_tiny_patch16_224', image_size: int = 96, native_patch_size: int = 12,
                patch_sizes: tuple[int, ...] = (8, 12, 16, 24), embed_dim: int = 128, depth: int = 4,
                num_heads: int = 4, mlp_ratio: float = 3.0, seed: int = 0) -> dict[str, Any]:
    """The config dict of a shapes ViT (the schema of ``shapes_vit.json``), with empty metrics.

    Args:
        architecture: timm ``vit_*`` name whose defaults ``model_args`` override.
        image_size: square input side in pixels.
        native_patch_size: patch side the stored parameters have.
        patch_sizes: every patch side the model was trained at (each must divide ``image_size``).
        embed_dim: token width.
        depth: number of blocks.
        num_heads: attention heads per block.
        mlp_ratio: MLP hidden width / ``embed_dim``.
        seed: training seed.
    """
    bad = [p for p in patch_sizes if image_size % p]
    if bad or native_patch_size not in patch_sizes:
        raise ValueError(f'patch sizes {patch_sizes} must divide {image_size} and include {native_patch_size}')
    return {
        'name': 'vitviz-shapes',
        'architecture': architecture,
        'model_args': {
            'img_size': image_size, 'patch_size': native_patch_size, 'embed_dim': embed_dim, 'depth': depth,
            'num_heads': num_heads, 'mlp_ratio': mlp_ratio, 'num_classes': len(CLASSES),
            'global_pool': 'token', 'class_token': True, 'qkv_bias': True,
        },
        'mean': list(MEAN),
        'std': list(STD),
        'interpolation': 'bicubic',
        'crop_pct': 1.0,
        'classes': list(CLASSES),
        'patch_sizes': list(patch_sizes),
        'native_patch_size': native_patch_size,
        'seed': seed,
        'metrics': {},
    }


def patch_accuracy(config: dict[str, Any]) -> dict[int, float]:
    """Held-out accuracy per patch size from a shapes model's config (its model card's results), as a fraction.

    Returns:
        ``{patch size: accuracy}``, empty when the config holds no results.
    """
    measured = (config.get('metrics') or {}).get('accuracy') or {}
    return {int(p): float(a) for p, a in sorted(measured.items(), key=lambda item: int(item[0]))}


def build_model(config: dict[str, Any]) -> torch.nn.Module:
    """A randomly initialised model for ``config``, with the data config timm resolves from it.

    ``pretrained_cfg`` carries mean, std, input size, interpolation and crop so that
    ``timm.data.resolve_model_data_config(model)`` prepares images exactly as in training.
    """
    import timm  # timm: heavy, imported on first use

    args = dict(config['model_args'])
    size = args['img_size']
    overlay = dict(mean=tuple(config['mean']), std=tuple(config['std']), input_size=(3, size, size),
                   interpolation=config['interpolation'], crop_pct=config['crop_pct'],
                   num_classes=args['num_classes'], url='', hf_hub_id=None)
    return timm.create_model(config['architecture'], pretrained=False, pretrained_cfg_overlay=overlay, **args)


def save_shapes_model(model: torch.nn.Module, config: dict[str, Any], weights_path: Path | str = WEIGHTS_PATH,
                      config_path: Path | str = CONFIG_PATH) -> None:
    """Write the weights (float32 safetensors) and the config JSON."""
    state = {k: v.detach().to('cpu', torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights_path), metadata={'name': config['name'], 'architecture': config['architecture']})
    Path(config_path).write_text(json.dumps(config, indent=2) + '\n')


def load_shapes_model(device: str | torch.device = 'cpu', weights_path: Path | str = WEIGHTS_PATH,
                      config_path: Path | str = CONFIG_PATH) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the shipped shapes ViT from its JSON config and load its safetensors weights.

    Args:
        device: where to put the model.
        weights_path: safetensors file (defaults to the shipped one).
        config_path: config JSON (defaults to the shipped one).

    Returns:
        ``(model, config)``: the model in eval mode, and the config dict (classes, mean/std, metrics, ...).
    """
    config = json.loads(Path(config_path).read_text())
    model = build_model(config)
    state = {k: v.float() for k, v in load_file(str(weights_path)).items()}
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), config
