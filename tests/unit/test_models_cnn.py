"""A CNN through the ViTs' loading path: names checked, weights found and read the same way, the bundled CNN."""
from __future__ import annotations

import pytest
import torch

from vitviz.models import BUNDLED_CNN, ModelError, load_cnn, offline_howto, resolve_cnn_name


def test_a_timm_cnn_name_is_accepted_with_or_without_its_weights_tag():
    assert resolve_cnn_name(" resnet18 ") == "resnet18"
    assert resolve_cnn_name("convnext_atto.d2_in1k") == "convnext_atto.d2_in1k"
    assert resolve_cnn_name("hf-hub:timm/resnet18.a1_in1k") == "hf-hub:timm/resnet18.a1_in1k"


@pytest.mark.parametrize(("name", "says"), [
    ("vit_small_patch16_224", "not a convolutional network"),
    ("resnt18", "Did you mean"),
    ("resnet18.no_such_tag", "no weights tagged 'no_such_tag'"),
    ("", "No model name given"),
    ("hf-hub:not an id", "not a Hugging Face model id"),
])
def test_a_name_that_is_not_a_known_cnn_is_refused_with_a_reason(name, says):
    with pytest.raises(ModelError, match=says):
        resolve_cnn_name(name)


def test_any_timm_cnn_loads_by_name_frozen_in_eval_mode_with_its_own_data_config():
    loaded = load_cnn("test_resnet", pretrained=False, device="cpu")
    assert loaded.source == "random" and loaded.name == "test_resnet" and not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.data_config["input_size"] == loaded.model.pretrained_cfg["input_size"]
    assert len(loaded.model.feature_info) >= 3


def test_a_local_weights_file_is_read_by_the_same_safe_reader_as_a_vits(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    reference = timm.create_model("test_convnext", pretrained=False)
    path = tmp_path / "cnn.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    loaded = load_cnn("test_convnext", weights=path, device="cpu")
    assert loaded.source == "local"
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    pickle = tmp_path / "evil.pth"
    pickle.write_bytes(b"\x80\x04cos\nsystem\n(S'echo owned'\ntR.")
    with pytest.raises(ModelError):
        load_cnn("test_convnext", weights=pickle, device="cpu")


def test_offline_and_uncached_a_cnn_fails_with_the_vits_message(monkeypatch, tmp_path):
    monkeypatch.setenv("VITVIZ_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelError) as caught:
        load_cnn("resnet18.a1_in1k")
    assert "unreachable and 'resnet18.a1_in1k' is not cached" in str(caught.value)
    assert offline_howto("resnet18.a1_in1k") in str(caught.value)


@pytest.mark.slow
def test_a_cnn_downloads_from_the_hub_and_then_loads_from_the_cache_offline(hub_env, monkeypatch):
    from tests._localhub import LocalHub, timm_repo_files

    weights, config, state = timm_repo_files("convnext_atto", seed=1)
    with LocalHub() as local:
        local.add("timm/convnext_atto.d2_in1k", "model.safetensors", weights)
        local.add("timm/convnext_atto.d2_in1k", "config.json", config)
        monkeypatch.setenv("HF_ENDPOINT", local.endpoint)
        online = load_cnn("convnext_atto.d2_in1k", device="cpu")
    monkeypatch.setenv("VITVIZ_OFFLINE", "1")
    offline = load_cnn("convnext_atto.d2_in1k", device="cpu")
    assert (online.source, offline.source) == ("hub", "hub-cache")
    for key, value in state.items():
        assert torch.equal(online.model.state_dict()[key], value)
        assert torch.equal(offline.model.state_dict()[key], value)


def test_the_bundled_cnn_without_its_weights_says_how_to_make_them(monkeypatch):
    from vitviz.shapes import cnn

    def missing(**_):
        raise FileNotFoundError("shapes_cnn.safetensors")

    monkeypatch.setattr(cnn, "load_shapes_cnn", missing)
    with pytest.raises(ModelError, match="scripts/train_shapes_cnn.py"):
        load_cnn(BUNDLED_CNN)


def test_the_bundled_cnn_untrained_is_the_same_seeded_model_every_time_and_leaves_the_global_seed_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = load_cnn(BUNDLED_CNN, pretrained=False, device="cpu")
    after = torch.rand(1)
    b = load_cnn(BUNDLED_CNN, pretrained=False, device="cpu")
    assert torch.equal(before, after)
    assert a.source == "random" and a.labels == list(a.extra["config"]["classes"])
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert a.data_config["input_size"] == (3, 96, 96)


def test_the_bundled_cnn_picks_up_its_weights_file_when_it_is_there(monkeypatch, tmp_path):
    from vitviz.shapes import cnn

    config = cnn.make_cnn_config()
    torch.manual_seed(7)
    trained = cnn.build_cnn(config).eval()
    weights, config_path = tmp_path / "shapes_cnn.safetensors", tmp_path / "shapes_cnn.json"
    cnn.save_shapes_cnn(trained, config, weights, config_path)
    monkeypatch.setattr(cnn, "CNN_WEIGHTS_PATH", weights)
    monkeypatch.setattr(cnn, "CNN_CONFIG_PATH", config_path)
    real = cnn.load_shapes_cnn
    monkeypatch.setattr(cnn, "load_shapes_cnn", lambda device="cpu": real(device, weights, config_path))
    loaded = load_cnn(BUNDLED_CNN, device="cpu")
    assert loaded.source == "bundled"
    assert all(torch.equal(v, loaded.model.state_dict()[k]) for k, v in trained.state_dict().items())
