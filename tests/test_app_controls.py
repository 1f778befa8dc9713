"""Moving a control changes what is shown; only the controls that need a new pass run the model."""
from __future__ import annotations

import base64

import numpy as np

from vitviz_app.loaders import forward_passes


def values(data) -> np.ndarray:
    """Plotly JSON arrays: a list, or a base64 typed array ({'dtype', 'bdata', 'shape'})."""
    if isinstance(data, dict) and "bdata" in data:
        array = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
        if data.get("shape"):
            array = array.reshape([int(v) for v in str(data["shape"]).split(",")])
        return array.astype(np.float64)
    return np.asarray(data, dtype=np.float64)


def heat(spec: dict) -> np.ndarray:
    return values(next(t for t in spec["data"] if t["type"] == "heatmap")["z"])


def app_capture(at):
    """The capture the page is showing: the app's own cached forward pass (no new pass: it is cached)."""
    from vitviz_app import loaders
    from vitviz_app.samples import read_sample

    name = at.selectbox(key="model").value
    loaded = loaders.load(name, None)
    data = read_sample(at.selectbox(key="image").value)
    key = loaders.digest(data)
    return loaders.forward(f"{name}|default", key, None, None, loaded, loaders.decode(key, data))


def test_attention_controls_change_the_map_without_running_the_model(open_app, figure):
    at = open_app("pages/attention.py", {"attn_figures": "true"})  # the page's Plotly map and grid
    fwd = app_capture(at)
    cap, layout = fwd.capture, fwd.layout
    passes = forward_passes()
    shown = heat(figure(at, "attn.map"))
    expected = cap.attention_row(cap.num_layers - 1, layout.class_index)[0].double().mean(0).numpy()
    np.testing.assert_allclose(shown.ravel(), expected[layout.patch_slice], rtol=1e-5, atol=1e-7)

    seen = [shown]
    at.slider(key="attn_layer").set_value(0).run()
    seen.append(heat(figure(at, "attn.map")))
    np.testing.assert_allclose(seen[-1].ravel(), cap.attention_row(0, layout.class_index)[0].double().mean(0)
                               .numpy()[layout.patch_slice], rtol=1e-5, atol=1e-7)
    at.selectbox(key="attn_head").set_value("1").run()
    seen.append(heat(figure(at, "attn.map")))
    np.testing.assert_allclose(seen[-1].ravel(), cap.attention_row(0, layout.class_index)[0, 1].double()
                               .numpy()[layout.patch_slice], rtol=1e-5, atol=1e-7)
    at.selectbox(key="attn_head").set_value("max").run()
    seen.append(heat(figure(at, "attn.map")))
    at.segmented_control(key="attn_query").set_value("patch").run()
    at.number_input(key="attn_row").set_value(1)
    at.number_input(key="attn_col").set_value(2).run()
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


def test_rollout_controls_reuse_the_pass_and_the_class_picker_runs_one_more(open_app, figure):
    at = open_app("pages/rollout.py")
    passes = forward_passes()  # the page already has its plain pass and the top class's gradient pass
    before = heat(figure(at, "ro.plain"))
    at.selectbox(key="ro_fusion").set_value("max").run()
    after_fusion = heat(figure(at, "ro.plain"))
    at.slider(key="ro_discard").set_value(0.5).run()
    after_discard = heat(figure(at, "ro.plain"))
    at.slider(key="ro_start").set_value(2).run()
    spec = figure(at, "ro.plain")
    assert len(spec["frames"]) == at.slider(key="ro_start").max + 1 - 2
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


def test_position_tile_follows_the_chosen_position(open_app, figure):
    from vitviz.analysis import position_similarity

    at = open_app("pages/position_embeddings.py")
    fwd = app_capture(at)
    sim = position_similarity(fwd.model, fwd.layout)
    at.number_input(key="pos_row").set_value(0)
    at.number_input(key="pos_col").set_value(1).run()
    np.testing.assert_allclose(heat(figure(at, "pos.tile")), sim[0, 1], rtol=1e-4, atol=1e-6)
    at.number_input(key="pos_row").set_value(2).run()
    np.testing.assert_allclose(heat(figure(at, "pos.tile")), sim[2, 1], rtol=1e-4, atol=1e-6)
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
