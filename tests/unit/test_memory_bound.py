"""Memory stays bounded: every app cache has a limit, many uploads do not grow the server, and one capture of
a large model never needs gigabytes.

Resident memory is read from ``/proc/self/statm`` in a fresh subprocess, after a warm-up that fills every
cache, so what is measured is growth per upload, not the cost of importing torch. Before each reading the
process collects garbage and asks glibc to hand its free heap back (``malloc_trim``): without that, freed but
kept pages made the level wander by 45-80 MB between readings (e.g. 856, 901, 839 MB at uploads 40, 180, 200)
although nothing was kept; with it the same run stays within 4 MB, and a kept copy of every upload's bytes
still shows as +85 MB.

Stated bounds (asserted below, recorded in ``docs/security.md``):

* 200 different uploads through the app (about 0.5 MB JPEGs, 700-1000 px): resident memory, read every 20
  uploads, never exceeds the level after the 40-upload warm-up by ``APP_GROWTH_MB``. A leak of only the raw
  upload bytes (about 160 x 0.5 MB) would already exceed it.
* The same 200 uploads through the library pipeline (decode, preprocess, capture, rollout): less than
  ``LIBRARY_GROWTH_MB`` after a 20-upload warm-up.
* ``vitviz.capture.capture`` of ViT-L/16 at 384 px and DINOv2-L/14 at 518 px stores queries and keys
  ('qk' storage): at full depth 113 MB and 269 MB instead of the 511 MB and 2.9 GB (``L·H·N²·4`` bytes)
  of full attention; with the hidden states, 165 MB and 391 MB in all.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

import vitviz.capture as capture_module
from vitviz.capture import FULL_STORAGE_BUDGET, CaptureError, capture
from vitviz.layout import TokenLayout

ROOT = Path(__file__).resolve().parents[2]
APP_FILES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "vitviz_app").glob("*.py"))]
APP_GROWTH_MB = 60.0
LIBRARY_GROWTH_MB = 30.0
MAX_ENTRIES_CEILING = 64


# ------------------------------------------------------------------------------------- cache limits


def _cache_decorators(path: Path) -> list[tuple[str, str, dict]]:
    """(function name, 'cache_data' | 'cache_resource', keyword arguments) of every Streamlit cache."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call else decorator
            if isinstance(target, ast.Attribute) and target.attr in ("cache_data", "cache_resource"):
                kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in (call.keywords if call else [])
                          if kw.arg in ("max_entries", "ttl")}
                found.append((node.name, target.attr, kwargs))
    return found


def app_caches() -> dict[str, tuple[str, dict]]:
    """Every cached function of the app: ``'module.function' -> (kind, limits)``."""
    return {f"{path.stem}.{name}": (kind, kwargs) for path in APP_FILES if path.is_file()
            for name, kind, kwargs in _cache_decorators(path)}


def test_the_app_has_caches_to_check():
    caches = app_caches()
    assert any(kind == "cache_resource" for kind, _ in caches.values()), caches  # the shared model at least
    assert "loaders.load" in caches and "loaders._forward" in caches, sorted(caches)  # behind loaders.forward


def test_every_app_cache_has_an_entry_limit():
    """An unlimited st.cache_* keyed by upload digests grows with every new photo a stranger sends."""
    unlimited = {name: limits for name, (kind, limits) in app_caches().items()
                 if not isinstance(limits.get("max_entries"), int) or limits["max_entries"] > MAX_ENTRIES_CEILING}
    assert unlimited == {}


def test_at_most_a_few_models_stay_loaded():
    """Each cached model may be ViT-L (1.2 GB); the model cache must keep only a handful."""
    kind, limits = app_caches()["loaders.load"]
    assert kind == "cache_resource" and limits["max_entries"] <= 4


# ------------------------------------------------------------------------------- large-model capture


def _stored_bytes(cap) -> dict[str, int]:
    def size(tensors) -> int:
        return sum(t.numel() * t.element_size() for t in tensors or ())

    return {"attention": size(cap._probs) + size(cap._queries) + size(cap._keys) + size(cap._grads),
            "hidden_states": size([cap.hidden_states]), "output": size([cap.output])}


@pytest.mark.parametrize(
    "name, size, tokens, attention_ratio, total_ratio",
    [("vit_large_patch16_384", 384, 577, 4.0, 2.5), ("vit_large_patch14_dinov2", 518, 1370, 10.0, 6.0)],
)
def test_large_models_are_captured_compactly(name, size, tokens, attention_ratio, total_ratio):
    """At the real token count, auto storage keeps queries and keys, never the full (L, H, N, N) attention.

    The model is built with its real geometry but one block (random weights); the per-layer cost is
    extrapolated to the real depth, which the storage decision itself is checked on (a meta-device model).
    """
    full = timm.create_model(name, pretrained=False, device="meta")
    depth, heads = len(full.blocks), int(full.blocks[0].attn.num_heads)
    layout = TokenLayout.from_model(full, (size, size))
    assert layout.num_tokens == tokens
    full_attention = depth * heads * tokens * tokens * 4  # L·H·N²·4 bytes, batch 1
    assert full_attention > FULL_STORAGE_BUDGET
    assert capture_module._choose_storage(full, layout, 1, "auto", None) == "qk"

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, depth=1).eval()
    cap = capture(model, torch.randn(1, 3, size, size), storage="qk")
    stored = _stored_bytes(cap)
    head_dim = model.blocks[0].attn.head_dim
    assert stored["attention"] == 2 * heads * tokens * head_dim * 4  # queries and keys of one layer, float32
    # queries + keys are 2·d/N of the attention per layer; hidden states (L+1, N, D) come on top
    assert depth * stored["attention"] * attention_ratio < full_attention
    per_layer = stored["attention"] + stored["hidden_states"] // 2  # hidden_states holds L + 1 = 2 states
    at_full_depth = depth * per_layer + stored["hidden_states"] // 2 + stored["output"]
    assert at_full_depth * total_ratio < full_attention, (at_full_depth / 2**20, full_attention / 2**20)
    # a view asks for one query row: computed on demand, (B, H, N), rows still sum to one
    row = cap.attention_row(0, 0)
    assert row.shape == (1, heads, tokens)
    torch.testing.assert_close(row.sum(-1), torch.ones(1, heads))


def test_gradient_capture_respects_the_storage_budget(monkeypatch):
    """With gradients (the Rollout page's class-specific map) the stored attention must still fit the budget,
    or the capture must refuse with a clear CaptureError instead of allocating it."""
    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False).eval()
    budget = 6 * 2 * 101 * 101 * 4 // 4  # a quarter of test_vit's full attention
    monkeypatch.setattr(capture_module, "FULL_STORAGE_BUDGET", budget)
    try:
        cap = capture(model, torch.randn(1, 3, 160, 160), target=3)
    except CaptureError as exc:
        assert "memory" in str(exc) or "too large" in str(exc)
    else:
        assert _stored_bytes(cap)["attention"] <= budget


# ------------------------------------------------------------------------------------- many uploads

# Resident memory of the measuring process, after garbage collection and glibc's trim (module docstring).
_RSS_MB = r"""
import ctypes, ctypes.util, gc, os
LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if ctypes.util.find_library("c") else None
if LIBC is not None and not hasattr(LIBC, "malloc_trim"):  # not glibc
    LIBC = None

def rss_mb():
    gc.collect()
    if LIBC is not None:
        LIBC.malloc_trim(0)  # free heap pages go back to the system: what stays is what is still used
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
"""

_APP_SCRIPT = _RSS_MB + r"""
import gc, json, os, sys, time
root, uploads, warm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, root)
os.chdir(root)
os.environ["VITVIZ_OFFLINE"] = "1"
import numpy as np
from PIL import Image
from tests import _imagefactory as factory

if not os.path.isfile(os.path.join(root, "vitviz", "assets", "shapes_vit.safetensors")):
    import vitviz.shapes  # the same stand-in as the app tests (tests/_apptest.py) until vitviz-shapes ships
    from tests._apptest import stand_in_shapes_model
    vitviz.shapes.load_shapes_model = stand_in_shapes_model
from streamlit.testing.v1 import AppTest

def photo(rng, i):
    h, w = int(rng.integers(700, 1000)), int(rng.integers(700, 1000))
    blocks = rng.integers(0, 256, (h // 5 + 1, w // 5 + 1, 3), dtype=np.uint8)
    return factory.encode(Image.fromarray(blocks.repeat(5, 0).repeat(5, 1)[:h, :w]), "JPEG", quality=90)

at = AppTest.from_file(os.path.join(root, "app.py"), default_timeout=240).run()
at.segmented_control(key="source").set_value("Upload").run()
rng = np.random.default_rng(0)
samples, problems, sizes = [], [], []
for i in range(uploads):
    data = photo(rng, i)
    sizes.append(len(data))
    at.file_uploader(key="upload").set_value((f"photo{i}.jpg", data, "image/jpeg")).run()
    problems += [e.message for e in at.exception] + [e.value for e in at.error]
    if i + 1 == warm or (i + 1) % 20 == 0:
        samples.append((i + 1, rss_mb()))
print(json.dumps(dict(samples=samples, problems=problems[:5], mean_upload=sum(sizes) / len(sizes),
                      charts=len(at.main.get("plotly_chart")))))
"""

_LIBRARY_SCRIPT = _RSS_MB + r"""
import gc, json, os, sys
root, uploads, warm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, root)
import numpy as np, torch
from PIL import Image
from tests import _imagefactory as factory
from vitviz.analysis import attention_grid, rollout
from vitviz.capture import capture
from vitviz.images import load_image, prepare_input
from vitviz.models import load_model

loaded = load_model("test_vit", pretrained=False)
rng = np.random.default_rng(0)
samples, last = [], None
for i in range(uploads):
    h, w = int(rng.integers(700, 1000)), int(rng.integers(700, 1000))
    blocks = rng.integers(0, 256, (h // 5 + 1, w // 5 + 1, 3), dtype=np.uint8)
    data = factory.encode(Image.fromarray(blocks.repeat(5, 0).repeat(5, 1)[:h, :w]), "JPEG", quality=90)
    x, geometry = prepare_input(load_image(data), loaded.data_config)
    cap = capture(loaded.model, x)
    last = (rollout(cap).maps, attention_grid(cap, "cls"))  # a session keeps only its latest result
    if i + 1 == warm or (i + 1) % 20 == 0:
        samples.append((i + 1, rss_mb()))
print(json.dumps(dict(samples=samples)))
"""


def _run(script: str, uploads: int, warm: int, timeout: int) -> dict:
    done = subprocess.run([sys.executable, "-c", script, str(ROOT), str(uploads), str(warm)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _growth(samples: list, warm: int) -> float:
    levels = dict((int(n), mb) for n, mb in samples)
    return max(levels.values()) - levels[warm]


@pytest.mark.slow
def test_200_uploads_through_the_app_keep_memory_bounded():
    result = _run(_APP_SCRIPT, uploads=200, warm=40, timeout=600)
    assert result["problems"] == [] and result["charts"] >= 1
    growth = _growth(result["samples"], warm=40)
    leak_of_raw_uploads = 160 * result["mean_upload"] / 2**20  # what keeping only the bytes would cost
    assert leak_of_raw_uploads > APP_GROWTH_MB  # so the bound would catch even that
    assert growth < APP_GROWTH_MB, result["samples"]


@pytest.mark.slow
def test_200_uploads_through_the_library_keep_memory_flat():
    result = _run(_LIBRARY_SCRIPT, uploads=200, warm=20, timeout=600)
    assert _growth(result["samples"], warm=20) < LIBRARY_GROWTH_MB, result["samples"]
