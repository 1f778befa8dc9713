"""The ViT vs CNN page's cached pieces: the CNN (one per server), which pair is compared, and the measurements.

* :func:`load_cnn` keeps each CNN (``st.cache_resource``, shared and used read-only, as :func:`loaders.load` keeps
  each ViT). The bundled ``vitviz-shapes-cnn`` is looked up on every run until its weights are there (a failed
  load is not cached): when ``vitviz/assets/shapes_cnn.*`` appear, the next run uses them.
* :func:`reference` keeps what the comparison measures whatever the image, once per pair and server
  (``vitviz.comparison.pair_reference``: the fixed images of the receptive fields and of the CKA batch, the
  theoretical fields, the costs); :func:`comparison` keeps its ``compare(image)`` per (ViT, CNN, image), so a
  new image costs only its own passes. Both are shared by every session.
* :func:`cnn_looks` keeps the CNN's Grad-CAM and its two perturbation curves per (CNN, image).
* :func:`most_faithful` picks the ViT's most faithful map with the Compare page's own cached views and measure
  (lowest AUC when the most relevant pixels go first), so the two pages agree and share their work.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from . import loaders

__all__ = ["CnnLooks", "Pair", "cnn_looks", "comparison", "data_curves", "load_cnn", "most_faithful", "pair_for",
           "reference", "vit_pass"]

IMAGENET_CNN = "resnet18.a1_in1k"
"""The CNN set beside an ImageNet ViT: ResNet-18 (He et al. 2016), timm's A1 recipe (Wightman et al. 2021)."""
REMOVAL = "pixels"
"""Both models lose the same kind of thing, pixels set to black, so neither is favoured (token dropping is a
ViT's own)."""


@st.cache_resource(max_entries=4, show_spinner=False)
def load_cnn(name: str, pretrained: bool = True):
    """A CNN once per server: ``vitviz.models.load_cnn`` (raises ``ModelError``, which is not cached)."""
    from vitviz.models import load_cnn as load

    return load(name, pretrained=pretrained)


@dataclass(frozen=True, eq=False)
class Pair:
    """What the page compares.

    Attributes:
        vit: the ViT's ``LoadedModel``; vit_key its cache key (as ``loaders.load``'s).
        cnn: the CNN's ``LoadedModel``; cnn_key its cache key (name and where its weights came from).
        problem: why the sidebar's ViT is not the one compared (the CNN for it could not be loaded), or None.
    """

    vit: Any
    vit_key: str
    cnn: Any
    cnn_key: str
    problem: str | None = None

    @property
    def shapes(self) -> bool:
        """Whether this is the bundled shapes pair (both trained on the same ten shapes)."""
        from vitviz.models import BUNDLED_CNN

        return self.cnn.name == BUNDLED_CNN


def _bundled_cnn():
    from vitviz.models import BUNDLED_CNN, ModelError

    try:
        return load_cnn(BUNDLED_CNN)
    except ModelError:  # not trained in this checkout yet: the same network, seeded and untrained
        return load_cnn(BUNDLED_CNN, pretrained=False)


def _key(loaded) -> str:
    return f"{loaded.name}|{loaded.source}"


def pair_for(ctx) -> Pair:
    """The sidebar's ViT with a CNN of its kind: the bundled shapes CNN beside vitviz-shapes, ResNet-18 beside
    an ImageNet ViT; the bundled shapes pair when that CNN cannot be loaded (offline, not cached)."""
    from vitviz.models import BUNDLED_MODEL, ModelError

    vit = ctx.loaded
    if vit.name != BUNDLED_MODEL and vit.labels is not None:
        try:
            cnn = load_cnn(IMAGENET_CNN)
            return Pair(vit, ctx.model_key, cnn, _key(cnn))
        except ModelError as exc:
            problem = str(exc)
    elif vit.name != BUNDLED_MODEL:
        from vitviz.i18n import _

        problem = _("{model} has no classifier head, so it is compared through the bundled shapes pair.").format(
            model=vit.name)
    else:
        problem = None
    if vit.name != BUNDLED_MODEL:
        vit = loaders.load(BUNDLED_MODEL, None)
    cnn = _bundled_cnn()
    return Pair(vit, ctx.model_key if vit is ctx.loaded else f"{BUNDLED_MODEL}|default", cnn, _key(cnn), problem)


@st.cache_resource(max_entries=2, show_spinner=False)
def reference(vit_key: str, cnn_key: str, _vit, _cnn):
    """``vitviz.comparison.pair_reference`` of the pair, once (the Patches page shows the patch-size costs)."""
    from vitviz.comparison import pair_reference

    with loaders.one_thread_if_small(_vit.model):
        return pair_reference(_vit.model, _cnn.model, patch_sizes=())


@st.cache_resource(max_entries=4, show_spinner=False)
def comparison(vit_key: str, cnn_key: str, image_key: str, _vit, _cnn, _image):
    """The pair on the image: its :func:`reference`'s ``compare`` (``vitviz.compare_cnn``'s numbers)."""
    pair = reference(vit_key, cnn_key, _vit, _cnn)
    with loaders.one_thread_if_small(_vit.model):
        return pair.compare(_image)


@dataclass(frozen=True, eq=False)
class CnnLooks:
    """Where the CNN looks on one image: its Grad-CAM, the input geometry, and its two perturbation curves."""

    gradcam: Any
    geometry: Any
    curves: dict


@st.cache_resource(max_entries=8, show_spinner=False)
def cnn_looks(cnn_key: str, image_key: str, _cnn, _image) -> CnnLooks:
    """The CNN's Grad-CAM on its last stage for its top class, and its perturbation curves (pixels, both orders)."""
    from vitviz.attribution import cnn_gradcam
    from vitviz.evaluation import perturbation_curves
    from vitviz.images import prepare_input

    x, geometry = prepare_input(_image, _cnn.data_config)
    config = _cnn.data_config
    with loaders.one_thread_if_small(_cnn.model):
        cam = cnn_gradcam(_cnn.model, x)
        curves = perturbation_curves(_cnn.model, x, {"gradcam": cam.cells}, cam.target, removal=REMOVAL,
                                     mean=config.get("mean"), std=config.get("std"))
    return CnnLooks(cam, geometry, {order: curves[("gradcam", order)] for order in ("most", "least")})


def most_faithful(fwd) -> tuple[str, Any, dict]:
    """The ViT's most faithful map on this image by the Compare page's measure (its cached views): among the
    methods it runs by default, the lowest AUC when the most relevant pixels go first.

    Returns:
        ``(method key, Relevance, {'most': curve, 'least': curve})``.
    """
    from vitviz.attribution import METHODS
    from vitviz.evaluation.verdict import BASELINES

    from . import evaluation_views as views

    target = int(fwd.probabilities.argmax())
    best = None
    for key, method in METHODS.items():
        if key in BASELINES or "step" in method.passes:  # Compare's default set: no chance level, no many-step IG
            continue
        try:
            relevance = views.relevance_view(fwd.key, key, target if method.class_specific else None, fwd)
            curve = views.curve_view(fwd.key, key, relevance.target, target, REMOVAL, "most", fwd, relevance)
        except (ValueError, RuntimeError):  # a method this model cannot run (Compare says why)
            continue
        if best is None or curve.auc < best[2].auc:
            best = (key, relevance, curve)
    if best is None:
        raise ValueError("no attribution method runs on this model")
    key, relevance, curve = best
    least = views.curve_view(fwd.key, key, relevance.target, target, REMOVAL, "least", fwd, relevance)
    return key, relevance, {"most": curve, "least": least}


def vit_pass(pair: Pair, ctx):
    """The pair's ViT's cached pass on the sidebar's image, when it is not the sidebar's model (the shapes pair
    standing in), through the same shared cache and queue as every page's pass."""
    from vitviz.i18n import _

    from . import waiting

    doing = _("Running {model} on your image…").format(model=pair.vit.display_name)
    return loaders.pass_for(pair.vit_key, ctx.image_key, None, None, pair.vit, ctx.image, fit=ctx.fit,
                            wait=lambda ticket: waiting.wait_for(ticket, doing))


def data_curves() -> dict | None:
    """``vitviz/assets/data_curves.json`` (``vitviz.comparison.read_data_curves``), read again when it changes;
    None when it is not there. Raises ``ValueError`` for a file that is not such a results file."""
    from vitviz import comparison

    path = comparison.DATA_CURVES_PATH
    stamp = path.stat().st_mtime_ns if path.is_file() else None
    return _data_curves(str(path), stamp)


@st.cache_data(max_entries=4, show_spinner=False)
def _data_curves(path: str, stamp: int | None) -> dict | None:
    from vitviz.comparison import read_data_curves

    return read_data_curves(path)
