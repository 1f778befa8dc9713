"""Analyses: pure functions over captured arrays (patches, position embeddings, attention, rollout, distances).

Every function takes numpy arrays or torch tensors (or a ``vitviz.capture.Capture``) and returns numpy
arrays or frozen dataclasses; none draws, none touches a widget, and none needs every layer's full
attention at once when given a Capture.
"""
import importlib
import warnings

from .attention import AttentionMap, attention_grid, attention_map, query_index, split_tokens
from .cka import cka_matrix, layer_grams, linear_cka
from .cost import Cost, PatchCost, count_flops, measure_cost, patch_costs, patch_tokens
from .depths import Depths, depth_names, depth_outputs
from .distance import mean_attention_distance, patch_distances
from .features import feature_pca, token_norm_map, token_norms
from .filters import EmbeddingFilters, embedding_filters
from .patches import PatchGrid, patch_grid, patch_tiles, patchify
from .posembed import (
    PositionEmbeddingUnavailable,
    PositionLocality,
    patch_position_embeddings,
    position_locality,
    position_similarity,
)
from .predictions import Prediction, imagenet_labels, softmax, top_k
from .receptive_field import (
    EffectiveReceptiveField,
    TheoreticalReceptiveField,
    effective_receptive_field,
    mass_radius,
    theoretical_receptive_field,
)
from .repatch import nearest_input_size, with_patch_size
from .rollout import RolloutResult, discard_lowest, gradient_rollout, gradient_rollout_steps, rollout, rollout_steps

__all__ = [
    "AttentionMap",
    "Cost",
    "Depths",
    "EffectiveReceptiveField",
    "PatchCost",
    "TheoreticalReceptiveField",
    "cka_matrix",
    "count_flops",
    "depth_names",
    "depth_outputs",
    "effective_receptive_field",
    "layer_grams",
    "linear_cka",
    "mass_radius",
    "measure_cost",
    "patch_costs",
    "patch_tokens",
    "theoretical_receptive_field",
    "EmbeddingFilters",
    "PatchGrid",
    "PositionEmbeddingUnavailable",
    "Prediction",
    "RolloutResult",
    "attention_grid",
    "attention_map",
    "discard_lowest",
    "embedding_filters",
    "feature_pca",
    "gradient_rollout",
    "gradient_rollout_steps",
    "imagenet_labels",
    "mean_attention_distance",
    "nearest_input_size",
    "patch_distances",
    "PositionLocality",
    "position_locality",
    "patch_grid",
    "patch_position_embeddings",
    "patch_tiles",
    "patchify",
    "position_similarity",
    "query_index",
    "rollout",
    "rollout_steps",
    "softmax",
    "split_tokens",
    "token_norm_map",
    "token_norms",
    "top_k",
    "with_patch_size",
]


def __getattr__(name: str) -> object:
    """Deprecated: ``METHODS`` lives with the methods (``vitviz.attribution.METHODS``), kept here for one release.

    Resolved on request only (``vitviz.attribution`` builds on these analyses, never the reverse).
    """
    if name == "METHODS":
        warnings.warn("vitviz.analysis.METHODS moved to vitviz.attribution.METHODS", DeprecationWarning,
                      stacklevel=2)
        return importlib.import_module("vitviz.attribution").METHODS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
