"""The UI layer's own helpers: downloads, click targets, samples and licences, the walkthrough numbers."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from vitviz_app.clicks import CLICK_TRACE_NAME, add_cell_targets, add_tile_targets, clicked_cell
from vitviz_app.downloads import npz_bytes, read_npz, slug
from vitviz_app.plotting import plotly_config
from vitviz_app.samples import LICENSES_FILE, SAMPLES_DIR, default_sample, list_samples, read_sample

# ----------------------------------------------------------------------------------------- downloads


def test_npz_holds_the_arrays_and_the_settings_as_json():
    arrays = {"maps": np.arange(12, dtype=np.float32).reshape(3, 2, 2), "attention": torch.ones(2, 5)}
    settings = {"model": "vitviz-shapes", "layer": np.int64(3), "patch": (2, 5), "fusion": "max"}
    data = npz_bytes(arrays, settings)
    with np.load(io.BytesIO(data), allow_pickle=False) as raw:  # a plain npz: no pickle needed
        assert set(raw.files) == {"maps", "attention", "settings"}
    loaded, back = read_npz(data)
    np.testing.assert_array_equal(loaded["maps"], arrays["maps"])
    assert loaded["maps"].dtype == np.float32
    np.testing.assert_array_equal(loaded["attention"], np.ones((2, 5), dtype=np.float32))
    assert back == {"model": "vitviz-shapes", "layer": 3, "patch": [2, 5], "fusion": "max"}


def test_npz_refuses_object_arrays_and_the_reserved_name():
    with pytest.raises(TypeError):
        npz_bytes({"bad": np.array([{"a": 1}], dtype=object)}, {})
    with pytest.raises(ValueError):
        npz_bytes({"settings": np.zeros(2)}, {})


def test_png_export_config_names_the_file():
    config = plotly_config("Layer 3, head 2 / mean!")
    assert config["toImageButtonOptions"] == {"format": "png", "filename": "layer-3-head-2-mean", "scale": 2}
    assert config["displaylogo"] is False
    assert "select2d" in plotly_config("x", clickable=True)["modeBarButtonsToRemove"]
    assert slug("  ") == "figure"


# ------------------------------------------------------------------------------------------- clicks


class _Extent:
    """A non-square grid placed with an offset, like a centre crop of a landscape photo."""

    top, left, cell_height, cell_width, grid_size = 10.0, 30.0, 20.0, 25.0, (3, 5)


def test_cell_targets_sit_inside_the_cell_they_name():
    import plotly.graph_objects as go

    ext = _Extent()
    z = np.arange(15, dtype=float).reshape(3, 5)
    fig = go.Figure(go.Heatmap(z=z, name="attention", hovertemplate="x"))
    add_cell_targets(fig, ext)
    targets = next(t for t in fig.data if t.name == CLICK_TRACE_NAME)
    data = np.asarray(targets.customdata)
    assert len(data) == 15
    for x, y, (row, col, value) in zip(targets.x, targets.y, data):
        assert int((y - ext.top) // ext.cell_height) == row and int((x - ext.left) // ext.cell_width) == col
        assert value == z[int(row), int(col)], "the hover value is the cell's own"
    assert fig.data[0].hoverinfo == "skip", "the heatmap gives way so clicks land on the targets"
    assert fig.layout.hoverdistance == -1 and fig.layout.clickmode == "event+select"


def test_tile_targets_name_the_tile_under_each_tick():
    from vitviz.figures import position_similarity_figure

    gh, gw = 3, 4
    sim = np.random.default_rng(0).uniform(-1, 1, size=(gh, gw, gh, gw))
    fig = add_tile_targets(position_similarity_figure(sim))
    targets = next(t for t in fig.data if t.name == CLICK_TRACE_NAME)
    cells = {(int(r), int(c)) for r, c in targets.customdata}
    assert cells == {(r, c) for r in range(gh) for c in range(gw)}
    heat = fig.data[0]
    x_labels, y_labels = list(heat.x), list(heat.y)
    z = np.asarray(heat.z)
    for x, y, (r, c) in zip(targets.x, targets.y, targets.customdata):
        # the target's category is a cell of tile (r, c): its value is sim[r, c] at that cell
        k_row, k_col = gh // 2, gw // 2
        assert z[y_labels.index(y), x_labels.index(x)] == pytest.approx(sim[int(r), int(c), k_row, k_col], abs=1e-6)


def _tile_figures():
    from vitviz.figures import attention_grid_figure, position_similarity_figure
    from vitviz_app.clicks import TILE_LAYER_HEAD

    rng = np.random.default_rng(1)
    yield "position", add_tile_targets(position_similarity_figure(rng.uniform(-1, 1, size=(3, 4, 3, 4)))), (3, 4)
    yield "attention", add_tile_targets(attention_grid_figure(rng.uniform(size=(4, 3, 5, 6))),
                                        label=TILE_LAYER_HEAD), (4, 3)


@pytest.mark.parametrize("name", ["position", "attention"])
def test_a_click_anywhere_inside_a_tile_selects_that_tile(name):
    """Plotly clicks the marker nearest the pointer (hoverdistance -1, equal-aspect category axes, one unit
    per cell): every point inside a tile, corners included, must be nearest to that tile's marker."""
    fig, (tiles_a, tiles_b) = next((f, shape) for n, f, shape in _tile_figures() if n == name)
    heat = fig.data[0]
    x_index = {label: i for i, label in enumerate(heat.x)}
    y_index = {label: i for i, label in enumerate(heat.y)}
    targets = next(t for t in fig.data if t.name == CLICK_TRACE_NAME)
    markers = np.array([[x_index[x], y_index[y]] for x, y in zip(targets.x, targets.y)], dtype=float)  # (A·B, 2)
    z = np.asarray(heat.z, dtype=float)
    tile_of = {}
    for (r, c), (mx, my) in zip(np.asarray(targets.customdata, dtype=int), markers):
        tile_of[(int(mx), int(my))] = (r, c)
    checked = 0
    for yi in range(z.shape[0]):
        for xi in range(z.shape[1]):
            if np.isnan(z[yi, xi]):
                continue  # a gap between tiles
            # which tile this cell belongs to: gaps are one cell wide, tiles evenly spaced
            tile_h = (z.shape[0] + 1) // tiles_a
            tile_w = (z.shape[1] + 1) // tiles_b
            expected = (yi // tile_h, xi // tile_w)
            for dx in (-0.45, 0.0, 0.45):
                for dy in (-0.45, 0.0, 0.45):
                    d = np.hypot(markers[:, 0] - (xi + dx), markers[:, 1] - (yi + dy))
                    nearest = tuple(np.asarray(targets.customdata, dtype=int)[int(np.argmin(d))])
                    assert nearest == expected, (name, yi, xi, dx, dy)
                    checked += 1
    assert checked == 9 * np.isfinite(z).sum()
    assert fig.layout.hoverdistance == -1, "the nearest marker wins however far the pointer is from it"
    assert heat.hoverinfo == "skip", "inside a tile the heatmap must not take the hover (and the click)"


def test_tile_hover_text_names_what_the_tile_is():
    texts = {name: next(t for t in fig.data if t.name == CLICK_TRACE_NAME).hovertemplate
             for name, fig, _ in _tile_figures()}
    assert texts["attention"].startswith("layer %{customdata[0]}, head %{customdata[1]}")
    assert texts["position"].startswith("position (row %{customdata[0]}, col %{customdata[1]})")


@pytest.mark.parametrize(
    "event, cell",
    [
        ({"selection": {"points": [{"customdata": [2, 7, 0.5]}]}}, (2, 7)),
        ({"selection": {"points": [{"customdata": {"0": 3, "1": 11, "2": 0.25}}]}}, (3, 11)),  # typed array
        ({"selection": {"points": [{"x": 3, "y": 4}, {"customdata": [1.0, 0.0]}]}}, (1, 0)),
        ({"selection": {"points": []}}, None),
        ({"selection": {"points": [{"x": 3}]}}, None),
        (None, None),
        ({}, None),
    ],
)
def test_clicked_cell_reads_the_selection_event(event, cell):
    assert clicked_cell(event) == cell


def test_a_click_callback_writes_the_widget_keys():
    from streamlit.testing.v1 import AppTest

    def script():
        import streamlit as st

        from vitviz_app.clicks import click_to_state

        st.session_state.setdefault("chart", {"selection": {"points": [{"customdata": [4, 6, 0.1]}]}})
        click_to_state("chart", "row", "col", col_as=str, mode="patch")()
        st.write(f"{st.session_state.row}|{st.session_state.col!r}|{st.session_state.mode}")

    at = AppTest.from_function(script).run()
    assert at.markdown[0].value == "4|'6'|patch"


# ---------------------------------------------------------------------------------- samples, licences


def test_gallery_lists_photos_first_each_small_readable_and_licensed():
    from vitviz.images import load_image

    samples = list_samples()
    photos = [s for s in samples if s.kind == "photo"]
    assert [s.name for s in photos][:4] == ["cat", "coffee", "astronaut", "rocket"]
    assert list(samples[: len(photos)]) == photos, "photographs come before the generated shapes"
    licences = LICENSES_FILE.read_text()
    for sample in photos:
        assert sample.path.stat().st_size <= 80_000
        assert f"`{sample.path.name}`" in licences, f"{sample.path.name} has no licence entry"
        image = load_image(read_sample(sample.name))
        row = next(line for line in licences.splitlines() if f"`{sample.path.name}`" in line)
        assert f"{image.width} × {image.height}" in row, "the licence table states the real size"
        assert re.search(r"CC0|public domain", row)
    with pytest.raises(KeyError):
        read_sample("no-such-sample")


def test_default_sample_matches_the_model():
    samples = list_samples()
    assert default_sample(offline_model=False) == "cat"
    shapes = [s.name for s in samples if s.kind == "shapes"]
    assert default_sample(offline_model=True) == (shapes[0] if shapes else "cat")
    assert default_sample(offline_model=True, folder=Path("/nonexistent")) is None
    assert SAMPLES_DIR.is_dir()


# ------------------------------------------------------------------------------------- walkthrough


@pytest.fixture(scope="module")
def tiny():
    """timm's test_vit (random weights), one input and its capture."""
    import timm

    from vitviz.capture import capture

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False).eval()
    x = torch.randn(1, 3, 160, 160)
    return model, x, capture(model, x)


def test_patch_embedding_by_hand_matches_the_convolution(tiny):
    from vitviz.analysis.walkthrough import embed_patch

    model, x, cap = tiny
    layout = cap.layout
    row, col = 2, 7
    step = embed_patch(model, x, layout, row, col)
    p = layout.patch_size[0]
    patch = x[0, :, row * p:(row + 1) * p, col * p:(col + 1) * p]  # (3, p, p)
    np.testing.assert_allclose(step.pixels, patch.reshape(-1).numpy(), rtol=0, atol=0)
    with torch.no_grad():
        conv = torch.nn.functional.conv2d(x, model.patch_embed.proj.weight, model.patch_embed.proj.bias, stride=p)
    np.testing.assert_allclose(step.embedding, conv[0, :, row, col].numpy(), rtol=1e-5, atol=1e-5)
    assert step.error < 1e-5


def test_first_tokens_are_the_tokens_entering_block_zero(tiny):
    from vitviz.analysis.walkthrough import first_tokens

    model, x, cap = tiny
    tokens, error = first_tokens(model, x, cap)
    with torch.no_grad():
        patches = model.patch_embed(x).reshape(-1, model.embed_dim)  # (N, D), whatever the output format
        expected = torch.cat([model.cls_token[0], patches]) + model.pos_embed[0]  # (N+1, D)
    np.testing.assert_allclose(tokens, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert error < 1e-5


def test_attention_numbers_are_softmax_of_scaled_dot_products(tiny):
    from vitviz.analysis.walkthrough import attention_numbers

    model, x, cap = tiny
    layer, head, query = 3, 1, 17
    step = attention_numbers(model, cap, layer, head, query)
    block = model.blocks[layer]
    with torch.no_grad():  # an independent reference from the weight matrices
        z = block.norm1(cap.hidden_states[0, layer]).double()  # (N, D)
        w, b = block.attn.qkv.weight.double(), block.attn.qkv.bias.double()
        d = block.attn.head_dim
        dim = w.shape[1]
        q = z @ w[head * d:(head + 1) * d].T + b[head * d:(head + 1) * d]  # (N, d)
        k = z @ w[dim + head * d:dim + (head + 1) * d].T + b[dim + head * d:dim + (head + 1) * d]  # (N, d)
    dots = (k @ q[query]).numpy()
    np.testing.assert_allclose(step.dots, dots, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(step.scaled, dots / np.sqrt(d), rtol=1e-4, atol=1e-4)
    expected = np.exp(step.scaled - step.scaled.max())
    np.testing.assert_allclose(step.weights, expected / expected.sum(), rtol=1e-6)
    np.testing.assert_allclose(step.weights, cap.attention(layer)[0, head, query].numpy(), atol=1e-5)
    assert step.weights.sum() == pytest.approx(1.0) and step.error < 1e-5


def test_classifier_numbers_reproduce_the_output(tiny):
    from vitviz.analysis.walkthrough import classifier_numbers, supports_walkthrough

    model, x, cap = tiny
    step = classifier_numbers(model, cap)
    np.testing.assert_allclose(step.logits, cap.output[0].numpy(), rtol=1e-5, atol=1e-5)
    assert step.pooled.shape == (model.embed_dim,) and step.error < 1e-4
    assert supports_walkthrough(model)
