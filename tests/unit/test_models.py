"""Model loading: catalogue, hub-first weights order, safe local weights, clear errors, fast offline."""
from __future__ import annotations

import io
import pickle
import time
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save, save_file

import vitviz.models as models
from vitviz.hub import reachability
from vitviz.layout import TokenLayout
from vitviz.models import BUNDLED_MODEL, CATALOGUE, ModelError, load_model, load_state_dict, resolve_name
from vitviz.models import loading as model_loading
from vitviz.models import weights as model_weights


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("VITVIZ_OFFLINE", "1")


def _tiny_state(seed: int = 5) -> dict:
    torch.manual_seed(seed)
    return timm.create_model("test_vit", pretrained=False).state_dict()


@pytest.mark.parametrize("key", [k for k in CATALOGUE if k != BUNDLED_MODEL])
def test_catalogue_entries_match_timm(key):
    spec = CATALOGUE[key]
    assert spec.timm_name in timm.list_models(pretrained=True)
    model = timm.create_model(spec.timm_name, pretrained=False, device="meta")
    layout = TokenLayout.from_model(model)
    assert layout.patch_size == (spec.patch_size, spec.patch_size)
    assert layout.input_size == (spec.input_size, spec.input_size)
    rows, cols = layout.grid_size
    prefix = spec.tokens.rsplit(" + ", 1)[0].replace("4 registers", "reg0 + reg1 + reg2 + reg3")
    assert spec.tokens.endswith(f"{rows}×{cols} patches")
    assert tuple(prefix.split(" + ")) == layout.prefix_names
    assert (getattr(model, "num_classes", 0) == 1000) == spec.imagenet


def test_catalogue_covers_the_layouts_users_ask_for():
    names = " ".join(spec.timm_name for spec in CATALOGUE.values())
    for needle in ("vit_tiny_patch16", "vit_small_patch16", "vit_small_patch32", "vit_base_patch16",
                   "vit_base_patch32", "deit_small_patch16", "deit_small_distilled", "deit3_small",
                   "patch8_224.dino", "patch16_224.dino", "patch14_dinov2", "reg4_dinov2", "flexivit_small"):
        assert needle in names


@pytest.mark.parametrize(
    "name, message",
    [
        ("vit_smal_patch16_224", "Did you mean vit_small_patch16_224"),
        ("swin_tiny_patch4_window7_224", "swin transformer model, not a plain Vision Transformer"),
        ("resnet50", "resnet model"),
        ("convnext_tiny", "convnext model"),
        ("definitely-not-a-model", "Unknown model"),
        ("   ", "No model name"),
    ],
)
def test_unknown_and_unsupported_names_say_what_would_work(name, message):
    with pytest.raises(ModelError, match=message):
        load_model(name)


def test_names_resolve_from_catalogue_key_timm_name_and_hf_hub():
    assert resolve_name("DeiT-S")[0] == "deit_small_patch16_224.fb_in1k"
    assert resolve_name("deit_small_patch16_224.fb_in1k")[1] is CATALOGUE["DeiT-S"]
    assert resolve_name("hf-hub:timm/vit_small_patch16_224.augreg_in21k") == (
        "hf-hub:timm/vit_small_patch16_224.augreg_in21k", None)
    assert resolve_name("eva02_tiny_patch14_224")[0] == "eva02_tiny_patch14_224"


def test_hub_is_the_default_when_reachable(monkeypatch):
    """Online, the weights are fetched by vitviz.hub from timm's repository, then timm builds from that file."""
    from vitviz import hub

    calls, fetched = [], []
    monkeypatch.setattr(model_loading, "hub_reachable", lambda timeout=2.0: True)
    monkeypatch.setattr(hub, "download", lambda repo, names, **kw: fetched.append((repo, names)) or
                        Path("/cache/model.safetensors"))

    def fake_create(name, pretrained, **kwargs):
        calls.append((name, pretrained, kwargs.get("pretrained_cfg_overlay")))
        return timm.create_model("test_vit", pretrained=False)

    monkeypatch.setattr(model_loading, "_create", fake_create)
    loaded = load_model("ViT-S/16 (AugReg)")
    assert fetched == [("timm/vit_small_patch16_224.augreg_in21k_ft_in1k", hub.WEIGHT_FILES)]
    assert calls == [("vit_small_patch16_224.augreg_in21k_ft_in1k", True, {"file": "/cache/model.safetensors"})]
    assert loaded.source == "hub" and "hub" in loaded.notice


def test_offline_is_detected_fast_without_env(monkeypatch):
    """A refused or unroutable connection answers within the timeout, and the answer is cached."""
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.delenv("VITVIZ_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    assert models.hub_reachable(timeout=2.0, refresh=True) is False
    assert time.perf_counter() - start < 3.0
    monkeypatch.setattr(reachability, "_connects", lambda host, timeout: pytest.fail("not cached"))
    assert models.hub_reachable() is False


def test_offline_hub_model_falls_back_to_bundled_model_quickly(offline, tmp_path, monkeypatch):
    if not (Path(models.__file__).parent.parent / "assets" / "shapes_vit.safetensors").exists():
        pytest.skip("the bundled vitviz-shapes weights are not built yet")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.perf_counter()
    with pytest.warns(models.FallbackWarning) as caught:
        loaded = load_model("ViT-S/16 (AugReg)")
    assert time.perf_counter() - start < 3.0 + 5.0  # well under timm's ~47 s of retries, model build included
    assert loaded.source == "bundled" and loaded.name == BUNDLED_MODEL
    assert loaded.requested == "ViT-S/16 (AugReg)" and loaded.fallback
    assert "unreachable" in loaded.notice and "offline" in loaded.notice
    assert [str(w.message) for w in caught] == [loaded.notice], "the notebook user is told, with the app's words"
    with pytest.raises(ModelError, match="unreachable"):
        load_model("ViT-S/16 (AugReg)", allow_fallback=False)


@pytest.mark.parametrize(
    "name, timm_name",
    [
        ("DINO ViT-S/16", "vit_small_patch16_224.dino"),
        ("DeiT-S distilled", "deit_small_distilled_patch16_224.fb_in1k"),
        ("deit_tiny_patch16_224.fb_in1k", "deit_tiny_patch16_224.fb_in1k"),
        ("hf-hub:timm/vit_base_patch32_224.augreg_in21k_ft_in1k",
         "hf-hub:timm/vit_base_patch32_224.augreg_in21k_ft_in1k"),
    ],
)
def test_offline_fallback_names_the_model_that_was_asked_for(offline, monkeypatch, name, timm_name):
    """The advice says how to get the model the user picked, never a fixed other model."""
    monkeypatch.setattr(model_loading, "_cached_hub_file", lambda name: None)
    monkeypatch.setattr(model_loading, "_bundled", lambda device, requested, notice, fallback=False: (notice, fallback))
    with pytest.warns(models.FallbackWarning, match="You asked for"):
        notice, fallback = load_model(name)
    notice = str(notice)  # a models.Notice: its sentence in the current language
    assert fallback
    assert f"timm.create_model('{timm_name}', pretrained=True)" in notice
    assert name in notice and "HF_ENDPOINT" in notice and "local weights file" in notice
    if "augreg" not in name:
        assert "augreg" not in notice
    with pytest.raises(ModelError) as info:
        load_model(name, allow_fallback=False)
    assert f"'{timm_name}'" in str(info.value)


def test_models_that_load_give_no_fallback_warning(offline):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", models.FallbackWarning)
        loaded = load_model("test_vit", pretrained=False)
    assert not loaded.fallback and loaded.requested == "test_vit"


def test_offline_uses_the_local_hub_cache(offline, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    state = _tiny_state()
    snapshot = tmp_path / "models--timm--test_vit.r160_in1k" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    save_file(state, str(snapshot / "model.safetensors"))
    (tmp_path / "models--timm--test_vit.r160_in1k" / "refs").mkdir()
    (tmp_path / "models--timm--test_vit.r160_in1k" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    loaded = load_model("test_vit")
    assert loaded.source == "hub-cache"
    torch.testing.assert_close(loaded.model.state_dict()["pos_embed"], state["pos_embed"])


def test_local_safetensors_and_plain_pth_load_the_same_weights(tmp_path):
    state = _tiny_state()
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": state}, tmp_path / "w.pth")
    x = torch.randn(1, 3, 160, 160)
    reference = timm.create_model("test_vit", pretrained=False).eval()
    reference.load_state_dict(state)
    expected = reference(x)
    for source in (tmp_path / "w.safetensors", tmp_path / "w.pth", save(state)):
        loaded = load_model("test_vit", weights=source)
        assert loaded.source == "local"
        torch.testing.assert_close(loaded.model(x), expected)


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_payload_in_pth_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"weights": _Payload(str(marker))}, evil)
    with pytest.raises(ModelError, match="Refused"):
        load_model("test_vit", weights=evil)
    raw = pickle.dumps(_Payload(str(marker)))
    with pytest.raises(ModelError):
        load_model("test_vit", weights=raw)
    assert not marker.exists()


def test_weights_for_another_architecture_are_a_clear_error(tmp_path):
    torch.manual_seed(0)
    other = timm.create_model("test_vit3", pretrained=False).state_dict()
    with pytest.raises(ModelError, match="do not fit .*wrong shape|do not fit .*missing|do not fit .*not part"):
        load_model("test_vit", weights=save(other))
    state = _tiny_state()
    state["pos_embed"] = state["pos_embed"][:, :50]
    state.pop("head.weight")
    with pytest.raises(ModelError, match="missing .*head.weight") as info:
        load_model("test_vit", weights=save(state))
    assert "Pick the model these weights were trained for" in str(info.value)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "empty"),
        (b"hello, I am not a weights file" * 10, "not a valid"),
        ("truncated-safetensors", "corrupt or truncated"),
        ("truncated-pth", "not a valid"),
    ],
)
def test_bad_weight_files_fail_cleanly(payload, message):
    if payload == "truncated-safetensors":
        data = save(_tiny_state())
        payload = data[: len(data) // 2]
    elif payload == "truncated-pth":
        buffer = io.BytesIO()
        torch.save(_tiny_state(), buffer)
        payload = buffer.getvalue()[:5000]
    with pytest.raises(ModelError, match=message):
        load_model("test_vit", weights=payload)


def test_huge_weight_file_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(model_weights, "MAX_WEIGHTS_BYTES", 1000)
    path = tmp_path / "big.safetensors"
    save_file(_tiny_state(), str(path))
    with pytest.raises(ModelError, match="at most"):
        load_state_dict(timm.create_model("test_vit", pretrained=False), path)


def test_loaded_model_is_ready_for_capture():
    loaded = load_model("test_vit", pretrained=False)
    assert not loaded.model.training
    assert all(not p.requires_grad for p in loaded.model.parameters())
    assert loaded.data_config["input_size"] == (3, 160, 160)
    assert loaded.labels is not None and len(loaded.labels) == 1000 and "goldfish" in loaded.labels[1].lower()
    assert str(loaded.device) == models.default_device()


def test_headless_models_have_no_labels():
    loaded = load_model("test_vit", pretrained=False, num_classes=0)
    assert loaded.labels is None


def test_data_config_follows_the_size_the_model_was_built_for():
    loaded = load_model("vit_small_patch14_reg4_dinov2", pretrained=False, img_size=98, depth=1)
    assert loaded.data_config["input_size"] == (3, 98, 98)  # the pretrained config says 518
