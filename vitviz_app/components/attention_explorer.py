"""The attention explorer: hover a patch to see where it looks, in any layer and head, with no rerun.

The page hands it a forward pass; the payload (``vitviz.export.attention_payload``) is made once per
capture and cached, and delivered by the invisible carrier (``payload.py``). The explorer itself receives
only small data: the payload's id, the page's committed query/layer/head and, when the payload does not
hold them, the committed query's per-head rows. A click on a patch (or a prefix-token button) calls
``on_commit`` with ``{'query': 'patch' | prefix name, 'row', 'col', 'layer', 'head'}`` before the rerun.
"""
from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from ._registry import RuntimeComponent
from .payload import PAYLOAD_JS, payload_carrier

__all__ = ["attention_explorer", "commit_updates", "explorer_budget", "map_colours", "BUDGET_ENV"]

_HERE = Path(__file__).parent
BUDGET_ENV = "VITVIZ_BROWSER_BUDGET"

_explorer = RuntimeComponent(
    "vitviz.attention_explorer",
    js=PAYLOAD_JS + "\n" + (_HERE / "attention_explorer.js").read_text(),
    css=(_HERE / "attention_explorer.css").read_text(),
)


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
        "tip_hint": _(" · click to commit, Shift to read values"),
        "grid_tip": _("layer {layer}, {head} · row {row}, column {col}"), "grid_hint": _(" · click to open"),
        "committing": _("Committing {token} to the page…"),
        "map_title": _("Attention of {token} · layer {layer} · {head}"),
        "missing_what": _("{head} of {token}:"), "missing_hint": _("not in the browser — click the patch to load it"),
        "share": _("{name} {percent}%"), "share_patches": _("all patches {percent}%"),
        "shares": _("Share of this query's attention: {shares}"),
        "grid_title_heads": _("{token}: layers (rows) × heads (columns); each tile scaled to its own maximum"),
        "grid_title_fused": _("{token}: layers (rows) × head fusions mean, max, min (columns; single heads: click "
                              "the patch); each tile scaled to its own maximum"),
        "status_heads": _("The browser holds every layer, head and query: the map and the grid follow the pointer."),
        "status_fused": _("The browser holds every query's head-fused maps (mean, max, min) and every head of the "
                          "prefix tokens; a single head of a patch appears when you click the patch."),
        "status_prefix": _("This model has too many tokens to send every query: the browser holds the prefix "
                           "tokens' rows; click a patch to load its maps."),
        "status_none": _("Too many tokens to send any attention to the browser: click a patch to load its maps."),
    }


def map_colours() -> list[list[float]]:
    """Colour stops of the server's attention and rollout maps (``vitviz.figures.MAP_SCALE``)."""
    from vitviz.export import colour_stops
    from vitviz.figures import MAP_SCALE

    return colour_stops(MAP_SCALE)


def commit_updates(value: Any, prefix: str) -> dict[str, Any]:
    """Session-state updates for a committed explorer value: ``{prefix}_query``, ``_row``, ``_col``, ``_layer``,
    ``_head`` (the page's widget keys); empty when ``value`` is not a commit."""
    if not isinstance(value, dict) or not value.get("query"):
        return {}
    updates = {f"{prefix}_query": str(value["query"])}
    if value["query"] == "patch":
        updates.update({f"{prefix}_row": int(value["row"]), f"{prefix}_col": int(value["col"])})
    updates.update({f"{prefix}_layer": int(value["layer"]), f"{prefix}_head": str(value["head"])})
    return updates


def attention_explorer(fwd: Any, image: Any, *, query_token: int, layer: int, head: str,
                       labels: dict[str, str], key: str, on_commit: Callable[[dict], None]) -> Any:
    """Mount the explorer for a forward pass; returns its ``AttentionPayload`` (tier, bytes).

    Args:
        fwd: The page's ``vitviz_app.Forward``.
        image: The decoded photo (PIL) the pass was made from.
        query_token, layer, head: The page's committed state (head: ``'mean'``, ``'max'``, ``'min'`` or
            a head index as a string).
        labels: Display names of the prefix tokens (``{'cls': 'Class token'}``).
        key: Widget key; the carrier uses ``key + '.data'``.
        on_commit: Called with the committed value when the user clicks a patch or a prefix token.
    """
    payload = explorer_payload(fwd.key, explorer_budget(), fwd, image)
    holds = payload.tier == "heads" or (payload.tier != "none" and query_token < fwd.layout.num_prefix_tokens)
    extra = None if holds else _query_rows(fwd.key, int(query_token), fwd)
    payload_carrier(payload.blob, key=f"{key}.data")

    def callback() -> None:
        value = (st.session_state.get(key) or {}).get("commit")
        if isinstance(value, dict) and value.get("query"):
            on_commit(value)

    _explorer(
        data={"payload": payload.id, "extra": extra, "labels": labels, "colours": map_colours(),
              "text": explorer_text(),
              "committed": {"token": int(query_token), "layer": int(layer), "head": str(head)}},
        key=key, on_commit_change=callback,
    )
    return payload
