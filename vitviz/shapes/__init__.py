"""The offline model: generated shapes images, a small timm ViT trained on them, and its evaluation.

Without a network the app still needs a ViT whose attention means something. ``vitviz-shapes`` is a small
timm ``VisionTransformer`` trained (FlexiViT-style, over several patch sizes) on procedurally drawn images of
ten shapes on cluttered backgrounds. Because every image comes with its object mask, we can measure whether
its attention maps point at the object (see ``docs/model_card.md``).

- :mod:`.generator`: ``generate`` one image + mask + label from a seed (numpy + PIL only);
- :mod:`.families`: named style families (flat, outline, sketch, photographed sheet, ...) and the training mix;
- :mod:`.painter`: an independent drawing routine for the held-out families;
- :mod:`.dataset`: ``ShapesDataset`` and in-memory ``pregenerate``;
- :mod:`.flexi`: ``flexi_forward``, the training forward at any patch size;
- :mod:`.model`: ``load_shapes_model`` (the shipped weights), ``build_model``, ``save_shapes_model``;
- :mod:`.cnn`: ``load_shapes_cnn``, the small timm ResNet trained like the ViT (vitviz-shapes-cnn);
- :mod:`.training`: ``TrainConfig`` and ``train`` (used by ``scripts/train_shapes.py``);
- :mod:`.evaluation`: accuracy and localisation metrics through ``vitviz.capture`` / ``vitviz.analysis``.

``import vitviz.shapes`` pulls in only the generator and the families (numpy + PIL); the torch-side names load on
first use.
"""
from __future__ import annotations

import importlib
from typing import Any

from .families import FAMILIES, HELD_OUT_FAMILIES, TRAIN_FAMILIES, TRAIN_MIX, generate_family, generate_mix
from .generator import CLASSES, TEXTURES, Sample, Style, generate, generate_batch, sample_rng, shape_mask

_LAZY = {
    'ShapesDataset': 'dataset',
    'normalize': 'dataset',
    'pregenerate': 'dataset',
    'mix_batch': 'dataset',
    'flexi_embed': 'flexi',
    'flexi_forward': 'flexi',
    'CONFIG_PATH': 'model',
    'WEIGHTS_PATH': 'model',
    'build_model': 'model',
    'load_shapes_model': 'model',
    'make_config': 'model',
    'patch_accuracy': 'model',
    'save_shapes_model': 'model',
    'CNN_CONFIG_PATH': 'cnn',
    'CNN_WEIGHTS_PATH': 'cnn',
    'build_cnn': 'cnn',
    'load_shapes_cnn': 'cnn',
    'make_cnn_config': 'cnn',
    'train_cnn': 'cnn',
    'TrainConfig': 'training',
    'train': 'training',
    'METHODS': 'evaluation',
    'evaluate': 'evaluation',
    'position_locality': 'evaluation',
    'relevance_maps': 'evaluation',
}

__all__ = ['CLASSES', 'TEXTURES', 'Sample', 'Style', 'generate', 'generate_batch', 'sample_rng', 'shape_mask',
           'FAMILIES', 'HELD_OUT_FAMILIES', 'TRAIN_FAMILIES', 'TRAIN_MIX', 'generate_family', 'generate_mix']
__all__ += sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f'.{_LAZY[name]}', __name__), name)
    raise AttributeError(f"module 'vitviz.shapes' has no attribute {name!r}")
