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
* :func:`passes` keeps each model's queue (``vitviz.serving``): a pass that is not cached waits in line behind
  other sessions' passes on that model, and the session is shown its place and the time left while it waits
  (:func:`pass_for`, drawn by ``vitviz_app.waiting``). A pass asked for by several sessions at once runs once;
  one whose session went away before its turn does not run; passes that arrive together run as one batch where
  batching pays (a GPU).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import streamlit as st

from vitviz.i18n import _
from vitviz.pipeline import Pass, run_batch
from vitviz.serving import Batcher, Ticket, batch_policy

from . import server, trace

__all__ = [
    "FORWARD_PASSES",
    "Forward",
    "cached_forward",
    "digest",
    "download_weights",
    "load",
    "decode",
    "repatched",
    "forward",
    "forward_passes",
    "pass_for",
    "passes",
    "submit",
]

FORWARD_PASSES = {"count": 0}
"""How many images the model ran on in this process for :func:`forward` (cache misses, each done once)."""
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


class _NotKept(LookupError):
    """A peek found no pass under its key (raised inside :func:`forward`, so Streamlit caches nothing)."""


_PEEK = object()


def forward(model_key: str, image_key: str, patch_size: int | None, target: int | None, _loaded, _image, *,
            fit: str = "crop", _ticket=None) -> Forward:
    """One pass of the pipeline (``vitviz.pipeline.run``: repatch, prepare, move to the model's device, capture,
    top-5), once per model, image, patch size, target and fit: the cache every session shares (:func:`_forward`).

    Streamlit's cache key hashes the arguments as they are passed, without their defaults, so the cached function
    is always called with every argument, in order: a call that names ``fit="crop"`` and one that leaves it out
    find the same pass.
    """
    return _forward(model_key, image_key, patch_size, target, fit, _loaded, _image, _ticket=_ticket)


@st.cache_resource(max_entries=12, show_spinner=False)
def _forward(model_key: str, image_key: str, patch_size: int | None, target: int | None, fit: str, _loaded, _image,
             _ticket=None) -> Forward:
    """The cached pass behind :func:`forward`.

    On a miss the pass is queued with the model's :func:`passes` (or joins the same pass queued or running for
    another session) and waited for. Pages go through :func:`pass_for`, which waits outside the cache, where the
    session can be shown its place.

    Args:
        model_key, image_key: Cache keys standing for ``_loaded`` and ``_image``.
        patch_size: Patch size to run at, or None for the model's own.
        target: Class index whose gradients to take (for gradient rollout), or None.
        _loaded: ``vitviz.models.LoadedModel``.
        _image: The decoded PIL image.
        fit: How the photo is fitted to the input (``vitviz.images.FITS``); part of the key.
        _ticket: The ``vitviz.serving.Ticket`` of this pass, already queued (its result is kept); None to queue
            it here.
    """
    if _ticket is _PEEK:
        raise _NotKept(model_key, image_key, patch_size, target, fit)
    if _ticket is None:
        _ticket = submit(model_key, image_key, patch_size, target, _loaded, _image, fit=fit)
    return _ticket.result()


forward.clear = _forward.clear  # type: ignore[attr-defined]  # tests and benchmarks empty the cache through it


def cached_forward(model_key: str, image_key: str, patch_size: int | None, target: int | None, loaded,
                   image, *, fit: str = "crop") -> Forward | None:
    """The pass if :func:`forward` holds it, else None (never runs the model)."""
    try:
        return forward(model_key, image_key, patch_size, target, loaded, image, fit=fit, _ticket=_PEEK)
    except _NotKept:
        return None


def pass_for(model_key: str, image_key: str, patch_size: int | None, target: int | None, loaded, image, *,
             fit: str = "crop", wait: Callable[[Ticket], object] | None = None) -> Forward:
    """The cached pass; on a miss, queue it (:func:`submit`), ``wait(ticket)`` until it is done (the page shows
    the place in line meanwhile; ``Ticket.wait`` when None), then keep it in :func:`forward`'s cache."""
    found = cached_forward(model_key, image_key, patch_size, target, loaded, image, fit=fit)
    if found is not None:
        return found
    ticket = submit(model_key, image_key, patch_size, target, loaded, image, fit=fit)
    trace.mark("ticket", key=image_key)
    (wait or Ticket.wait)(ticket)
    return forward(model_key, image_key, patch_size, target, loaded, image, fit=fit, _ticket=ticket)


@dataclass(frozen=True, eq=False)
class _Request:
    """One pass a session asked for: what the model's worker needs to run it."""

    key: str
    patch_size: int | None
    target: int | None
    image: object
    fit: str = "crop"


def submit(model_key: str, image_key: str, patch_size: int | None, target: int | None, loaded, image, *,
           fit: str = "crop") -> Ticket:
    """Queue the pass with the model's worker (:func:`passes`), or join the same pass queued, running or just
    finished: its ``vitviz.serving.Ticket`` (place in line, estimate, result)."""
    image_part = image_key if fit == "crop" else f"{image_key}:{fit}"  # the default keeps the warm-up's key
    key = f"{model_key}|{image_part}|{patch_size}|{target}"
    kind = (patch_size, target is not None, fit)  # passes of one kind can share a batch; each kind is timed apart
    request = _Request(key, patch_size, target, image, fit)
    return passes(model_key, id(loaded.model), loaded).submit(key, kind, request)


@st.cache_resource(max_entries=8, show_spinner=False)
def passes(model_key: str, model_id: int, _loaded) -> Batcher:
    """The queue of one loaded model's passes and the worker that runs them (one per model object per server).

    Sessions' passes wait in one line, first come first served, and each is told its place. The worker holds
    the model's capture lock while it runs (``vitviz.capture.model_lock``: other computations on the model wait,
    and the queue says so while one holds it). Passes of one kind that arrive within the batching window run
    as one batch (``vitviz.serving.batch_policy``: on for CUDA, off on the CPU, ``VITVIZ_BATCH_WINDOW_MS``).

    Args:
        model_key: The model's cache key; ``model_id`` tells a reloaded model object from the old one.
        _loaded: ``vitviz.models.LoadedModel``.
    """
    from vitviz.capture import model_lock
    from vitviz.pipeline import model_device

    if server.served():  # the event loop now shares the GIL with the worker and every waiting session
        server.serve_promptly()
    return Batcher(lambda requests: _run(model_key, _loaded, requests),
                   policy=batch_policy(model_device(_loaded.model).type), lock=model_lock(_loaded.model),
                   name=f"vitviz-passes {model_key}")


def _run(model_key: str, loaded, requests: list[_Request]) -> list[Forward]:
    """The worker's work: one batch of passes of one kind (``vitviz.pipeline.run_batch``), one Forward each."""
    with _COUNT_LOCK:
        FORWARD_PASSES["count"] += len(requests)
    first = requests[0]
    targets = None if first.target is None else [r.target for r in requests]
    with one_thread_if_small(loaded.model):
        results = run_batch(loaded.model, [r.image for r in requests], patch_size=first.patch_size, targets=targets,
                            data_config=loaded.data_config, labels=loaded.labels,
                            repatch=lambda _model, size: repatched(model_key, size[0], loaded),  # the cached copy
                            fit=first.fit)
    names = [f.name for f in dataclasses.fields(Pass)]
    return [Forward(**{name: getattr(result, name) for name in names}, key=request.key)
            for result, request in zip(results, requests)]
