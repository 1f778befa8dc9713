"""Cached views computed from a forward pass: rollout, position similarity, filters, distances.

These only read captured arrays or model weights (never run the model). They are cached with
``st.cache_data`` under the forward pass's key plus the view's settings, so going back to an earlier setting
is instant; the arguments starting with ``_`` are the objects the keys stand for and are not hashed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st

__all__ = ["RolloutView", "rollout_view", "gradient_rollout_view", "rollout_steps_view", "gradient_rollout_steps_view",
           "position_similarity_view", "filters_view", "distance_view", "token_norms_view", "feature_pca_view",
           "figure_view", "overview_figures"]

FILTERS_KEPT = 64
"""Components of the patch-embedding filters decomposed once per model; more than any slider offers."""


@dataclass(frozen=True)
class RolloutView:
    """The part of a ``vitviz.analysis.RolloutResult`` the pages draw.

    Attributes:
        maps: (L', gh, gw) read-out row over the patches after each layer.
        prefix: (L', P) read-out row at the prefix tokens.
        layers: Last layer folded in at each step.
        readout: ``'cls'`` or ``'mean_patches'``.
    """

    maps: np.ndarray
    prefix: np.ndarray
    layers: tuple[int, ...]
    readout: str

    @property
    def figure_query(self) -> str:
        """The ``query`` argument of ``vitviz.figures.rollout_figure``."""
        return "cls" if self.readout == "cls" else "mean"


def _view(result) -> RolloutView:
    return RolloutView(result.maps.astype(np.float32), result.prefix.astype(np.float32), result.layers,
                       result.readout)


STEPS_BUDGET = 48 * 2**20
"""Most bytes of rollout step matrices (L·N² float64) kept per setting: ViT-B/16 at 224 needs 3.7 MB; a
model at 1,370 tokens would need 180 MB, so its steps are formed again for each rollout instead."""


def _steps_fit(fwd) -> bool:
    n = fwd.layout.num_tokens
    return fwd.capture.num_layers * n * n * 8 <= STEPS_BUDGET


@st.cache_resource(max_entries=6, show_spinner=False)
def rollout_steps_view(fwd_key: str, head_fusion: str, discard_ratio: float, _fwd):
    """Every layer's rollout step matrix for these settings (``vitviz.analysis.rollout_steps``), or None when
    they would take more than :data:`STEPS_BUDGET`: a new start layer then only multiplies them again."""
    from vitviz.analysis import rollout_steps

    return rollout_steps(_fwd.capture, head_fusion, discard_ratio) if _steps_fit(_fwd) else None


@st.cache_resource(max_entries=4, show_spinner=False)
def gradient_rollout_steps_view(fwd_key: str, _fwd):
    """Every layer's gradient-rollout step matrix (``vitviz.analysis.gradient_rollout_steps``), or None."""
    from vitviz.analysis import gradient_rollout_steps

    return gradient_rollout_steps(_fwd.capture) if _steps_fit(_fwd) else None


@st.cache_data(max_entries=32, show_spinner=False)
def rollout_view(fwd_key: str, head_fusion: str, discard_ratio: float, start_layer: int, _fwd) -> RolloutView:
    """Attention rollout (Abnar & Zuidema 2020) of a forward pass from ``start_layer`` to the last layer.

    The step matrices are kept per setting (:func:`rollout_steps_view`), so another start layer does not read
    the attention again; the maps are the same as ``vitviz.analysis.rollout``'s.
    """
    from vitviz.analysis import rollout

    steps = rollout_steps_view(fwd_key, head_fusion, discard_ratio, _fwd)
    return _view(rollout(_fwd.capture, head_fusion=head_fusion, discard_ratio=discard_ratio,
                         start_layer=start_layer, steps=steps))


@st.cache_data(max_entries=16, show_spinner=False)
def gradient_rollout_view(fwd_key: str, start_layer: int, _fwd) -> RolloutView:
    """Gradient-weighted rollout (Chefer et al. 2021) of a forward pass captured with a target class."""
    from vitviz.analysis import gradient_rollout

    steps = gradient_rollout_steps_view(fwd_key, _fwd)
    return _view(gradient_rollout(_fwd.capture, start_layer=start_layer, steps=steps))


@st.cache_data(max_entries=8, show_spinner=False)
def position_similarity_view(fwd_key: str, _fwd) -> np.ndarray:
    """Cosine similarity of the position embeddings at the pass's grid, (gh, gw, gh, gw).

    Raises:
        PositionEmbeddingUnavailable: The model has no learned absolute position embeddings.
    """
    from vitviz.analysis import position_similarity

    return position_similarity(_fwd.model, _fwd.layout).astype(np.float32)


def _model_key(fwd) -> str:
    """The part of a forward pass's key that names the model at its patch size (not the image or target)."""
    model_key, _image, patch_size, _target = fwd.key.rsplit("|", 3)
    return f"{model_key}|{patch_size}"


@st.cache_resource(max_entries=4, show_spinner=False)
def _all_filters(model_key: str, _model):
    """The first :data:`FILTERS_KEPT` principal components of a model's patch-embedding filters.

    One SVD per model (a quarter of a second for ViT-B/16's 768 × 768 filters): every other number of
    components is a slice of it, since each component is computed on its own from the same decomposition.
    """
    from vitviz.analysis import embedding_filters

    return embedding_filters(_model, n=FILTERS_KEPT)


@st.cache_data(max_entries=8, show_spinner=False)
def filters_view(fwd_key: str, n: int, _fwd):
    """Principal components of the patch-embedding filters (``vitviz.analysis.embedding_filters``).

    Sliced from one decomposition per model (:func:`_all_filters`), so the values equal
    ``embedding_filters(model, n)`` and changing ``n`` never runs the SVD again.
    """
    from vitviz.analysis import embedding_filters

    if n > FILTERS_KEPT:
        return embedding_filters(_fwd.model, n=n)
    return _all_filters(_model_key(_fwd), _fwd.model).first(n)


@st.cache_data(max_entries=16, show_spinner=False)
def distance_view(fwd_key: str, _fwd) -> np.ndarray:
    """Mean attention distance per layer and head in input pixels, (L, H)."""
    from vitviz.analysis import mean_attention_distance

    return np.asarray(mean_attention_distance(_fwd.capture))


@st.cache_data(max_entries=16, show_spinner=False)
def token_norms_view(fwd_key: str, _fwd) -> np.ndarray:
    """L2 norm of every token entering and leaving each block, (L+1, N)."""
    from vitviz.analysis import token_norms

    return np.asarray(token_norms(_fwd.capture.hidden_states[0]))


@st.cache_data(max_entries=64, show_spinner=False)
def feature_pca_view(fwd_key: str, layer: int, _fwd) -> np.ndarray:
    """The first three principal components of hidden state ``layer``'s patch tokens as RGB, (gh, gw, 3)."""
    from vitviz.analysis import feature_pca

    return feature_pca(_fwd.capture, _fwd.layout, layer=layer)


def figure_view(key: tuple, build: Callable):
    """A Plotly figure built once per ``key`` and language, and shared, for figures whose building costs more
    than drawing.

    ``key`` must name everything the figure shows (the forward pass's key, which stands for the model, the
    image and the patch size, plus every setting and text); the language of its texts is added here. The
    figure object itself is kept (``st.cache_resource``: not pickled), so a rerun that changes another control
    only serialises it again (``vitviz_app.show_figure`` prepares a cached figure once): e.g. the Rollout
    page's 12-frame figures when the other map's settings move, or a view control that another figure of the
    page does not depend on.
    """
    from vitviz.i18n import get_language

    return _figure_view((*key, get_language()), build)


@st.cache_resource(max_entries=64, show_spinner=False)
def _figure_view(key: tuple, _build: Callable):
    return _build()


def overview_figures(fwd, image):
    """The Overview's views of a forward pass: ``(rollout view, rollout figure, predictions figure or None,
    patches figure)``.

    One function for the page and for the server warm-up (``vitviz_app.warmup``), so that both fill the
    same cache entries: the warm-up's figures are the ones the first visitor gets.
    """
    from vitviz.figures import patch_grid_figure, predictions_figure, rollout_figure

    view = rollout_view(fwd.key, "mean", 0.0, 0, fwd)
    rollout = figure_view(("overview.rollout", fwd.key), lambda: rollout_figure(
        view.maps, image, fwd.geometry, fwd.layout, query=view.figure_query, head_fusion="mean"))
    patches = figure_view(("overview.patches", fwd.key), lambda: patch_grid_figure(image, fwd.geometry, fwd.layout))
    bars = None
    if fwd.predictions:
        def build_bars():
            fig = predictions_figure(fwd.predictions, title="")
            fig.update_layout(margin=dict(t=10))  # the page's subheader is its title
            return fig

        bars = figure_view(("overview.predictions", fwd.key), build_bars)
    return view, rollout, bars, patches
