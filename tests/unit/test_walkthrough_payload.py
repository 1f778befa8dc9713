"""The "How a ViT works" patch payload: every patch's step numbers decode, as the browser decodes them, to the
page's own numbers (``vitviz.analysis.walkthrough``) within half a quantisation step, for every token layout; parts
that do not fit are left out in order and the page is told."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests._layouts import FLOAT32_SLACK, LAYOUT_IDS, LAYOUTS
from vitviz.analysis import walkthrough as wt
from vitviz.export import PARTS, patch_steps_payload, read_patch_steps


def _model_and_capture(name: str, **kwargs):
    import timm

    from vitviz.capture import capture

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    x = torch.randn(1, 3, *model.patch_embed.img_size)
    return model, x, capture(model, x)


def _half_steps(rows: np.ndarray) -> np.ndarray:
    return (rows.max(-1) - rows.min(-1)) / 255 / 2  # (rows,)


def _payload(model, x, cap, layer: int, head: int, budget: int = 2_000_000):
    layout = cap.layout
    vectors, embeddings = wt.embed_patches(model, x, layout)
    attention = cap.attention(layer)[0, head, layout.patch_slice].numpy()  # (Np, N)
    norms = cap.hidden_states[0].norm(dim=-1).numpy()  # (L+1, N)
    return patch_steps_payload(pixels=vectors, embeddings=embeddings, attention=attention, norms=norms,
                               layout=layout, layer=layer, head=head, image_png=b"png", budget=budget)


@pytest.mark.parametrize("name, kwargs, prefix", LAYOUTS, ids=LAYOUT_IDS)
def test_every_patch_decodes_to_the_pages_numbers_for_every_layout(name, kwargs, prefix):
    model, x, cap = _model_and_capture(name, **kwargs)
    layout = cap.layout
    assert layout.prefix_names == prefix
    layer, head = cap.num_layers - 1, cap.num_heads - 1
    payload = _payload(model, x, cap, layer, head)
    assert payload.tier == "patches" and payload.holds == PARTS
    got = read_patch_steps(payload.blob)
    gh, gw = layout.grid_size
    # every patch, against the model's own outputs: its patch embedding and the captured attention
    embedded = model.patch_embed(x).detach()  # (1, Np, D) or (1, gh, gw, D)
    embedded = embedded.reshape(-1, embedded.shape[-1]).numpy()  # (Np, D)
    rows = cap.attention(layer)[0, head].double().numpy()[layout.patch_slice]  # (Np, N) patch queries
    (ph, pw), c = layout.patch_size, x.shape[1]
    pixels = x[0, :, :gh * ph, :gw * pw].reshape(c, gh, ph, gw, pw).permute(1, 3, 0, 2, 4)  # (gh, gw, C, ph, pw)
    pixels = pixels.reshape(gh * gw, -1).double().numpy()  # (Np, C·ph·pw), the conv weight's order
    for part, ref in (("pixels", pixels), ("embeddings", embedded), ("attention", rows)):
        assert got[part].shape == ref.shape
        bound = _half_steps(ref)[:, None] + 1e-5 * np.abs(ref).max() + FLOAT32_SLACK  # + float32 matmul order
        assert np.all(np.abs(got[part] - ref) <= bound), part
    # and a few patches against the numbers the page's steps compute by hand for the committed patch
    for row, col in {(0, 0), (0, gw - 1), (gh - 1, 0), (gh // 2, gw // 2)}:
        k = row * gw + col
        step = wt.embed_patch(model, x, layout, row, col)
        for part, ref in (("pixels", step.pixels), ("embeddings", step.embedding)):
            bound = _half_steps(ref) + 1e-5 * np.abs(ref).max() + FLOAT32_SLACK
            assert np.all(np.abs(got[part][k] - ref) <= bound), (part, row, col)
        weights = wt.attention_numbers(model, cap, layer, head, layout.patch_index(row, col)).weights
        assert np.all(np.abs(got["attention"][k] - weights) <= _half_steps(weights) + 1e-6), (row, col)
    norms = cap.hidden_states[0].norm(dim=-1).numpy()
    np.testing.assert_allclose(got["norms"], norms, rtol=1e-6)
    a, b = got["attention"][0], got["attention"][-1]
    assert gh * gw == 1 or not np.allclose(a, b)  # two patches, two different rows


def test_parts_that_do_not_fit_are_left_out_in_order():
    model, x, cap = _model_and_capture("test_vit")
    layout = cap.layout
    full = _payload(model, x, cap, 0, 0)
    np_, n = layout.num_patches, layout.num_tokens
    vectors = np_ * (wt.embed_patches(model, x, layout)[0].shape[1] + 8)
    norms = (cap.num_layers + 1) * n * 4
    base = 4096 + len(b"png") + norms
    assert _payload(model, x, cap, 0, 0, budget=base + vectors).holds == ("norms", "pixels")
    assert _payload(model, x, cap, 0, 0, budget=full.nbytes + 4096).holds == PARTS
    none = _payload(model, x, cap, 0, 0, budget=base + vectors - 1)
    assert none.tier == "none" and none.holds == () and read_patch_steps(none.blob) == {}
    with pytest.raises(ValueError, match="one row per patch"):
        patch_steps_payload(pixels=np.zeros((3, 4)), embeddings=np.zeros((3, 4)), attention=np.zeros((3, 4)),
                            norms=np.zeros((2, 4)), layout=layout, layer=0, head=0)


def test_the_payload_follows_the_layer_and_head():
    model, x, cap = _model_and_capture("test_vit")
    a = _payload(model, x, cap, 0, 0)
    b = _payload(model, x, cap, 1, 0)
    assert a.id != b.id
    assert not np.allclose(read_patch_steps(a.blob)["attention"], read_patch_steps(b.blob)["attention"])
    np.testing.assert_array_equal(read_patch_steps(a.blob)["pixels"], read_patch_steps(b.blob)["pixels"])
