"""Grad-CAM on a CNN's last stage (Selvaraju et al. 2017) against the closed form of an average-pool head."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vitviz.attribution import cnn_gradcam


@pytest.fixture(scope="module")
def resnet():
    import timm

    torch.manual_seed(0)
    return timm.create_model("test_resnet", pretrained=False).eval()


def test_with_an_average_pool_and_linear_head_grad_cam_is_the_class_weights_over_the_channels(resnet):
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = resnet.forward_features(x)[0].double()  # (C, h, w)
        logits = resnet(x)[0]
    weights = resnet.get_classifier().weight.detach().double()  # (classes, C)
    target = 7
    expected = torch.relu(torch.einsum("c,chw->hw", weights[target] / features[0].numel(), features))
    result = cnn_gradcam(resnet, x, target)
    np.testing.assert_allclose(result.cells, expected.numpy(), rtol=1e-4, atol=1e-7)
    assert result.target == target and result.cells.shape == tuple(features.shape[1:])
    assert result.probability == pytest.approx(float(torch.softmax(logits.double(), 0)[target]), rel=1e-5)
    assert result.cell_size == (64 / features.shape[1], 64 / features.shape[2])


def test_without_a_target_the_top_class_is_explained_and_a_bad_target_is_refused(resnet):
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        top = int(resnet(x).argmax())
    assert cnn_gradcam(resnet, x).target == top
    with pytest.raises(ValueError):
        cnn_gradcam(resnet, x, -1)
    with pytest.raises(ValueError, match="one image"):
        cnn_gradcam(resnet, torch.randn(2, 3, 64, 64))
