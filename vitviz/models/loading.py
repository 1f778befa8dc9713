"""Loading: a ViT built by timm, its weights found, the model put on its device, ready for capture.

Weights are looked for in this order:

1. a local weights file, when one is given (``.safetensors``; ``.pth``/``.bin`` only through
   ``torch.load(weights_only=True)``, never an unrestricted unpickle);
2. the Hugging Face hub or the mirror in ``HF_ENDPOINT`` (the default for users with a network; fetched by
   :mod:`vitviz.hub` with progress, then built by timm), or the local hub cache when it cannot be reached;
3. the small ``vitviz-shapes`` model trained and shipped with vitviz, when the hub is out of reach and
   ``allow_fallback`` is set.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitviz import hub
from vitviz.hub.reachability import hub_reachable
from vitviz.i18n import N_, Message, _, sentences
from vitviz.images.preprocess import data_config

from .catalogue import BUNDLED_CNN, BUNDLED_MODEL, CATALOGUE, ModelSpec
from .errors import FallbackWarning, ModelError
from .names import resolve_cnn_name, resolve_name
from .weights import load_state_dict

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["MAX_PARAMETERS", "LoadedModel", "default_device", "load_cnn", "load_model", "offline_howto"]

MAX_PARAMETERS = 700_000_000
"""Largest model built (ViT-H/14 has 632 M parameters; ViT-g/14 with 1.1 B is refused)."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready for capture, and where its weights came from.

    Attributes:
        model: The timm model in eval mode on its device.
        name: timm model name (or ``'vitviz-shapes'``).
        spec: Catalogue entry, if the model is one.
        source: ``'hub'``, ``'hub-cache'``, ``'local'``, ``'bundled'`` or ``'random'``.
        message: Which weights are in use, as a :class:`Message` (:attr:`notice` is its sentence in the current
            language).
        data_config: timm's data config (input size, mean/std, crop) for preprocessing.
        labels: Class names, or None for a model without a classifier.
        requested: The name the user asked for (differs from ``name`` after an offline fallback).
        fallback: Whether this is the bundled model standing in for ``requested`` (the hub was out of reach);
            ``notice`` then says so and what to do.
    """

    model: nn.Module
    name: str
    spec: ModelSpec | None
    source: str
    message: Message
    data_config: dict[str, Any]
    labels: list[str] | None
    requested: str = ""
    extra: dict = field(default_factory=dict)
    fallback: bool = False

    @property
    def notice(self) -> str:
        """A sentence for the UI saying which weights are in use, in the current language."""
        return str(self.message)

    @property
    def display_name(self) -> str:
        """The name the app shows: the catalogue's (``'ViT-B/16 (AugReg)'``) for a catalogue model, else ``name``."""
        return self.spec.key if self.spec is not None else self.name

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are (the pipeline moves every input there)."""
        return next(self.model.parameters()).device


def default_device() -> str:
    """``'cuda'`` or ``'mps'`` when available, else ``'cpu'``."""
    import torch  # torch: heavy, imported on first use

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _check_size(timm_name: str, **kwargs) -> None:
    """Refuse a model too large for the server before allocating it (counted on the meta device)."""
    import timm  # timm: heavy, imported on first use

    buildable = _offline_name(timm_name)
    if buildable is None:
        return  # an hf-hub: model whose config.json is not here yet: checked once it is downloaded
    try:
        model = timm.create_model(buildable, pretrained=False, device="meta", **kwargs)
    except Exception:
        return  # the real build reports what is wrong with the name or the arguments
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_PARAMETERS:
        raise ModelError(_(
            "'{name}' has {count:,.0f} M parameters; vitviz builds models up to {limit:,.0f} M parameters (ViT-H) "
            "so one user cannot exhaust the server's memory."
        ).format(name=timm_name, count=count / 1e6, limit=MAX_PARAMETERS / 1e6))


def _cached_hub_file(timm_name: str) -> str | None:
    """A weights file for ``timm_name`` already in the local Hugging Face cache (``HF_HUB_CACHE`` read now)."""
    source = hub.weights_source(timm_name)
    if source is None:
        return None
    path = hub.cached_file(source.repo_id, (*source.filenames, "open_clip_pytorch_model.bin"),
                           revision=source.revision)
    return None if path is None else str(path)


def _offline_name(timm_name: str) -> str | None:
    """A name timm builds without the network: an ``hf-hub:`` model's cached ``config.json`` folder as
    ``local-dir:`` (None when it is not cached); any other name as it is."""
    if not timm_name.startswith(("hf-hub:", "hf_hub:")):
        return timm_name
    source = hub.weights_source(timm_name)
    config = hub.cached_file(source.repo_id, "config.json", revision=source.revision)
    return None if config is None else f"local-dir:{config.parent}"


def _create_from_hub(timm_name: str, **kwargs):
    """Download the weights with :mod:`vitviz.hub` (progress, resume, checksum, ``HF_ENDPOINT`` read now),
    then let timm build the model from the local files."""
    source = hub.weights_source(timm_name)
    if source is None:  # weights timm takes from elsewhere than the hub
        return _create(timm_name, True, **kwargs)
    try:
        if source.needs_config:
            hub.download(source.repo_id, "config.json", revision=source.revision)
            _check_size(timm_name, **kwargs)
        path = hub.download(source.repo_id, source.filenames, revision=source.revision)
    except hub.DownloadError as exc:
        raise ModelError(str(exc)) from exc  # DownloadError: already in the user's language
    if source.needs_config:  # its config.json sits beside the weights
        return _create(f"local-dir:{path.parent}", True, **kwargs)
    return _create(timm_name, True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)


def _create(timm_name: str, pretrained: bool, **kwargs) -> nn.Module:
    import timm  # timm: heavy, imported on first use

    try:
        return timm.create_model(timm_name, pretrained=pretrained, **kwargs)
    except RuntimeError as exc:
        if "pretrained" in str(exc).lower() or "No pretrained" in str(exc):
            raise ModelError(_("timm has no pretrained weights for '{name}': {error}").format(
                name=timm_name, error=exc)) from exc
        raise


def _finish(model: nn.Module, device: str | torch.device | None) -> nn.Module:
    model = model.eval().to(device or default_device())
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def _bundled(device: str | torch.device | None, requested: str, notice: Message,
             fallback: bool = False) -> LoadedModel:
    from vitviz import shapes  # shapes.model imports torch and safetensors: heavy, imported on first use

    try:
        model, config = shapes.load_shapes_model(device="cpu")
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(_(
            "The bundled vitviz-shapes model is missing or damaged in this installation "
            "({error}); reinstall vitviz or run scripts/train_shapes.py."
        ).format(error=type(exc).__name__)) from exc
    model = _finish(model, device)
    return LoadedModel(
        model=model,
        name=BUNDLED_MODEL,
        spec=CATALOGUE[BUNDLED_MODEL],
        source="bundled",
        message=notice,
        data_config=data_config(model),
        labels=list(config["classes"]),
        requested=requested,
        extra={"config": config},
        fallback=fallback,
    )


def _offline_howto_notice(timm_name: str) -> Message:
    return Message(N_(
        "To use it: connect to the internet; or download it once on a networked machine "
        "(python -c \"import timm; timm.create_model('{timm_name}', pretrained=True)\") so that it sits in "
        "the Hugging Face cache; or load a local weights file; or set HF_ENDPOINT to a Hugging Face mirror."
    ), (("timm_name", timm_name),))


def offline_howto(timm_name: str) -> str:
    """What a user can do to get ``timm_name``'s pretrained weights while the hub is out of reach (in the
    current language)."""
    return str(_offline_howto_notice(timm_name))


def _fallback_notice(requested: str, timm_name: str) -> Message:
    asked = requested if requested == timm_name else f"{requested} ({timm_name})"
    return Message(N_(
        "You asked for {asked}, but the Hugging Face hub is unreachable and its weights are not in the local "
        "cache, so the offline model vitviz-shapes (10 shapes, shipped with vitviz) is used instead. {howto}"
    ), (("asked", asked), ("howto", _offline_howto_notice(timm_name))))


def load_model(
    name: str,
    *,
    weights: str | Path | bytes | None = None,
    pretrained: bool = True,
    device: str | torch.device | None = None,
    allow_fallback: bool = True,
    hub_timeout: float = 2.0,
    **model_kwargs,
) -> LoadedModel:
    """Load a ViT-family model by catalogue key, timm name or ``hf-hub:`` name.

    Args:
        name: A catalogue key (``'ViT-S/16 (AugReg)'``), a timm name (``'deit_small_patch16_224'``), an
            ``hf-hub:`` name, or ``'vitviz-shapes'``.
        weights: A local weights file (path or bytes) to load instead of the hub weights.
        pretrained: False gives random weights (for tests and benchmarks).
        device: ``'cuda'``, ``'mps'`` or ``'cpu'``; the best available by default.
        allow_fallback: When the hub is out of reach and the weights are not cached, load the bundled
            ``vitviz-shapes`` model instead of raising; a :class:`FallbackWarning` says so, and the result
            has ``fallback=True``. False raises a :class:`ModelError` instead (strict).
        hub_timeout: Seconds allowed for deciding whether the hub is reachable.
        **model_kwargs: Passed to ``timm.create_model`` (e.g. ``img_size``, ``dynamic_img_size``).

    Raises:
        ModelError: Unknown or unsupported model, unreadable or mismatched weights, hub out of reach
            without fallback.
    """
    if (name or "").strip() == BUNDLED_MODEL:
        return _bundled(device, name, Message(N_("Using vitviz-shapes, the small ViT shipped with vitviz (offline).")))
    timm_name, spec = resolve_name(name)
    found = _build(name, timm_name, weights=weights, pretrained=pretrained, hub_timeout=hub_timeout,
                   strict=not allow_fallback, **model_kwargs)
    if found is not None:
        model, source, message = found
        return _loaded(model, timm_name, spec, source, message, device, name)
    notice = _fallback_notice(name, timm_name)
    warnings.warn(str(notice), FallbackWarning, stacklevel=2)
    return _bundled(device, name, notice, fallback=True)


def _build(name: str, timm_name: str, *, weights, pretrained: bool, hub_timeout: float, strict: bool,
           **model_kwargs) -> tuple[nn.Module, str, Message] | None:
    """Build ``timm_name`` with the first weights found (local file, random, hub, hub cache), as
    ``(model, source, message)``; None when the hub is out of reach and nothing is cached (a
    :class:`ModelError` instead when ``strict``). The one weight search of ViTs and CNNs."""
    _check_size(timm_name, **model_kwargs)
    if weights is not None:
        model = _create(timm_name, False, **model_kwargs)
        load_state_dict(model, weights)
        return model, "local", Message(N_("Using weights from your local file."))
    if not pretrained:
        model = _create(timm_name, False, **model_kwargs)
        return model, "random", Message(N_("Random weights (untrained): maps show structure only."))
    if hub_reachable(hub_timeout):
        return _create_from_hub(timm_name, **model_kwargs), "hub", Message(
            N_("Pretrained weights from the Hugging Face hub."))
    cached = _cached_hub_file(timm_name)
    if cached is not None:
        model = _create(_offline_name(timm_name) or timm_name, False, **model_kwargs)
        load_state_dict(model, cached)
        return model, "hub-cache", Message(N_("Pretrained hub weights from the local cache (the hub is unreachable)."))
    if strict:
        message = _("The Hugging Face hub is unreachable and '{name}' is not cached.").format(name=name)
        raise ModelError(sentences(message, offline_howto(timm_name)))
    return None


def _loaded(model: nn.Module, timm_name: str, spec: ModelSpec | None, source: str, notice: Message,
            device: str | torch.device | None, requested: str) -> LoadedModel:
    from vitviz.analysis.predictions import imagenet_labels  # timm: heavy, imported on first use
    from vitviz.capture import CaptureError, attention_modules  # torch: heavy, imported on first use

    try:
        attention_modules(model)  # fails early for an attention module vitviz cannot record
    except CaptureError as exc:
        raise ModelError(_("'{name}' cannot be explained by vitviz: {error}").format(
            name=requested, error=exc)) from exc
    model = _finish(model, device)
    labels = imagenet_labels(model)
    return LoadedModel(
        model=model,
        name=timm_name,
        spec=spec,
        source=source,
        message=notice,
        data_config=data_config(model),
        labels=labels,
        requested=requested,
    )


def load_cnn(
    name: str,
    *,
    weights: str | Path | bytes | None = None,
    pretrained: bool = True,
    device: str | torch.device | None = None,
    hub_timeout: float = 2.0,
    **model_kwargs,
) -> LoadedModel:
    """Load a convolutional network by timm or ``hf-hub:`` name, or the bundled ``vitviz-shapes-cnn``.

    The weights are found as :func:`load_model` finds a ViT's (local file, hub, hub cache; the same weights
    safety and size limit), but there is no fallback: offline and uncached, the same :class:`ModelError` a
    strict ViT load gives says what to do.

    Args:
        name: A timm name (``'resnet18.a1_in1k'``, ``'convnext_atto'``), an ``hf-hub:`` name, or
            ``'vitviz-shapes-cnn'``.
        weights: A local weights file (path or bytes) to load instead of the hub weights.
        pretrained: False gives random weights (the bundled CNN's: seeded, so every call gives the same model).
        device: Where to put the model; the best available by default.
        hub_timeout: Seconds allowed for deciding whether the hub is reachable.
        **model_kwargs: Passed to ``timm.create_model``.

    Raises:
        ModelError: Unknown name, not a CNN, unreadable or mismatched weights, hub out of reach, or the bundled
            CNN's weights missing from this installation (``pretrained=False`` still builds it).
    """
    if (name or "").strip() == BUNDLED_CNN:
        return _bundled_cnn(device, pretrained)
    timm_name = resolve_cnn_name(name)
    model, source, message = _build(name, timm_name, weights=weights, pretrained=pretrained,
                                    hub_timeout=hub_timeout, strict=True, **model_kwargs)
    if not getattr(model, "feature_info", None):
        raise ModelError(_("'{name}' has no feature stages (timm's feature_info): vitviz cannot measure it "
                           "stage by stage.").format(name=name))
    from vitviz.analysis.predictions import imagenet_labels  # timm: heavy, imported on first use

    model = _finish(model, device)
    return LoadedModel(model=model, name=timm_name, spec=None, source=source, message=message,
                       data_config=data_config(model), labels=imagenet_labels(model), requested=name)


def _bundled_cnn(device: str | torch.device | None, pretrained: bool) -> LoadedModel:
    import torch  # torch: heavy, imported on first use

    from vitviz.shapes import cnn  # torch, timm and safetensors: heavy, imported on first use

    if pretrained:
        try:
            model, config = cnn.load_shapes_cnn(device="cpu")
        except FileNotFoundError as exc:
            raise ModelError(_(
                "The bundled vitviz-shapes-cnn weights are not in this installation; make them with "
                "python scripts/train_shapes_cnn.py."
            )) from exc
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise ModelError(_(
                "The bundled vitviz-shapes-cnn model is damaged in this installation ({error}); reinstall vitviz or "
                "run python scripts/train_shapes_cnn.py."
            ).format(error=type(exc).__name__)) from exc
        source = "bundled"
        message = Message(N_("Using vitviz-shapes-cnn, the small CNN shipped with vitviz (offline)."))
    else:
        config = cnn.make_cnn_config()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config["seed"])
            model = cnn.build_cnn(config)
        source, message = "random", Message(N_("Random weights (untrained): maps show structure only."))
    model = _finish(model, device)
    return LoadedModel(model=model, name=BUNDLED_CNN, spec=None, source=source, message=message,
                       data_config=data_config(model), labels=list(config["classes"]), requested=BUNDLED_CNN,
                       extra={"config": config})
