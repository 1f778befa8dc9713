"""vitviz.pipeline.run: the one pipeline (repatch, prepare, move to the model's device, capture, top-k).

A second device is ``vvfake`` (``tests/_fake_device.py``): it refuses CPU operands as CUDA does, so an input
that is not moved to the model's device fails here as it would on a GPU server.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import vitviz
from tests._fake_device import enable
from vitviz import pipeline
from vitviz.analysis import with_patch_size
from vitviz.capture import capture
from vitviz.images import data_config, prepare_input

DEVICE = enable()  # before this process's first backward pass: the autograd engine sizes its device queues once


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return timm.create_model("test_vit", pretrained=False, img_size=64).eval()


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8))


def test_the_input_goes_to_the_device_the_pipeline_is_given(model, photo):
    on_cpu = pipeline.run(model, photo, target=3)
    moved = copy.deepcopy(model)
    result = pipeline.run(moved, photo, target=3, device=DEVICE)
    assert result.x.device.type == DEVICE and result.device.type == DEVICE
    assert next(moved.parameters()).device.type == DEVICE  # the model went there too: they never part
    torch.testing.assert_close(result.capture.output, on_cpu.capture.output)  # read back to the CPU
    torch.testing.assert_close(result.capture.attention_grad(1), on_cpu.capture.attention_grad(1))
    assert result.predictions == on_cpu.predictions


def test_the_input_follows_a_model_that_is_already_elsewhere(model, photo):
    elsewhere = copy.deepcopy(model).to(DEVICE)
    x, _ = prepare_input(photo, data_config(elsewhere))
    with pytest.raises(RuntimeError, match="same device"):  # what every page did on a GPU server
        capture(elsewhere, x)
    result = pipeline.run(elsewhere, photo)
    assert result.x.device.type == DEVICE and result.capture.output.device.type == "cpu"


def test_the_pipeline_is_what_explain_runs(model, photo):
    result = pipeline.run(model, photo, patch_size=8)
    ex = vitviz.explain(model, photo, patch_size=8)
    torch.testing.assert_close(ex.capture.output, result.capture.output)
    assert ex.geometry == result.geometry and ex.predictions == result.predictions
    assert ex.layout == result.layout and ex.layout.patch_size == (8, 8)


def test_it_repatches_only_for_another_patch_size_and_with_the_given_copier(model, photo):
    made = []

    def copier(m, size):
        made.append(size)
        return with_patch_size(m, size)

    same = pipeline.run(model, photo, patch_size=16, repatch=copier)
    assert same.model is model and not made
    other = pipeline.run(model, photo, patch_size=(8, 8), repatch=copier)
    assert made == [(8, 8)] and other.model is not model and other.patch_size == (8, 8)
    assert other.data_config["input_size"][1:] == (64, 64) and other.x.shape[-2:] == (64, 64)
    assert tuple(model.patch_embed.patch_size) == (16, 16)  # the model passed in is left untouched


@pytest.mark.parametrize("target", [-1, 1000, 2.5, "3"])
def test_a_target_outside_the_models_classes_is_refused(model, photo, target):
    with pytest.raises(ValueError, match="out of range: the model has 1000 classes"):
        pipeline.run(model, photo, target=target)
    with pytest.raises(ValueError, match="out of range"):
        vitviz.explain(model, photo, target=target)
    with pytest.raises(ValueError, match="out of range"):
        capture(model, torch.zeros(1, 3, 64, 64), target=target)


def test_a_target_is_refused_everywhere_a_class_is_explained(model, photo):
    from vitviz.attribution import get_method
    from vitviz.evaluation import faithfulness

    ex = vitviz.explain(model, photo)
    with pytest.raises(ValueError, match="out of range"):
        ex.relevance("gradient_rollout", target=-1)
    with pytest.raises(ValueError, match="out of range"):
        get_method("input_gradient").attribute(model, ex.input, target=-1)
    with pytest.raises(ValueError, match="out of range"):
        faithfulness(model, ex.input, ex.relevance("rollout"), -1)
    headless = timm.create_model("test_vit", pretrained=False, img_size=64, num_classes=0).eval()
    with pytest.raises(ValueError, match="no classifier head"):
        pipeline.run(headless, photo, target=0)
    assert pipeline.run(headless, photo).predictions == ()


def test_a_pass_knows_its_numbers(model, photo):
    result = pipeline.run(model, photo)
    probabilities = torch.softmax(result.capture.output[0].double(), -1).numpy()
    np.testing.assert_allclose(result.probabilities, probabilities)
    assert [p.index for p in result.predictions] == list(np.argsort(-probabilities, kind="stable")[:pipeline.TOP_K])
    assert result.finite and result.target is None and result.layout == result.capture.layout
