"""Hub downloads end to end, against a local hub on 127.0.0.1 (``tests/_localhub.py``), never the internet.

The catalogue model served is ``ViT-Ti/16 (AugReg)`` with seeded random weights (``tests/_localhub.py``, served by
the ``catalogue_hub`` fixture). The app against the same hub: ``tests/app/test_app_hub.py`` and
``tests/browser/test_browser_hub.py``.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from tests._localhub import CATALOGUE_KEY, REPO, TIMM_NAME, LocalHub, timm_repo_files
from vitviz.hub import reachability
from vitviz.models import loading as model_loading


def _blobs(cache: Path) -> list[Path]:
    return sorted(p for p in cache.glob("models--*/blobs/*"))


def _assert_weights(model, state: dict) -> None:
    import torch

    got = model.state_dict()
    for key in ("cls_token", "pos_embed", "blocks.0.attn.qkv.weight", "head.weight"):
        torch.testing.assert_close(got[key].cpu(), state[key], rtol=0, atol=0)


# ------------------------------------------------------------------------------------------ the catalogue model


def test_catalogue_model_downloads_then_loads_from_the_cache_without_the_hub(catalogue_hub, hub_env, vit_tiny):
    import huggingface_hub.constants

    from vitviz import hub, models
    from vitviz.models import load_model

    local = catalogue_hub()
    assert huggingface_hub.constants.ENDPOINT != local.endpoint  # read at import: vitviz must pass it itself
    loaded = load_model(CATALOGUE_KEY, device="cpu")
    assert loaded.source == "hub" and loaded.name == TIMM_NAME
    _assert_weights(loaded.model, vit_tiny[2])
    assert len(local.seen("GET", "cdn")) == 1
    assert [b.name for b in _blobs(hub_env)] == [local.sha256(REPO, "model.safetensors")]

    again = hub.download(REPO, "model.safetensors")  # cached: asks the hub, downloads nothing
    assert again.stat().st_size == len(vit_tiny[0]) and len(local.seen("GET", "cdn")) == 1

    local.stop()
    reachability._HUB_CHECK.clear()
    assert models.hub_reachable(timeout=1.0) is False  # the endpoint's own port is closed now
    offline = load_model(CATALOGUE_KEY, device="cpu", allow_fallback=False)
    assert offline.source == "hub-cache"
    _assert_weights(offline.model, vit_tiny[2])


def test_progress_counts_bytes_up_to_the_size_of_the_file(catalogue_hub, vit_tiny):
    from vitviz import hub

    catalogue_hub()
    seen: list[hub.Progress] = []
    path = hub.download(REPO, "model.safetensors", on_progress=seen.append)
    size = len(vit_tiny[0])
    assert path.stat().st_size == size
    sized = [p for p in seen if p.total is not None]
    assert sized and all(p.total == size for p in sized)
    done = [p.done for p in sized]
    assert done == sorted(done) and done[0] == 0 and done[-1] == size
    assert seen[-1].finished and seen[-1].fraction == 1.0
    assert f"of {size / 1e6:.1f} MB" in seen[-1].describe()


def test_a_second_caller_joins_the_download_in_flight(catalogue_hub):
    """Two sessions asking for the same file at once: one download, both see its progress and its file."""
    from vitviz import hub

    local = catalogue_hub(throttle_s=0.002)
    first = hub.start(REPO, "model.safetensors")
    second = hub.start(REPO, "model.safetensors")
    assert second is first and hub.in_flight() == [first]
    paths, views = [], []
    threads = [threading.Thread(target=lambda: paths.append(hub.download(REPO, "model.safetensors",
                                                                         on_progress=views.append)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert first.result(60) == paths[0] == paths[1]
    assert len(local.seen("GET", "cdn")) == 1
    assert hub.in_flight() == []


def test_a_download_cut_halfway_resumes_with_a_range_request_where_it_stopped(catalogue_hub, vit_tiny):
    from vitviz import hub

    cut = 7_654_321  # about a third of the file
    local = catalogue_hub(cut_after={"model.safetensors": cut})
    seen: list[hub.Progress] = []
    path = hub.download(REPO, "model.safetensors", on_progress=seen.append, limits=hub.Limits(backoff_s=0.01))
    gets = local.seen("GET", "cdn")
    assert [g.range for g in gets] == [None, f"bytes={cut}-"]  # every byte received is kept
    assert max(p.done for p in seen) == len(vit_tiny[0])  # the bar went on from where it stopped
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(vit_tiny[0]).hexdigest()


# ------------------------------------------------------------------------------------------ failures


def test_a_corrupted_file_is_refused_and_leaves_no_cache_entry(catalogue_hub, hub_env, vit_tiny):
    from vitviz import hub
    from vitviz.models import ModelError, load_model

    local = catalogue_hub(corrupt={"model.safetensors"})
    with pytest.raises(ModelError, match="damaged.*SHA-256.*removed from the cache") as info:
        load_model(CATALOGUE_KEY, device="cpu")
    assert "Traceback" not in str(info.value)
    assert _blobs(hub_env) == [] and model_loading._cached_hub_file(TIMM_NAME) is None
    assert not list(hub_env.glob("**/*.incomplete"))

    local.corrupt.clear()  # the mirror is fixed: the next try downloads it afresh
    path = hub.download(REPO, "model.safetensors")
    assert path.read_bytes() == vit_tiny[0] and len(local.seen("GET", "cdn")) == 2


def test_a_repository_the_hub_does_not_have_is_named(catalogue_hub):
    from vitviz.models import ModelError, load_model

    catalogue_hub()
    with pytest.raises(ModelError, match="no model repository named someone/nothing-here"):
        load_model("hf-hub:someone/nothing-here", device="cpu")


def test_a_file_the_repository_lacks_is_named_after_trying_each_name(catalogue_hub):
    from vitviz import hub

    local = catalogue_hub()
    with pytest.raises(hub.DownloadError, match=r"has no weights\.safetensors or weights\.bin\.$"):
        hub.download(REPO, ("weights.safetensors", "weights.bin"))
    assert [r.path.rsplit("/", 1)[-1] for r in local.seen("HEAD")] == ["weights.safetensors", "weights.bin"]


def test_a_network_failure_says_so_and_leaves_nothing(hub_env, monkeypatch):
    from vitviz import hub

    local = LocalHub().start()
    endpoint = local.endpoint
    local.stop()  # nobody listens there now
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    with pytest.raises(hub.DownloadError, match="network failed.*HF_ENDPOINT"):
        hub.download(REPO, "model.safetensors", timeout=60)
    assert _blobs(hub_env) == []


@pytest.mark.filterwarnings("ignore:Not enough free disk space")
def test_a_file_larger_than_the_free_disk_is_refused_before_downloading(catalogue_hub, hub_env, monkeypatch):
    import shutil

    from vitviz import hub

    catalogue_hub()
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12, 1000))
    with pytest.raises(hub.DownloadError, match="Not enough disk space.*HF_HOME"):
        hub.download(REPO, "model.safetensors")
    assert _blobs(hub_env) == [] and not list(hub_env.glob("**/*.incomplete"))


def test_an_hf_hub_model_downloads_its_config_and_weights(catalogue_hub, hub_env):
    """An ``hf-hub:`` name: config.json says which architecture, the weights fit it."""
    from vitviz.models import load_model

    local = catalogue_hub()
    weights, config, state = timm_repo_files("test_vit", seed=1)
    local.add("someone/tiny-vit", "config.json", config)
    local.add("someone/tiny-vit", "model.safetensors", weights)
    loaded = load_model("hf-hub:someone/tiny-vit", device="cpu")
    assert loaded.source == "hub"
    _assert_weights(loaded.model, state)
    heads = {(r.method, r.path.rsplit("/", 1)[-1]) for r in local.seen(server="hub")}
    assert {("HEAD", "config.json"), ("HEAD", "model.safetensors")} <= heads


# ------------------------------------------------------------------------------------------ units


def test_progress_line_is_hand_checked():
    from vitviz.hub import Progress

    p = Progress("r", "model.safetensors", done=12_300_000, total=22_900_000, elapsed_s=3.0, received=12_300_000)
    # 12.3 MB in 3 s = 4.1 MB/s; 10.6 MB left at 4.1 MB/s = 2.6 s
    assert p.describe() == "model.safetensors: 12.3 MB of 22.9 MB · 4.1 MB/s · 3 s left · 3 s elapsed"
    assert Progress("r", "config.json").describe() == "config.json: asking the hub…"
    assert Progress("r", "config.json", waiting_s=4.2).describe() == "config.json: asking the hub… 4 s"
    waiting = Progress("r", "m", done=3, total=3_100_000, elapsed_s=65.0, received=3, waiting_s=12.4)
    assert waiting.describe().startswith("m: 3 B of 3.1 MB · waiting for data 12 s · ")
    assert waiting.describe().endswith(" left · 1 min 05 s elapsed")
    done = Progress("r", "m", done=10, total=10, elapsed_s=5.0, received=10, finished=True, waiting_s=9.0)
    assert done.describe() == "m: 10 B of 10 B · 2 B/s"  # an ended download neither waits nor counts
    resumed = Progress("r", "f", done=600, total=1000, elapsed_s=2.0, received=100)
    assert resumed.speed == 50 and resumed.eta_s == 8 and resumed.fraction == 0.6


def test_endpoint_and_cache_are_read_from_the_environment_now(monkeypatch, tmp_path):
    from vitviz import hub

    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example/")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert hub.endpoint() == "https://hf-mirror.example"
    assert hub.cache_dir() == os.path.join(str(tmp_path), "hub")
    assert reachability._hub_host() == ("hf-mirror.example", 443)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:8123")
    assert reachability._hub_host() == ("127.0.0.1", 8123)
