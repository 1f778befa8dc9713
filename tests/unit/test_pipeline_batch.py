"""vitviz.pipeline.run_batch: several images in one capture, split so that each gets exactly its own pass.

The reference is ``run`` on each image alone: every layer's attention, the hidden states, the output, the
probabilities, the top-k and (with targets) the attention gradients must match it, and the images must differ
enough that a pass handed to the wrong image could not match.
"""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from vitviz import pipeline

IMAGES = 8


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return timm.create_model("test_vit", pretrained=False, img_size=64).eval()


def photos(n: int = IMAGES) -> list[Image.Image]:
    """Different photos of different sizes (each prepared on its own: resize and crop differ)."""
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, (40 + 6 * i, 70 - 3 * i, 3), dtype=np.uint8)) for i in range(n)]


def assert_same_pass(together: pipeline.Pass, alone: pipeline.Pass) -> None:
    a, b = together.capture, alone.capture
    assert a.batch_size == 1 and a.storage == b.storage and a.target == b.target
    torch.testing.assert_close(a.output, b.output, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a.hidden_states, b.hidden_states, rtol=1e-4, atol=1e-5)
    for layer in range(a.num_layers):
        torch.testing.assert_close(a.attention(layer), b.attention(layer), rtol=1e-4, atol=1e-6)
        if b.target is not None:
            torch.testing.assert_close(a.attention_grad(layer), b.attention_grad(layer), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(together.probabilities, alone.probabilities, rtol=1e-4, atol=1e-7)
    assert [p.index for p in together.predictions] == [p.index for p in alone.predictions]
    assert together.geometry == alone.geometry and together.x.shape == alone.x.shape == (1, 3, 64, 64)
    torch.testing.assert_close(together.x, alone.x)
    assert together.finite and together.target == alone.target


def test_each_image_of_a_batch_gets_exactly_the_pass_it_gets_alone(model):
    images = photos()
    together = pipeline.run_batch(model, images)
    alone = [pipeline.run(model, image) for image in images]
    assert len(together) == IMAGES
    for mine, reference in zip(together, alone):
        assert_same_pass(mine, reference)
    outputs = np.stack([p.capture.output[0].numpy() for p in alone])  # (8, C)
    gaps = np.abs(outputs[:, None] - outputs[None]).max(-1)  # (8, 8): every pair tells apart
    assert (gaps + np.eye(IMAGES) * 1e9).min() > 1e-3


def test_a_batch_with_a_target_per_image_gets_each_image_its_own_gradients(model):
    images = photos(4)
    targets = [3, 0, 7, 3]
    together = pipeline.run_batch(model, images, targets=targets)
    for mine, image, target in zip(together, images, targets):
        assert_same_pass(mine, pipeline.run(model, image, target=target))


def test_a_batch_at_another_patch_size_splits_as_well(model):
    images = photos(3)
    together = pipeline.run_batch(model, images, patch_size=8)
    for mine, image in zip(together, images):
        alone = pipeline.run(model, image, patch_size=8)
        assert mine.patch_size == (8, 8) and mine.layout == alone.layout
        torch.testing.assert_close(mine.capture.attention(0), alone.capture.attention(0), rtol=1e-4, atol=1e-6)


def test_an_item_holds_copies_of_its_own_rows_only(model):
    together = pipeline.run_batch(model, photos(2))
    cap = together[1].capture
    assert cap.attention(0).shape[0] == cap.hidden_states.shape[0] == cap.output.shape[0] == 1
    assert cap.attention(0).untyped_storage().nbytes() == cap.attention(0).numel() * 4  # not a view of the batch


def test_a_batch_refuses_a_wrong_number_of_targets_or_no_image(model):
    with pytest.raises(ValueError, match="targets"):
        pipeline.run_batch(model, photos(2), targets=[1])
    with pytest.raises(ValueError, match="at least one"):
        pipeline.run_batch(model, [])
    with pytest.raises(ValueError, match="out of range"):
        pipeline.run_batch(model, photos(2), targets=[1, 10_000])
