"""vitviz: see how a Vision Transformer sees an image.

The library is pure Python (no Streamlit): ``models`` loads a ViT and its weights, ``images`` decodes and
preprocesses a photo, ``pipeline`` runs one image through one model (``capture`` records every layer's real
attention in that pass), ``analysis`` turns captures into maps, ``attribution`` holds the relevance methods,
``evaluation`` judges them, and ``figures`` draws them with Plotly; ``explain`` is the notebook's one call.
Submodules import torch and timm lazily, so ``import vitviz`` itself is cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

from . import i18n  # standard library only: the language of figures and messages (vitviz.i18n.set_language)
from .i18n import set_language

__version__ = "0.1.0"

_LAZY = {
    "TokenLayout": "layout",
    "Capture": "capture",
    "AttentionRecorder": "capture",
    "CaptureError": "capture",
    "CATALOGUE": "models",
    "FallbackWarning": "models",
    "LoadedModel": "models",
    "ModelError": "models",
    "load_model": "models",
    "hub_reachable": "models",
    "ImageError": "images",
    "InputGeometry": "images",
    "load_image": "images",
    "prepare_input": "images",
    "explain": "explanation",
    "Explanation": "explanation",
    "compare_cnn": "comparison",
    "CnnComparison": "comparison",
}

__all__ = sorted(_LAZY) + ["__version__", "i18n", "set_language"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'vitviz' has no attribute {name!r}")
