"""The attention explorer: hover a patch to see where it looks, in any layer and head, with no rerun.

The page hands it a forward pass; the payload (``vitviz.export.attention_payload``) is made once per
capture and cached, and delivered by the invisible carrier (``payload.py``). The explorer itself receives
only small data: the payload's id, the page's committed query/layer/head and, when the payload does not
hold them, the committed query's per-head rows. It is the page's one set of controls: a click on a patch, a
prefix-token button or a tile, or a new layer or head, calls ``on_commit`` with ``{'query': 'patch' | prefix
name, 'row', 'col', 'layer', 'head'}`` before the rerun, once :func:`read_commit` has checked it against the
page's model; hovering only previews (leaving the map goes back to the committed query).
"""
from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from ..ui import HEAD_FUSIONS
from ._contract import Refused, as_cell, as_index, commit_handler, mount_data
from ._registry import component
from .payload import payload_carrier

__all__ = ["attention_explorer", "commit_updates", "explorer_budget", "map_colours", "read_commit", "BUDGET_ENV"]

BUDGET_ENV = "VITVIZ_BROWSER_BUDGET"

_explorer = component("attention_explorer")


def explorer_budget() -> int:
    """Bytes of attention a page may send per capture (``VITVIZ_BROWSER_BUDGET``, default 2 MB)."""
    from vitviz.export import DEFAULT_BUDGET

    try:
        return int(os.environ.get(BUDGET_ENV, DEFAULT_BUDGET))
    except ValueError:
        return DEFAULT_BUDGET


@st.cache_data(max_entries=8, show_spinner=False)
def explorer_payload(fwd_key: str, budget: int, _fwd: Any, _image: Any):
    """The capture's attention payload with the model-input view, made once per forward pass and budget."""
    from vitviz.export import attention_payload, input_view_jpeg

    return attention_payload(_fwd.capture, image_jpeg=input_view_jpeg(_image, _fwd.geometry), budget=budget)


@st.cache_data(max_entries=32, show_spinner=False)
def _query_rows(fwd_key: str, token: int, _fwd: Any) -> str:
    from vitviz.export import query_rows_payload

    return base64.b64encode(query_rows_payload(_fwd.capture, [token])).decode()


def explorer_text() -> dict[str, str]:
    """Every text the explorer shows, in the current language (``{name}`` fields are filled in the browser)."""
    from vitviz.i18n import _

    return {
        "layer": _("Layer"), "head_label": _("Head"), "loading": _("Loading the attention…"),
        "option_mean": _("Mean over heads"), "option_max": _("Max over heads"), "option_min": _("Min over heads"),
        "option_head": _("Head {head}"),
        "fusion_mean": _("mean over heads"), "fusion_max": _("max over heads"), "fusion_min": _("min over heads"),
        "head": _("head {head}"), "patch": _("patch ({row}, {col})"),
        "token_button": _("Make this token the query (commits it to the page)"),
        "tip_cell": _("row {row}, column {col}"), "tip_self": _(" · to itself: {value}"),
        "tip_from": _(" · attention from {token}: {value}"),
        "tip_hint": _(" · click to commit, Shift to read values"), "tip_hint_touch": _(" · committed"),
        "grid_tip": _("layer {layer}, {head} · row {row}, column {col}"), "grid_hint": _(" · click to commit"),
        "committing": _("Committing {token} to the page…"),
        "map_title": _("Attention of {token} · layer {layer} · {head}"),
        "missing_what": _("{head} of {token}:"), "missing_hint": _("not in the browser — click the patch to load it"),
        "missing_hint_touch": _("not in the browser — tap the patch to load it"),
        "share": _("{name} {percent}%"), "share_patches": _("all patches {percent}%"),
        "shares": _("Share of this query's attention: {shares}"),
        "grid_title_heads": _("{token}: layers (rows) × heads (columns)"),
        "grid_title_fused": _("{token}: layers (rows) × head fusions mean, max, min (columns; single heads: click "
                              "the patch)"),
        "grid_title_fused_touch": _("{token}: layers (rows) × head fusions mean, max, min (columns; single heads: "
                                    "tap the patch)"),
        "shared_scale": _("One colour scale for every tile (otherwise each tile is scaled to its own maximum)"),
        "tile_max": _("max {value}"),
        "status_heads": _("The browser holds every layer, head and query: the map and the grid follow the pointer."),
        "status_heads_touch": _("The browser holds every layer, head and query: tap a patch to see where it "
                                "looks."),
        "status_fused": _("The browser holds every query's head-fused maps (mean, max, min) and every head of the "
                          "prefix tokens; a single head of a patch appears when you click the patch."),
        "status_fused_touch": _("The browser holds every query's head-fused maps (mean, max, min) and every head of "
                                "the prefix tokens; a single head of a patch appears when you tap the patch."),
        "status_prefix": _("This model has too many tokens to send every query: the browser holds the prefix "
                           "tokens' rows; click a patch to load its maps."),
        "status_none": _("Too many tokens to send any attention to the browser: click a patch to load its maps."),
    }


def map_colours() -> list[list[float]]:
    """Colour stops of the server's attention and rollout maps (``vitviz.figures.MAP_SCALE``)."""
    from vitviz.export import colour_stops
    from vitviz.figures import MAP_SCALE

    return colour_stops(MAP_SCALE)


def read_commit(value: Any, layout: Any, num_layers: int, num_heads: int) -> dict[str, Any]:
    """A commit of the explorer, checked against the model: a patch of its grid or one of its prefix tokens, a
    layer and a head (or a head fusion) it has.

    Args:
        value: What the browser sent: ``{'query': 'patch' | prefix name, 'row', 'col', 'layer', 'head', ...}``.
        layout: The model's ``TokenLayout``.
        num_layers, num_heads: The captured pass's layers and heads.

    Returns:
        ``{'query', 'layer', 'head'}`` plus ``'row'`` and ``'col'`` for a patch; ints, and the head as a string.

    Raises:
        Refused: Anything else (wrong type, out of range, unknown token, missing key).
    """
    if not isinstance(value, Mapping):
        raise Refused(f"a commit is an object, not {type(value).__name__}")
    query = value.get("query")
    if query == "patch":
        row, col = as_cell(value, layout.grid_size)
        commit: dict[str, Any] = {"query": "patch", "row": row, "col": col}
    elif isinstance(query, str) and query in layout.prefix_names:
        commit = {"query": query}
    else:
        raise Refused("the query is neither 'patch' nor one of the model's prefix tokens")
    commit["layer"] = as_index(value.get("layer"), "layer", num_layers)
    head = value.get("head")
    commit["head"] = head if head in HEAD_FUSIONS else str(as_index(head, "head", num_heads, digits=True))
    return commit


def commit_updates(value: Any, prefix: str) -> dict[str, Any]:
    """Session-state updates for a committed explorer value (checked by :func:`read_commit`): ``{prefix}_query``,
    ``_row``, ``_col``, ``_layer``, ``_head`` (the page's widget keys); empty when ``value`` is not a commit."""
    if not isinstance(value, dict) or not value.get("query"):
        return {}
    updates = {f"{prefix}_query": str(value["query"])}
    if value["query"] == "patch":
        updates.update({f"{prefix}_row": int(value["row"]), f"{prefix}_col": int(value["col"])})
    updates.update({f"{prefix}_layer": int(value["layer"]), f"{prefix}_head": str(value["head"])})
    return updates


def attention_explorer(fwd: Any, image: Any, *, query_token: int, layer: int, head: str,
                       labels: dict[str, str], key: str, on_commit: Callable[[dict], None],
                       url: Mapping[str, str | None] | None = None) -> Any:
    """Mount the explorer for a forward pass; returns its ``AttentionPayload`` (tier, bytes).

    Args:
        fwd: The page's ``vitviz_app.Forward``.
        image: The decoded photo (PIL) the pass was made from.
        query_token, layer, head: The page's committed state (head: ``'mean'``, ``'max'``, ``'min'`` or
            a head index as a string).
        labels: Display names of the prefix tokens (``{'cls': 'Class token'}``).
        key: Widget key; the carrier uses ``key + '.data'``.
        on_commit: Called with the committed value (checked by :func:`read_commit`) when the user clicks a patch,
            a prefix token or a tile, or moves the layer or head control.
        url: The committed view's URL parameters (``{key: id, or None to remove}``), which the explorer writes into
            the address bar (the page runs as a fragment, whose reruns cannot).
    """
    layout, cap = fwd.layout, fwd.capture
    payload = explorer_payload(fwd.key, explorer_budget(), fwd, image)
    holds = payload.tier == "heads" or (payload.tier != "none" and query_token < layout.num_prefix_tokens)
    rows = None if holds else _query_rows(fwd.key, int(query_token), fwd)
    payload_carrier(payload.blob, key=f"{key}.data")

    def read(value: Any) -> dict[str, Any]:
        return read_commit(value, layout, cap.num_layers, cap.num_heads)

    _explorer(
        data=mount_data(payload=payload.id, colours=map_colours(),
                        committed={"token": int(query_token), "layer": int(layer), "head": str(head), "rows": rows,
                                   **({"url": dict(url)} if url is not None else {})},
                        text={**explorer_text(), "prefix_labels": dict(labels)}),
        key=key, on_commit_change=commit_handler(key, read, on_commit, "attention explorer"),
    )
    return payload
