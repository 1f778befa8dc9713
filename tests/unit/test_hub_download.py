"""Hub downloads end to end, against a local hub on 127.0.0.1 (``tests/_localhub.py``), never the internet.

The catalogue model served is ``ViT-Ti/16 (AugReg)``: timm's real ``vit_tiny_patch16_224`` architecture
(5.7 M parameters, a 23 MB safetensors file) under the repository id timm expects for it, with seeded random
weights generated here. It is the smallest catalogue entry, so the whole path runs unchanged: catalogue key
→ timm's pretrained config → ``vitviz.hub`` → ``load_model``.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

import pytest

from tests._localhub import LocalHub
from vitviz.hub import reachability
from vitviz.models import loading as model_loading

CATALOGUE_KEY = "ViT-Ti/16 (AugReg)"
TIMM_NAME = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"
REPO = "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k"


# ------------------------------------------------------------------------------------------ fixtures


def _weights(name: str, seed: int) -> tuple[bytes, bytes, dict]:
    """(model.safetensors, config.json, state dict) of a seeded random timm model, as timm's own
    ``save_for_hf`` (behind ``push_to_hf_hub``) writes a hub repository."""
    import tempfile

    import timm
    import torch
    from timm.models._hub import save_for_hf

    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    with tempfile.TemporaryDirectory() as folder:
        save_for_hf(model, folder, safe_serialization=True)
        files = Path(folder)
        return (files / "model.safetensors").read_bytes(), (files / "config.json").read_bytes(), {
            k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="session")
def vit_tiny() -> tuple[bytes, bytes, dict]:
    return _weights("vit_tiny_patch16_224", seed=0)


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """Online, with an empty hub cache in ``tmp_path``; the endpoint is set by :func:`serve`."""
    import huggingface_hub.constants


    for var in ("VITVIZ_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read when it was imported
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(reachability, "_HUB_CHECK", {})
    return tmp_path / "hub"


@pytest.fixture
def serve(hub_env, monkeypatch, vit_tiny):
    """``serve(**faults)``: a started :class:`LocalHub` holding the catalogue repo, at ``HF_ENDPOINT``."""
    hubs: list[LocalHub] = []

    def _serve(**faults) -> LocalHub:
        local = LocalHub(**faults).start()
        hubs.append(local)
        weights, config, _ = vit_tiny
        local.add(REPO, "model.safetensors", weights)
        local.add(REPO, "config.json", config)
        monkeypatch.setenv("HF_ENDPOINT", local.endpoint)
        return local

    yield _serve
    for local in hubs:
        local.stop()


def _blobs(cache: Path) -> list[Path]:
    return sorted(p for p in cache.glob("models--*/blobs/*"))


def _assert_weights(model, state: dict) -> None:
    import torch

    got = model.state_dict()
    for key in ("cls_token", "pos_embed", "blocks.0.attn.qkv.weight", "head.weight"):
        torch.testing.assert_close(got[key].cpu(), state[key], rtol=0, atol=0)


# ------------------------------------------------------------------------------------------ the catalogue model


def test_catalogue_model_downloads_then_loads_from_the_cache_without_the_hub(serve, hub_env, vit_tiny):
    import huggingface_hub.constants

    from vitviz import hub, models
    from vitviz.models import load_model

    local = serve()
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


def test_progress_counts_bytes_up_to_the_size_of_the_file(serve, vit_tiny):
    from vitviz import hub

    serve()
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


def test_a_second_caller_joins_the_download_in_flight(serve):
    """Two sessions asking for the same file at once: one download, both see its progress and its file."""
    from vitviz import hub

    local = serve(throttle_s=0.002)
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


def test_a_download_cut_halfway_resumes_with_a_range_request_where_it_stopped(serve, vit_tiny):
    from vitviz import hub

    cut = 7_654_321  # about a third of the file
    local = serve(cut_after={"model.safetensors": cut})
    seen: list[hub.Progress] = []
    path = hub.download(REPO, "model.safetensors", on_progress=seen.append, limits=hub.Limits(backoff_s=0.01))
    gets = local.seen("GET", "cdn")
    assert [g.range for g in gets] == [None, f"bytes={cut}-"]  # every byte received is kept
    assert max(p.done for p in seen) == len(vit_tiny[0])  # the bar went on from where it stopped
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(vit_tiny[0]).hexdigest()


# ------------------------------------------------------------------------------------------ failures


def test_a_corrupted_file_is_refused_and_leaves_no_cache_entry(serve, hub_env, vit_tiny):
    from vitviz import hub
    from vitviz.models import ModelError, load_model

    local = serve(corrupt={"model.safetensors"})
    with pytest.raises(ModelError, match="damaged.*SHA-256.*removed from the cache") as info:
        load_model(CATALOGUE_KEY, device="cpu")
    assert "Traceback" not in str(info.value)
    assert _blobs(hub_env) == [] and model_loading._cached_hub_file(TIMM_NAME) is None
    assert not list(hub_env.glob("**/*.incomplete"))

    local.corrupt.clear()  # the mirror is fixed: the next try downloads it afresh
    path = hub.download(REPO, "model.safetensors")
    assert path.read_bytes() == vit_tiny[0] and len(local.seen("GET", "cdn")) == 2


def test_a_repository_the_hub_does_not_have_is_named(serve):
    from vitviz.models import ModelError, load_model

    serve()
    with pytest.raises(ModelError, match="no model repository named someone/nothing-here"):
        load_model("hf-hub:someone/nothing-here", device="cpu")


def test_a_file_the_repository_lacks_is_named_after_trying_each_name(serve):
    from vitviz import hub

    local = serve()
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
def test_a_file_larger_than_the_free_disk_is_refused_before_downloading(serve, hub_env, monkeypatch):
    import shutil

    from vitviz import hub

    serve()
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12, 1000))
    with pytest.raises(hub.DownloadError, match="Not enough disk space.*HF_HOME"):
        hub.download(REPO, "model.safetensors")
    assert _blobs(hub_env) == [] and not list(hub_env.glob("**/*.incomplete"))


def test_an_hf_hub_model_downloads_its_config_and_weights(serve, hub_env):
    """An ``hf-hub:`` name: config.json says which architecture, the weights fit it."""
    from vitviz.models import load_model

    local = serve()
    weights, config, state = _weights("test_vit", seed=1)
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


# ------------------------------------------------------------------------------------------ in the browser


@pytest.mark.browser
@pytest.mark.slow
def test_the_app_shows_download_progress_and_a_second_session_joins_it(serve, hub_env, tmp_path):
    """``streamlit run app.py`` against the local hub: opening ViT-Ti/16 shows a progress bar with bytes done
    of the total; a second browser session opened meanwhile shows the same download (one GET), then both
    show the model with hub weights."""
    import socket
    import subprocess
    import sys
    import time
    from urllib.parse import quote

    from tests.conftest import ROOT

    sync_api = pytest.importorskip("playwright.sync_api")
    chromium_path = os.environ.get("VITVIZ_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium_path).exists():
        pytest.skip(f"no Chromium at {chromium_path}")
    local = serve(throttle_s=0.2)  # held slow until both sessions show the download
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("VITVIZ_OFFLINE", "HF_HUB_OFFLINE")}
    env.update(HF_ENDPOINT=local.endpoint, HF_HUB_CACHE=str(hub_env), PYTHONUNBUFFERED="1")
    log = tmp_path / "streamlit.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    progress = re.compile(r"Downloading ViT-Ti/16 \(AugReg\) from 127\.0\.0\.1:\d+: model\.safetensors: "
                          rf"\d+(\.\d)? k?M?B of {len(local._repos[REPO]['model.safetensors'].data) / 1e6:.1f} MB")
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.3)
        url = f"http://127.0.0.1:{port}/?model={quote('ViT-Ti/16 (AugReg)')}"
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            tabs = []
            for _ in range(2):
                tab = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                tab.goto(url)
                tab.get_by_text(progress).wait_for(timeout=180_000)
                tabs.append(tab)
            SHOTS = ROOT / "artifacts" / "screenshots"
            SHOTS.mkdir(parents=True, exist_ok=True)
            tabs[1].get_by_text(progress).scroll_into_view_if_needed()
            tabs[1].screenshot(path=str(SHOTS / "hub_download_progress.png"))
            local.throttle_s = 0.0  # let it finish
            for tab in tabs:  # the sidebar's weights line: "Weights: pretrained, from the Hugging Face hub"
                tab.get_by_text("pretrained, from the Hugging Face hub").wait_for(timeout=180_000)
                assert tab.locator("[data-testid=stException]").count() == 0
                assert tab.get_by_text(progress).count() == 0  # the bar is gone once done
            tabs[0].screenshot(path=str(SHOTS / "hub_download_done.png"))
            browser.close()
        assert len(local.seen("GET", "cdn")) == 1  # the second session joined the first one's download
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_the_app_says_why_a_download_failed_and_stays_usable(serve):
    """A damaged download: the sidebar says so in words (no traceback), and another model still works."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import APP, APP_TIMEOUT_S

    serve(corrupt={"model.safetensors"})
    at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
    at.query_params["model"] = CATALOGUE_KEY
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    messages = [e.value for e in at.error]
    assert any("damaged" in m and "removed from the cache" in m for m in messages), messages
    at.selectbox(key="model").set_value("vitviz-shapes").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.get("plotly_chart")


@pytest.mark.slow
def test_the_app_gives_up_on_a_trickling_hub_with_a_message(serve, monkeypatch):
    """A hub that sends a byte every 0.3 s: the sidebar says the download stalled (after the stall timeout,
    here 1 s), no traceback, and nothing is left half-written."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import APP, APP_TIMEOUT_S

    monkeypatch.setenv("VITVIZ_HUB_STALL_TIMEOUT_S", "1")
    serve(trickle_s={"model.safetensors": 0.3})
    at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
    at.query_params["model"] = CATALOGUE_KEY
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    messages = [e.value for e in at.error]
    assert any("model.safetensors" in m and "stalled: less than 1.0 kB arrived in 1 s" in m for m in messages), messages
