"""Weights: a state dict read safely from a file or bytes, and loaded strictly into a model.

``.safetensors`` is read as it is; ``.pth``/``.bin`` only through ``torch.load(weights_only=True)``, never an
unrestricted unpickle, and a zip archive is refused before it is inflated past the size limit.
"""
from __future__ import annotations

import importlib
import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from vitviz.i18n import _

from .errors import ModelError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["MAX_WEIGHTS_BYTES", "load_state_dict"]

MAX_WEIGHTS_BYTES = 2 * 2**30
"""Largest weights file accepted (ViT-L/16 in fp32 is 1.2 GB), also once a zip ``.pth`` is inflated."""


def _read_weights(source: str | Path | bytes) -> dict:
    """Read a state dict safely from a path or raw bytes (safetensors or weights-only torch.load)."""
    import torch  # torch: heavy, imported on first use

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
    from safetensors.torch import load, load_file  # imports torch: heavy, imported on first use

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


def _unwrap(state: object) -> dict:
    """Find the tensor dict inside common checkpoint wrappers and drop DataParallel prefixes."""
    import torch  # torch: heavy, imported on first use

    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_ema", "module"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(_("The weights file does not hold a dictionary of tensors (a state dict)."))
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_state_dict(model: nn.Module, source: str | Path | bytes) -> None:
    """Load weights into ``model`` from a file path or bytes, safely and strictly.

    Applies the architecture's own timm checkpoint filter (e.g. original-format conversions and
    position-embedding resizing) before a strict load.

    Raises:
        ModelError: Unreadable, unsafe, or mismatched weights, with what differs.
    """
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


def _check_fit(model: nn.Module, state: dict) -> None:
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
