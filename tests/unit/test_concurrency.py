"""Many users at once: sessions sharing one cached model each see exactly their own maps.

Streamlit keeps one model object per server (``st.cache_resource``) and runs every browser session in its
own thread, so eight people exploring at once means eight threads capturing attention on one model while
others re-patch it or run it plainly. Each thread's results must equal what it gets alone (computed
sequentially first), nothing may deadlock (every join has a deadline), and the shared model must come out
exactly as it went in.

Library level: threads calling ``vitviz.capture.capture`` and the analyses on one model.
App level: eight ``AppTest`` sessions run from threads in one process, sharing the app's caches.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests import _imagefactory as factory
from vitviz.analysis import attention_grid, attention_map, mean_attention_distance, rollout, with_patch_size
from vitviz.capture import capture
from vitviz.images import load_image, prepare_input
from vitviz.models import load_model

SESSIONS = 8
DEADLINE_S = 180.0  # per join: far beyond the seconds this takes; only a deadlock reaches it


def run_together(work: Callable[[int], Any], n: int = SESSIONS) -> list[Any]:
    """Run ``work(i)`` for i < n in n threads released at once; re-raise the first error; fail on a hang."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=DEADLINE_S)
            results[i] = work(i)
        except BaseException as exc:  # reported below, with the thread's index
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,), daemon=True, name=f"session-{i}") for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE_S)
    assert not any(t.is_alive() for t in threads), "a session never finished: deadlock"
    if errors:
        raise errors[0]
    return results


# ------------------------------------------------------------------------------------------ library


@pytest.fixture(scope="module")
def shared():
    """One model for every thread, as the app's st.cache_resource gives it (test_vit, random weights)."""
    torch.manual_seed(0)
    return load_model("test_vit", pretrained=False)


def _session_image(i: int) -> Image.Image:
    """A different photo per session: a marker at a different place on a different background."""
    picture = factory.make_marker_image((120 + 8 * i, 160), markers=((10 + 9 * i, 12 + 15 * i),), marker_size=24,
                                        background=(20 * i, 90, 200 - 20 * i))
    return load_image(factory.encode(picture, "PNG"))


def _session_settings(i: int) -> dict[str, Any]:
    """Different settings per session: storage, gradient target, layer, head, query, fusion, discard."""
    return dict(
        storage=("full", "qk", "auto")[i % 3],
        target=7 * i if i % 4 == 3 else None,
        layer=i % 6,
        head=(0, 1, "mean", "max")[i % 4],
        query=("cls", (i % 10, (3 * i) % 10))[i % 2],
        fusion=("mean", "max", "min")[i % 3],
        discard=(0.0, 0.5)[i % 2],
    )


def _session(loaded, i: int) -> dict[str, np.ndarray]:
    """What one app session computes: its input, capture and every view, as arrays."""
    s = _session_settings(i)
    x, _ = prepare_input(_session_image(i), loaded.data_config)
    storage = "full" if s["target"] is not None else s["storage"]
    cap = capture(loaded.model, x, target=s["target"], storage=storage)
    out = {
        "output": cap.output.numpy(),
        "map": attention_map(cap, s["layer"], s["head"], s["query"]).patches,
        "grid": attention_grid(cap, s["query"]),
        "rollout": rollout(cap, head_fusion=s["fusion"], discard_ratio=s["discard"]).maps,
        "distance": mean_attention_distance(cap),
    }
    if s["target"] is not None:
        out["grad"] = cap.attention_grad(-1).numpy()
    return out


def _assert_same(together: dict, alone: dict) -> None:
    assert together.keys() == alone.keys()
    for key in alone:
        np.testing.assert_allclose(together[key], alone[key], rtol=1e-4, atol=1e-6, err_msg=key)


def _flags_and_hooks(model: torch.nn.Module) -> tuple[list[bool], int, bool]:
    flags = [bool(block.attn.fused_attn) for block in model.blocks]
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    return flags, hooks, model.training


def test_eight_threads_on_one_model_each_get_their_own_maps(shared):
    before = _flags_and_hooks(shared.model)
    alone = [_session(shared, i) for i in range(SESSIONS)]
    for _ in range(2):  # two rounds: the second starts with every thread's caches warm
        together = run_together(lambda i: _session(shared, i))
        for i in range(SESSIONS):
            _assert_same(together[i], alone[i])
    # the sessions really differ, so a swapped result could not pass the comparison above
    outputs = np.stack([a["output"][0] for a in alone])  # (8, C)
    gaps = np.abs(outputs[:, None] - outputs[None]).max(-1)  # (8, 8)
    assert (gaps + np.eye(SESSIONS) * 1e9).min() > 1e-3
    assert _flags_and_hooks(shared.model) == before


def test_plain_forwards_and_captures_interleave_correctly(shared):
    """Half the threads run the model plainly (as a notebook might), half capture: both stay correct."""
    inputs = [prepare_input(_session_image(i), shared.data_config)[0] for i in range(SESSIONS)]
    with torch.no_grad():
        plain = [shared.model(x) for x in inputs]
    alone = [capture(shared.model, x).attention(-1) for x in inputs]

    def work(i: int):
        if i % 2:
            with torch.no_grad():
                return shared.model(inputs[i])
        return capture(shared.model, inputs[i]).attention(-1)

    together = run_together(work)
    for i in range(SESSIONS):
        expected = plain[i] if i % 2 else alone[i]
        torch.testing.assert_close(together[i], expected, rtol=1e-4, atol=1e-5)


def test_repatching_the_shared_model_during_a_capture_copies_no_hooks(shared):
    """The app's 'repatched' copies the shared model (deepcopy) while other sessions may be capturing on it.

    The copy is cached and shared too, so it must not carry a recorder's hooks (which keep that capture's
    tensors alive) nor the temporarily switched-off fused attention.
    """
    model = shared.model
    expected_flags = [bool(b.attn.fused_attn) for b in model.blocks]
    inside, release = threading.Event(), threading.Event()

    def hold(_module, _args):  # blocks the capture thread in the middle of its forward pass
        if threading.current_thread().name == "capturing":
            inside.set()
            release.wait(timeout=DEADLINE_S)

    handle = model.blocks[3].register_forward_pre_hook(hold)
    x = prepare_input(_session_image(0), shared.data_config)[0]
    worker = threading.Thread(target=lambda: capture(model, x, storage="full"), name="capturing", daemon=True)
    try:
        worker.start()
        assert inside.wait(timeout=DEADLINE_S)
        threading.Timer(1.0, release.set).start()  # with_patch_size waits for the capture's lock meanwhile
        copy = with_patch_size(model, 8)
    finally:
        release.set()
        worker.join(timeout=DEADLINE_S)
        handle.remove()
    assert not worker.is_alive()
    leftover = [name for name, m in copy.named_modules()
                for hook in [*m._forward_hooks.values(), *m._forward_pre_hooks.values()] if hook is not hold]
    assert leftover == [], "the copy carries a recorder's hooks"
    assert [bool(b.attn.fused_attn) for b in copy.blocks] == expected_flags


def test_the_apps_repatched_copy_waits_for_a_capture_in_flight(shared):
    """``vitviz_app.loaders.repatched`` (the Patches page's slider) copies the shared model under its capture
    lock: made while another session captures, the copy still has no hooks and the model's own flags."""
    import uuid

    from vitviz_app import loaders

    model = shared.model
    expected_flags = [bool(b.attn.fused_attn) for b in model.blocks]
    inside, release = threading.Event(), threading.Event()

    def hold(_module, _args):
        if threading.current_thread().name == "capturing":
            inside.set()
            release.wait(timeout=DEADLINE_S)

    handle = model.blocks[3].register_forward_pre_hook(hold)
    x = prepare_input(_session_image(0), shared.data_config)[0]
    worker = threading.Thread(target=lambda: capture(model, x, storage="full"), name="capturing", daemon=True)
    copies: list = []
    copier = threading.Thread(target=lambda: copies.append(loaders.repatched(uuid.uuid4().hex, 8, shared)),
                              daemon=True)
    try:
        worker.start()
        assert inside.wait(timeout=DEADLINE_S)
        copier.start()
        copier.join(timeout=1.0)  # it waits for the lock (or would fail at once without it)
    finally:
        release.set()
        worker.join(timeout=DEADLINE_S)
        copier.join(timeout=DEADLINE_S)
        handle.remove()
    assert not worker.is_alive() and not copier.is_alive()
    assert len(copies) == 1, "the copy failed (see the thread's exception above)"
    copy = copies[0]
    hooks = [name for name, m in copy.named_modules()
             for hook in [*m._forward_hooks.values(), *m._forward_pre_hooks.values()] if hook is not hold]
    assert hooks == []
    assert [bool(b.attn.fused_attn) for b in copy.blocks] == expected_flags
    assert tuple(copy.patch_embed.patch_size) == (8, 8)


# ---------------------------------------------------------------------------------------------- app
#
# AppTest cannot run from several threads at once (each run creates and tears down Streamlit's process-wide
# Runtime singleton: "Runtime hasn't been created!"), so the app-level test drives eight headless Chromium
# sessions against one real `streamlit run app.py` server, which is what strangers reach anyway. Each
# session uploads its own photo, some open the Rollout page with their own settings, and downloads the
# page's arrays (.npz); those must equal the library's maps for that photo and those settings.

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]

# Until vitviz-shapes ships, the server gets the same stand-in as the AppTest suite (tests/conftest.py).
_SITECUSTOMIZE = '''
import sys
import vitviz.shapes
sys.path.insert(0, {tests!r})
from conftest import stand_in_shapes_model
vitviz.shapes.load_shapes_model = stand_in_shapes_model
'''


def _bundled_shipped() -> bool:
    assets = ROOT / "vitviz" / "assets"
    return (assets / "shapes_vit.safetensors").is_file() and (assets / "shapes_vit.json").is_file()


@pytest.fixture
def reference_model(monkeypatch):
    """The model the server loads by default offline: vitviz-shapes (or, until it ships, the same stand-in)."""
    if not _bundled_shipped():
        from conftest import stand_in_shapes_model

        import vitviz.shapes

        monkeypatch.setattr(vitviz.shapes, "load_shapes_model", stand_in_shapes_model, raising=False)
    return load_model("vitviz-shapes")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One `streamlit run app.py` on a free local port, offline; stopped (by its pid) after the module."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "VITVIZ_OFFLINE": "1"}
    if not _bundled_shipped():
        (site / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(tests=str(ROOT / "tests")))
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(site / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address",
         "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (site / "server.log").read_text()
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _browser_session_plan(i: int) -> dict[str, Any]:
    """Session i's page, URL settings and the download that holds its maps."""
    if i % 2 == 0:
        return dict(path="", query="source=Upload", download="overview-download", fusion="mean", discard=0.0)
    fusion, discard = [("max", 0.5), ("min", 0.0), ("mean", 0.75), ("max", 0.0)][i // 2]
    return dict(path="rollout", query=f"source=Upload&ro_fusion={fusion.capitalize()}&ro_discard={discard}",
                download="ro-download", fusion=fusion, discard=discard)


def _photo_bytes(i: int) -> bytes:
    return factory.encode(factory.make_marker_image(
        (120 + 8 * i, 160), markers=((10 + 9 * i, 12 + 15 * i),), marker_size=24,
        background=(20 * i, 90, 200 - 20 * i)), "PNG")


async def _browse(browser, url: str, i: int) -> bytes:
    """Open the app, upload session i's photo, wait for the page to finish, download its arrays."""
    plan = _browser_session_plan(i)
    context = await browser.new_context(accept_downloads=True)
    try:
        page = await context.new_page()
        await page.goto(f"{url}/{plan['path']}?{plan['query']}", timeout=180_000)
        uploader = page.locator('.st-key-upload input[type="file"]')
        await uploader.wait_for(state="attached", timeout=180_000)
        await uploader.set_input_files(files=[{"name": f"session{i}.png", "mimeType": "image/png",
                                               "buffer": _photo_bytes(i)}])
        button = page.locator(f".st-key-{plan['download']}").get_by_role("button", name="Download arrays (.npz)")
        await button.wait_for(timeout=180_000)
        # The button is on the page before the upload's rerun starts: a click in between downloads the sample's
        # arrays, or is cancelled when that rerun replaces the file. Download until it is this upload's.
        from playwright.async_api import Error as PlaywrightError

        from vitviz_app.downloads import read_npz

        data = b""
        for _attempt in range(6):
            await page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=180_000)
            try:
                async with page.expect_download(timeout=180_000) as download_info:
                    await button.click()
                download = await download_info.value
                data = __import__("pathlib").Path(await download.path()).read_bytes()
            except PlaywrightError as exc:  # "Download.path: canceled": a rerun replaced the file
                if "canceled" not in str(exc):
                    raise
            else:
                if read_npz(data)[1].get("image") == f"upload: session{i}.png":
                    return data
            await page.wait_for_timeout(1_000)
        return data
    finally:
        await context.close()


def _browse_all(url: str, n: int) -> list[bytes]:
    import asyncio

    from playwright.async_api import async_playwright

    async def main() -> list[bytes]:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                return await asyncio.wait_for(asyncio.gather(*(_browse(browser, url, i) for i in range(n))),
                                              timeout=DEADLINE_S * 2)
            finally:
                await browser.close()

    return asyncio.run(main())


@pytest.mark.browser
@pytest.mark.slow
def test_eight_browser_sessions_at_once_each_see_their_own_maps(server, reference_model):
    """Eight people on one server at once, on one cached model: each downloads exactly its own maps."""
    pytest.importorskip("playwright")
    if not __import__("os").path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from vitviz.analysis import gradient_rollout
    from vitviz_app.downloads import read_npz

    downloads = _browse_all(server, SESSIONS)
    loaded = reference_model
    for i, data in enumerate(downloads):
        plan = _browser_session_plan(i)
        arrays, settings = read_npz(data)
        assert settings["image"] == f"upload: session{i}.png"
        x, _ = prepare_input(load_image(_photo_bytes(i)), loaded.data_config)
        cap = capture(loaded.model, x)
        expected = rollout(cap, head_fusion=plan["fusion"], discard_ratio=plan["discard"]).maps
        np.testing.assert_allclose(arrays["rollout_maps"], expected, rtol=1e-4, atol=1e-6, err_msg=f"session {i}")
        assert settings.get("head_fusion") == plan["fusion"] and settings.get("discard_ratio") == plan["discard"]
        if plan["path"] == "rollout":  # test_vit has a classifier: the class-specific map is there too
            target = int(torch.argmax(cap.output[0]))
            assert settings["gradient_target"] == target
            grad = gradient_rollout(capture(loaded.model, x, target=target)).maps
            np.testing.assert_allclose(arrays["gradient_rollout_maps"], grad, rtol=1e-4, atol=1e-6)
        if plan["path"] == "":
            probabilities = torch.softmax(cap.output[0].double(), -1).numpy()
            np.testing.assert_allclose(arrays["probabilities"], probabilities, rtol=1e-5, atol=1e-9)
