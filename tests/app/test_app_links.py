"""Every committed view round-trips through its URL: set controls, share the link, open it, see the same.

The link is built as the browser builds it: the parameters the server wrote (``at.query_params``: the ids of the
states the page keeps in the URL itself, ``vitviz_app.links``) plus every URL-bound widget's value as the front end
writes it (its wire value: a slider's number, a toggle's true/false). A fresh app opened on that link must show the
same widget values, the same states, the same committed views of its browser components and the same figures.
"""
from __future__ import annotations

import json

import pytest

from tests._apptest import walk_tree


def bound_widgets(at) -> dict[str, object]:
    """``{URL key: widget}`` for every widget bound to the URL (``bind="query-params"``) on the page."""
    return {node.proto.query_param_key: node for node in walk_tree(at._tree)
            if getattr(getattr(node, "proto", None), "query_param_key", "")}


def _wire_text(state) -> str:
    kind = state.WhichOneof("value")
    if kind == "string_value":
        return state.string_value
    if kind == "string_array_value":
        return ",".join(state.string_array_value.data)
    if kind == "bool_value":
        return "true" if state.bool_value else "false"
    if kind == "int_value":
        return str(state.int_value)
    numbers = [state.double_value] if kind == "double_value" else list(state.double_array_value.data)
    return ",".join(str(int(v)) if float(v).is_integer() else repr(v) for v in numbers)


def shared_url(at) -> dict[str, str]:
    """The query string of the current view, as the browser's address bar holds it."""
    url = dict(at.query_params)
    for key, widget in bound_widgets(at).items():
        url[key] = _wire_text(widget._widget_state)
    return {k: v for k, v in url.items() if k not in ("upload", "camera", "weights")}


def view_state(at, keys=()) -> tuple[dict, dict]:
    """``(widget values by URL key and the states ``keys``, figure JSON by chart id and each component's committed
    view)`` of the page."""
    values = {key: widget.value for key, widget in bound_widgets(at).items()}
    values.update({key: at.session_state[key] for key in keys})
    charts = {}
    for i, chart in enumerate(at.main.get("plotly_chart")):
        spec = json.loads(chart.proto.spec)
        charts[i] = json.dumps({"data": spec["data"], "title": spec["layout"].get("title"),
                                "shapes": spec["layout"].get("shapes"), "frames": spec.get("frames")},
                               sort_keys=True)
    for node in walk_tree(at._tree):
        name = getattr(getattr(node, "proto", None), "component_name", "")
        if name and name != "vitviz.payload":
            charts[name] = json.dumps(json.loads(node.proto.json)["committed"], sort_keys=True)
    return values, charts


def assert_round_trip(open_app, at, page, keys=()):
    url = shared_url(at)
    again = open_app(page, query=url)
    assert not again.exception, [e.value for e in again.exception]
    values, charts = view_state(at, keys)
    values_again, charts_again = view_state(again, keys)
    assert values_again == values, url
    assert charts_again.keys() == charts.keys()
    for key in charts:
        assert charts_again[key] == charts[key], f"chart {key} differs when opened from {url}"
    return url


def test_overview_round_trips(open_app):
    at = open_app()
    at.selectbox(key="image").set_value("rocket").run()
    url = assert_round_trip(open_app, at, None)
    assert url["image"] == "rocket"


def test_patches_round_trip(open_app):
    at = open_app("pages/patches.py")
    slider = at.select_slider(key="patch")
    other = next(p for p in slider.options if "native" not in p)
    slider.set_value(int(other.split()[0])).run()
    url = assert_round_trip(open_app, at, "pages/patches.py")
    assert url["patch"].startswith(other.split()[0])


POSITION = ("pos_row", "pos_col")
ATTENTION = ("attn_layer", "attn_head", "attn_query", "attn_row", "attn_col")


def test_position_embeddings_round_trip(open_app):
    at = open_app("pages/position_embeddings.py")
    at.toggle(key="pos_range").set_value(True)
    at.session_state["pos_row"], at.session_state["pos_col"] = 0, 1  # as the tile explorer's click sets them
    at.slider(key="pos_filters").set_value(14).run()
    url = assert_round_trip(open_app, at, "pages/position_embeddings.py", POSITION)
    assert (url["pos_row"], url["pos_col"]) == ("0", "1")


def test_attention_round_trips_with_its_explorer_and_figures(open_app):
    at = open_app("pages/attention.py", {"attn_figures": "true"})  # the Plotly figures too, with their toggle
    at.toggle(key="attn_norm").set_value(False).run()
    # an explorer commit: a patch, a layer and a head (vitviz_app.components.commit_updates)
    for key, value in (("attn_layer", 1), ("attn_head", "max"), ("attn_query", "patch"), ("attn_row", 1),
                       ("attn_col", 2)):
        at.session_state[key] = value
    at.run()
    url = assert_round_trip(open_app, at, "pages/attention.py", ATTENTION)
    assert {key: url[key] for key in ATTENTION} == {"attn_layer": "1", "attn_head": "max", "attn_query": "patch",
                                                    "attn_row": "1", "attn_col": "2"}
    assert url["attn_figures"] == "true"


def test_attention_first_click_from_the_class_token_round_trips(open_app):
    """A click on the image sets the query patch and the query kind in one callback (click_to_state)."""
    at = open_app("pages/attention.py", {"attn_figures": "true"})
    assert at.session_state["attn_query"] == "cls"
    for key, value in (("attn_row", 1), ("attn_col", 2), ("attn_query", "patch")):
        at.session_state[key] = value
    at.run()
    title = json.loads(at.main.get("plotly_chart")[0].proto.spec)["layout"]["title"]["text"]
    assert "patch (row 1, col 2)" in title.replace("<br>", " ")
    url = assert_round_trip(open_app, at, "pages/attention.py", ATTENTION)
    assert (url["attn_row"], url["attn_col"]) == ("1", "2")


def test_rollout_round_trips(open_app):
    at = open_app("pages/rollout.py")
    at.session_state["ro_fusion"], at.session_state["ro_layer"] = "max", 2  # the scrubber's commit
    at.slider(key="ro_discard").set_value(0.5)
    at.slider(key="ro_start").set_value(1).run()
    target = at.selectbox(key="ro_class")
    target.set_value((target.value + 1) % len(target.options)).run()
    url = assert_round_trip(open_app, at, "pages/rollout.py", ("ro_fusion", "ro_layer", "ro_class"))
    assert (url["ro_fusion"], url["ro_layer"]) == ("max", "2")


def test_heads_and_depth_round_trips(open_app):
    at = open_app("pages/heads_depth.py")
    at.slider(key="heads_state").set_value(1).run()
    assert_round_trip(open_app, at, "pages/heads_depth.py")


def test_how_a_vit_works_round_trips(open_app):
    at = open_app("pages/how_vit_works.py")
    at.number_input(key="how_row").set_value(0)
    at.number_input(key="how_col").set_value(1)
    at.slider(key="how_layer").set_value(1)
    at.selectbox(key="how_head").set_value(1).run()
    assert_round_trip(open_app, at, "pages/how_vit_works.py")


@pytest.mark.parametrize("raw", ["8", "8 px"])
def test_a_bare_patch_size_in_the_url_is_honoured(open_app, raw):
    at = open_app("pages/patches.py", query={"patch": raw})
    assert not at.exception
    assert at.select_slider(key="patch").value == 8
    assert not at.warning


def test_an_impossible_patch_size_in_the_url_says_which_sizes_exist(open_app):
    at = open_app("pages/patches.py", query={"patch": "7"})
    assert not at.exception
    native = at.select_slider(key="patch").value
    warnings = " ".join(w.value for w in at.warning)
    assert "7 px" in warnings and f"{native} px" in warnings, warnings
    assert "8" in warnings, "the message lists the sizes this model offers"
