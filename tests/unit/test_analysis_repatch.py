"""with_patch_size re-runs a ViT at another patch size on a copy, leaving the shared model untouched."""
import numpy as np
import pytest
import timm
import torch

from vitviz.analysis import nearest_input_size, with_patch_size
from vitviz.layout import TokenLayout


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return timm.create_model("test_vit", pretrained=False, img_size=64, depth=2).eval()


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_nearest_input_size():
    assert nearest_input_size(224, 20) == (220, 220)  # 11.2 patches -> 11
    assert nearest_input_size(230, 20) == (240, 240)  # 11.5 patches -> 12 (halves round up)
    assert nearest_input_size((224, 160), (14, 16)) == (224, 160)  # already divisible
    assert nearest_input_size((5, 100), 16) == (16, 96)  # at least one patch


def test_native_patch_size_reproduces_the_model_exactly(model):
    before = _snapshot(model)
    copy = with_patch_size(model, 16)
    assert copy is not model
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(copy(x), model(x), rtol=0, atol=0)
    after = _snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_other_patch_size_changes_grid_and_leaves_original_untouched(model):
    before = _snapshot(model)
    cfg_before = dict(model.pretrained_cfg)
    copy = with_patch_size(model, 8)
    # the original: same patch size, grid, pos_embed, weights and data config
    assert model.patch_embed.patch_size == (16, 16) and model.patch_embed.grid_size == (4, 4)
    assert model.pos_embed.shape == (1, 17, 64)
    assert all(torch.equal(before[k], v) for k, v in _snapshot(model).items())
    assert model.pretrained_cfg == cfg_before
    # the copy: 8x8 grid of 8 px patches, position embedding resampled to it
    assert copy.patch_embed.patch_size == (8, 8) and copy.patch_embed.grid_size == (8, 8)
    assert copy.patch_embed.proj.weight.shape == (64, 3, 8, 8)
    assert copy.pos_embed.shape == (1, 1 + 64, 64)
    layout = TokenLayout.from_model(copy)
    assert layout.grid_size == (8, 8) and layout.num_tokens == 65
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        tokens = copy.forward_features(x)
        logits = copy(x)
    assert tokens.shape == (1, 65, 64)
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def test_patch_embedding_is_flexivit_resampled_not_reinitialised(model):
    # PI-resize (FlexiViT): upsampling a patch by 2 with the same bilinear map timm uses for the weights
    # keeps every patch token; check with a constant image, whose upsampled patch is the same constant
    copy = with_patch_size(model, 32, img_size=128)
    x = torch.full((1, 3, 64, 64), 0.7)
    big = torch.full((1, 3, 128, 128), 0.7)
    with torch.no_grad():
        small_tokens = model.patch_embed.proj(x)  # (1, D, 4, 4)
        big_tokens = copy.patch_embed.proj(big)  # (1, D, 4, 4)
    torch.testing.assert_close(big_tokens, small_tokens, rtol=1e-4, atol=1e-4)


def test_non_dividing_patch_size_picks_nearest_input_size(model):
    copy = with_patch_size(model, 12)  # 64 / 12 = 5.33 patches -> 5 patches of 12 = 60 px
    assert copy.patch_embed.img_size == (60, 60) and copy.patch_embed.grid_size == (5, 5)
    assert copy.pretrained_cfg["input_size"] == (3, 60, 60)
    assert timm.data.resolve_model_data_config(copy)["input_size"] == (3, 60, 60)
    assert model.patch_embed.img_size == (64, 64)
    with torch.no_grad():
        out = copy(torch.randn(1, 3, 60, 60))
    assert torch.isfinite(out).all()
    rect = with_patch_size(model, (8, 12), img_size=(50, 70))  # -> (48, 72): 6 x 6 patches
    assert rect.patch_embed.img_size == (48, 72) and rect.patch_embed.grid_size == (6, 6)
    assert np.isfinite(rect(torch.randn(1, 3, 48, 72)).detach().numpy()).all()


def test_model_without_set_input_size_is_refused():
    with pytest.raises(TypeError, match="cannot change its patch size"):
        with_patch_size(torch.nn.Linear(3, 3), 8)
