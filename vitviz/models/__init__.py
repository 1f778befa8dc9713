"""Models: which ViT (the catalogue, names), which weights (read safely), loaded onto which device.

One concept per module: ``catalogue`` (the curated models), ``names`` (a key, timm or ``hf-hub:`` name checked
to be a ViT vitviz explains), ``weights`` (safe reading and strict loading of a state dict), ``loading``
(``load_model``: hub, cache, local file or the bundled ``vitviz-shapes``, put on the best device; ``load_cnn``:
any timm CNN the same way, or the bundled ``vitviz-shapes-cnn``). Whether the
hub answers is ``vitviz.hub.reachability``. torch and timm are imported on first use, so ``import vitviz.models``
is cheap (the app's sidebar reads the catalogue with it).
"""
from __future__ import annotations

import warnings

from vitviz.hub.reachability import hub_reachable

from .catalogue import BUNDLED_CNN, BUNDLED_MODEL, CATALOGUE, CNN_EXAMPLES, ModelSpec
from .errors import FallbackWarning, ModelError
from .loading import MAX_PARAMETERS, LoadedModel, default_device, load_cnn, load_model, offline_howto
from .names import resolve_cnn_name, resolve_name
from .weights import MAX_WEIGHTS_BYTES, load_state_dict

__all__ = [
    "BUNDLED_CNN",
    "BUNDLED_MODEL",
    "CATALOGUE",
    "CNN_EXAMPLES",
    "MAX_PARAMETERS",
    "MAX_WEIGHTS_BYTES",
    "FallbackWarning",
    "LoadedModel",
    "ModelError",
    "ModelSpec",
    "default_device",
    "hub_reachable",
    "load_cnn",
    "load_model",
    "load_state_dict",
    "offline_howto",
    "resolve_cnn_name",
    "resolve_name",
]

_MOVED: dict[str, tuple[str, object]] = {}


def __getattr__(name: str) -> object:
    """Names that moved, still importable from here for one release (with a DeprecationWarning)."""
    if name == "Notice":  # the sentence type moved to vitviz.i18n (a user-facing text, not a model concept)
        from vitviz.i18n import Message

        _MOVED[name] = ("vitviz.i18n.Message", Message)
    if name == "data_config":  # looked up on use: vitviz.images imports nothing from here
        from vitviz.images.preprocess import data_config

        _MOVED[name] = ("vitviz.images.data_config", data_config)
    if name in _MOVED:
        where, value = _MOVED[name]
        warnings.warn(f"vitviz.models.{name} moved to {where}", DeprecationWarning, stacklevel=2)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
