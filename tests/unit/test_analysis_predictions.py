"""Top-k predictions and ImageNet class names."""
import math

import numpy as np
import pytest
import timm
import torch

from vitviz.analysis import Prediction, imagenet_labels, softmax, top_k


def test_top_k_hand_checked():
    logits = [1.0, 3.0, 2.0, 3.0]
    total = sum(math.exp(v) for v in logits)
    preds = top_k(torch.tensor(logits), ["a", "b", "c", "d"], k=3)
    assert [p.index for p in preds] == [1, 3, 2]  # tie between 1 and 3: lower index first
    assert [p.label for p in preds] == ["b", "d", "c"]
    assert preds[0].probability == pytest.approx(math.exp(3.0) / total)
    assert preds[2] == Prediction(2, "c", pytest.approx(math.exp(2.0) / total))


def test_top_k_options():
    probs = np.array([[0.1, 0.6, 0.3]])  # (1, C) is accepted
    preds = top_k(probs, k=10, from_logits=False)
    assert [(p.index, p.label, p.probability) for p in preds] == [(1, "class 1", 0.6), (2, "class 2", 0.3),
                                                                   (0, "class 0", 0.1)]
    with pytest.raises(ValueError, match="2 labels for 3 classes"):
        top_k(probs[0], ["x", "y"])
    with pytest.raises(ValueError):
        top_k(np.zeros((2, 3)))


def test_softmax_is_stable_for_large_logits():
    p = softmax([1000.0, 0.0, -1000.0])
    assert np.isfinite(p).all() and p[0] == pytest.approx(1.0) and p.sum() == pytest.approx(1.0)


def test_imagenet_labels():
    model = timm.create_model("test_vit", pretrained=False, img_size=32, depth=1)  # 1000-class head
    labels = imagenet_labels(model)
    assert len(labels) == 1000
    assert labels[0] == "tench, Tinca tinca" and labels[207] == "golden retriever"
    assert top_k(torch.arange(1000.0), labels, k=1)[0].label == "toilet tissue, toilet paper, bathroom tissue"
    for num_classes in (10, 0):  # another dataset's head, or no head at all
        headless = timm.create_model("test_vit", pretrained=False, img_size=32, depth=1, num_classes=num_classes)
        assert imagenet_labels(headless) is None
