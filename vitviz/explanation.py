"""The notebook facade: one call from a model and an image to every array and figure vitviz has.

    >>> import vitviz
    >>> ex = vitviz.explain("vitviz-shapes", "cat.jpg")
    >>> ex.predictions[0]
    >>> ex.fig_rollout()              # a plotly Figure; displays itself in Jupyter
    >>> ex.attention_map(layer=-1, head=3, query=(4, 5)).patches

``explain`` runs the model once (plus one backward pass when ``target`` is given); the attention views of the returned
``Explanation`` work on that capture and never run the model again. What else a view needs (a gradient pass for another
class, an attribution method's own passes, the perturbed inputs of a faithfulness test) is computed on demand, once,
and kept on the Explanation:

    >>> ex.relevance("gradient_rollout")           # (grid_h, grid_w) map for the top class
    >>> ex.faithfulness("rollout", removal="tokens").positive_auc
    >>> ex.sanity("attention").correlations       # cascading randomisation (Adebayo et al. 2018)
    >>> ex.decomposition("attnlrp").shares()       # where an LRP map's explained logit went
    >>> ex.verdict()                               # which map to trust here, in plain words
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from vitviz import analysis, figures, models, pipeline
from vitviz.attribution import METHODS, AttributionMethod, Relevance, get_method, renamed_note
from vitviz.capture import Capture, capture, check_target
from vitviz.evaluation import Faithfulness, PerturbationBand, SanityCheck, faithfulness, random_baseline, sanity_check
from vitviz.evaluation.verdict import read_curves, verdict, verdict_sentences
from vitviz.i18n import _
from vitviz.images import InputGeometry, input_image, read_image
from vitviz.layout import TokenLayout
from vitviz.models import LoadedModel

if TYPE_CHECKING:
    from pathlib import Path
    from typing import BinaryIO

    import torch
    from torch import nn

    from vitviz.attribution.conservation import LogitDecomposition

    ImageSource = str | Path | bytes | BinaryIO | Image.Image | np.ndarray

__all__ = ["Explanation", "explain"]

TOP_K = pipeline.TOP_K

Query = str | int | tuple[int, int]
"""A query token: a prefix name (``'cls'``, ``'reg0'``), a token index or a patch ``(row, col)``."""
_T = TypeVar("_T")
_NOTED: set[str] = set()
"""Renamed keys already noted in this process (the note is a one-release FutureWarning, shown once)."""


@dataclass(frozen=True, eq=False)
class Explanation:
    """One image seen by one model: the capture plus what is needed to place it on the photo.

    Attributes:
        image: The original, upright RGB image.
        geometry: Which part of ``image`` the model input shows.
        layout: Where each token sits.
        capture: The recorded forward pass (attention, hidden states, output).
        predictions: Top classes, most probable first; empty for a model without a classifier.
        model: The model that ran (after re-patchifying, when asked).
        input: The model input (1, 3, H, W) as normalised, on the model's device.
        data_config: timm data config used to prepare the input.
        name: Model name, for titles.
        notice: Which weights are in use, when the model was loaded by name (e.g. the offline fallback).
    """

    image: Image.Image
    geometry: InputGeometry
    layout: TokenLayout
    capture: Capture
    predictions: tuple[analysis.Prediction, ...]
    model: nn.Module = field(repr=False)
    input: torch.Tensor = field(repr=False)
    data_config: dict = field(repr=False)
    name: str = ""
    notice: str = ""
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def __repr__(self) -> str:
        top = self.predictions[0] if self.predictions else None
        guess = f", top={top.label!r} ({top.probability:.1%})" if top else ""
        height, width = self.geometry.original_size
        return (f"Explanation(model={self.name!r}, image={width}×{height}, layout={self.layout.describe()!r}, "
                f"layers={self.capture.num_layers}, heads={self.capture.num_heads}{guess})")

    # ---------------------------------------------------------------------------------------- arrays

    def default_query(self) -> int:
        """The class token, or the centre patch for a model without one."""
        if self.layout.class_index is not None:
            return self.layout.class_index
        rows, cols = self.layout.grid_size
        return self.layout.patch_index(rows // 2, cols // 2)

    def _query(self, query: Query | None) -> int:
        return self.default_query() if query is None else analysis.query_index(query, self.layout)

    def attention_map(self, layer: int = -1, head: int | str = "mean",
                      query: Query | None = None) -> analysis.AttentionMap:
        """One query's attention in one layer (see ``vitviz.analysis.attention_map``); query as token index,
        prefix name (``'cls'``, ``'reg0'``) or patch ``(row, col)``; default :meth:`default_query`."""
        return analysis.attention_map(self.capture, layer, head, self._query(query))

    def attention_grid(self, query: Query | None = None) -> np.ndarray:
        """(L, H, gh, gw) one query's attention over the patches, every layer and head."""
        return analysis.attention_grid(self.capture, self._query(query))

    def rollout(
        self, head_fusion: str = "mean", discard_ratio: float = 0.0, start_layer: int = 0,
        end_layer: int | None = None,
    ) -> analysis.RolloutResult:
        """Attention rollout (Abnar & Zuidema 2020) of the capture."""
        return analysis.rollout(self.capture, head_fusion, discard_ratio, start_layer, end_layer)

    def gradient_rollout(
        self, start_layer: int = 0, end_layer: int | None = None, target: int | None = None,
    ) -> analysis.RolloutResult:
        """Gradient-weighted rollout (Chefer et al. 2021) for ``target`` (default: the class given to
        ``explain``, else the top class); the gradient pass runs on demand, once per class."""
        if target is None and self.capture.target is not None:
            target = self.capture.target[0]
        return analysis.gradient_rollout(self.capture_for(target), start_layer=start_layer, end_layer=end_layer)

    # ------------------------------------------------------------------ attribution and its evaluation

    def _memo(self, key: tuple, compute: Callable[[], _T]) -> _T:
        """``compute()`` once per ``key``, kept on this Explanation."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def target_class(self, target: int | None = None) -> int:
        """``target`` checked against the classifier (``vitviz.capture.check_target``), or the top class when
        None."""
        num_classes = int(getattr(self.model, "num_classes", 0) or 0)
        if self.capture.output.shape[-1] != num_classes:
            num_classes = 0  # features, not class scores
        if target is None:
            check_target(0, num_classes)  # refuses a model without a classifier
            return int(self.capture.output[0].argmax())
        return check_target(target, num_classes)

    def capture_for(self, target: int | None = None) -> Capture:
        """A capture with gradients for ``target`` (default the top class): the original one when it has
        them, else one more forward + backward pass, run once per class."""
        target = self.target_class(target)
        if self.capture.target == (target,):
            return self.capture
        return self._memo(("capture", target), lambda: capture(self.model, self.input, target=target))

    def _method(self, method: str | AttributionMethod) -> AttributionMethod:
        if isinstance(method, str):
            if method not in _NOTED and (note := renamed_note(method)):  # 'attnlrp' named CP-LRP up to 0.1
                _NOTED.add(method)
                warnings.warn(note, FutureWarning, stacklevel=3)
            return get_method(method)
        return method

    def attribution(self, method: str | AttributionMethod, target: int | None = None) -> Relevance:
        """The ``vitviz.attribution.Relevance`` of ``method`` (a key of ``vitviz.attribution.METHODS`` or an
        ``AttributionMethod``) for ``target``; class-specific methods default to the top class."""
        method = self._method(method)
        target = self.target_class(target) if method.class_specific else None
        if method.conserves:  # one LRP pass gives the map and where the rest of the logit went
            return self.decomposition(method, target).relevance
        reuse = self._cache.get(("capture", target), self.capture)

        return self._memo(("relevance", method.key, target),
                          lambda: method.attribute(self.model, self.input, target, capture=reuse))

    def decomposition(self, method: str | AttributionMethod = "attnlrp", target: int | None = None
                      ) -> LogitDecomposition:
        """Where an LRP map's explained logit went, in parts that sum to it (``vitviz.attribution.conservation``);
        only for methods with ``conserves`` (CP-LRP, AttnLRP)."""
        method = self._method(method)
        if not method.conserves:
            raise ValueError(f"{method.key} does not decompose the logit (only the LRP methods do)")
        target = self.target_class(target)
        return self._memo(("decomposition", method.key, target),
                          lambda: method.decompose(self.model, self.input, target))

    def relevance(self, method: str | AttributionMethod, target: int | None = None) -> np.ndarray:
        """(grid_h, grid_w) relevance of every patch by ``method`` for ``target`` (see :meth:`attribution`)."""
        return self.attribution(method, target).patches

    def faithfulness(self, method: str | AttributionMethod, removal: str = "tokens",
                     target: int | None = None) -> Faithfulness:
        """Both perturbation curves of ``method``'s map (``vitviz.evaluation.faithfulness``).

        The returned ``Faithfulness`` holds the fractions, the positive (most relevant removed first, lower
        AUC is better) and negative (least relevant first, higher AUC is better) curves and both AUCs of
        the probability of ``target`` (default the top class). ``removal`` is ``'tokens'`` (token
        dropping) or ``'pixels'`` (Chefer's protocol).
        """
        method = self._method(method)
        target = self.target_class(target)

        def compute():
            relevance = self.attribution(method, target if method.class_specific else None)
            return faithfulness(self.model, self.input, relevance, target, removal, clean=self.capture.output,
                                mean=self.data_config.get("mean"), std=self.data_config.get("std"))

        return self._memo(("faithfulness", method.key, removal, target), compute)

    def random_baseline(self, removal: str = "tokens", order: str = "most", target: int | None = None,
                        seeds: Sequence[int] = tuple(range(5))) -> PerturbationBand:
        """Perturbation curves of random orders as a band (``vitviz.evaluation.random_baseline``)."""
        target = self.target_class(target)
        seeds = tuple(int(s) for s in seeds)
        return self._memo(("random", removal, order, target, seeds), lambda: random_baseline(
            self.model, self.input, target, removal=removal, order=order, seeds=seeds, clean=self.capture.output,
            mean=self.data_config.get("mean"), std=self.data_config.get("std"),
        ))

    def sanity(self, method: str | AttributionMethod, target: int | None = None, steps: int | None = None,
               seed: int = 0) -> SanityCheck:
        """Cascading model randomisation of ``method`` (``vitviz.evaluation.sanity_check``, Adebayo et al.
        2018): rank correlation with the original map as the head, then the blocks from the top, are
        re-initialised on a copy of the model."""
        method = self._method(method)
        target = self.target_class(target) if method.class_specific else None

        def compute():
            original = self.attribution(method, target)
            return sanity_check(self.model, self.input, method, target, steps=steps,
                                seed=seed, original=original)

        return self._memo(("sanity", method.key, target, steps, seed), compute)

    def position_similarity(self) -> np.ndarray:
        """(gh, gw, gh, gw) cosine similarity of the position embeddings at this grid."""
        return analysis.position_similarity(self.model, self.layout)

    def embedding_filters(self, n: int = 28) -> analysis.EmbeddingFilters:
        """Principal components of the patch-embedding filters."""
        return analysis.embedding_filters(self.model, n)

    def attention_distance(self) -> np.ndarray:
        """(L, H) mean attention distance in model-input pixels."""
        return analysis.mean_attention_distance(self.capture)

    def token_norms(self) -> np.ndarray:
        """(L+1, N) L2 norm of every token at every depth."""
        return analysis.token_norms(self.capture)

    def feature_pca(self, layer: int = -1) -> np.ndarray:
        """(gh, gw, 3) first three principal components of one hidden state's patch tokens, in 0..1."""
        return analysis.feature_pca(self.capture, self.layout, layer=layer)

    def input_pixels(self) -> np.ndarray:
        """(H, W, 3) uint8: the model input as the model sees it (after resize, crop, padding)."""
        return input_image(self.input, self.data_config)

    def patch_tiles(self) -> np.ndarray:
        """(num_patches, ph, pw, 3) uint8 patches of the model input, in sequence order."""
        return analysis.patch_tiles(self.input_pixels(), self.layout.patch_size)

    # --------------------------------------------------------------------------------------- figures

    def fig_patch_grid(self) -> go.Figure:
        """The photo with the patch grid on the region the model sees."""
        return figures.patch_grid_figure(self.image, self.geometry, self.layout)

    def fig_patch_sequence(self, columns: int | None = None) -> go.Figure:
        """The token sequence as the model receives it."""
        return figures.patch_sequence_figure(self.patch_tiles(), self.layout, columns=columns)

    def fig_position_similarity(self, data_range: bool = False) -> go.Figure:
        """Position-embedding similarity tiles (ViT paper, Fig. 7 centre)."""
        return figures.position_similarity_figure(self.position_similarity(), data_range=data_range)

    def fig_position_tile(self, row: int, col: int) -> go.Figure:
        """One position's similarity tile, enlarged."""
        return figures.position_tile_figure(self.position_similarity(), row, col)

    def fig_embedding_filters(self, n: int = 28) -> go.Figure:
        """Principal components of the patch-embedding filters (ViT paper, Fig. 7 left)."""
        result = self.embedding_filters(n)
        return figures.embedding_filters_figure(result.tiles, result.explained_variance_ratio)

    def fig_attention(self, layer: int = -1, head: int | str = "mean", query: Query | None = None) -> go.Figure:
        """One query's attention in one layer over the photo, prefix tokens listed apart."""
        amap = self.attention_map(layer, head, query)
        row = np.concatenate([list(amap.prefix.values()), amap.patches.reshape(-1)])  # (N,)
        return figures.attention_map_figure(
            row, self.image, self.geometry, self.layout, query=amap.query, layer=amap.layer, head=amap.head,
        )

    def fig_attention_grid(self, query: Query | None = None, normalize: bool = False) -> go.Figure:
        """Layers × heads grid of one query's attention."""
        index = self._query(query)
        title = _("Attention of {token}, per layer and head").format(token=figures.token_name(self.layout, index))
        return figures.attention_grid_figure(self.attention_grid(index), normalize=normalize, title=title)

    def fig_attention_distance(self) -> go.Figure:
        """Mean attention distance per head against depth (ViT paper, Fig. 7 right)."""
        return figures.attention_distance_figure(self.attention_distance())

    def fig_rollout(
        self, head_fusion: str = "mean", discard_ratio: float = 0.0, start_layer: int = 0,
        gradient: bool = False,
    ) -> go.Figure:
        """Rollout over the photo with a layer slider; ``gradient=True`` for gradient rollout."""
        result = self.gradient_rollout(start_layer) if gradient else self.rollout(
            head_fusion, discard_ratio, start_layer
        )
        return figures.rollout_figure(
            result.maps, self.image, self.geometry, self.layout,
            start_layer=result.layers[0], query=result.readout, method=result.method,
        )

    def fig_token_norms(self, layer: int = -1) -> go.Figure:
        """Token norms at one depth, patches as a map and prefix tokens apart."""
        return figures.token_norm_figure(self.token_norms(), self.layout, layer)

    def fig_feature_pca(self, layer: int = -1) -> go.Figure:
        """Patch features coloured by their first three principal components, beside the photo."""
        return figures.feature_pca_figure(self.feature_pca(layer), self.image, self.geometry, self.layout)

    def _methods(self, methods: Sequence[str | AttributionMethod] | None, *, lrp: bool = False) -> list:
        """``methods`` as methods (a renamed key the user typed is noted), or every registered method this model
        can run (class-specific ones need a head; with ``lrp``, every LRP method)."""
        if methods is not None:
            return [self._method(m) for m in methods]
        return [m for m in METHODS.values() if (m.conserves if lrp else self.predictions or not m.class_specific)]

    def _map_title(self, method: AttributionMethod, target: int | None) -> str:
        """A method's title; an LRP map's says what share of the explained logit it holds."""
        if not method.conserves:
            return method.display_title
        share = figures.logit_parts(self.decomposition(method, target))["patches"]
        return _("{method} ({share:.0%} of the logit)").format(method=method.display_title, share=share)

    def fig_relevance(self, methods: Sequence[str] | None = None, target: int | None = None) -> go.Figure:
        """Every method's map over the photo, side by side (default: every registered method); an LRP map's
        title gives its share of the explained logit (see :meth:`fig_conservation`)."""
        maps = {self._map_title(m, target): self.relevance(m, target) for m in self._methods(methods)}
        return figures.relevance_maps_figure(maps, self.image, self.geometry, self.layout)

    def fig_conservation(self, methods: Sequence[str] | None = None, target: int | None = None) -> go.Figure:
        """Where each LRP map's explained logit went: the map, prefix tokens, position embedding, biases, softmax
        (default: every LRP method)."""
        return figures.conservation_figure({m.display_title: self.decomposition(m, target)
                                            for m in self._methods(methods, lrp=True)})

    def fig_faithfulness(self, methods: Sequence[str] | None = None, removal: str = "tokens",
                         target: int | None = None) -> go.Figure:
        """Perturbation curves of each method beside the random band (see :meth:`faithfulness`)."""
        target = self.target_class(target)
        results = {m.display_title: self.faithfulness(m, removal, target) for m in self._methods(methods)}
        bands = {order: self.random_baseline(removal, order, target) for order in ("most", "least")}
        labels = analysis.imagenet_labels(self.model)
        name = next((p.label for p in self.predictions if p.index == target), None) or (
            labels[target] if labels else _("class {index}").format(index=target))
        return figures.faithfulness_figure(results, bands, class_name=f"“{name}”")

    def fig_sanity(self, methods: Sequence[str] | None = None, steps: int | None = None,
                   metric: str = "spearman") -> go.Figure:
        """Similarity with the original map under cascading randomisation (see :meth:`sanity`): ``metric`` is
        ``'spearman'``, ``'spearman_abs'`` or ``'ssim'``."""
        checks = {m.display_title: self.sanity(m, steps=steps) for m in self._methods(methods)}
        return figures.sanity_figure(checks, metric=metric)

    def verdict(self, methods: Sequence[str] | None = None, removal: str = "tokens", target: int | None = None,
                sanity: bool = True) -> list[str]:
        """Which map to trust on this image, in plain words (``vitviz.evaluation.verdict``): each method's
        curves against the random band and, with ``sanity``, its randomisation test."""
        target = self.target_class(target)
        chosen = {m.key: m for m in self._methods(methods)}
        results = {k: self.faithfulness(m, removal, target) for k, m in chosen.items()}
        bands = {order: self.random_baseline(removal, order, target) for order in ("most", "least")}
        checks = {k: self.sanity(m) for k, m in chosen.items()} if sanity else None
        verdicts = verdict(read_curves(results, bands), checks, {k: m.class_specific for k, m in chosen.items()})
        return verdict_sentences(verdicts, {k: m.display_title for k, m in chosen.items()}, sanity_run=sanity)

    def fig_predictions(self) -> go.Figure:
        """Top classes as a bar chart."""
        title = _("Top predictions of {model}").format(model=self.name)
        return figures.predictions_figure(self.predictions, title=title)


# ------------------------------------------------------------------------------------------- explain


def _resolve_model(
    model_or_name: str | LoadedModel | nn.Module, device: str | torch.device | None,
) -> tuple[nn.Module, dict[str, Any] | None, list[str] | None, str, str]:
    """``(model, data_config, labels, name, notice)`` from a name, a ``LoadedModel`` or a model object; the
    data config and labels are None for a model object (the pipeline reads timm's)."""
    if isinstance(model_or_name, str):
        model_or_name = models.load_model(model_or_name, device=device)
    if isinstance(model_or_name, models.LoadedModel):
        loaded = model_or_name
        return loaded.model, dict(loaded.data_config), loaded.labels, loaded.name, loaded.notice
    name = str(getattr(model_or_name, "pretrained_cfg", {}).get("architecture", type(model_or_name).__name__))
    return model_or_name, None, None, name, ""


def explain(
    model_or_name: str | LoadedModel | nn.Module,
    image: ImageSource,
    *,
    target: int | None = None,
    patch_size: int | Sequence[int] | None = None,
    device: str | torch.device | None = None,
    fit: str = "crop",
) -> Explanation:
    """Run a ViT once on an image (``vitviz.pipeline.run``) and keep everything needed to explain what it saw.

    Args:
        model_or_name: A catalogue key or timm name (loaded with ``vitviz.models.load_model``), a
            ``LoadedModel``, or a timm ViT-family model object (used as it is; moved, in place, to
            ``device`` when one is given).
        image: A path, bytes, file object (decoded with ``vitviz.images.load_image``), PIL image (converted as
            an upload is, ``vitviz.images.to_rgb``) or array (``vitviz.images.as_rgb_array``).
        target: Class index whose gradients are recorded with the capture (gradient rollout for this class
            needs no second pass; any other class is computed on demand). Checked against the model's classes.
        patch_size: Run at another patch size (FlexiViT-style resampled copy of the model,
            ``vitviz.analysis.with_patch_size``); the model passed in is left untouched.
        device: Device to load the model on (by name) or to move it to; the input always follows the model.
        fit: ``'crop'`` (the model's own preprocessing), ``'letterbox'`` or ``'squash'`` (``vitviz.images.FITS``).

    Returns:
        The frozen Explanation.

    Raises:
        vitviz.images.ImageError: An image that cannot be read, or an empty or non-finite array.
        ValueError: ``target`` names no class of the model.
    """
    model, data_config, labels, name, notice = _resolve_model(model_or_name, device)
    picture = read_image(image)
    result = pipeline.run(model, picture, patch_size=patch_size, target=target, data_config=data_config,
                          labels=labels, device=device, fit=fit)
    return Explanation(image=picture, geometry=result.geometry, layout=result.layout, capture=result.capture,
                       predictions=result.predictions, model=result.model, input=result.x,
                       data_config=result.data_config, name=name, notice=notice)
