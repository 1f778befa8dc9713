"""Moving a control changes what is shown; only the controls that need a new pass run the model."""
from __future__ import annotations

import numpy as np

from tests._apptest import app_capture, commit, heat, values
from vitviz_app.loaders import forward_passes


def test_attention_controls_change_the_map_without_running_the_model(open_app, figure):
    at = open_app("pages/attention.py", {"attn_figures": "true"})  # the page's Plotly map and grid
    fwd = app_capture(at)
    cap, layout = fwd.capture, fwd.layout
    passes = forward_passes()
    shown = heat(figure(at, "attn.map"))
    expected = cap.attention_row(cap.num_layers - 1, layout.class_index)[0].double().mean(0).numpy()
    np.testing.assert_allclose(shown.ravel(), expected[layout.patch_slice], rtol=1e-5, atol=1e-7)

    seen = [shown]
    commit(at, attn_layer=0)  # the explorer is the page's one set of controls: its commits set these states
    seen.append(heat(figure(at, "attn.map")))
    np.testing.assert_allclose(seen[-1].ravel(), cap.attention_row(0, layout.class_index)[0].double().mean(0)
                               .numpy()[layout.patch_slice], rtol=1e-5, atol=1e-7)
    commit(at, attn_head="1")
    seen.append(heat(figure(at, "attn.map")))
    np.testing.assert_allclose(seen[-1].ravel(), cap.attention_row(0, layout.class_index)[0, 1].double()
                               .numpy()[layout.patch_slice], rtol=1e-5, atol=1e-7)
    commit(at, attn_head="max")
    seen.append(heat(figure(at, "attn.map")))
    commit(at, attn_query="patch", attn_row=1, attn_col=2)
    seen.append(heat(figure(at, "attn.map")))
    query = layout.patch_index(1, 2)
    np.testing.assert_allclose(seen[-1].ravel(), cap.attention_row(0, query)[0].double().amax(0)
                               .numpy()[layout.patch_slice], rtol=1e-5, atol=1e-7)
    outline = figure(at, "attn.map")["layout"]["shapes"]
    assert outline, "the query patch is outlined"
    grid_before = figure(at, "attn.grid")
    at.toggle(key="attn_norm").set_value(False).run()
    assert heat(grid_before).tolist() != heat(figure(at, "attn.grid")).tolist()

    assert not at.exception
    for a, b in zip(seen, seen[1:]):
        assert not np.allclose(a, b), "each control changed the map"
    assert forward_passes() == passes, "layer/head/query/fusion controls must never run the model"


def test_rollout_controls_reuse_the_pass_and_the_class_picker_runs_one_more(open_app, figure, downloads):
    def _rollout_maps(at):  # the plain rollout of the page's committed fusion, as offered: (layers, gh, gw)
        arrays, settings = downloads["ro.download"]
        return arrays["rollout_maps"], settings

    from vitviz_app import loaders

    loaders.forward.clear()  # passes cached by earlier tests (another class's) must not hide this one's
    at = open_app("pages/rollout.py")
    passes = forward_passes()  # the page already has its plain pass and the top class's gradient pass
    before, _ = _rollout_maps(at)
    commit(at, ro_fusion="max")  # the scrubber's fusion button
    after_fusion, settings = _rollout_maps(at)
    assert settings["head_fusion"] == "max"
    at.slider(key="ro_discard").set_value(0.5).run()
    after_discard, _ = _rollout_maps(at)
    at.slider(key="ro_start").set_value(2).run()
    maps, settings = _rollout_maps(at)
    assert len(maps) == at.slider(key="ro_start").max + 1 - 2 and settings["start_layer"] == 2
    assert not np.allclose(before, after_fusion) and not np.allclose(after_fusion, after_discard)
    assert forward_passes() == passes, "fusion, discard and start layer only re-read the capture"

    first = at.selectbox(key="ro_class").value
    grad_before = heat(figure(at, "ro.gradient"))
    other = (first + 1) % len(at.selectbox(key="ro_class").options)
    at.selectbox(key="ro_class").set_value(other).run()
    assert forward_passes() == passes + 1, "a new class needs exactly one pass with gradients"
    assert not np.allclose(grad_before, heat(figure(at, "ro.gradient")))
    at.selectbox(key="ro_class").set_value(first).run()
    assert forward_passes() == passes + 1, "going back to a class reuses its cached pass"
    assert not at.exception


def test_patch_size_runs_the_model_once_per_size(open_app, figure):
    from vitviz_app import loaders

    loaders.forward.clear()  # a size cached by an earlier test must not hide this one's pass
    at = open_app("pages/patches.py")
    slider = at.select_slider(key="patch")
    native = slider.value
    sizes = [int(text.split()[0]) for text in slider.options]  # options read "16 px (native)", "24 px"
    other = next(p for p in sizes if p != native)
    passes = forward_passes()
    grid_native = figure(at, "patches.grid")
    slider.set_value(other).run()
    assert not at.exception
    grid_other = figure(at, "patches.grid")
    assert f"of {other}×{other} px" in grid_other["layout"]["title"]["text"]
    assert grid_native["layout"]["title"]["text"] != grid_other["layout"]["title"]["text"]
    assert forward_passes() == passes + 1
    sequence = figure(at, "patches.sequence")
    assert "patch tokens" in sequence["layout"]["title"]["text"]
    at.select_slider(key="patch").set_value(native).run()
    at.select_slider(key="patch").set_value(other).run()
    assert forward_passes() == passes + 1, "both sizes are cached now"


def test_position_tile_follows_the_chosen_position(open_app, figure, downloads):
    from vitviz.analysis import position_similarity

    at = open_app("pages/position_embeddings.py")
    fwd = app_capture(at)
    sim = position_similarity(fwd.model, fwd.layout)
    commit(at, pos_row=0, pos_col=1)  # the tile explorer's click
    assert downloads["pos.download"][1]["selected_position"] == [0, 1]
    assert any("Position (0, 1)" in c.value and f"{sim[0, 1].mean():.3f}" in c.value for c in at.caption)
    commit(at, pos_row=2)
    assert any("Position (2, 1)" in c.value for c in at.caption)
    filters = figure(at, "pos.filters")
    at.slider(key="pos_filters").set_value(14).run()
    assert figure(at, "pos.filters")["layout"]["title"]["text"] != filters["layout"]["title"]["text"]
    assert not at.exception


def test_heads_and_depth_slider_only_reads_the_capture(open_app, figure):
    at = open_app("pages/heads_depth.py")
    passes = forward_passes()
    last = figure(at, "heads.norms")
    at.slider(key="heads_state").set_value(0).run()
    first = figure(at, "heads.norms")
    assert heat(last).tolist() != heat(first).tolist()
    assert "embeddings" in first["layout"]["title"]["text"]
    assert forward_passes() == passes
    assert not at.exception


def test_how_page_recomputes_every_step_by_hand(open_app, figure):
    at = open_app("pages/how_vit_works.py", {"how_figures": "true"})  # the steps as Plotly figures
    checks = [c.value for c in at.caption if "Recomputed by hand" in c.value]
    assert len(checks) == 4 and all(":material/check_circle:" in c for c in checks), checks
    embed = figure(at, "how.embed")
    at.number_input(key="how_row").set_value(0)
    at.number_input(key="how_col").set_value(0).run()
    assert values(figure(at, "how.embed")["data"][0]["y"]).tolist() != values(embed["data"][0]["y"]).tolist()
    at.slider(key="how_layer").set_value(1).run()
    assert "Layer 1" in figure(at, "how.attention")["layout"]["title"]["text"]
    assert len(at.latex) >= 8  # one formula per step plus the worked dot product
    assert not at.exception
