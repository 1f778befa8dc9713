"""How a ViT works: steps 2, 3, 5 and 6 show the committed patch as views drawn in the browser from the patch
follower's payload (a commit sends the patch and a few texts); their texts are the Plotly figures' own, which
come back behind the page's toggle, and for a step whose numbers are not sent.
"""
from __future__ import annotations

import json

from tests._apptest import app_capture, chart_spec, walk_tree

STEPS = {"pixels": "how.flat", "embeddings": "how.embed", "attention": "how.attention", "norms": "how.blocks"}
PAGE = "pages/how_vit_works.py"


def mounted(at) -> dict[str, dict]:
    """The patch follower's mounts: ``'follower'`` and each step view by its step."""
    found = {}
    for node in walk_tree(at._tree):
        if getattr(getattr(node, "proto", None), "component_name", "") == "vitviz.patch_follower":
            data = json.loads(node.proto.json)
            found[data["committed"].get("step", "follower")] = data
    return found


def charts(at) -> set[str]:
    """The steps' Plotly figures on the page (by their ``show_figure`` keys)."""
    from vitviz_app.downloads import slug

    drawn = {getattr(node, "key", None) for node in walk_tree(at._tree)}
    return {key for key in STEPS.values() if f"fig-{slug(key)}" in drawn}


def test_the_steps_show_the_committed_patch_from_the_followers_payload(open_app):
    at = open_app(PAGE)
    assert not at.exception
    views = mounted(at)
    assert set(views) == {"follower", *STEPS}
    assert charts(at) == set(), "no Plotly figure of a step that the browser draws"
    follower = views.pop("follower")
    row, col = at.number_input(key="how_row").value, at.number_input(key="how_col").value
    for step, data in views.items():
        assert data["payload"] == follower["payload"], "one payload for the follower and every step"
        assert data["committed"] == {"row": row, "col": col, "step": step}
        assert data["colours"] == follower["colours"]
    at.number_input(key="how_row").set_value(0)
    at.number_input(key="how_col").set_value(1).run()
    after = mounted(at)
    assert {step: data["committed"] for step, data in after.items() if step != "follower"} == \
        {step: {"row": 0, "col": 1, "step": step} for step in STEPS}
    assert after["pixels"]["payload"] == follower["payload"], "a new patch needs no new data"
    assert after["pixels"]["text"]["title"].startswith("Patch (row 0, col 1) flattened: x = [")
    assert after["norms"]["text"]["series"][-2] == "patch (0, 1)"


def test_the_views_say_what_the_plotly_figures_say(open_app):
    views = mounted(open_app(PAGE, {"how_row": "1", "how_col": "2", "how_layer": "1"}))
    at = open_app(PAGE, {"how_row": "1", "how_col": "2", "how_layer": "1", "how_figures": "true"})
    assert set(mounted(at)) == {"follower"} and charts(at) == set(STEPS.values())
    specs = {step: chart_spec(at, key) for step, key in STEPS.items()}
    for step in ("pixels", "embeddings", "attention"):
        assert views[step]["text"]["title"] == specs[step]["layout"]["title"]["text"].replace("<br>", " ")
    assert views["attention"]["text"]["subtitle"] == specs["attention"]["layout"]["title"]["subtitle"]["text"]
    assert views["pixels"]["text"]["series"] == [trace["name"] for trace in specs["pixels"]["data"]]
    assert views["norms"]["text"]["series"] == [trace["name"] for trace in specs["norms"]["data"]]
    assert views["norms"]["text"]["ticks"] == specs["norms"]["layout"]["xaxis"]["ticktext"]
    assert views["norms"]["text"]["x_axis"] == specs["norms"]["layout"]["xaxis"]["title"]["text"].replace("<br>", " ")


def test_a_step_whose_numbers_are_not_sent_keeps_its_figure(open_app, monkeypatch):
    """With a budget that sends the norms and the pixels only, steps 2 and 6 are views and steps 3 and 5 figures."""

    from vitviz.images import input_image
    from vitviz_app.components.attention_explorer import BUDGET_ENV
    from vitviz_app.components.patch_follower import patch_steps

    fwd = app_capture(open_app(PAGE))
    pixels = input_image(fwd.x, fwd.data_config)
    full = patch_steps(fwd.key, 0, 0, 10**8, fwd, pixels)
    budget = next(b for b in range(len(full.blob), 0, -256)
                  if patch_steps(fwd.key, 0, 0, b, fwd, pixels).holds == ("norms", "pixels"))
    monkeypatch.setenv(BUDGET_ENV, str(budget))
    at = open_app(PAGE)
    assert not at.exception
    assert set(mounted(at)) == {"follower", "pixels", "norms"}
    assert charts(at) == {"how.embed", "how.attention"}


def test_every_text_a_step_view_shows_comes_from_python_in_the_pages_language(open_app):
    import re
    from pathlib import Path

    js = (Path(__file__).resolve().parents[2] / "vitviz_app/components/patch_follower.js").read_text()
    step_code = re.sub(r"//[^\n]*", "", js[js.index("class VFStep"):])
    used = set(re.findall(r'this\.t\("(\w+)"', step_code)) | {"series", "ticks"}
    assert not re.search(r"[A-Za-z]{4,} [a-z]{3,}", "".join(re.findall(r'"([^"]*)"', step_code)).replace(
        "sans-serif", "")), "no English sentence in the step views' code"
    english, chinese = mounted(open_app(PAGE)), mounted(open_app(PAGE, {"lang": "zh"}))
    for step in STEPS:
        assert {"title", "tip"} <= set(chinese[step]["text"]) <= used, step
        for name, value in chinese[step]["text"].items():
            if name in ("title", "x_axis", "value"):
                assert re.search(r"[\u4e00-\u9fff]", value), (step, name, value)
            if name == "tip":
                assert value != english[step]["text"][name], (step, value)
    assert chinese["norms"]["text"]["ticks"][1] == "第 0 层"
