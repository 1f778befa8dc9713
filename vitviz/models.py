"""Models: which ViT, which weights.

Weights are looked for in this order:

1. a local weights file, when one is given (``.safetensors``; ``.pth``/``.bin`` only through
   ``torch.load(weights_only=True)``, never an unrestricted unpickle);
2. the Hugging Face hub or the mirror in ``HF_ENDPOINT`` (the default for users with a network; fetched by
   :mod:`vitviz.hub` with progress, then built by timm), or the local hub cache when it cannot be reached;
3. the small ``vitviz-shapes`` model trained and shipped with vitviz, when the hub is out of reach and
   ``allow_fallback`` is set.

Reaching the hub is checked with one bounded TCP connection (``hub_reachable``, cached), so an offline
machine learns it in about a second instead of timm's ~47 s of retries.
"""
from __future__ import annotations

import difflib
import io
import os
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from vitviz.i18n import N_, _

__all__ = [
    "BUNDLED_MODEL",
    "CATALOGUE",
    "FallbackWarning",
    "LoadedModel",
    "ModelError",
    "ModelSpec",
    "Notice",
    "data_config",
    "default_device",
    "hub_reachable",
    "load_model",
    "load_state_dict",
    "resolve_name",
]

BUNDLED_MODEL = "vitviz-shapes"
MAX_WEIGHTS_BYTES = 2 * 2**30
"""Largest weights file accepted (ViT-L/16 in fp32 is 1.2 GB), also once a zip ``.pth`` is inflated."""
MAX_PARAMETERS = 700_000_000
"""Largest model built (ViT-H/14 has 632 M parameters; ViT-g/14 with 1.1 B is refused)."""

_SUPPORTED_MODULES = {
    "timm.models.vision_transformer": "ViT / DeiT-III / DINO / DINOv2 / FlexiViT",
    "timm.models.deit": "DeiT",
    "timm.models.eva": "EVA",
    "timm.models.vision_transformer_relpos": "ViT with relative position bias",
}
_EXAMPLES = "vit_small_patch16_224.augreg_in21k_ft_in1k, deit_small_patch16_224, vit_small_patch14_dinov2"


class ModelError(ValueError):
    """A model or weights problem, with a message meant for the user."""


class FallbackWarning(UserWarning):
    """``load_model`` gave the bundled ``vitviz-shapes`` model instead of the one asked for (hub out of reach).

    Turn it into an error with ``warnings.simplefilter("error", FallbackWarning)``, or pass
    ``allow_fallback=False`` to ``load_model`` to get a :class:`ModelError` instead.
    """


@dataclass(frozen=True)
class ModelSpec:
    """A curated catalogue entry.

    Attributes:
        key: Friendly name shown in the app (a name: never translated).
        title: One-line description, in English (marked ``N_()``: show it with ``_(spec.title)``).
        timm_name: timm model name with its pretrained tag.
        patch_size: Patch size in pixels.
        input_size: Native square input size in pixels.
        tokens: Token layout, e.g. ``'cls + 14×14 patches'``, in English (show it with ``_(spec.tokens)``).
        description: What this model is good for, in English (show it with ``_(spec.description)``).
        imagenet: Whether its head predicts ImageNet-1k classes.
    """

    key: str
    title: str
    timm_name: str
    patch_size: int
    input_size: int
    tokens: str
    description: str
    imagenet: bool = True


def _spec(key, title, timm_name, patch, size, tokens, description, imagenet=True) -> tuple[str, ModelSpec]:
    return key, ModelSpec(key, title, timm_name, patch, size, tokens, description, imagenet)


CATALOGUE: dict[str, ModelSpec] = dict(
    [
        _spec("ViT-S/16 (AugReg)", N_("ViT-Small, 16 px patches, ImageNet-21k → 1k"),
              "vit_small_patch16_224.augreg_in21k_ft_in1k", 16, 224, N_("cls + 14×14 patches"),
              N_("The classic ViT at a laptop-friendly size (Steiner et al. 2021, 'How to train your ViT').")),
        _spec("ViT-Ti/16 (AugReg)", N_("ViT-Tiny, 16 px patches, ImageNet-21k → 1k"),
              "vit_tiny_patch16_224.augreg_in21k_ft_in1k", 16, 224, N_("cls + 14×14 patches"),
              N_("Smallest AugReg ViT: 3 heads per layer, quick to explore.")),
        _spec("ViT-S/32 (AugReg)", N_("ViT-Small, 32 px patches, ImageNet-21k → 1k"),
              "vit_small_patch32_224.augreg_in21k_ft_in1k", 32, 224, N_("cls + 7×7 patches"),
              N_("Coarse 7×7 grid: compare with S/16 to see what patch size changes.")),
        _spec("ViT-B/16 (AugReg)", N_("ViT-Base, 16 px patches, ImageNet-21k → 1k"),
              "vit_base_patch16_224.augreg_in21k_ft_in1k", 16, 224, N_("cls + 14×14 patches"),
              N_("The ViT paper's reference model: 12 layers × 12 heads.")),
        _spec("ViT-B/32 (AugReg)", N_("ViT-Base, 32 px patches, ImageNet-21k → 1k"),
              "vit_base_patch32_224.augreg_in21k_ft_in1k", 32, 224, N_("cls + 7×7 patches"),
              N_("ViT-Base with a 7×7 grid.")),
        _spec("DeiT-S", N_("DeiT-Small, ImageNet-1k only"),
              "deit_small_patch16_224.fb_in1k", 16, 224, N_("cls + 14×14 patches"),
              N_("Data-efficient ViT trained on ImageNet-1k alone (Touvron et al. 2021).")),
        _spec("DeiT-S distilled", N_("DeiT-Small with a distillation token"),
              "deit_small_distilled_patch16_224.fb_in1k", 16, 224, N_("cls + dist + 14×14 patches"),
              N_("Two prefix tokens: class and distillation; the head averages both.")),
        _spec("DeiT-III-S", N_("DeiT III Small, ImageNet-1k"),
              "deit3_small_patch16_224.fb_in1k", 16, 224, N_("cls + 14×14 patches"),
              N_("DeiT III recipe (Touvron et al. 2022) with LayerScale.")),
        _spec("DINO ViT-S/8", N_("Self-supervised DINO, 8 px patches (no classifier)"),
              "vit_small_patch8_224.dino", 8, 224, N_("cls + 28×28 patches"),
              N_("DINO's famous attention maps that segment objects (Caron et al. 2021). Features only."), False),
        _spec("DINO ViT-S/16", N_("Self-supervised DINO, 16 px patches (no classifier)"),
              "vit_small_patch16_224.dino", 16, 224, N_("cls + 14×14 patches"),
              N_("DINO at 16 px: compare its class-token attention with the supervised ViT-S/16."), False),
        _spec("DINOv2-S/14", N_("DINOv2 Small, 14 px patches (no classifier)"),
              "vit_small_patch14_dinov2.lvd142m", 14, 518, N_("cls + 37×37 patches"),
              N_("DINOv2 (Oquab et al. 2023); shows high-norm artifact tokens in its attention."), False),
        _spec("DINOv2-S/14 + registers", N_("DINOv2 Small with 4 register tokens (no classifier)"),
              "vit_small_patch14_reg4_dinov2.lvd142m", 14, 518, N_("cls + 4 registers + 37×37 patches"),
              N_("'Vision Transformers Need Registers' (Darcet et al. 2024): the artifacts move to registers."),
              False),
        _spec("FlexiViT-S", N_("FlexiViT Small, trained for many patch sizes"),
              "flexivit_small.1200ep_in1k", 16, 240, N_("cls + 15×15 patches"),
              N_("Made for the patch-size slider (Beyer et al. 2023): good predictions from 8 to 48 px.")),
        _spec(BUNDLED_MODEL, N_("vitviz shapes ViT, shipped with vitviz (works offline)"),
              BUNDLED_MODEL, 0, 0, N_("cls + patches (several patch sizes)"),
              N_("A small ViT we trained on generated shapes: attention you can check against the object."),
              False),
    ]
)


@dataclass(frozen=True)
class Notice:
    """A sentence for the user kept as its English text and values, so that whoever reads it gets it in their
    own language: ``str(notice)`` looks the text up in the current language's catalogue and fills it in.

    A loaded model is shared by every session (whatever their language), so its notice cannot be a finished
    sentence. A value may itself be a :class:`Notice` (translated too).

    Attributes:
        text: The English text, marked for extraction where it is written (``N_()``), with ``{placeholders}``.
        values: ``(name, value)`` pairs for the placeholders.
    """

    text: str
    values: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        return _(self.text).format(**{name: str(value) for name, value in self.values})


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready for capture, and where its weights came from.

    Attributes:
        model: The timm model in eval mode on its device.
        name: timm model name (or ``'vitviz-shapes'``).
        spec: Catalogue entry, if the model is one.
        source: ``'hub'``, ``'hub-cache'``, ``'local'``, ``'bundled'`` or ``'random'``.
        message: Which weights are in use, as a :class:`Notice` (:attr:`notice` is its sentence in the current
            language).
        data_config: timm's data config (input size, mean/std, crop) for preprocessing.
        labels: Class names, or None for a model without a classifier.
        requested: The name the user asked for (differs from ``name`` after an offline fallback).
        fallback: Whether this is the bundled model standing in for ``requested`` (the hub was out of reach);
            ``notice`` then says so and what to do.
    """

    model: Any
    name: str
    spec: ModelSpec | None
    source: str
    message: Notice
    data_config: dict
    labels: list[str] | None
    requested: str = ""
    extra: dict = field(default_factory=dict)
    fallback: bool = False

    @property
    def notice(self) -> str:
        """A sentence for the UI saying which weights are in use, in the current language."""
        return str(self.message)

    @property
    def device(self):
        return next(self.model.parameters()).device


# --------------------------------------------------------------------------------------------- network


_HUB_CHECK: dict[str, tuple[float, bool]] = {}
_HUB_LOCK = threading.Lock()
_HUB_TTL_S = 300.0


def _hub_host() -> tuple[str, int]:
    """Host and port of ``HF_ENDPOINT`` (a mirror, or a local hub in tests), read now."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co")
    return endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)


def _connects(address: tuple[str, int], timeout: float) -> bool:
    """One TCP connection to (host, port), bounded in time (including name resolution)."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection(address, timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def hub_reachable(timeout: float = 2.0, *, refresh: bool = False) -> bool:
    """Whether the Hugging Face hub answers, decided within ``timeout`` seconds and cached for 5 minutes.

    ``HF_HUB_OFFLINE=1`` (or ``VITVIZ_OFFLINE=1``) makes it False without touching the network.
    """
    for var in ("HF_HUB_OFFLINE", "VITVIZ_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    host, port = _hub_host()
    with _HUB_LOCK:
        cached = _HUB_CHECK.get(f"{host}:{port}")
        if cached and not refresh and time.monotonic() - cached[0] < _HUB_TTL_S:
            return cached[1]
        ok = _connects((host, port), timeout)
        _HUB_CHECK[f"{host}:{port}"] = (time.monotonic(), ok)
        return ok


def default_device() -> str:
    """``'cuda'`` or ``'mps'`` when available, else ``'cpu'``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


# --------------------------------------------------------------------------------------------- names


def _sentences(*parts: str) -> str:
    """Sentences one after the other, as the current language writes them (English: a space between)."""
    text = parts[0]
    for part in parts[1:]:
        # TRANSLATORS: two sentences one after the other; Chinese needs no space between them.
        text = _("{sentence} {next_sentence}").format(sentence=text, next_sentence=part)
    return text


def _supported_names() -> list[str]:
    import timm

    return timm.list_models(["vit_*", "deit*", "eva*", "flexivit*", "test_vit*"])


def resolve_name(name: str) -> tuple[str, ModelSpec | None]:
    """Map a catalogue key or a timm / ``hf-hub:`` name to a timm name, checking it is a ViT.

    Raises:
        ModelError: Unknown name, or an architecture vitviz does not explain.
    """
    import timm
    from timm.models import model_entrypoint

    name = (name or "").strip()
    if not name:
        raise ModelError(_("No model name given."))
    if name in CATALOGUE:
        return CATALOGUE[name].timm_name, CATALOGUE[name]
    for spec in CATALOGUE.values():
        if name == spec.timm_name:
            return name, spec
    if name.startswith(("hf-hub:", "hf_hub:")):
        _check_hub_id(name.split(":", 1)[1])
        return name, None
    arch, _dot, tag = name.partition(".")
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, _supported_names(), n=3, cutoff=0.6)
        hint = (_("Did you mean {names}?").format(names=", ".join(close)) if close
                else _("Try for example {examples}.").format(examples=_EXAMPLES))
        unknown = _("Unknown model '{name}': timm has no such architecture.").format(name=name)
        raise ModelError(_sentences(unknown, hint))
    module = model_entrypoint(arch).__module__
    if module not in _SUPPORTED_MODULES:
        family = module.rsplit(".", 1)[-1].replace("_", " ")
        raise ModelError(_(
            "'{name}' is a {family} model, not a plain Vision Transformer: vitviz explains ViT-family "
            "models with global self-attention ({supported}). Try for example {examples}."
        ).format(name=name, family=family, supported=", ".join(_SUPPORTED_MODULES.values()), examples=_EXAMPLES))
    if "." in name:
        _check_tag(name, arch, tag)
    return name, None


def _check_hub_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
        if repo_id.count("/") != 1:
            raise HFValidationError("expected owner/name")
    except HFValidationError as exc:
        raise ModelError(_(
            "'hf-hub:{repo_id}' is not a Hugging Face model id: write it as hf-hub:owner/name, "
            "e.g. hf-hub:timm/vit_small_patch16_224.augreg_in21k_ft_in1k."
        ).format(repo_id=repo_id)) from exc


def _check_tag(name: str, arch: str, tag: str) -> None:
    import timm

    tags = sorted(t.partition(".")[2] for t in timm.list_models(arch, pretrained=True) if t.startswith(arch + "."))
    if tag not in tags:
        known = (_("Its weights are: {tags}.").format(tags=", ".join(tags[:6])) if tags
                 else _("timm has no pretrained weights for it."))
        message = _("'{name}': timm knows {arch} but no weights tagged '{tag}'.").format(name=name, arch=arch, tag=tag)
        raise ModelError(_sentences(message, known))


def _check_size(timm_name: str, **kwargs) -> None:
    """Refuse a model too large for the server before allocating it (counted on the meta device)."""
    import timm

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


# --------------------------------------------------------------------------------------------- weights


def _read_weights(source: str | Path | bytes) -> dict:
    """Read a state dict safely from a path or raw bytes (safetensors or weights-only torch.load)."""
    import torch

    data = source if isinstance(source, (bytes, bytearray)) else None
    path = None if data is not None else Path(source)
    if path is not None:
        if not path.is_file():
            raise ModelError(_("Weights file '{file}' does not exist.").format(file=path.name))
        size = path.stat().st_size
    else:
        size = len(data)
    if size == 0:
        raise ModelError(_("The weights file is empty."))
    if size > MAX_WEIGHTS_BYTES:
        raise ModelError(_("The weights file is {size:.1f} GB; vitviz accepts at most {limit:.0f} GB.").format(
            size=size / 2**30, limit=MAX_WEIGHTS_BYTES / 2**30))
    head = data[:16] if data is not None else path.open("rb").read(16)
    if _looks_like_safetensors(head, size):
        return _read_safetensors(data if data is not None else path)
    _check_inflated_size(data if data is not None else path)
    try:
        buffer = io.BytesIO(data) if data is not None else path
        return torch.load(buffer, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusal, truncation, garbage: all are a bad file for the user
        raise ModelError(_torch_load_message(exc)) from exc


def _check_inflated_size(source: bytes | Path) -> None:
    """A zip ``.pth`` may hold deflated records that inflate far beyond the file's size: refuse those."""
    import zipfile

    buffer = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    if not zipfile.is_zipfile(buffer):
        return
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelError(_("The weights file could not be read: it is a damaged zip archive.")) from exc
    inflated = sum(entry.file_size for entry in entries)
    if any(entry.compress_type != zipfile.ZIP_STORED for entry in entries) or inflated > MAX_WEIGHTS_BYTES:
        raise ModelError(_(
            "Refused: this .pth holds compressed records (PyTorch never writes those) or unpacks to more than "
            "{limit:.0f} GB; vitviz accepts weights of at most {limit:.0f} GB."
        ).format(limit=MAX_WEIGHTS_BYTES / 2**30))


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    header_len = int.from_bytes(head[:8], "little")
    return 0 < header_len < size and head[8:9] == b"{"


def _read_safetensors(source: bytes | Path) -> dict:
    from safetensors.torch import load, load_file

    try:
        return load(bytes(source)) if isinstance(source, (bytes, bytearray)) else load_file(str(source))
    except Exception as exc:
        raise ModelError(_("The .safetensors file is corrupt or truncated ({error}).").format(
            error=type(exc).__name__)) from exc


def _torch_load_message(exc: Exception) -> str:
    text = str(exc)
    if "Unsupported global" in text or "GLOBAL" in text:
        return _(
            "Refused: this .pth/.bin file contains Python objects, not just tensors, and loading it could "
            "run code. vitviz only loads plain tensors (torch.load(weights_only=True)); save the weights "
            "with safetensors or as a plain state dict."
        )
    return _("The weights file could not be read: it is not a valid .safetensors or PyTorch file ({error}).").format(
        error=type(exc).__name__)


def _unwrap(state: Any) -> dict:
    """Find the tensor dict inside common checkpoint wrappers and drop DataParallel prefixes."""
    import torch

    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_ema", "module"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(_("The weights file does not hold a dictionary of tensors (a state dict)."))
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_state_dict(model, source: str | Path | bytes) -> None:
    """Load weights into ``model`` from a file path or bytes, safely and strictly.

    Applies the architecture's own timm checkpoint filter (e.g. original-format conversions and
    position-embedding resizing) before a strict load.

    Raises:
        ModelError: Unreadable, unsafe, or mismatched weights, with what differs.
    """
    import importlib

    state = _unwrap(_read_weights(source))
    module = importlib.import_module(type(model).__module__)
    filter_fn = getattr(module, "checkpoint_filter_fn", None)
    if filter_fn is not None:
        try:
            state = filter_fn(state, model)
        except Exception:
            pass  # the strict load below reports what does not fit
    _check_fit(model, state)
    model.load_state_dict(state, strict=True)


def _check_fit(model, state: dict) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if wrong:
        parts.append(_("{count} tensors have the wrong shape (e.g. {examples})").format(
            count=len(wrong), examples="; ".join(wrong[:3])))
    if missing:
        parts.append(_("{count} are missing (e.g. {examples})").format(
            count=len(missing), examples=", ".join(missing[:3])))
    if unexpected:
        parts.append(_("{count} are not part of this model (e.g. {examples})").format(
            count=len(unexpected), examples=", ".join(unexpected[:3])))
    arch = getattr(model, "default_cfg", {}).get("architecture", type(model).__name__)
    raise ModelError(_(
        "These weights do not fit {arch}: {problems}. Pick the model these weights were trained "
        "for, or weights saved from this architecture."
    ).format(arch=arch, problems=_("; ").join(parts)))


# --------------------------------------------------------------------------------------------- loading


def data_config(model, base: dict | None = None) -> dict:
    """timm's data config, with the input size the model is really built for.

    ``resolve_model_data_config`` reads the pretrained config, which keeps e.g. DINOv2's 518 px even when
    the model was created with ``img_size=224`` or re-sized by ``set_input_size``.

    Args:
        model: A timm model.
        base: A config to keep (mean, std, crop, ...) with only the input size updated; by default timm's.
    """
    from timm.data import resolve_model_data_config

    config = dict(resolve_model_data_config(model) if base is None else base)
    img_size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if img_size is not None:
        config["input_size"] = (config["input_size"][0], int(img_size[0]), int(img_size[1]))
    return config


def _imagenet_labels(model) -> list[str] | None:
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(model)
    if not subset:
        return None
    info = ImageNetInfo(subset)
    return [info.index_to_description(i) for i in range(info.num_classes())]


def _cached_hub_file(timm_name: str) -> str | None:
    """A weights file for ``timm_name`` already in the local Hugging Face cache (``HF_HUB_CACHE`` read now)."""
    from . import hub

    source = hub.weights_source(timm_name)
    if source is None:
        return None
    path = hub.cached_file(source.repo_id, (*source.filenames, "open_clip_pytorch_model.bin"),
                           revision=source.revision)
    return None if path is None else str(path)


def _offline_name(timm_name: str) -> str | None:
    """A name timm builds without the network: an ``hf-hub:`` model's cached ``config.json`` folder as
    ``local-dir:`` (None when it is not cached); any other name as it is."""
    from . import hub

    if not timm_name.startswith(("hf-hub:", "hf_hub:")):
        return timm_name
    source = hub.weights_source(timm_name)
    config = hub.cached_file(source.repo_id, "config.json", revision=source.revision)
    return None if config is None else f"local-dir:{config.parent}"


def _create_from_hub(timm_name: str, **kwargs):
    """Download the weights with :mod:`vitviz.hub` (progress, resume, checksum, ``HF_ENDPOINT`` read now),
    then let timm build the model from the local files."""
    from . import hub

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


def _create(timm_name: str, pretrained: bool, **kwargs):
    import timm

    try:
        return timm.create_model(timm_name, pretrained=pretrained, **kwargs)
    except RuntimeError as exc:
        if "pretrained" in str(exc).lower() or "No pretrained" in str(exc):
            raise ModelError(_("timm has no pretrained weights for '{name}': {error}").format(
                name=timm_name, error=exc)) from exc
        raise


def _finish(model, device: str | None):
    model = model.eval().to(device or default_device())
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def _bundled(device: str | None, requested: str, notice: Notice, fallback: bool = False) -> LoadedModel:
    from . import shapes

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


def _offline_howto_notice(timm_name: str) -> Notice:
    return Notice(N_(
        "To use it: connect to the internet; or download it once on a networked machine "
        "(python -c \"import timm; timm.create_model('{timm_name}', pretrained=True)\") so that it sits in "
        "the Hugging Face cache; or load a local weights file; or set HF_ENDPOINT to a Hugging Face mirror."
    ), (("timm_name", timm_name),))


def offline_howto(timm_name: str) -> str:
    """What a user can do to get ``timm_name``'s pretrained weights while the hub is out of reach (in the
    current language)."""
    return str(_offline_howto_notice(timm_name))


def _fallback_notice(requested: str, timm_name: str) -> Notice:
    asked = requested if requested == timm_name else f"{requested} ({timm_name})"
    return Notice(N_(
        "You asked for {asked}, but the Hugging Face hub is unreachable and its weights are not in the local "
        "cache, so the offline model vitviz-shapes (10 shapes, shipped with vitviz) is used instead. {howto}"
    ), (("asked", asked), ("howto", _offline_howto_notice(timm_name))))


def load_model(
    name: str,
    *,
    weights: str | Path | bytes | None = None,
    pretrained: bool = True,
    device: str | None = None,
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
        return _bundled(device, name, Notice(N_("Using vitviz-shapes, the small ViT shipped with vitviz (offline).")))
    timm_name, spec = resolve_name(name)
    _check_size(timm_name, **model_kwargs)
    if weights is not None:
        model = _create(timm_name, False, **model_kwargs)
        load_state_dict(model, weights)
        return _loaded(model, timm_name, spec, "local", Notice(N_("Using weights from your local file.")), device,
                       name)
    if not pretrained:
        model = _create(timm_name, False, **model_kwargs)
        return _loaded(model, timm_name, spec, "random",
                       Notice(N_("Random weights (untrained): maps show structure only.")), device, name)
    if hub_reachable(hub_timeout):
        model = _create_from_hub(timm_name, **model_kwargs)
        return _loaded(model, timm_name, spec, "hub", Notice(N_("Pretrained weights from the Hugging Face hub.")),
                       device, name)
    cached = _cached_hub_file(timm_name)
    if cached is not None:
        model = _create(_offline_name(timm_name) or timm_name, False, **model_kwargs)
        load_state_dict(model, cached)
        return _loaded(model, timm_name, spec, "hub-cache",
                       Notice(N_("Pretrained hub weights from the local cache (the hub is unreachable).")), device,
                       name)
    if not allow_fallback:
        message = _("The Hugging Face hub is unreachable and '{name}' is not cached.").format(name=name)
        raise ModelError(_sentences(message, offline_howto(timm_name)))
    notice = _fallback_notice(name, timm_name)
    warnings.warn(str(notice), FallbackWarning, stacklevel=2)
    return _bundled(device, name, notice, fallback=True)


def _loaded(model, timm_name, spec, source, notice, device, requested) -> LoadedModel:
    from .capture import CaptureError, attention_modules

    try:
        attention_modules(model)  # fails early for an attention module vitviz cannot record
    except CaptureError as exc:
        raise ModelError(_("'{name}' cannot be explained by vitviz: {error}").format(
            name=requested, error=exc)) from exc
    model = _finish(model, device)
    labels = _imagenet_labels(model) if getattr(model, "num_classes", 0) else None
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
