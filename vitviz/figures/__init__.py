"""Plotly figure builders, one function per view.

Builders take plain arrays (numpy), the original image (PIL or uint8 array), an ``InputGeometry`` and a
``TokenLayout``, and return a ``plotly.graph_objects.Figure``. They never run a model, never call
``.show()`` and never import streamlit.
"""

from vitviz.figures.attention import (
    attention_distance_figure,
    attention_grid_figure,
    attention_map_figure,
    token_name,
)
from vitviz.figures.attribution import (
    conservation_figure,
    faithfulness_figure,
    logit_parts,
    perturbation_figure,
    relevance_maps_figure,
    sanity_figure,
    scaled_map,
)
from vitviz.figures.features import feature_pca_figure, token_norm_figure
from vitviz.figures.patches import patch_cost_figure, patch_grid_figure, patch_sequence_figure
from vitviz.figures.placement import MapExtent, map_extent
from vitviz.figures.posembed import (
    SIMILARITY_SCALE,
    embedding_filters_figure,
    position_similarity_figure,
    position_tile_figure,
)
from vitviz.figures.predictions import predictions_figure
from vitviz.figures.rollout import rollout_figure
from vitviz.figures.traces import MAP_SCALE, overlay_figure

__all__ = [
    "MAP_SCALE",
    "MapExtent",
    "map_extent",
    "overlay_figure",
    "patch_cost_figure",
    "patch_grid_figure",
    "patch_sequence_figure",
    "SIMILARITY_SCALE",
    "position_similarity_figure",
    "position_tile_figure",
    "embedding_filters_figure",
    "attention_map_figure",
    "attention_grid_figure",
    "attention_distance_figure",
    "token_name",
    "rollout_figure",
    "relevance_maps_figure",
    "conservation_figure",
    "faithfulness_figure",
    "logit_parts",
    "perturbation_figure",
    "sanity_figure",
    "scaled_map",
    "token_norm_figure",
    "feature_pca_figure",
    "predictions_figure",
]
