"""Position-embedding similarity (ViT Fig. 7 centre) on known embeddings and real timm token layouts."""
import numpy as np
import pytest
import timm
import torch
from timm.layers import resample_abs_pos_embed
from timm.models.eva import Eva

from vitviz.analysis import PositionEmbeddingUnavailable, patch_position_embeddings, position_similarity
from vitviz.layout import TokenLayout

FREQS = np.array([0.1, 0.25, 0.4])  # low enough that cos(f * d) falls monotonically over the grid


def _sinusoid(rows, cols):
    """2-D sinusoidal embedding (rows, cols, 4K): sin/cos of each frequency times row, then column."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    parts = [np.sin(FREQS * r[..., None]), np.cos(FREQS * r[..., None]),
             np.sin(FREQS * c[..., None]), np.cos(FREQS * c[..., None])]
    return np.concatenate(parts, axis=-1)


def _expected_sinusoid_similarity(rows, cols):
    """Closed form: cos-similarity = (mean_k cos(f_k dr) + mean_k cos(f_k dc)) / 2."""
    sim = np.empty((rows, cols, rows, cols))
    for r in range(rows):
        for c in range(cols):
            for r2 in range(rows):
                for c2 in range(cols):
                    sim[r, c, r2, c2] = 0.5 * (np.cos(FREQS * (r - r2)).mean() + np.cos(FREQS * (c - c2)).mean())
    return sim


def _cosine_reference(patch_embeddings):
    """Straightforward per-pair cosine similarity of (gh, gw, D) embeddings."""
    gh, gw, _ = patch_embeddings.shape
    sim = np.empty((gh, gw, gh, gw))
    for idx in np.ndindex(gh, gw, gh, gw):
        a, b = patch_embeddings[idx[:2]], patch_embeddings[idx[2:]]
        sim[idx] = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return sim


def _model_patch_pos(model, grid):
    """The position embeddings the model itself adds to its patch tokens, read from its own _pos_embed."""
    dim = model.embed_dim
    with torch.no_grad():
        if model.dynamic_img_size:
            out = model._pos_embed(torch.zeros(1, *grid, dim))  # NHWC input
        else:
            out = model._pos_embed(torch.zeros(1, grid[0] * grid[1], dim))
    return out[0, model.num_prefix_tokens :].double().numpy().reshape(*grid, dim)


def test_sinusoid_tiles_peak_at_own_position_and_fall_off_with_distance():
    rows, cols = 5, 7
    layout = TokenLayout(("cls",), (rows, cols), (16, 16), (80, 112))
    cls_entry = np.random.default_rng(0).normal(size=(1, 4 * len(FREQS)))
    pos_embed = np.concatenate([cls_entry, _sinusoid(rows, cols).reshape(rows * cols, -1)])[None]  # (1, 36, 12)
    sim = position_similarity(pos_embed, layout)
    assert sim.shape == (rows, cols, rows, cols)
    np.testing.assert_allclose(sim, _expected_sinusoid_similarity(rows, cols), atol=1e-12)
    flat = sim.reshape(rows * cols, rows * cols)
    np.testing.assert_allclose(np.diag(flat), 1.0, atol=1e-12)
    np.testing.assert_allclose(flat, flat.T, atol=1e-12)
    for r in range(rows):
        for c in range(cols):
            tile = sim[r, c]
            assert np.unravel_index(tile.argmax(), tile.shape) == (r, c)
            # strictly decreasing away from the own position along its row and its column
            assert (np.diff(tile[r, c:]) < 0).all() and (np.diff(tile[r, : c + 1]) > 0).all()
            assert (np.diff(tile[r:, c]) < 0).all() and (np.diff(tile[: r + 1, c]) > 0).all()


def test_bare_embedding_forms_agree():
    layout = TokenLayout(("cls", "reg0"), (3, 4), (8, 8), (24, 32))
    patches = np.random.default_rng(1).normal(size=(3, 4, 6))
    with_prefix = np.concatenate([np.ones((2, 6)), patches.reshape(12, 6)])  # (T, D) with 2 prefix entries
    expected = _cosine_reference(patches)
    for form in (with_prefix, with_prefix[None], patches.reshape(12, 6), patches, torch.from_numpy(patches)):
        np.testing.assert_allclose(position_similarity(form, layout), expected, atol=1e-12)
    zero = np.zeros((12, 6))
    assert np.array_equal(position_similarity(zero, layout), np.zeros((3, 4, 3, 4)))  # no NaN
    with pytest.raises(ValueError, match="cannot place"):
        position_similarity(np.ones((13, 6)), layout)  # neither 12 patches nor a square grid (+2 prefix)


def test_bare_square_embedding_is_resampled_to_the_layout_grid():
    layout = TokenLayout(("cls", "reg0"), (3, 4), (8, 8), (24, 32))
    pos_embed = torch.randn(1, 2 + 16, 6, generator=torch.Generator().manual_seed(2))  # learned at 4 x 4
    expected = resample_abs_pos_embed(pos_embed, new_size=[3, 4], old_size=[4, 4], num_prefix_tokens=2)
    emb = patch_position_embeddings(pos_embed, layout)
    np.testing.assert_allclose(emb, expected[0, 2:].double().numpy().reshape(3, 4, 6), atol=1e-6)


@pytest.mark.parametrize(
    "name, kwargs, prefix",
    [
        ("test_vit", {}, ("cls",)),  # class token with its own pos entry
        ("test_vit", {"no_embed_class": True}, ("cls",)),  # DeiT-3 style: patches only
        ("test_vit", {"reg_tokens": 4, "no_embed_class": True}, ("cls", "reg0", "reg1", "reg2", "reg3")),  # DINOv2-reg
        ("test_vit2", {}, ("reg0",)),  # no class token, a register with a pos entry
        ("test_vit3", {}, ("reg0",)),  # attention pooling, fixed input size
    ],
)
def test_model_layouts_match_the_embeddings_the_model_adds(name, kwargs, prefix):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, img_size=(48, 80), depth=1, **kwargs).eval()
    layout = TokenLayout.from_model(model)
    assert layout.prefix_names == prefix and layout.grid_size == (3, 5)
    emb = patch_position_embeddings(model, layout)
    np.testing.assert_allclose(emb, _model_patch_pos(model, (3, 5)), atol=1e-6)
    np.testing.assert_allclose(position_similarity(model, layout), _cosine_reference(emb), atol=1e-10)


def test_model_running_at_another_grid_uses_the_resampled_embedding():
    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, img_size=(48, 80), depth=1).eval()  # learned at 3 x 5
    layout = TokenLayout.from_model(model, (64, 96))  # runs at 4 x 6 (dynamic_img_size)
    emb = patch_position_embeddings(model, layout)
    assert emb.shape == (4, 6, model.embed_dim)
    np.testing.assert_allclose(emb, _model_patch_pos(model, (4, 6)), atol=1e-6)
    sim = position_similarity(model, layout)
    assert sim.shape == (4, 6, 4, 6)
    np.testing.assert_allclose(sim, _cosine_reference(emb), atol=1e-10)


@pytest.mark.parametrize(
    "build, reason",
    [
        (lambda: timm.create_model("test_vit", pretrained=False, img_size=32, depth=1, pos_embed="none"),
         "no position embedding at all"),
        (lambda: timm.create_model("test_vit_relpos", pretrained=False, img_size=32, depth=1),
         "relative position bias"),
        (lambda: Eva(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                     use_abs_pos_emb=False, use_rot_pos_emb=True), "rotary embeddings"),
    ],
)
def test_models_without_absolute_position_embedding_raise_with_reason(build, reason):
    model = build()
    layout = TokenLayout.from_model(model)
    with pytest.raises(PositionEmbeddingUnavailable, match=reason):
        position_similarity(model, layout)
