"""The patch follower of "How a ViT works": point at a patch in step 1 and see its numbers from the later steps
at once, drawn in the browser; a click commits the patch (URL state) and the page's steps follow it in full.

The page's later steps draw the committed patch with the same component (:func:`patch_step`: step 2's flattened
vector, step 3's token, step 5's attention map, step 6's token lengths) from the payload the browser already
holds, so a commit's rerun sends the committed patch and a few texts instead of four Plotly figures.

Every patch's numbers (``vitviz.export.patch_steps_payload``) are made once per forward pass, layer and head,
and delivered by the payload carrier. The component gets the payload's id, the committed patch, the colour
stops of the server's maps and every text it shows (so all of it can be translated). A click reaches the page
once its handler has checked it against the patch grid.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import streamlit as st

from ._contract import as_cell, commit_handler, mount_data
from ._registry import component
from .attention_explorer import explorer_budget, map_colours
from .payload import payload_carrier

__all__ = ["STEPS", "follower_payload", "patch_follower", "patch_step", "patch_steps"]

_follower = component("patch_follower")

STEPS = ("pixels", "embeddings", "attention", "norms")
"""The step views, each named by the payload part it draws (steps 2, 3, 5 and 6); one is drawn only when the
payload holds its part."""


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", optimize=False, compress_level=3)
    return buffer.getvalue()


@st.cache_data(max_entries=16, show_spinner=False)
def patch_steps(fwd_key: str, layer: int, head: int, budget: int, _fwd: Any, _pixels: np.ndarray):
    """Every patch's walk-through numbers at ``layer`` and ``head`` (a ``PatchStepsPayload``)."""
    from vitviz.analysis import token_norms
    from vitviz.analysis.walkthrough import embed_patches
    from vitviz.export import patch_steps_payload

    cap, layout = _fwd.capture, _fwd.layout
    vectors, embeddings = embed_patches(_fwd.model, _fwd.x, layout)  # (Np, C·ph·pw), (Np, D)
    attention = cap.attention(layer)[0, head, layout.patch_slice].float().numpy()  # (Np, N) patch queries
    norms = token_norms(cap).astype(np.float32)  # (L+1, N), as the page's step 6
    return patch_steps_payload(pixels=vectors, embeddings=embeddings, attention=attention, norms=norms,
                               layout=layout, layer=layer, head=head, image_png=_png(_pixels), budget=budget)


def follower_payload(fwd: Any, pixels: np.ndarray, *, layer: int, head: int) -> Any:
    """The follower's ``PatchStepsPayload`` for the page's ``layer`` and ``head`` within the browser budget (its
    ``tier`` and ``holds`` say what the page may leave to the browser before the follower is mounted)."""
    return patch_steps(fwd.key, int(layer), int(head), explorer_budget(), fwd, pixels)


def patch_follower(payload: Any, *, grid: tuple[int, int], committed: tuple[int, int], text: Mapping[str, str],
                   key: str, on_commit: Callable[[int, int], None],
                   url: Mapping[str, str | None] | None = None) -> None:
    """Mount the follower on ``payload`` (:func:`follower_payload`, which the page has already made; its tier must
    not be ``'none'``).

    Args:
        payload: The follower's ``PatchStepsPayload``.
        grid: The patch grid (rows, columns): a click outside it is refused.
        committed: The page's patch (row, col).
        text: Templates: ``tip`` (``{row}``, ``{col}``, ``{token}``), ``title`` (same fields), ``pixels``
            (``{n}``), ``embedding`` (``{n}``), ``attention`` (``{layer}``, ``{head}``), ``norms``, ``missing``.
        key: Widget key; the carrier uses ``key + '.data'``.
        on_commit: Called with (row, col) when the user clicks a patch (checked against the grid).
        url: The page's view as URL parameters (``{key: id, or None to remove}``), which the follower writes into
            the address bar (``vvKeepInUrl``): the page's reruns are a fragment's, which Streamlit does not pass on
            to the URL.
    """
    if payload.tier == "none":
        raise ValueError("no follower for a payload that holds no patch's numbers (tier 'none')")
    payload_carrier(payload.blob, key=f"{key}.data")
    committed = {"row": int(committed[0]), "col": int(committed[1]), **({"url": dict(url)} if url is not None else {})}
    _follower(data=mount_data(payload=payload.id, committed=committed, colours=map_colours(), text=text),
              key=key, on_commit_change=commit_handler(key, lambda value: as_cell(value, grid),
                                                       lambda cell: on_commit(*cell), "patch follower"))


def patch_step(payload: Any, *, step: str, committed: tuple[int, int], text: Mapping[str, Any], key: str) -> None:
    """Mount one later step's view of the committed patch, drawn in the browser from the follower's payload.

    Args:
        payload: The follower's ``PatchStepsPayload`` (its carrier is mounted by :func:`patch_follower`); it must
            hold the step's part.
        step: ``'pixels'`` (step 2), ``'embeddings'`` (step 3), ``'attention'`` (step 5) or ``'norms'`` (step 6).
        committed: The page's patch (row, col).
        text: ``title`` and ``subtitle`` (the server's exact numbers), ``tip`` (``{name}``, ``{x}``, ``{value}``;
            the map's ``{row}``, ``{col}``, ``{value}``), ``x_axis``, ``y_axis``, ``series`` (names of the lines),
            ``ticks`` (x labels, step 6), ``value`` (the map's colour scale), ``missing``.
        key: Widget key.
    """
    if step not in STEPS or step not in payload.holds:
        raise ValueError(f"no view of step {step!r} from a payload holding {payload.holds}")
    _follower(data=mount_data(payload=payload.id,
                              committed={"row": int(committed[0]), "col": int(committed[1]), "step": step},
                              colours=map_colours(), text=text), key=key)
