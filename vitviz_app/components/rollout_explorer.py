"""The rollout explorer: scrub through the layers and switch the head fusion in the browser, with no rerun.

For the page's discard ratio and start layer, the read-out map after every layer for every head fusion
(``vitviz.export.rollout_payload``) is made once and delivered by the payload carrier; the component gets its
id, the page's committed fusion and layer, the colour stops of the server's figures, and every text it shows
(titles, labels, tooltip), so all of it can be translated. It owns the fusion and the layer shown: a fusion
button or letting go of the layer slider calls ``on_commit`` with ``{'fusion', 'layer'}`` (checked by
:func:`read_commit`), and the page follows (read-out caption, downloads, URL). Changing the discard ratio or the
start layer stays a server control: they need new rollouts.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from ._contract import Refused, as_index, commit_handler, mount_data
from ._registry import component
from .attention_explorer import explorer_budget, map_colours
from .payload import payload_carrier

__all__ = ["read_commit", "rollout_explorer"]

_rollout = component("rollout_explorer")


@st.cache_data(max_entries=16, show_spinner=False)
def _payload(fwd_key: str, discard_ratio: float, start_layer: int, budget: int, _views: Mapping[str, Any],
             _fwd: Any, _image: Any):
    from vitviz.export import input_view_jpeg, rollout_payload

    layout = _fwd.layout
    return rollout_payload(_views, prefix_names=list(layout.prefix_names),
                           image_jpeg=input_view_jpeg(_image, _fwd.geometry), image_size=tuple(layout.input_size),
                           budget=budget)


def read_commit(value: Any, fusions: Sequence[str], layers: Sequence[int]) -> dict[str, Any]:
    """A commit of the explorer, checked: ``{'fusion': one of fusions, 'layer': one of layers}``.

    Raises:
        Refused: Anything else.
    """
    if not isinstance(value, Mapping):
        raise Refused(f"a commit is an object, not {type(value).__name__}")
    fusion = value.get("fusion")
    if fusion not in fusions:
        raise Refused(f"unknown head fusion {fusion!r}")
    layer = as_index(value.get("layer"), "layer", max(layers) + 1 if layers else 0)
    if layer not in layers:
        raise Refused(f"layer {layer} is not one of the rollout's layers")
    return {"fusion": str(fusion), "layer": layer}


def rollout_explorer(fwd: Any, image: Any, views: Mapping[str, Any], *, fusion: str, layer: int,
                     discard_ratio: float, start_layer: int, titles: Mapping[str, list[str]], text: Mapping[str, str],
                     fusion_names: Mapping[str, str], prefix_labels: Mapping[str, str], key: str,
                     on_commit: Callable[[dict], None] | None = None,
                     url: Mapping[str, str | None] | None = None) -> Any:
    """Mount the explorer; returns its ``RolloutPayload`` (tier ``'maps'``, or ``'none'``: nothing drawn).

    Args:
        fwd: The page's ``vitviz_app.Forward``.
        image: The decoded photo (PIL) the pass was made from.
        views: ``{fusion: RolloutView}`` for every head fusion, at ``discard_ratio`` and ``start_layer``.
        fusion, layer: The page's committed head fusion and layer (the explorer opens on them).
        discard_ratio, start_layer: The settings of ``views`` (part of the payload's cache key).
        titles: ``{fusion: [title of each layer's map]}``.
        text: Templates: ``layer`` (slider label), ``fusion`` (buttons' label), ``tip`` (``{row}``, ``{col}``,
            ``{value}``), ``prefix`` (``{shares}``).
        fusion_names: Button label of each fusion.
        prefix_labels: Display name of each prefix token.
        key: Widget key; the carrier uses ``key + '.data'``.
        on_commit: Called with ``{'fusion', 'layer'}`` (checked) when the user picks a fusion or lets go of
            the layer slider.
        url: The committed view's URL parameters (``{key: id, or None to remove}``), which the explorer writes into
            the address bar as soon as it is drawn (``vvKeepInUrl``), whatever Streamlit does with its own copy.
    """
    payload = _payload(fwd.key, float(discard_ratio), int(start_layer), explorer_budget(), views, fwd, image)
    if payload.tier == "none":
        return payload
    payload_carrier(payload.blob, key=f"{key}.data")
    layers = [int(v) for v in next(iter(views.values())).layers] if views else []
    handler = {} if on_commit is None else {"on_commit_change": commit_handler(
        key, lambda value: read_commit(value, list(views), layers), on_commit, "rollout explorer")}
    committed = {"fusion": fusion, "layer": int(layer), **({"url": dict(url)} if url is not None else {})}
    _rollout(data=mount_data(payload=payload.id, committed=committed,
                             colours=map_colours(),
                             text={**text, "titles": {f: list(t) for f, t in titles.items()},
                                   "fusion_names": dict(fusion_names), "prefix_labels": dict(prefix_labels)}),
             key=key, **handler)
    return payload
