"""Cached loading: the model once per server, the forward pass once per image, model and patch size.

Streamlit's caches decide how fast the app feels:

* :func:`download_weights` fetches a hub model's weights before :func:`load` builds it, drawing a progress
  bar per file (bytes, speed, time left). It runs outside the cache so that a second session asking for
  the same model joins the download in flight (``vitviz.hub``) and shows the same progress.
* :func:`load` keeps each model (``st.cache_resource``: one shared object, never pickled). Models are used
  read-only; :func:`vitviz.capture.capture` serialises passes on one model object, so sessions that share
  it never see each other's attention.
* :func:`repatched` keeps the FlexiViT-style copies made for other patch sizes.
* :func:`forward` keeps the result of one capture (``st.cache_resource`` with a bounded LRU, so the
  captured tensors are shared, not pickled and unpickled on every rerun as ``st.cache_data`` would). It is
  keyed by the image bytes' digest, the model, the patch size, the gradient target and how the photo is
  fitted to the input (``fit``). Moving a layer,
  head, query or fusion control only reads from a cached :class:`Forward`: it never runs the model;
  :data:`FORWARD_PASSES` counts the passes so tests can prove that.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import streamlit as st

from vitviz.i18n import _
from vitviz.pipeline import Pass, run

__all__ = [
    "FORWARD_PASSES",
    "Forward",
    "digest",
    "download_weights",
    "load",
    "decode",
    "repatched",
    "forward",
    "forward_passes",
]

FORWARD_PASSES = {"count": 0}
"""How many forward passes :func:`forward` ran in this process (cache misses only)."""
_COUNT_LOCK = threading.Lock()


def digest(data: bytes) -> str:
    """Short content hash used as a cache key for image and weight bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def forward_passes() -> int:
    return FORWARD_PASSES["count"]


@dataclass(frozen=True, eq=False)
class Forward(Pass):
    """One captured pass (``vitviz.pipeline.Pass``: model, data config, input on the model's device, geometry,
    capture, probabilities, top-5, patch size, target, finite) kept under its cache key.

    Attributes:
        key: Cache key of this pass (model, image, patch size, target): views derived from it are cached
            under it.
    """

    key: str = ""


_PROGRESS_REDRAW_S = 0.25

SMALL_MODEL_PARAMETERS = 10_000_000
"""Models with fewer parameters (the bundled vitviz-shapes has 0.7 M, ViT-Ti/16 5.7 M) run their captured pass
on one torch thread. Measured side by side (``bench/threads.py``, 2 cores, load ≈ 6): the bundled model's
pass took 14 ms on one thread and 128 ms on torch's default two (its matrices are too small to share, and a
descheduled thread stalls the other at every barrier). Larger models keep torch's default."""
_THREADS_LOCK = threading.Lock()
_SMALL_PASSES = {"running": 0, "restore": None}


@contextlib.contextmanager
def one_thread_if_small(model) -> Iterator[None]:
    """Run the block on one torch thread when ``model`` is small (:data:`SMALL_MODEL_PARAMETERS`).

    Torch's thread count is process-wide: the first of overlapping small passes sets it to 1 and the last one
    to finish puts the previous count back.
    """
    import torch

    if sum(p.numel() for p in model.parameters()) >= SMALL_MODEL_PARAMETERS:
        yield
        return
    with _THREADS_LOCK:
        if _SMALL_PASSES["running"] == 0:
            _SMALL_PASSES["restore"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _SMALL_PASSES["running"] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _SMALL_PASSES["running"] -= 1
            if _SMALL_PASSES["running"] == 0:
                torch.set_num_threads(_SMALL_PASSES["restore"])


def download_weights(name: str, weights: bytes | None) -> None:
    """Download the hub weights of model ``name`` (unless cached, offline, or ``weights`` is given) with a
    progress bar per file, joining a download another session started.

    Raises:
        ModelError: Unknown model name, or a failed download (the reason: network, disk, repository, damage).
    """
    from vitviz import hub
    from vitviz.models import BUNDLED_MODEL, hub_reachable, resolve_name

    if weights is not None or (name or "").strip() == BUNDLED_MODEL or not hub_reachable():
        return
    timm_name, _ = resolve_name(name)
    source = hub.weights_source(timm_name)
    if source is None:
        return
    for names in source.files:
        if hub.cached_file(source.repo_id, names, revision=source.revision) is None:
            _follow(hub.start(source.repo_id, names, revision=source.revision), name)


def _follow(job, name: str) -> None:
    """Draw ``job``'s progress until it ends (the download itself runs in its own thread)."""
    from urllib.parse import urlparse

    from vitviz.hub import DownloadError
    from vitviz.models import ModelError

    host = urlparse(job.endpoint).netloc
    st.toast(_("Downloading {model} from {host}: progress in the sidebar, under the model.").format(
        model=name, host=host), icon=":material/download:")
    bar = st.empty()
    while True:
        finished = job.wait(_PROGRESS_REDRAW_S)
        progress = job.progress()
        bar.progress(progress.fraction or 0.0, text=_("Downloading {model} from {host}: {progress}").format(
            model=name, host=host, progress=progress.describe()))
        if finished:
            break
        time.sleep(_PROGRESS_REDRAW_S / 2)  # at most a few redraws a second, however often bytes arrive
    bar.empty()
    try:
        job.result()
    except DownloadError as exc:
        raise ModelError(str(exc)) from exc


@st.cache_resource(max_entries=4, show_spinner=False)
def load(name: str, weights_key: str | None, _weights: bytes | None = None):
    """Load a model once per server: ``vitviz.models.load_model`` (raises ``ModelError``).

    Args:
        name: Catalogue key or timm model name.
        weights_key: Digest of the uploaded weights (the cache key), or None for the default weights.
        _weights: The uploaded weights file (``.safetensors`` or a plain ``.pth`` state dict; not hashed:
            ``weights_key`` stands for it).
    """
    from vitviz.models import load_model

    return load_model(name, weights=_weights)


@st.cache_resource(max_entries=8, show_spinner=False)
def decode(image_key: str, _data: bytes):
    """Decode image bytes once per content (``vitviz.images.load_image``, raises ``ImageError``)."""
    from vitviz.images import load_image

    return load_image(_data)


@st.cache_resource(max_entries=6, show_spinner=False)
def repatched(model_key: str, patch_size: int, _loaded):
    """A copy of the loaded model re-run at ``patch_size`` (FlexiViT-style resampling of its weights).

    ``with_patch_size`` copies under the model's capture lock, so the copy never inherits another session's
    hooks or un-fused attention flags.
    """
    from vitviz.analysis import with_patch_size

    return with_patch_size(_loaded.model, patch_size)


def native_patch_size(model) -> int:
    return int(model.patch_embed.patch_size[0])


def forward(model_key: str, image_key: str, patch_size: int | None, target: int | None, _loaded, _image, *,
            fit: str = "crop") -> Forward:
    """One pass of the pipeline (``vitviz.pipeline.run``: repatch, prepare, move to the model's device, capture,
    top-5), once per model, image, patch size, target and fit (:func:`_forward` keeps it).

    Streamlit's cache key hashes the arguments as they are passed, without their defaults, so the cached function
    is always called with every argument, in order: a call that names ``fit="crop"`` and one that leaves it out
    find the same pass.
    """
    return _forward(model_key, image_key, patch_size, target, fit, _loaded, _image)


@st.cache_resource(max_entries=12, show_spinner=False)
def _forward(model_key: str, image_key: str, patch_size: int | None, target: int | None, fit: str, _loaded,
             _image) -> Forward:
    """One pass of the pipeline (``vitviz.pipeline.run``: repatch, prepare, move to the model's device, capture,
    top-5), once per model, image, patch size, target and fit.

    Args:
        model_key, image_key: Cache keys standing for ``_loaded`` and ``_image``.
        patch_size: Patch size to run at, or None for the model's own.
        target: Class index whose gradients to take (for gradient rollout), or None.
        _loaded: ``vitviz.models.LoadedModel``.
        _image: The decoded PIL image.
        fit: How the photo is fitted to the input (``vitviz.images.FITS``); part of the key.
    """
    with _COUNT_LOCK:
        FORWARD_PASSES["count"] += 1
    with one_thread_if_small(_loaded.model):
        result = run(_loaded.model, _image, patch_size=patch_size, target=target, data_config=_loaded.data_config,
                     labels=_loaded.labels,
                     repatch=lambda _model, size: repatched(model_key, size[0], _loaded),  # the cached copy
                     fit=fit)
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(Pass)}
    image_part = image_key if fit == "crop" else f"{image_key}:{fit}"  # the default keeps the warm-up's key
    return Forward(**fields, key=f"{model_key}|{image_part}|{patch_size}|{target}")


forward.clear = _forward.clear  # type: ignore[attr-defined]  # tests and benchmarks empty the cache through it
