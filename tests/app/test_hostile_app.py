"""Hostile inputs through the Streamlit app (``AppTest``, in-process): what a stranger can upload or type.

Every case asserts what the user sees: no exception element (``at.exception`` empty), an ``st.error`` whose
text is the library's clear message, and no server path or traceback in any error, warning or info text.
Untrusted weights are uploaded through the sidebar's weights uploader; a payload that would create a file
when unpickled must leave no file behind. The library-level twins of these tests are in
``test_hostile_library.py``; ``docs/security.md`` lists them all.

The app runs offline (``VITVIZ_OFFLINE=1``). Until the bundled ``vitviz-shapes`` weights ship, it is
``conftest.stand_in_shapes_model`` (as in ``conftest.app_model``); the tiny ``test_vit*`` names without
weights load random weights, so no test waits on the hub.
"""
from __future__ import annotations

import io
import os
import re
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from stat import S_ISREG
from typing import Any

import numpy as np
import pytest
import tomllib
import torch
from PIL import Image, PngImagePlugin
from safetensors.torch import save

import vitviz.models as models
from tests import _imagefactory as factory
from tests import _payloads as payloads
from tests._pages import app_pages
from vitviz.hub import reachability
from vitviz.images import ImageError, load_image
from vitviz.models import loading as model_loading
from vitviz.models import weights as model_weights

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
TIMEOUT_S = 240  # the first run imports torch and timm on a busy machine
OTHER_MODEL = "Other timm model…"

_ABSOLUTE_PATH = re.compile(r"(?:^|[\s'\"(\[=:,])/[\w.@-]+/")  # '/srv/app/...', not '.pth/.bin' or 'S/16'


def leaks(text: str) -> list[str]:
    """What in a message shown to a user would reveal the server: paths, tracebacks, errno strings."""
    found = [marker for marker in ("Traceback", 'File "', "[Errno", str(ROOT), tempfile.gettempdir() + "/",
                                   sys.prefix, str(Path.home()) + "/") if marker in text]
    return found + _ABSOLUTE_PATH.findall(text)


def shown_texts(at) -> list[str]:
    """Every error, warning, info and exception text the browser would receive."""
    texts = [e.value for e in (*at.error, *at.warning, *at.info)]
    for exc in at.exception:
        texts += [exc.message, *exc.stack_trace]
    return texts


def assert_clean(at) -> None:
    """No exception element, and nothing shown that reveals the server."""
    assert not at.exception, [(e.message, list(e.stack_trace)) for e in at.exception]
    for text in shown_texts(at):
        assert leaks(text) == [], f"{leaks(text)} in {text!r}"


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def charts(at) -> int:
    return len(at.main.get("plotly_chart"))


# ---------------------------------------------------------------------------------------------- setup


def _bundled_shipped() -> bool:
    assets = ROOT / "vitviz" / "assets"
    return (assets / "shapes_vit.safetensors").is_file() and (assets / "shapes_vit.json").is_file()


@pytest.fixture(scope="module")
def offline_models():
    """Offline, with conftest's stand-in for the bundled model until it ships, and ``test_vit*`` names
    without weights loading random weights (instead of falling back to the bundled model)."""
    from tests._apptest import stand_in_shapes_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VITVIZ_OFFLINE", "1")
        if not _bundled_shipped():
            import vitviz.shapes

            mp.setattr(vitviz.shapes, "load_shapes_model", stand_in_shapes_model, raising=False)
        real = models.load_model

        def stand_in(name: str, **kwargs: Any):
            if kwargs.get("weights") is None and name.startswith("test_vit"):
                torch.manual_seed(0)
                return real(name, pretrained=False)
            return real(name, **kwargs)

        mp.setattr(models, "load_model", stand_in)
        yield


def new_session(**query: str):
    """A fresh browser session on the app (optionally opened with URL query parameters)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


@pytest.fixture(scope="module")
def uploading(offline_models):
    """One session in 'Upload' mode, reused by the image tests (each sets its own upload)."""
    at = new_session()
    at.segmented_control(key="source").set_value("Upload").run()
    assert_clean(at)
    return at


@pytest.fixture(scope="module")
def custom_model(offline_models):
    """One session with 'Other timm model…' = test_vit, reused by the weights tests."""
    at = new_session()
    at.selectbox(key="model").set_value(OTHER_MODEL).run()
    at.text_input(key="timm").set_value("test_vit").run()
    assert_clean(at)
    assert charts(at) >= 1
    return at


def upload_image(at, name: str, data: bytes):
    return at.file_uploader(key="upload").set_value((name, data, "application/octet-stream")).run()


def upload_weights(at, name: str, data: bytes | None):
    uploader = at.file_uploader(key="weights")
    uploader.set_value(None if data is None else (name, data, "application/octet-stream"))
    return at.run()


# ------------------------------------------------------------------------------------------ bad images

BAD_IMAGES = {**{f"{name}.png": make for name, (make, _) in factory.BAD_UPLOADS.items()},
              "photo.heic": factory.make_heic, "drawing.svg": factory.make_svg}


@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_bad_image_upload_shows_the_clear_message(uploading, name):
    data = BAD_IMAGES[name]()
    with pytest.raises(ImageError) as expected:
        load_image(data)
    start = time.perf_counter()
    at = upload_image(uploading, name, data)
    assert time.perf_counter() - start < 30.0  # a hang guard (a bomb's pixels are never decoded)
    assert_clean(at)
    assert any(str(expected.value) in text for text in errors(at)), errors(at)
    assert charts(at) == 0  # the page stops: nothing is drawn from a bad file


def test_bomb_upload_is_refused_quickly_without_memory(uploading):
    data = factory.make_bomb_png(8_000, 8_000, valid_data=True)  # a real stream PIL itself would decode
    start = time.perf_counter()
    at = upload_image(uploading, "bomb.png", data)
    assert time.perf_counter() - start < 5.0
    assert_clean(at)
    assert any("too large" in text and "8000×8000" in text for text in errors(at)), errors(at)


def _upright_marker() -> Image.Image:
    return factory.make_marker_image((48, 64), markers=((4, 6),), marker_size=10)


ODD_IMAGES = {  # name: (file bytes, upright (height, width))
    "one-pixel.png": (lambda: factory.make_png((1, 1)), (1, 1)),
    "gray16.png": (lambda: factory.make_16bit_gray_png(np.arange(24 * 32).reshape(24, 32) * 80), (24, 32)),
    "cmyk.jpg": (lambda: factory.make_cmyk_jpeg(size=(20, 30)), (20, 30)),
    "palette-transparent.png": (lambda: factory.make_palette_png(transparent_index=1), (4, 6)),
    "animated.gif": (lambda: factory.make_animated_gif(size=(18, 26)), (18, 26)),
    "rotated-exif6.jpg": (lambda: factory.make_oriented_jpeg(_upright_marker(), 6), (48, 64)),
    "rotated-exif8.jpg": (lambda: factory.make_oriented_jpeg(_upright_marker(), 8), (48, 64)),
}


@pytest.mark.parametrize("name", list(ODD_IMAGES))
def test_odd_but_valid_images_are_drawn_upright(uploading, name):
    make, (height, width) = ODD_IMAGES[name]
    at = upload_image(uploading, name, make())
    assert_clean(at)
    assert errors(at) == []
    assert charts(at) >= 1
    captions = [caption.value for caption in at.main.caption]  # the Overview names the image under its patches
    assert any(f"{width}×{height} px" in c for c in captions), captions  # upright size, EXIF applied


def test_3x5000_strip_says_it_is_too_long_and_thin(uploading):
    strip = factory.encode(Image.new("RGB", (5000, 3), (200, 30, 60)), "PNG")
    at = upload_image(uploading, "strip.png", strip)
    assert_clean(at)
    assert any("too long and thin" in text for text in errors(at)), errors(at)


# ---------------------------------------------------------------------------------------- upload limit


def _config() -> dict:
    with open(ROOT / ".streamlit" / "config.toml", "rb") as f:
        return tomllib.load(f)


def test_upload_size_is_limited_in_the_server_config():
    limit = _config().get("server", {}).get("maxUploadSize")
    assert isinstance(limit, int), "server.maxUploadSize is not set in .streamlit/config.toml"
    assert 50 <= limit <= 1024  # MB: room for ViT-B/16 safetensors (~330 MB), far below the machine's memory
    assert limit * 2**20 <= models.MAX_WEIGHTS_BYTES  # the server's limit is the one that applies first


def test_server_never_shows_tracebacks_or_error_details():
    client = _config().get("client", {})
    assert client.get("showErrorDetails") in ("type", "none", False)


def test_readme_states_the_upload_limit():
    limit = _config()["server"]["maxUploadSize"]
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"\b{limit}\s?MB\b|maxUploadSize", readme)


# ----------------------------------------------------------------------------------- untrusted weights


_Touch, _Exec = payloads.Touch, payloads.Exec


def _torch_bytes(obj, **kwargs) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


def _tiny_state(name: str = "test_vit") -> dict:
    import timm

    torch.manual_seed(1)
    return timm.create_model(name, pretrained=False).state_dict()


def _evil(kind: str, marker: Path) -> bytes:
    if kind == "zip pth, os.system":
        return _torch_bytes({"state_dict": {**_tiny_state(), "x": _Touch(marker)}})
    if kind == "legacy pth, os.system":
        return _torch_bytes({"w": _Touch(marker)}, _use_new_zipfile_serialization=False)
    # a genuine torch zip checkpoint whose data.pkl is an exec payload
    source = zipfile.ZipFile(io.BytesIO(_torch_bytes({"w": torch.zeros(2)})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in source.infolist():
            payload = __import__("pickle").dumps(_Exec(marker), protocol=2)
            archive.writestr(info.filename, payload if info.filename.endswith("/data.pkl") else source.read(info))
    return out.getvalue()


@pytest.mark.parametrize("file_name", ["evil.pth", "evil.bin", "evil.safetensors"])
@pytest.mark.parametrize("kind", ["zip pth, os.system", "legacy pth, os.system", "zip pth, exec in data.pkl"])
def test_pickle_payload_upload_is_refused_and_never_runs(custom_model, tmp_path, kind, file_name):
    marker = tmp_path / "pwned"
    at = upload_weights(custom_model, file_name, _evil(kind, marker))
    assert not marker.exists(), "the uploaded file ran code on the server"
    assert_clean(at)
    assert any("Refused" in text or "not a valid" in text for text in errors(at)), errors(at)
    assert charts(at) == 0


def test_wrong_shapes_and_other_architectures_are_clear_errors(custom_model):
    at = upload_weights(custom_model, "vit3.safetensors", save(_tiny_state("test_vit3")))
    assert_clean(at)
    assert any("do not fit test_vit" in text and "wrong shape" in text for text in errors(at)), errors(at)
    alien = {"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(10, 8)}
    at = upload_weights(custom_model, "resnet.safetensors", save(alien))
    assert_clean(at)
    assert any("missing" in text and "conv1.weight" in text for text in errors(at)), errors(at)


@pytest.mark.parametrize("kind", ["safetensors", "pth"])
def test_truncated_weights_upload_fails_cleanly(custom_model, kind):
    data = save(_tiny_state()) if kind == "safetensors" else _torch_bytes(_tiny_state())
    at = upload_weights(custom_model, f"cut.{kind}", data[: len(data) // 2])
    assert_clean(at)
    assert any("corrupt or truncated" in text or "not a valid" in text for text in errors(at)), errors(at)


def test_oversized_weights_upload_is_refused(custom_model, monkeypatch):
    data = save(_tiny_state())
    monkeypatch.setattr(model_weights, "MAX_WEIGHTS_BYTES", len(data) - 1)
    at = upload_weights(custom_model, "big.safetensors", data)
    assert_clean(at)
    assert any("at most" in text for text in errors(at)), errors(at)


def test_good_weights_after_bad_ones_work_and_are_used(custom_model):
    """After refusals the session recovers: valid weights load and their model is the one shown."""
    upload_weights(custom_model, "evil.pth", _evil("zip pth, os.system", Path(tempfile.gettempdir()) / "never"))
    state = _tiny_state()
    at = upload_weights(custom_model, "good.safetensors", save(state))
    assert_clean(at)
    assert errors(at) == [] and charts(at) >= 1
    from vitviz_app import loaders

    loaded = loaders.load("test_vit", loaders.digest(save(state)))
    torch.testing.assert_close(loaded.model.state_dict()["pos_embed"], state["pos_embed"])
    upload_weights(custom_model, "", None)


def _poisoned(value: float) -> bytes:
    return save({k: torch.full_like(v, value) for k, v in _tiny_state().items()})


@pytest.mark.parametrize("page", app_pages(), ids=lambda p: p.name)
def test_nan_weights_never_crash_a_page(offline_models, page):
    """Weights that are all NaN parse and fit; each page warns that its maps mean nothing, and never crashes."""
    at = new_session(model=OTHER_MODEL, timm="test_vit")
    upload_weights(at, "nan.safetensors", _poisoned(float("nan")))
    if page.file:
        at.switch_page(page.file).run()
    assert_clean(at)
    assert any("NaN" in w.value for w in at.warning), [w.value for w in at.warning]


# ------------------------------------------------------------------------------- model names, offline

HOSTILE_NAMES = ["../../../../etc/passwd", "file:///etc/passwd", "vit_small_patch16_224; rm -rf ~",
                 "<script>alert(1)</script>", "__import__('os').system('id')", "x" * 5000, "resnet50",
                 "swin_tiny_patch4_window7_224", "vit_small_patch16_224.no_such_tag", "hf-hub:../../etc",
                 "hf-hub:a/b/c/d"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: n[:40])
def test_hostile_model_names_give_a_message_not_a_traceback(custom_model, name):
    at = custom_model
    at.text_input(key="timm").set_value(name).run()
    assert_clean(at)
    assert errors(at), "no message for an unusable model name"
    assert charts(at) == 0
    at.text_input(key="timm").set_value("test_vit").run()


def test_missing_bundled_weights_do_not_reveal_server_paths(offline_models, monkeypatch):
    """Offline, a hub model falls back to the bundled one; if its files are missing, say so without paths."""
    import vitviz.shapes
    import vitviz.shapes.model as shapes_model
    from vitviz_app import loaders

    def missing(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", str(shapes_model.CONFIG_PATH))

    monkeypatch.setattr(vitviz.shapes, "load_shapes_model", missing, raising=False)
    monkeypatch.setattr(model_loading, "_cached_hub_file", lambda name: None)
    loaders.load.clear()
    at = new_session(model="ViT-S/16 (AugReg)")
    loaders.load.clear()
    assert any("vitviz-shapes model is missing or damaged" in text for text in errors(at)), errors(at)
    assert_clean(at)


def test_hub_check_runs_once_across_reruns_pages_and_sessions(offline_models, monkeypatch):
    """Deciding that the hub is unreachable costs one bounded connection per server, not one per rerun."""
    monkeypatch.delenv("VITVIZ_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(reachability, "_HUB_CHECK", {})
    calls: list[float] = []
    monkeypatch.setattr(reachability, "_connects", lambda host, timeout: calls.append(timeout) or False)
    at = new_session()
    for page in [p for p in app_pages() if p.file][:3]:
        at.switch_page(page.file).run()
    at.selectbox(key="image").set_value("coffee").run()
    second = new_session()
    second.run()
    assert_clean(at)
    assert_clean(second)
    assert calls == [2.0], calls


@pytest.mark.parametrize(
    "query",
    [
        {"image": "../../../../etc/passwd"},
        {"source": "Upload<script>", "model": "../models"},
        {"model": OTHER_MODEL, "timm": "../../../../etc/passwd"},
        {"attn_layer": "1e999", "attn_head": "Head -1", "attn_row": "-5", "attn_col": "nan"},
        {"ro_discard": "2.5", "ro_start": "-3", "ro_class": "999999"},
    ],
    ids=["sample path", "source and model", "timm path", "attention numbers", "rollout numbers"],
)
def test_hostile_url_parameters_fall_back_or_explain(offline_models, query):
    page = "pages/rollout.py" if "ro_start" in query else "pages/attention.py"
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(page).run()
    assert_clean(at)


# ---------------------------------------------------------------------------------- files on the disk


def _changed_since(start: float, roots: list[Path]) -> list[Path]:
    """Files under ``roots`` modified at or after ``start`` (skipping caches other tools write)."""
    changed = []
    for root in roots:
        if not root.is_dir():
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in (".git", "__pycache__", ".pytest_cache", "node_modules")]
            for name in files:
                path = Path(folder, name)
                try:
                    stat = path.lstat()
                except OSError:  # removed meanwhile (other processes share these folders)
                    continue
                if S_ISREG(stat.st_mode) and stat.st_mtime >= start and stat.st_size < 200 * 2**20:
                    changed.append(path)
    return changed


def _holds(path: Path, token: str) -> bool:
    """Whether the file's name or bytes contain ``token`` (a file that vanished or cannot be read does not)."""
    if token in path.name:
        return True
    try:
        return token.encode() in path.read_bytes()
    except OSError:
        return False


def test_uploads_leave_no_file_on_the_server(offline_models):
    """Upload a photo and a weights file marked with a unique token; no file anywhere may hold the token."""
    token = uuid.uuid4().hex
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", token)
    photo = factory.encode(factory.make_marker_image((64, 80)), "PNG", pnginfo=info)
    weights_data = save(_tiny_state(), metadata={"comment": token})
    start = time.time() - 1
    at = new_session(source="Upload")
    upload_image(at, f"photo-{token}.png", photo)
    assert charts(at) >= 1
    at.selectbox(key="model").set_value(OTHER_MODEL).run()
    at.text_input(key="timm").set_value("test_vit").run()
    upload_weights(at, f"weights-{token}.safetensors", weights_data)
    at.switch_page("pages/attention.py").run()
    assert_clean(at)
    roots = [ROOT, Path(tempfile.gettempdir()), Path.home() / ".streamlit", Path.home() / ".cache"]
    holding = [p for p in _changed_since(start, roots) if _holds(p, token)]
    assert holding == [], f"uploaded data written to {holding}"
