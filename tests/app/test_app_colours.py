"""The colours that reach the browser are the figures' own: no chart theme rewrites them (AppTest).

Streamlit's front end replaces placeholder colours ``#000001``…``#000040`` in a figure's JSON (with its
chart theme's palette, or Plotly's without it); Inferno's first colour is ``#000004``, so every zero of a
heat map was drawn light pink (``#ffabab``). Here we read what the app sends: the chart proto's ``theme``
field and its figure JSON, which must hold no placeholder anywhere.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests._apptest import chart_spec, component_data

PLACEHOLDER = re.compile(r'"#0000[0-9]{2}"')  # Streamlit's theme tokens, "#000001" … "#000040"

HEATMAPS = {
    None: ["overview.rollout"],
    "pages/attention.py": ["attn.map", "attn.grid"],
    "pages/rollout.py": ["ro.gradient"],  # the plain rollout and the position tiles are drawn in the browser
    "pages/how_vit_works.py": ["how.attention"],
}
QUERY = {"pages/attention.py": {"attn_figures": "true"},  # the page's map is the explorer; its Plotly figures on demand
         "pages/how_vit_works.py": {"how_figures": "true"}}  # the steps are drawn in the browser; figures on demand


def chart_proto(at, key: str):
    """The ``PlotlyChart`` proto of ``show_figure(..., key=key)`` (spec, config, theme)."""
    from vitviz_app.downloads import slug

    block = at.main.get_by_key(f"fig-{slug(key)}")
    return next(node for node in block if getattr(node, "type", None) == "plotly_chart").proto


def first_colour(colorscale) -> tuple[int, int, int]:
    colour = colorscale[0][1]
    if colour.startswith("#"):
        return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(int(float(v)) for v in re.findall(r"[\d.]+", colour)[:3])


@pytest.mark.parametrize("page", list(HEATMAPS), ids=lambda p: p or "overview")
def test_heat_maps_reach_the_browser_with_their_own_colours(open_app, page):
    at = open_app(page, QUERY.get(page))
    assert not at.exception
    inferno = 0
    for key in HEATMAPS[page]:
        proto = chart_proto(at, key)
        assert proto.theme == "", f"{key}: no chart theme may rewrite the colours"
        found = PLACEHOLDER.search(proto.spec)
        assert not found, f"{key}: the front end would replace {found}"
        spec = json.loads(proto.spec)
        heat = next(t for t in spec["data"] if t["type"] == "heatmap" and t.get("colorscale"))
        if first_colour(heat["colorscale"][-1:]) == (252, 255, 164):  # inferno: zero must be near-black
            assert max(first_colour(heat["colorscale"])) < 16, f"{key}: zero drawn as {heat['colorscale'][0]}"
            inferno += 1
    assert inferno or page == "pages/position_embeddings.py", "the attention and rollout maps use Inferno"
    if page == "pages/attention.py":  # the explorer, the page's map, paints with the same stops as its Plotly map
        from vitviz.export import colour_stops

        heat = next(t for t in json.loads(chart_proto(at, "attn.map").spec)["data"] if t["type"] == "heatmap")
        np.testing.assert_allclose(component_data(at, "attention_explorer")["colours"],
                                   colour_stops(heat["colorscale"]), rtol=0, atol=1e-12)


def test_attention_distance_heads_have_distinct_colours(open_app):
    at = open_app("pages/heads_depth.py")
    spec = chart_spec(at, "heads.distance")
    colours = [t["marker"]["color"] for t in spec["data"] if t["type"] == "scatter"]
    assert len(colours) >= 2 and len(set(colours)) == len(colours), colours
