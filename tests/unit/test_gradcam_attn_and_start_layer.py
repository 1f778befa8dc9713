"""Attention Grad-CAM as Chefer et al.'s ``generate_cam_attn`` computes it, and the start layer of rollout and of
Chefer et al.'s method as their ``start_layer`` (issue 23, item 3)."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from vitviz.attribution import METHODS, get_method
from vitviz.attribution.chefer2021 import aggregate, chefer_relevance
from vitviz.attribution.gradcam_attn import attention_gradcam_map
from vitviz.capture import capture
from vitviz.layout import TokenLayout


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, depth=3, num_classes=6).eval()
    with torch.no_grad():
        model.head.bias.normal_()
    return model, torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_attention_gradcam_is_chefers_generate_cam_attn(vit):
    """Their code, line by line on the capture's attention and gradient: class row, patch columns, per-head mean
    gradient over the patches, (cam * grad).mean(0).clamp(min=0)."""
    model, x = vit
    for target in range(6):
        cap = capture(model, x, target=target)
        grad = cap.attention_grad(2).float()  # (1, H, N, N)
        cam = cap.attention(2).float()
        cam = cam[0, :, 0, 1:].reshape(-1, 4, 4)
        grad = grad[0, :, 0, 1:].reshape(-1, 4, 4)
        grad = grad.mean(dim=[1, 2], keepdim=True)
        expected = (cam * grad).mean(0).clamp(min=0)
        ours = get_method("gradcam_attn").attribute(model, x, target)
        np.testing.assert_allclose(ours.patches, expected.numpy(), rtol=1e-5, atol=1e-9)
        again = get_method("gradcam_attn").attribute(model, x, target, capture=cap)  # the capture reused
        np.testing.assert_allclose(again.patches, ours.patches, rtol=1e-5, atol=1e-9)


def test_attention_gradcam_by_hand_on_two_heads_and_two_patches():
    layout = TokenLayout(("cls",), (1, 2), (16, 16), (16, 32))
    attention = np.zeros((2, 3, 3))
    attention[0, 0] = [0.2, 0.5, 0.3]
    attention[1, 0] = [0.6, 0.1, 0.3]
    grads = np.zeros((2, 3, 3))
    grads[0, 0] = [9.0, 1.0, 3.0]  # head 0 weight: mean(1, 3) = 2
    grads[1, 0] = [9.0, -4.0, 0.0]  # head 1 weight: -2
    # patch 1: (0.5·2 + 0.1·(−2)) / 2 = 0.4; patch 2: (0.3·2 + 0.3·(−2)) / 2 = 0
    np.testing.assert_allclose(attention_gradcam_map(attention, grads, layout), [[0.4, 0.0]])
    grads[1, 0] = [0.0, -8.0, -8.0]  # head 1 weight −8: patch 1 (1.0 − 0.8)/2 = 0.1, patch 2 (0.6 − 2.4)/2 < 0
    np.testing.assert_allclose(attention_gradcam_map(attention, grads, layout), [[0.1, 0.0]])
    np.testing.assert_allclose(attention_gradcam_map(attention, grads, layout, positive=False), [[0.1, -0.9]])


def test_chefers_start_layer_skips_the_blocks_below_it(vit):
    """Their compute_rollout_attention(cams, start_layer): joint = cams[s] + I, then (cams[i] + I) · joint."""
    model, x = vit
    full = chefer_relevance(model, x, 2)
    late = chefer_relevance(model, x, 2, start_layer=1)
    assert not np.allclose(full.joint, late.joint)
    grads, cams = (torch.rand(3, 2, 5, 5, generator=torch.Generator().manual_seed(s)) - 0.3 for s in (0, 1))
    eye = torch.eye(5)
    layers = [(g * c).clamp(min=0).mean(0) + eye for g, c in zip(grads, cams)]
    joint = layers[1]
    for layer in layers[2:]:
        joint = layer @ joint
    torch.testing.assert_close(aggregate(grads[1:], cams[1:]), joint)
    method = METHODS["chefer2021"].configured(start_layer=1)
    assert method.settings() == {"start_layer": 1} and METHODS["chefer2021"].start_layer == 0
    relevance = method.attribute(model, x, 2)
    row = late.readout @ late.joint
    np.testing.assert_allclose(relevance.patches.reshape(-1), row[1:])


def test_rollout_start_layer_and_its_limits(vit):
    from vitviz import analysis

    model, x = vit
    cap = capture(model, x)
    late = METHODS["rollout"].configured(start_layer=2).attribute(model, x, capture=cap)
    np.testing.assert_allclose(late.patches, analysis.rollout(cap, start_layer=2).final_map)
    assert not np.allclose(late.patches, METHODS["rollout"].attribute(model, x, capture=cap).patches)
    with pytest.raises(ValueError, match="start layer 3 is beyond"):
        METHODS["rollout"].configured(start_layer=3).attribute(model, x, capture=cap)
    with pytest.raises(ValueError, match="whole number"):
        METHODS["rollout"].configured(start_layer=-1)
    assert METHODS["attention"].configured(start_layer=1) is not METHODS["attention"], "options it lacks: ignored"
