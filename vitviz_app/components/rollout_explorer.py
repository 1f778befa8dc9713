"""The rollout explorer: scrub through the layers and switch the head fusion in the browser, with no rerun.

For the page's discard ratio and start layer, the read-out map after every layer for every head fusion
(``vitviz.export.rollout_payload``) is made once and delivered by the payload carrier; the component gets its
id, the page's fusion, the colour stops of the server's figures, and every text it shows (titles, labels,
tooltip), so all of it can be translated. Changing the discard ratio or the start layer stays a server rerun.
It sends nothing back: the page's fusion stays the page's control.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from ._contract import mount_data
from ._registry import component
from .attention_explorer import explorer_budget, map_colours
from .payload import payload_carrier

__all__ = ["rollout_explorer"]

_rollout = component("rollout_explorer")


@st.cache_data(max_entries=16, show_spinner=False)
def _payload(fwd_key: str, discard_ratio: float, start_layer: int, budget: int, _views: Mapping[str, Any],
             _fwd: Any, _image: Any):
    from vitviz.export import input_view_jpeg, rollout_payload

    layout = _fwd.layout
    return rollout_payload(_views, prefix_names=list(layout.prefix_names),
                           image_jpeg=input_view_jpeg(_image, _fwd.geometry), image_size=tuple(layout.input_size),
                           budget=budget)


def rollout_explorer(fwd: Any, image: Any, views: Mapping[str, Any], *, fusion: str, discard_ratio: float,
                     start_layer: int, titles: Mapping[str, list[str]], text: Mapping[str, str],
                     fusion_names: Mapping[str, str], prefix_labels: Mapping[str, str], key: str) -> Any:
    """Mount the explorer; returns its ``RolloutPayload`` (tier ``'maps'``, or ``'none'``: nothing drawn).

    Args:
        fwd: The page's ``vitviz_app.Forward``.
        image: The decoded photo (PIL) the pass was made from.
        views: ``{fusion: RolloutView}`` for every head fusion, at ``discard_ratio`` and ``start_layer``.
        fusion: The page's head fusion (the explorer opens on it).
        discard_ratio, start_layer: The settings of ``views`` (part of the payload's cache key).
        titles: ``{fusion: [title of each layer's map]}``.
        text: Templates: ``layer`` (slider label), ``fusion`` (buttons' label), ``tip`` (``{row}``, ``{col}``,
            ``{value}``), ``prefix`` (``{shares}``).
        fusion_names: Button label of each fusion.
        prefix_labels: Display name of each prefix token.
        key: Widget key; the carrier uses ``key + '.data'``.
    """
    payload = _payload(fwd.key, float(discard_ratio), int(start_layer), explorer_budget(), views, fwd, image)
    if payload.tier == "none":
        return payload
    payload_carrier(payload.blob, key=f"{key}.data")
    _rollout(data=mount_data(payload=payload.id, committed={"fusion": fusion}, colours=map_colours(),
                             text={**text, "titles": {f: list(t) for f, t in titles.items()},
                                   "fusion_names": dict(fusion_names), "prefix_labels": dict(prefix_labels)}),
             key=key)
    return payload
