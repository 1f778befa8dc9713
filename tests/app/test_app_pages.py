"""The app's pages render, show the right arrays, and keep the user's choices (AppTest, in-process)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import component_data

PAGES = {
    None: ("How a Vision Transformer sees your image", "overview.download"),
    "pages/patches.py": ("Patches", "patches.download"),
    "pages/position_embeddings.py": ("Position embeddings", "pos.download"),
    "pages/attention.py": ("Attention", "attn.download"),
    "pages/rollout.py": ("Attention rollout", "ro.download"),
    "pages/heads_depth.py": ("Heads & depth", "heads.download"),
    "pages/how_vit_works.py": ("How a Vision Transformer works", "how.download"),
    "pages/compare.py": ("Compare methods", "cmp.download"),
}


def _reference(at):
    """An independent forward pass: the app's (cached, shared) model object, the library's own capture."""
    from vitviz.capture import capture
    from vitviz.images import load_image, prepare_input
    from vitviz_app import loaders
    from vitviz_app.samples import read_sample

    loaded = loaders.load(at.selectbox(key="model").value, None)
    image = load_image(read_sample(at.selectbox(key="image").value))
    x, _ = prepare_input(image, loaded.data_config)
    return loaded, capture(loaded.model, x)


@pytest.mark.parametrize("page", list(PAGES), ids=lambda p: p or "overview")
def test_every_page_renders_without_errors(open_app, figure, page):
    at = open_app(page)
    title, download_key = PAGES[page]
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == [title]
    if page == "pages/attention.py":  # its map is the explorer, drawn in the browser; Plotly figures on demand
        assert component_data(at, "attention_explorer")["committed"] == {
            "token": 0, "layer": at.slider(key="attn_layer").value, "head": "mean", "rows": None}
        assert not at.get("plotly_chart") and at.toggle(key="attn_figures").value is False
    else:
        assert at.get("plotly_chart"), "every page shows at least one figure"
    assert download_key in [d.key for d in at.download_button]
    # the shared sidebar is there on every page, with its keyed widgets
    assert at.segmented_control(key="source").value == "Sample"
    assert at.selectbox(key="model").value
    assert at.selectbox(key="image").value


def test_overview_shows_the_models_predictions_and_rollout(open_app, figure):
    at = open_app()
    loaded, cap = _reference(at)
    probs = np.exp(cap.output[0].double().numpy() - cap.output[0].double().numpy().max())
    probs /= probs.sum()
    top5 = np.argsort(-probs, kind="stable")[:5]
    bars = figure(at, "overview.predictions")["data"][0]
    assert bars["type"] == "bar"
    np.testing.assert_allclose(_values(bars["x"]), probs[top5], rtol=1e-4)
    assert bars["customdata"] == [loaded.labels[i] for i in top5]

    # rollout, recomputed by hand (Abnar & Zuidema: 0.5·A + 0.5·I, rows normalised, R_l = Â_l R_{l-1})
    joint = np.eye(cap.num_tokens)
    for layer in range(cap.num_layers):
        attn = cap.attention(layer)[0].double().numpy().mean(axis=0)  # (N, N)
        step = 0.5 * attn + 0.5 * np.eye(cap.num_tokens)
        joint = (step / step.sum(axis=1, keepdims=True)) @ joint
    layout = cap.layout
    expected = joint[layout.class_index, layout.patch_slice].reshape(layout.grid_size)  # (gh, gw)
    rollout = figure(at, "overview.rollout")
    assert len(rollout["frames"]) == cap.num_layers
    heat = next(t for t in rollout["data"] if t["type"] == "heatmap")
    np.testing.assert_allclose(_values(heat["z"]), expected, rtol=1e-4, atol=1e-7)
    assert [m.value for m in at.metric][:3] == [str(layout.num_tokens), str(cap.num_layers), str(cap.num_heads)]


def test_choosing_another_sample_changes_what_is_shown(open_app, figure):
    from vitviz_app.samples import list_samples

    at = open_app()
    first = at.selectbox(key="image").value
    other = next(s.name for s in list_samples() if s.name != first)
    before = figure(at, "overview.rollout")
    at.selectbox(key="image").set_value(other).run()
    after = figure(at, "overview.rollout")
    assert not at.exception
    assert any(f"sample: {other}" in caption for image in at.main.image for caption in image.captions)
    assert _photo(before) != _photo(after)
    assert _values(_heat(before)["z"]).tolist() != _values(_heat(after)["z"]).tolist()


def test_a_shared_url_opens_the_same_view(open_app):
    # bound selectors hold their displayed text in the URL: "Head 0", "A patch"
    at = open_app("pages/attention.py", query={"image": "coffee", "attn_layer": "1", "attn_head": "Head 0",
                                                  "attn_query": "A patch", "attn_row": "2", "attn_col": "3"})
    assert not at.exception
    assert at.selectbox(key="image").value == "coffee"
    assert at.slider(key="attn_layer").value == 1
    assert at.selectbox(key="attn_head").value == "0"
    assert at.segmented_control(key="attn_query").value == "patch"
    assert (at.number_input(key="attn_row").value, at.number_input(key="attn_col").value) == (2, 3)


def test_bad_values_in_a_url_fall_back_to_defaults(open_app):
    at = open_app("pages/attention.py", query={"image": "no_such_photo", "attn_layer": "999",
                                                  "model": "not-a-model"})
    assert not at.exception
    assert not at.error
    assert at.selectbox(key="image").value != "no_such_photo"
    assert at.slider(key="attn_layer").value == at.slider(key="attn_layer").max


def test_choices_persist_across_pages(open_app):
    at = open_app("pages/attention.py")
    at.selectbox(key="image").set_value("rocket")
    at.slider(key="attn_layer").set_value(2).run()
    at.switch_page("pages/rollout.py").run()
    assert at.selectbox(key="image").value == "rocket"
    at.switch_page("pages/attention.py").run()
    assert at.slider(key="attn_layer").value == 2
    assert at.selectbox(key="image").value == "rocket"


def _values(data) -> np.ndarray:
    """Plotly JSON arrays come as lists or as base64 typed arrays ({'dtype', 'bdata', 'shape'})."""
    import base64

    if isinstance(data, dict) and "bdata" in data:
        array = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
        shape = data.get("shape")
        if shape:
            array = array.reshape([int(v) for v in str(shape).split(",")])
        return array.astype(np.float64)
    return np.asarray(data, dtype=np.float64)


def _heat(spec: dict) -> dict:
    return next(t for t in spec["data"] if t["type"] == "heatmap")


def _photo(spec: dict) -> str:
    return next(t["source"] for t in spec["data"] if t["type"] == "image")


@pytest.mark.parametrize("sample,expected", [("shapes_triangle_photo", "triangle"), ("shapes_cross_flat", "cross"),
                                             ("shapes_heart_sketch", "heart"), ("shapes_star_outline", "star")])
def test_new_style_samples_are_recognised_by_the_offline_model(open_app, figure, app_model, sample, expected):
    """The gallery's drawn and photographed shapes (issue 13): the shipped model names them on the Overview."""
    if app_model != "vitviz-shapes":
        pytest.skip("needs the shipped vitviz-shapes weights")
    at = open_app(query={"model": "vitviz-shapes", "image": sample})
    assert not at.exception
    bars = figure(at, "overview.predictions")["data"][0]
    assert bars["customdata"][0] == expected
