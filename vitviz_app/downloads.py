"""Handing data out: a view's arrays as one ``.npz`` file that also holds the view's settings.

:func:`download_arrays` offers the raw arrays of a view as one ``.npz`` file with a ``settings`` entry (the
view's settings as JSON), so a saved array always says which model, image, layer, head... it came from.
:func:`slug` makes the file names, here and for the PNGs of Plotly's camera button.
"""
from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import streamlit as st

from vitviz.i18n import _

__all__ = ["download_arrays", "npz_bytes", "read_npz", "slug"]


def slug(text: str) -> str:
    """A file-name-safe version of ``text``: ``'Layer 3, head 2'`` -> ``'layer-3-head-2'``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "figure"


def npz_bytes(arrays: Mapping[str, Any], settings: Mapping[str, Any]) -> bytes:
    """One ``.npz`` file holding ``arrays`` plus a ``settings`` entry with the settings as JSON text.

    Torch tensors are converted to numpy; the file loads with ``np.load`` without ``allow_pickle``.
    """
    out: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if name == "settings":
            raise ValueError("'settings' is reserved for the JSON settings")
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"array {name!r} holds Python objects; only numeric arrays can be saved")
        out[name] = array
    out["settings"] = np.array(json.dumps(dict(settings), sort_keys=True, default=_jsonable))
    buf = io.BytesIO()
    np.savez_compressed(buf, **out)
    return buf.getvalue()


def read_npz(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Inverse of :func:`npz_bytes`: ``(arrays, settings)``."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files if name != "settings"}
        settings = json.loads(str(npz["settings"])) if "settings" in npz.files else {}
    return arrays, settings


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, set, np.ndarray)):
        return list(np.asarray(list(value) if isinstance(value, set) else value).tolist())
    return str(value)


def download_arrays(
    arrays: Mapping[str, Any], settings: Mapping[str, Any], *, filename: str, key: str,
    label: str | None = None,
) -> None:
    """A download button for the view's raw arrays (built only when clicked) and its settings JSON.

    The label defaults to "Download arrays (.npz)" in the current language; the file's name and its settings'
    keys stay English (they are data).
    """
    st.download_button(
        _("Download arrays (.npz)") if label is None else label,
        data=lambda: npz_bytes(arrays, settings),
        file_name=f"{slug(filename)}.npz",
        mime="application/octet-stream",
        key=key,
        on_click="ignore",
        icon=":material/download:",
        help=_("NumPy archive: np.load(file) gives each array plus 'settings', the view's settings as JSON."),
    )
