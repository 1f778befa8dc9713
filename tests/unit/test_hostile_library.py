"""Hostile inputs through the library: bad images, decompression bombs, untrusted weights, odd model names.

The app is a server strangers may reach. Whatever they upload or type, ``vitviz`` must answer with an
``ImageError`` / ``ModelError`` whose message a person can act on (no server path, no traceback), never
run code from a file, never spend seconds or hundreds of megabytes on a file that claims to be huge, and
never hang on an unreachable hub. The same inputs through the Streamlit app are in ``test_hostile_app.py``;
``docs/security.md`` lists them all.

Memory is measured in a subprocess from ``/proc/self/status`` (VmHWM, the peak resident set) after
resetting the peak with ``/proc/self/clear_refs``, with a control that shows the measurement sees a real
decode.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save

import vitviz.models as models
from tests import _imagefactory as factory
from tests import _payloads as payloads
from vitviz.capture import capture
from vitviz.hub import reachability
from vitviz.images import ImageError, load_image, prepare_input
from vitviz.models import ModelError, load_model
from vitviz.models import loading as model_loading
from vitviz.models import weights as model_weights

REPO = Path(__file__).resolve().parents[2]
MODEL = "test_vit"  # timm's tiny registered ViT: 6 layers, 2 heads, 160 px input, 16 px patches

_ABSOLUTE_PATH = re.compile(r"(?:^|[\s'\"(\[=:,])/[\w.@-]+/")  # '/srv/app/...', not '.pth/.bin' or 'S/16'


def leaks(text: str) -> list[str]:
    """What in a message shown to a user would reveal the server: paths, tracebacks, errno strings."""
    found = [marker for marker in ("Traceback", 'File "', "[Errno", str(REPO), tempfile.gettempdir() + "/",
                                   sys.prefix, str(Path.home()) + "/") if marker in text]
    found += _ABSOLUTE_PATH.findall(text)
    return found


def clear_message(exc: Exception) -> str:
    """The exception's message, checked to be a sentence with nothing of the server in it."""
    message = str(exc)
    assert message and (message[0].isupper() or message[0] in "'\"") and message.rstrip().endswith((".", "?", ")"))
    assert leaks(message) == [], f"message leaks {leaks(message)}: {message}"
    return message


@pytest.fixture(scope="module")
def tiny():
    """A shared random-weight test_vit with its data config (as ``load_model`` would give it)."""
    loaded = load_model(MODEL, pretrained=False)
    return loaded.model, loaded.data_config


# ------------------------------------------------------------------------------------------ bad images


@pytest.mark.parametrize("name", sorted(factory.BAD_UPLOADS))
def test_every_bad_upload_is_a_clear_image_error(name):
    make, reason = factory.BAD_UPLOADS[name]
    with pytest.raises(ImageError) as info:
        load_image(make())
    assert info.value.reason == reason
    clear_message(info.value)


@pytest.mark.parametrize(
    "make, fmt",
    [(factory.make_heic, "HEIC"), (factory.make_svg, "SVG"), (factory.make_pdf, "PDF")],
)
def test_unsupported_formats_say_not_supported_and_what_is(make, fmt):
    with pytest.raises(ImageError) as info:
        load_image(make())
    message = clear_message(info.value)
    assert info.value.detected_format == fmt
    assert "not supported" in message and "JPEG" in message and "PNG" in message


def test_megabytes_of_junk_are_refused_quickly():
    """A large upload that is no image at all: every plugin gives up on the header, nothing is decoded."""
    junk = np.random.default_rng(0).integers(0, 256, 20 * 2**20, dtype=np.uint8).tobytes()
    start = time.perf_counter()
    with pytest.raises(ImageError) as info:
        load_image(junk)
    assert time.perf_counter() - start < 10.0  # a hang guard, not a benchmark
    assert info.value.reason == "not_image"
    clear_message(info.value)


# Decompression bombs, each format's header patched to claim a huge size (the pixel data stays tiny).


def _patched(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    """``data`` with ``values`` packed by struct format ``fmt`` written at ``offset``."""
    patch = struct.pack(fmt, *values)
    return data[:offset] + patch + data[offset + len(patch):]


def jpeg_claiming(height: int, width: int) -> bytes:
    """A small baseline JPEG whose SOF0 header claims ``height`` x ``width``."""
    data = factory.make_jpeg((16, 16))
    sof = data.index(b"\xff\xc0")  # marker, length (2), precision (1), height (2), width (2)
    return _patched(data, sof + 5, ">HH", height, width)


def gif_claiming(height: int, width: int) -> bytes:
    """A small GIF whose screen and image descriptors both claim ``height`` x ``width``."""
    data = factory.make_gif((16, 16))
    data = _patched(data, 6, "<HH", width, height)  # logical screen descriptor
    descriptor = data.index(b"\x2c\x00\x00\x00\x00")  # image separator, left = top = 0
    return _patched(data, descriptor + 5, "<HH", width, height)


def bmp_claiming(height: int, width: int) -> bytes:
    """A small 24-bit BMP whose info header claims ``height`` x ``width``."""
    return _patched(factory.make_bmp((16, 16)), 18, "<ii", width, height)


def tiff_claiming(height: int, width: int) -> bytes:
    """A hand-written 8-bit gray TIFF whose one strip claims ``height`` x ``width`` (64 bytes of data)."""
    entries = [  # tag, type (3 SHORT, 4 LONG), count, value
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
        (273, 4, 1, 0), (278, 4, 1, height), (279, 4, 1, width * height),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    entries[5] = (273, 4, 1, data_offset)
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, count)
        + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, count, value in entries
    ) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 64


BOMBS = {
    # far beyond PIL's own limit (2 x 89 megapixels): PIL refuses when opening
    "png 100000x100000": lambda: factory.make_bomb_png(100_000, 100_000),
    "png 20000x20000 (real zlib stream of 50 MB rows)": lambda: factory.make_bomb_png(20_000, 20_000, valid_data=True),
    "jpeg 65000x65000": lambda: jpeg_claiming(65_000, 65_000),
    "gif 65535x65535": lambda: gif_claiming(65_535, 65_535),
    "bmp 30000x30000": lambda: bmp_claiming(30_000, 30_000),
    "tiff 60000x60000": lambda: tiff_claiming(60_000, 60_000),
    # within PIL's limit but over vitviz's 40 megapixels: refused from the header by vitviz itself
    "png 8000x8000 (real zlib stream of 8 MB rows)": lambda: factory.make_bomb_png(8_000, 8_000, valid_data=True),
    "jpeg 7000x7000": lambda: jpeg_claiming(7_000, 7_000),
    "gif 7000x7000": lambda: gif_claiming(7_000, 7_000),
    "bmp 7000x7000": lambda: bmp_claiming(7_000, 7_000),
    "tiff 7000x7000": lambda: tiff_claiming(7_000, 7_000),
}
CONTROL = "control: real 2500x2500 png"

# Runs in a fresh interpreter that imports only PIL, numpy and vitviz.images (no torch).
_BOMB_SCRIPT = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from vitviz.images import ImageError, load_image

def peak_mb():
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmHWM"))
    return int(line.split()[1]) / 1024

def measure(data):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set to the current one
    before = peak_mb()
    start = time.perf_counter()
    try:
        load_image(data)
        reason, message = None, ""
    except ImageError as exc:
        reason, message = exc.reason, str(exc)
    return dict(reason=reason, message=message, seconds=time.perf_counter() - start, grew_mb=peak_mb() - before)

files = json.loads(sys.argv[2])
load_image(Path(files["warm-up"]).read_bytes())  # plugins imported, first allocations made
print(json.dumps({name: measure(Path(path).read_bytes()) for name, path in files.items()}))
"""


@pytest.fixture(scope="module")
def bomb_results(tmp_path_factory):
    """Time and peak-memory growth of ``load_image`` on every bomb, measured in a fresh process."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak resident set")
    folder = tmp_path_factory.mktemp("bombs")
    noise = np.random.default_rng(0).integers(0, 256, (2500, 2500, 3), dtype=np.uint8)  # (H, W, 3)
    makers = {"warm-up": lambda: factory.make_png((8, 8)), **BOMBS,
              CONTROL: lambda: factory.encode(Image.fromarray(noise), "PNG")}
    files = {}
    for i, (name, make) in enumerate(makers.items()):
        files[name] = str(folder / f"{i}.bin")
        Path(files[name]).write_bytes(make())
    done = subprocess.run([sys.executable, "-c", _BOMB_SCRIPT, str(REPO), json.dumps(files)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(BOMBS))
def test_bomb_is_refused_from_its_header_fast_and_without_a_memory_spike(bomb_results, name):
    result = bomb_results[name]
    assert result["reason"] == "too_large", result
    assert "too large" in result["message"] and leaks(result["message"]) == []
    assert result["seconds"] < 1.0, result  # "well under a second": the pixels are never decoded
    assert result["grew_mb"] < 8.0, result  # the claimed pixels would need gigabytes


def test_control_the_measurement_sees_a_real_decode(bomb_results):
    """Without this, 'no memory spike' could just mean the measurement is blind."""
    control = bomb_results[CONTROL]
    assert control["reason"] is None
    assert control["grew_mb"] > 15.0, control  # 2500 x 2500 x 3 bytes = 17.9 MB of pixels at least


# Odd but valid images: the whole pipeline (decode, preprocess, capture) runs and the model sees the
# picture a viewer would show, compared with the same picture made as a plain RGB PNG.


def _upright_marker() -> Image.Image:
    return factory.make_marker_image((48, 64), markers=((4, 6), (30, 44)), marker_size=10)


def _expected_palette() -> np.ndarray:
    indices = np.repeat(np.arange(3, dtype=np.uint8), 2)[None, :].repeat(4, axis=0)  # (4, 6) as the factory
    colours = np.array([(255, 0, 0), (255, 255, 255), (0, 0, 255)], dtype=np.uint8)  # index 1 transparent
    return colours[indices]  # (4, 6, 3)


ODD_IMAGES = {
    # name: (file bytes, expected upright RGB (H, W, 3), tolerance in 0..255 after decoding)
    "1x1 png": (lambda: factory.make_png((1, 1), (10, 200, 30)), lambda: np.full((1, 1, 3), (10, 200, 30)), 0),
    "16-bit gray png": (
        lambda: factory.make_16bit_gray_png(np.full((8, 8), 32896)),  # 32896 / 65535 * 255 = 128.0
        lambda: np.full((8, 8, 3), 128), 0),
    "cmyk jpeg (red ink)": (lambda: factory.make_cmyk_jpeg((0, 255, 255, 0)),
                            lambda: np.full((16, 16, 3), (255, 0, 0)), 3),
    "palette png, one colour transparent": (
        lambda: factory.make_palette_png(transparent_index=1), _expected_palette, 0),
    "animated gif (first frame)": (
        lambda: factory.make_animated_gif(((0, 0, 255), (255, 0, 0))), lambda: np.full((16, 16, 3), (0, 0, 255)), 0),
    "exif-rotated jpeg (orientation 6)": (
        lambda: factory.make_oriented_jpeg(_upright_marker(), 6), lambda: np.asarray(_upright_marker()), 12),
    "exif-mirrored jpeg (orientation 5)": (
        lambda: factory.make_oriented_jpeg(_upright_marker(), 5), lambda: np.asarray(_upright_marker()), 12),
}


@pytest.mark.parametrize("name", list(ODD_IMAGES))
def test_odd_valid_images_run_through_the_model_as_a_viewer_shows_them(tiny, name):
    model, config = tiny
    make, expected, tolerance = ODD_IMAGES[name]
    image = load_image(make())
    want = np.asarray(expected(), dtype=np.int16)
    got = np.asarray(image, dtype=np.int16)
    assert image.mode == "RGB" and got.shape == want.shape  # upright: (H, W) as drawn, not as stored
    assert np.abs(got - want).max() <= tolerance
    x, geometry = prepare_input(image, config)
    reference, _ = prepare_input(Image.fromarray(want.astype(np.uint8), "RGB"), config)
    torch.testing.assert_close(x, reference, atol=2 * (tolerance + 1) / 255 / 0.2, rtol=0)  # std >= 0.2
    assert geometry.original_size == want.shape[:2]
    cap = capture(model, x)
    assert torch.isfinite(cap.output).all()
    torch.testing.assert_close(cap.attention(-1).sum(-1), torch.ones(1, cap.num_heads, cap.num_tokens))


@pytest.mark.parametrize("crop_mode, refused", [("center", True), ("border", True), ("squash", False)])
def test_3x5000_strip_gives_a_clear_message_or_a_real_input(tiny, crop_mode, refused):
    """A 3-pixel-high strip: resizing its short side to the input would need 42 million pixels, so the
    crop modes refuse it with a message; squashing makes a real input of (the middle of) the whole strip."""
    model, config = tiny
    strip = np.zeros((3, 5000, 3), dtype=np.uint8)
    strip[:, 2500:] = 255
    image = load_image(factory.encode(Image.fromarray(strip), "PNG"))
    assert (image.height, image.width) == (3, 5000)
    config = {**config, "crop_mode": crop_mode}
    start = time.perf_counter()
    if refused:
        with pytest.raises(ImageError) as info:
            prepare_input(image, config)
        assert info.value.reason == "extreme_aspect"
        assert "long and thin" in clear_message(info.value)
    else:
        x, geometry = prepare_input(image, config)
        assert x.shape == (1, 3, *config["input_size"][1:]) and torch.isfinite(x).all()
        top, left, height, width = geometry.crop_box  # squash: resize to about input / crop_pct, centre crop
        assert (top + height / 2, left + width / 2) == pytest.approx((1.5, 2500.0))
        assert height / 3 == pytest.approx(width / 5000) and height / 3 > 0.9
        left, right = x[0, :, :, :60].mean(), x[0, :, :, -60:].mean()  # black half, white half
        assert left < -0.5 < 0.5 < right
        assert torch.isfinite(capture(model, x).output).all()
    assert time.perf_counter() - start < 10.0  # a hang guard: nothing huge was allocated


# ---------------------------------------------------------------------------------- untrusted weights


_Touch, _Exec = payloads.Touch, payloads.Exec


def _tiny_state(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return timm.create_model(MODEL, pretrained=False).state_dict()


def _torch_bytes(obj, **kwargs) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


def _zip_with_data_pkl(pickled: bytes) -> bytes:
    """A real torch zip checkpoint whose ``data.pkl`` record is replaced by ``pickled``."""
    source = zipfile.ZipFile(io.BytesIO(_torch_bytes({"w": torch.zeros(2)})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for info in source.infolist():
            data = pickled if info.filename.endswith("/data.pkl") else source.read(info.filename)
            archive.writestr(info.filename, data)
    return out.getvalue()


def _evil_files(marker: Path) -> dict[str, bytes]:
    """Checkpoints that would create ``marker`` if unpickled without restriction."""
    tensors = _tiny_state()
    return {
        "zip .pth, os.system in the state dict": _torch_bytes({"state_dict": {**tensors, "x": _Touch(marker)}}),
        "legacy .pth, os.system": _torch_bytes({"w": _Touch(marker)}, _use_new_zipfile_serialization=False),
        "bare pickle protocol 0, exec": pickle.dumps(_Exec(marker), protocol=0),
        "bare pickle protocol 5, exec": pickle.dumps(_Exec(marker), protocol=5),
        "zip .pth whose data.pkl is an exec payload": _zip_with_data_pkl(pickle.dumps(_Exec(marker), protocol=2)),
    }


@pytest.fixture
def torch_load_calls(monkeypatch):
    """Every call of ``torch.load`` during the test, with its keyword arguments."""
    calls: list[dict] = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    return calls


@pytest.mark.parametrize("name", list(_evil_files(Path("/nonexistent"))))
@pytest.mark.parametrize("as_path", [False, True], ids=["bytes", "file"])
def test_pickle_payloads_are_refused_and_never_run(tmp_path, torch_load_calls, name, as_path):
    marker = tmp_path / "pwned"
    data = _evil_files(marker)[name]
    source: bytes | Path = data
    if as_path:
        source = tmp_path / "weights.pth"
        source.write_bytes(data)
    with pytest.raises(ModelError) as info:
        load_model(MODEL, weights=source)
    assert not marker.exists(), "the payload ran"
    assert torch_load_calls and all(call.get("weights_only") is True for call in torch_load_calls)
    message = clear_message(info.value)
    assert "Refused" in message or "not a valid" in message


def test_a_pickle_named_safetensors_is_still_only_read_weights_only(tmp_path, torch_load_calls):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.safetensors"
    path.write_bytes(_torch_bytes({"w": _Touch(marker)}))
    with pytest.raises(ModelError, match="Refused|not a valid"):
        load_model(MODEL, weights=path)
    assert not marker.exists()
    assert all(call.get("weights_only") is True for call in torch_load_calls)


def _safetensors_with_header(header: dict, payload: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


MALFORMED_SAFETENSORS = {
    "offsets past the end of the file": (
        _safetensors_with_header({"pos_embed": {"dtype": "F32", "shape": [1, 101, 64], "data_offsets": [0, 25856]}},
                                 b"\x00" * 64), "corrupt or truncated"),
    "shape larger than its bytes": (
        _safetensors_with_header({"w": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 64]}},
                                 b"\x00" * 64), "corrupt or truncated"),
    "header that is not JSON": (struct.pack("<Q", 12) + b"{not json!!}" + b"\x00" * 8, "corrupt or truncated"),
    "header length beyond the file": (struct.pack("<Q", 10**12) + b"{}", "not a valid|Refused"),
}


@pytest.mark.parametrize("name", list(MALFORMED_SAFETENSORS))
def test_malformed_safetensors_fail_cleanly(name):
    data, match = MALFORMED_SAFETENSORS[name]
    with pytest.raises(ModelError, match=match) as info:
        load_model(MODEL, weights=data)
    clear_message(info.value)


@pytest.mark.parametrize("data", [struct.pack("<Q", 10**12) + b"{}", b"\x00" * 64], ids=["huge header length", "zeros"])
def test_garbage_is_not_called_a_pickle_with_python_objects(data):
    with pytest.raises(ModelError) as info:
        load_model(MODEL, weights=data)
    assert "Python objects" not in clear_message(info.value)


def test_weights_of_another_family_name_what_does_not_fit():
    """A ResNet-like state dict given to a ViT: strict load, the message names what is missing."""
    alien = {"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(10, 8), "fc.bias": torch.zeros(10)}
    with pytest.raises(ModelError) as info:
        load_model(MODEL, weights=save(alien))
    message = clear_message(info.value)
    assert "do not fit" in message and "missing" in message and "conv1.weight" in message


def test_weights_with_the_right_names_but_wrong_shapes_are_a_clear_error():
    state = _tiny_state()
    state["blocks.0.attn.qkv.weight"] = torch.zeros(3 * 96, 96)
    with pytest.raises(ModelError, match="wrong shape") as info:
        load_model(MODEL, weights=save(state))
    assert "blocks.0.attn.qkv.weight" in clear_message(info.value)


@pytest.mark.parametrize("kind", ["safetensors", "pth"])
def test_oversized_weights_are_refused_before_parsing(monkeypatch, kind):
    """The size limit is checked on the raw bytes; the parsers are never reached."""
    data = save(_tiny_state()) if kind == "safetensors" else _torch_bytes(_tiny_state())
    monkeypatch.setattr(model_weights, "MAX_WEIGHTS_BYTES", len(data) - 1)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load reached"))
    monkeypatch.setattr(model_weights, "_read_safetensors", lambda *a, **k: pytest.fail("safetensors reached"))
    with pytest.raises(ModelError, match="at most") as info:
        load_model(MODEL, weights=data)
    clear_message(info.value)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
@pytest.mark.parametrize("kind", ["safetensors", "zip pth", "legacy pth"])
def test_truncated_weights_fail_cleanly(kind, keep):
    state = _tiny_state()
    if kind == "safetensors":
        data = save(state)
    else:
        data = _torch_bytes(state, _use_new_zipfile_serialization=kind == "zip pth")
    with pytest.raises(ModelError) as info:
        load_model(MODEL, weights=data[: int(len(data) * keep)])
    clear_message(info.value)


def _deflated(data: bytes) -> bytes:
    """The same torch zip checkpoint with every record deflate-compressed (torch itself stores them raw)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            archive.writestr(info.filename, source.read(info.filename))
    return out.getvalue()


def test_compressed_pth_cannot_bypass_the_size_limit(monkeypatch):
    """A zip .pth with deflated records: small on disk, its tensors inflate past the limit when loaded."""
    zeros = {k: torch.zeros_like(v) for k, v in _tiny_state().items()}  # zeros compress ~1000:1
    raw = _torch_bytes(zeros)
    packed = _deflated(raw)
    assert len(packed) * 20 < len(raw)
    monkeypatch.setattr(model_weights, "MAX_WEIGHTS_BYTES", (len(packed) + len(raw)) // 2)
    with pytest.raises(ModelError, match="at most|too large|compressed") as info:
        load_model(MODEL, weights=packed)
    clear_message(info.value)


# ------------------------------------------------------------------------------- model names, offline


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("VITVIZ_OFFLINE", "1")


@pytest.mark.parametrize(
    "name",
    [
        "../../../../etc/passwd",
        "file:///etc/passwd",
        "vit_small_patch16_224; rm -rf ~",
        "__import__('os').system('id')",
        "\x00",
        "x" * 10_000,
        "resnet50",
        "swin_tiny_patch4_window7_224",
        "convnext_tiny.fb_in1k",
        ".",
    ],
)
def test_hostile_model_names_are_a_clear_model_error(offline, name):
    start = time.perf_counter()
    with pytest.raises(ModelError) as info:
        load_model(name, allow_fallback=False)
    assert time.perf_counter() - start < 10.0  # hang guard (difflib over timm's names on a 10 kB name)
    message = clear_message(info.value)
    assert "Try for example" in message or "Did you mean" in message


@pytest.mark.parametrize(
    "name",
    ["vit_small_patch16_224.no_such_tag", "vit_small_patch16_224.", "hf-hub:../../etc", "hf-hub:a/b/c/d",
    ],
)
def test_bad_pretrained_tags_and_hub_ids_are_a_model_error_offline(offline, name):
    with pytest.raises(ModelError) as info:
        load_model(name, allow_fallback=False)
    clear_message(info.value)


def test_bad_pretrained_tag_with_random_weights_is_a_model_error():
    with pytest.raises(ModelError) as info:
        load_model("vit_small_patch16_224.no_such_tag", pretrained=False)
    assert "no_such_tag" in str(info.value)


def test_missing_bundled_weights_are_a_model_error_without_a_path(monkeypatch):
    import vitviz.shapes
    import vitviz.shapes.model as shapes_model

    def missing(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", str(shapes_model.CONFIG_PATH))

    monkeypatch.setattr(vitviz.shapes, "load_shapes_model", missing, raising=False)
    with pytest.raises(ModelError) as info:
        load_model(models.BUNDLED_MODEL)
    clear_message(info.value)


def test_giant_models_are_refused_before_they_are_built(monkeypatch):
    monkeypatch.setattr(model_loading, "_create",
                        lambda *args, **kwargs: pytest.fail("built a 1.1-billion-parameter model"))
    with pytest.raises(ModelError, match="too large|parameters") as info:
        load_model("vit_giant_patch14_dinov2", pretrained=False)
    clear_message(info.value)


def test_offline_check_runs_once_for_many_loads(monkeypatch):
    """An unreachable hub is learned with one bounded connection attempt, then remembered."""
    for var in ("VITVIZ_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(reachability, "_HUB_CHECK", {})
    calls = []
    monkeypatch.setattr(reachability, "_connects", lambda host, timeout: calls.append(timeout) or False)
    monkeypatch.setattr(model_loading, "_cached_hub_file", lambda name: None)
    for _ in range(5):
        with pytest.raises(ModelError, match="unreachable") as info:
            load_model("ViT-S/16 (AugReg)", allow_fallback=False)
        clear_message(info.value)
    assert calls == [2.0]


def test_offline_env_never_touches_the_network(offline, monkeypatch):
    monkeypatch.setattr(reachability, "_HUB_CHECK", {})
    monkeypatch.setattr(reachability, "_connects", lambda host, timeout: pytest.fail("network touched"))
    assert models.hub_reachable() is False


def test_unreachable_host_is_decided_within_the_timeout(monkeypatch):
    """A blackholed address (TEST-NET-1, never routed) answers False within the timeout, not after minutes."""
    monkeypatch.setenv("HF_ENDPOINT", "https://192.0.2.1")
    for var in ("VITVIZ_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    start = time.perf_counter()
    assert models.hub_reachable(timeout=1.0, refresh=True) is False
    assert time.perf_counter() - start < 2.5


# ------------------------------------------------------------------------------------ hostile numbers


def test_nan_weights_give_nan_outputs_not_exceptions_in_the_analyses(tiny):
    """Weights full of NaN (a 'valid' but poisoned file): capture and every analysis still return arrays."""
    from vitviz.analysis import attention_grid, attention_map, mean_attention_distance, rollout, top_k

    state = {k: torch.full_like(v, float("nan")) for k, v in _tiny_state().items()}
    loaded = load_model(MODEL, weights=save(state))
    x = torch.zeros(1, 3, 160, 160)
    cap = capture(loaded.model, x)
    assert torch.isnan(cap.output).all()
    assert attention_map(cap, -1, "mean", "cls").patches.shape == (10, 10)
    assert attention_grid(cap, (2, 3)).shape == (6, 2, 10, 10)
    assert rollout(cap).maps.shape == (6, 10, 10)
    assert mean_attention_distance(cap).shape == (6, 2)
    assert len(top_k(cap.output[0], loaded.labels, k=5)) == 5
