"""End-to-end tests of vitviz.explain on timm's tiny test ViTs (random weights, no download).

Every figure is checked against a reference computed here without vitviz: a manual forward pass through
the model's own modules gives each block's input, from which attention, rollout, token norms and
position-embedding similarity are recomputed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from timm.data import resolve_model_data_config

import vitviz
from vitviz.explanation import Explanation, explain
from vitviz.figures.placement import UNSEEN_FILL
from vitviz.i18n import Message
from vitviz.images import load_image, prepare_input
from vitviz.layout import TokenLayout

SAMPLE = Path(__file__).resolve().parents[2] / "vitviz" / "assets" / "samples" / "cat.jpg"


def _model(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


def _photo(height: int = 120, width: int = 180) -> Image.Image:
    """A smooth synthetic photo (compresses well, JPEG-friendly) with a bright square."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 80)], axis=-1).astype(np.uint8)
    rgb[30:70, 40:90] = (250, 240, 20)
    return Image.fromarray(rgb)


def reference_states(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Tokens entering each block and leaving the last, by running timm's modules one by one."""
    with torch.no_grad():
        h = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))  # (1, N, D)
        states = [h]
        for block in model.blocks:
            h = block(h)
            states.append(h)
    return [s[0] for s in states]  # (L+1) × (N, D)


def reference_attention(model: torch.nn.Module, tokens: torch.Tensor, layer: int) -> np.ndarray:
    """softmax(q k^T * scale) of one block from the tokens entering it: (H, N, N)."""
    attn = model.blocks[layer].attn
    with torch.no_grad():
        x = model.blocks[layer].norm1(tokens[None])  # (1, N, D)
        n = x.shape[1]
        qkv = attn.qkv(x).reshape(1, n, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)  # (3, 1, H, N, d)
        q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
        probs = (q * attn.scale @ k.transpose(-2, -1)).softmax(dim=-1)  # (1, H, N, N)
    return probs[0].double().numpy()


def reference_rollout(attns: list[np.ndarray], readout_rows: slice | int) -> np.ndarray:
    """Abnar & Zuidema rollout, written out: (L, N) read-out row after each layer."""
    joint = np.eye(attns[0].shape[-1])
    rows = []
    for a in attns:
        mixed = 0.5 * np.eye(len(joint)) + 0.5 * a.mean(axis=0)
        mixed /= mixed.sum(axis=1, keepdims=True)
        joint = mixed @ joint
        picked = joint[readout_rows]
        rows.append(picked.mean(axis=0) if picked.ndim == 2 else picked)
    return np.stack(rows)


@pytest.fixture(scope="module")
def vit() -> torch.nn.Module:
    return _model("test_vit")  # class token, 10x10 patches of 16 px, 6 blocks, 2 heads


@pytest.fixture(scope="module")
def ex(vit) -> Explanation:
    return explain(vit, SAMPLE)


@pytest.fixture(scope="module")
def reference(vit, ex):
    states = reference_states(vit, ex.input)
    attns = [reference_attention(vit, states[i], i) for i in range(len(vit.blocks))]
    return states, attns


# ------------------------------------------------------------------------------------------ capture


def test_explain_prepares_input_with_timm_config(vit, ex):
    image = load_image(SAMPLE)
    x, geometry = prepare_input(image, resolve_model_data_config(vit))
    torch.testing.assert_close(ex.input, x)
    assert ex.geometry == geometry
    assert ex.image.size == image.size and ex.geometry.original_size == (image.height, image.width)
    assert ex.layout == TokenLayout.from_model(vit, (160, 160))
    assert ex.layout.grid_size == (10, 10) and ex.layout.prefix_names == ("cls",)


def test_predictions_match_the_models_own_output(vit, ex):
    with torch.no_grad():
        probs = vit(ex.input)[0].softmax(-1).double().numpy()
    top = np.argsort(-probs)[:5]
    assert [p.index for p in ex.predictions] == list(top)
    np.testing.assert_allclose([p.probability for p in ex.predictions], probs[top], rtol=1e-5)
    fig = ex.fig_predictions()
    assert list(fig.layout.yaxis.ticktext) == [p.label for p in ex.predictions]
    assert not ex.predictions[0].label.startswith("class ")  # ImageNet names from timm, not indices


def test_explanation_is_frozen_and_prints_short(ex):
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.layout = None
    text = repr(ex)
    assert text.startswith("Explanation(model='test_vit', image=451×300, layout='cls + 10×10 patches = 101 tokens'")
    assert "layers=6, heads=2" in text and len(text) < 300  # no tensors dumped into the notebook


# ----------------------------------------------------------------------------------- attention figures


def test_fig_attention_matches_reference_attention(ex, reference):
    _, attns = reference
    layout = ex.layout
    query = layout.patch_index(2, 7)
    fig = ex.fig_attention(layer=3, head=1, query=(2, 7))
    expected = attns[3][1, query]  # (N,)
    heat = fig.data[1]
    np.testing.assert_allclose(heat.z, expected[layout.patch_slice].reshape(10, 10), atol=1e-5)
    assert f"cls: {expected[0]:.3g}" in fig.layout.title.subtitle.text
    assert fig.layout.title.text == "Layer 3, head 1: attention of patch (row 2, col 7)"
    assert len([s for s in fig.layout.shapes if s.fillcolor != UNSEEN_FILL]) == 1  # the query patch is outlined
    # Axes in original pixels: the whole photo, the map on the centre crop.
    height, width = ex.geometry.original_size
    assert list(fig.layout.xaxis.range) == pytest.approx([0, width])
    assert list(fig.layout.yaxis.range) == pytest.approx([height, 0])
    top, left, box_h, box_w = ex.geometry.crop_box
    assert heat.x0 - heat.dx / 2 == pytest.approx(left) and heat.dx * 10 == pytest.approx(box_w)


def test_fig_attention_mean_over_heads_for_class_token(ex, reference):
    _, attns = reference
    fig = ex.fig_attention(layer=-1)
    expected = attns[-1].mean(axis=0)[0]  # class token's row, mean over heads
    np.testing.assert_allclose(fig.data[1].z, expected[1:].reshape(10, 10), atol=1e-5)
    assert fig.layout.title.text == "Layer 5, mean over heads: attention of cls"
    assert not [s for s in fig.layout.shapes if s.fillcolor != UNSEEN_FILL]  # only the unseen sides, dimmed


def test_fig_attention_grid_matches_reference(ex, reference):
    _, attns = reference
    fig = ex.fig_attention_grid()
    z = np.asarray(fig.data[0].z)
    assert z.shape == (6 * 11 - 1, 2 * 11 - 1)
    for layer, head in [(0, 0), (4, 1)]:
        tile = z[layer * 11 : layer * 11 + 10, head * 11 : head * 11 + 10]
        np.testing.assert_allclose(tile, attns[layer][head, 0, 1:].reshape(10, 10), atol=1e-5)


def test_fig_rollout_matches_reference_rollout(ex, reference):
    _, attns = reference
    fig = ex.fig_rollout()
    expected = reference_rollout(attns, 0)  # (L, N) class token's row
    assert len(fig.frames) == 6 and fig.layout.sliders[0].active == 5
    for frame, row in zip(fig.frames, expected):
        np.testing.assert_allclose(frame.data[0].z, row[1:].reshape(10, 10), atol=1e-5)
    np.testing.assert_allclose(fig.data[1].z, expected[-1, 1:].reshape(10, 10), atol=1e-5)
    assert fig.layout.title.text == "Attention rollout, layers 0–5 (class-token row)"
    late = ex.fig_rollout(start_layer=2)
    assert [f.name for f in late.frames] == ["2", "3", "4", "5"]
    np.testing.assert_allclose(late.frames[-1].data[0].z, reference_rollout(attns[2:], 0)[-1, 1:].reshape(10, 10),
                               atol=1e-5)


def test_fig_attention_distance_shape(ex):
    fig = ex.fig_attention_distance()
    dist = ex.attention_distance()
    assert dist.shape == (6, 2) and len(fig.data) == 2
    np.testing.assert_allclose(fig.data[1].y, dist[:, 1])
    # Distances between 16 px patches of a 10x10 grid: never more than the grid's diagonal.
    assert (dist >= 0).all() and (dist <= np.hypot(144, 144) + 1e-9).all()


# ------------------------------------------------------------------------------ tokens and embeddings


def test_fig_token_norms_matches_reference(ex, reference):
    states, _ = reference
    norms = torch.linalg.vector_norm(states[4], dim=-1).double().numpy()  # leaving block 3
    fig = ex.fig_token_norms(layer=4)
    np.testing.assert_allclose(fig.data[0].z, norms[1:].reshape(10, 10), rtol=1e-5)
    assert fig.data[1].x[0] == pytest.approx(norms[0], rel=1e-5)  # horizontal bars: the class token first
    assert fig.layout.title.text == "Token norms, output of block 3"


def test_fig_position_similarity_matches_pos_embed(vit, ex):
    emb = vit.pos_embed[0, 1:].detach().double()  # (100, D) patch entries
    unit = emb / emb.norm(dim=1, keepdim=True)
    sim = (unit @ unit.T).numpy().reshape(10, 10, 10, 10)
    z = np.asarray(ex.fig_position_similarity().data[0].z)
    assert z.shape == (10 * 11 - 1, 10 * 11 - 1)
    np.testing.assert_allclose(z[3 * 11 : 3 * 11 + 10, 8 * 11 : 8 * 11 + 10], sim[3, 8], atol=1e-5)
    np.testing.assert_allclose(ex.fig_position_tile(3, 8).data[0].z, sim[3, 8], atol=1e-5)


def test_fig_embedding_filters_and_feature_pca(ex):
    filters = ex.fig_embedding_filters(n=12)
    assert len(filters.data) == 4 and len(filters.data[2].y) == 12
    assert 0 < sum(filters.data[2].y) <= 1 + 1e-9
    pca = ex.fig_feature_pca()
    assert np.asarray(pca.data[1].z).shape == (10, 10, 3)


def test_fig_patch_grid_and_sequence_show_the_model_input(ex):
    grid = ex.fig_patch_grid()
    assert np.asarray(grid.data[1].z).shape == (10, 10)
    assert list(grid.layout.xaxis.range) == pytest.approx([0, ex.image.width])
    sequence = ex.fig_patch_sequence(columns=10)
    from tests._imagefactory import decode_data_uri

    mosaic = decode_data_uri(sequence.data[0].source).astype(int)
    pixels = ex.input_pixels().astype(int)
    # token 1 + 23 sits in slot 24 (row 2, col 4 of the mosaic); it is patch (2, 3) of the input
    tile = mosaic[2 * 17 : 2 * 17 + 16, 4 * 17 : 4 * 17 + 16]
    assert np.abs(tile - pixels[32:48, 48:64]).mean() < 12


def test_patch_grid_figure_with_analysis_patch_grid():
    from vitviz.analysis import patch_grid
    from vitviz.figures import patch_grid_figure
    from vitviz.figures.patches import CROPPED_FILL

    photo = np.asarray(_photo(90, 120))
    fig = patch_grid_figure(photo, None, patch_grid((90, 120), 16, "crop"))  # 5x7 patches cover 80x112 px
    assert np.asarray(fig.data[1].z).shape == (5, 7)
    shaded = sum((s.x1 - s.x0) * (s.y1 - s.y0) for s in fig.layout.shapes if s.fillcolor == CROPPED_FILL)
    assert shaded == pytest.approx(90 * 120 - 80 * 112)


def test_all_figures_are_light(ex):
    builders = [ex.fig_patch_grid, ex.fig_patch_sequence, ex.fig_position_similarity, ex.fig_embedding_filters,
                ex.fig_attention, ex.fig_attention_grid, ex.fig_attention_distance, ex.fig_rollout,
                ex.fig_token_norms, ex.fig_feature_pca, ex.fig_predictions]
    sizes = [len(build().to_json()) for build in builders]
    assert max(sizes) < 200_000, sizes


# ------------------------------------------------------------------------------------ other layouts


def test_registers_without_class_token():
    model = _model("test_vit2")  # 1 register, average pooling, no class token
    ex = explain(model, _photo())
    assert ex.layout.prefix_names == ("reg0",) and ex.layout.class_index is None
    assert ex.default_query() == ex.layout.patch_index(5, 5)
    attention = ex.fig_attention(layer=0, head=0)
    assert "reg0: " in attention.layout.title.subtitle.text
    assert attention.layout.title.text.endswith("attention of patch (row 5, col 5)")
    states = reference_states(model, ex.input)
    attns = [reference_attention(model, states[i], i) for i in range(len(model.blocks))]
    rollout = ex.fig_rollout()
    assert rollout.layout.title.text.endswith("(mean over patch queries)")
    expected = reference_rollout(attns, ex.layout.patch_slice)[-1, 1:].reshape(10, 10)
    np.testing.assert_allclose(rollout.data[1].z, expected, atol=1e-5)


def test_non_square_input():
    model = _model("test_vit", img_size=(96, 160))  # its pretrained config still says 160x160
    ex = explain(model, _photo(120, 180))
    assert ex.layout.grid_size == (6, 10) and ex.geometry.input_size == (96, 160)
    fig = ex.fig_attention(layer=1, head=0, query=(5, 9))
    assert np.asarray(fig.data[1].z).shape == (6, 10)
    heat = fig.data[1]
    top, left, box_h, box_w = ex.geometry.crop_box
    assert heat.y0 - heat.dy / 2 == pytest.approx(top) and heat.dy * 6 == pytest.approx(box_h)
    assert heat.dx * 10 == pytest.approx(box_w)
    assert len(ex.fig_rollout().frames) == len(model.blocks)
    assert np.asarray(ex.fig_position_similarity().data[0].z).shape == (6 * 7 - 1, 10 * 11 - 1)


def test_patch_size_runs_a_resampled_copy(vit):
    ex = explain(vit, _photo(), patch_size=8)
    assert ex.layout.patch_size == (8, 8) and ex.layout.grid_size == (20, 20)
    assert tuple(vit.patch_embed.patch_size) == (16, 16)  # the model passed in is untouched
    assert ex.model is not vit
    assert np.asarray(ex.fig_attention().data[1].z).shape == (20, 20)
    assert ex.patch_tiles().shape == (400, 8, 8, 3)


def test_gradient_rollout_runs_its_gradient_pass_on_demand(vit, ex):
    top = ex.predictions[0].index
    fig = ex.fig_rollout(gradient=True)  # no target given to explain: the top class, computed now
    assert fig.layout.title.text.startswith("Gradient rollout, layers 0–5")
    assert len(fig.frames) == 6
    with_target = explain(vit, SAMPLE, target=top)
    np.testing.assert_allclose(ex.gradient_rollout().maps, with_target.gradient_rollout().maps, rtol=1e-6)
    assert ex.capture_for(top) is ex.capture_for(top), "one gradient pass per class"
    other = ex.predictions[1].index
    assert not np.allclose(ex.gradient_rollout(target=other).maps, ex.gradient_rollout().maps)


def test_image_inputs_agree(vit):
    photo = _photo()
    as_pil = explain(vit, photo)
    as_array = explain(vit, np.asarray(photo))
    torch.testing.assert_close(as_pil.input, as_array.input)
    assert as_pil.geometry == as_array.geometry
    with pytest.raises(TypeError, match="cannot read an image"):
        explain(vit, 42)


def test_name_goes_through_load_model(monkeypatch, vit):
    from vitviz import models

    calls = []

    def fake_load_model(name, *, device=None, **kwargs):
        calls.append((name, device))
        return models.LoadedModel(model=vit, name="test_vit", spec=None, source="random",
                                  message=Message("Random weights."),
                                  data_config=resolve_model_data_config(vit), labels=[f"L{i}" for i in range(1000)])

    monkeypatch.setattr(models, "load_model", fake_load_model)
    import vitviz.explanation  # the module has its own name, so vitviz.explain stays the function

    ex = vitviz.explain("some-vit", SAMPLE.read_bytes(), device="cpu")
    assert calls == [("some-vit", "cpu")]
    assert ex.name == "test_vit" and ex.notice == "Random weights." and ex.predictions[0].label.startswith("L")
    assert ex.fig_predictions().layout.title.text == "Top predictions of test_vit"


ASSETS = Path(__file__).resolve().parents[2] / "vitviz" / "assets"


@pytest.mark.skipif(not (ASSETS / "shapes_vit.safetensors").is_file(), reason="vitviz-shapes weights not shipped yet")
def test_notebook_example_with_bundled_model():
    ex = vitviz.explain("vitviz-shapes", SAMPLE)
    assert ex.name == "vitviz-shapes" and ex.predictions
    fig = ex.fig_rollout()
    assert len(fig.frames) == ex.capture.num_layers
    assert np.asarray(fig.data[1].z).shape == ex.layout.grid_size
