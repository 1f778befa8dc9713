"""What the pages say matches what they show: shares, titles, layer numbering, intros, empty states."""
from __future__ import annotations

import re

import numpy as np

from tests._apptest import app_capture, chart_spec


def test_attention_shares_never_exceed_100_percent_with_any_fusion(open_app):
    """The committed view's shares (the Plotly map's subtitle; the explorer computes them as AttentionMap does)."""
    at = open_app("pages/attention.py", {"attn_figures": "true"})
    for head in ("mean", "max", "min", "0"):
        at.session_state["attn_head"] = head  # the explorer's head control commits it
        at.run()
        subtitle = chart_spec(at, "attn.map")["layout"]["title"]["subtitle"]["text"]
        values = [float(v) for v in re.findall(r": (-?[\d.]+(?:e-?\d+)?)", subtitle)]
        assert len(values) == 2, subtitle  # the class token and all patches
        assert all(0.0 <= v <= 1.0 for v in values), (head, values)
        assert abs(sum(values) - 1.0) < 0.01, (head, values)
    assert not at.exception


def test_rollout_title_names_the_settings_and_a_single_layer(open_app):
    from tests._apptest import component_data

    at = open_app("pages/rollout.py")
    last = int(at.slider(key="ro_start").max)
    at.session_state["ro_fusion"] = "max"  # the scrubber's fusion button
    at.slider(key="ro_discard").set_value(0.5)
    at.slider(key="ro_start").set_value(last).run()
    title = component_data(at, "rollout_explorer")["text"]["titles"]["max"][-1]
    assert f"layer {last} " in title and "–" not in title, title
    assert "max fusion" in title and "discard 0.50" in title, title


def test_overview_rollout_title_follows_its_slider(open_app):
    at = open_app()
    spec = chart_spec(at, "overview.rollout")
    frames = spec["frames"]
    first = frames[0]["layout"]["title"]["text"]
    assert first.replace("<br>", " ").startswith("Attention rollout, layer 0 "), first
    assert "<br>" in first, "a frame's long title is wrapped like the figure's own (narrow screens)"
    assert frames[-1]["layout"]["title"]["text"] == spec["layout"]["title"]["text"]
    assert spec["layout"]["sliders"][0]["currentvalue"]["prefix"] == "through layer "


def test_walkthrough_numbers_blocks_from_zero_with_whole_ticks(open_app):
    at = open_app("pages/how_vit_works.py", {"how_figures": "true"})  # the steps as Plotly figures
    layers = int(at.slider(key="how_layer").max) + 1
    step6 = [latex.value for latex in at.latex if "MSA" in latex.value]
    assert step6 and rf"\ell = 0 \dots {layers - 1}" in step6[0], step6
    assert r"\ell = 1" not in step6[0]
    xaxis = chart_spec(at, "how.blocks")["layout"]["xaxis"]
    assert xaxis["tickvals"] == list(range(layers + 1)), "whole hidden states only"
    assert xaxis["ticktext"][1:] == [f"block {i}" for i in range(layers)]


def test_position_intro_states_what_this_model_does(open_app):
    from vitviz.analysis import position_locality, position_similarity

    at = open_app("pages/position_embeddings.py")
    fwd = app_capture(at)
    loc = position_locality(position_similarity(fwd.model, fwd.layout))
    text = " ".join(m.value for m in at.markdown)
    assert "ImageNet-trained ViTs" in text, "the paper's finding is stated as what ImageNet ViTs do"
    sentence = next(m.value for m in at.markdown if m.value.startswith("**This model:**"))
    assert f"**{loc.neighbours:.2f}**" in sentence and f"**{loc.distance_correlation:.2f}**" in sentence
    assert ("similarity falls with distance" in sentence) == (loc.distance_correlation < -0.5), sentence


def _grid_pairs(gh, gw):
    rows, cols = np.indices((gh, gw))
    return rows[:, :, None, None] - rows[None, None], cols[:, :, None, None] - cols[None, None]  # (gh, gw, gh, gw)


def test_position_locality_tells_a_layout_from_a_border_code():
    from vitviz.analysis import position_locality

    dr, dc = _grid_pairs(6, 6)
    layout_like = np.exp(-np.hypot(dr, dc) / 2)  # similarity falls with distance
    loc = position_locality(layout_like)
    assert loc.neighbours == np.exp(-0.5) and loc.distance_correlation < -0.8
    rows, cols = np.indices((6, 6))
    border = np.minimum.reduce([rows, cols, 5 - rows, 5 - cols])  # (6, 6) steps to the border
    ring_like = np.exp(-np.abs(border[:, :, None, None] - border[None, None]))  # only the ring matters
    loc = position_locality(ring_like)
    assert loc.distance_correlation > -0.5 and loc.border_correlation < -0.9
    assert np.isnan(position_locality(np.ones((3, 3, 3, 3))).distance_correlation)


def test_heads_intro_states_what_this_model_does(open_app):
    from vitviz.analysis import mean_attention_distance

    at = open_app("pages/heads_depth.py")
    dist = np.asarray(mean_attention_distance(app_capture(at).capture))
    text = " ".join(m.value for m in at.markdown)
    assert "trained on ImageNet" in text
    sentence = next(m.value for m in at.markdown if m.value.startswith("**This model:**"))
    assert f"layer 0's heads look {dist[0].min():.0f}–{dist[0].max():.0f} px away" in sentence, sentence
    last = len(dist) - 1
    assert f"layer {last}'s {dist[-1].min():.0f}–{dist[-1].max():.0f} px" in sentence, sentence
    assert any(re.search(r"Hidden state \d+: the (embeddings|output of block)", c.value) for c in at.caption)


def test_empty_states_are_prompts_not_errors(open_app):
    from vitviz_app.sidebar import OTHER_MODEL

    at = open_app()
    at.segmented_control(key="source").set_value("Upload").run()
    assert not at.error, [e.value for e in at.error]
    assert any("Upload a photo" in i.value for i in at.info)
    at.segmented_control(key="source").set_value("Camera").run()
    assert not at.error and any("Take a photo" in i.value for i in at.info)
    at.segmented_control(key="source").set_value("Sample").run()
    at.selectbox(key="model").set_value(OTHER_MODEL).run()
    assert not at.error and any("Type a timm model name" in i.value for i in at.info)
    assert not at.exception
