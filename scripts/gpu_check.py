"""Check vitviz on a GPU against the CPU: the capture of several models, then every page of the app.

Run on a machine with a GPU: ``python scripts/gpu_check.py``. Random weights only (no download). Two parts:

``capture``
    For each model of ``CASES``: every layer's attention and the output on the device against the CPU (both
    storages), gradients finite, and the capture's cost against the plain forward. One line per check.
``pages``
    Every page of the app rendered in-process (Streamlit's AppTest) with ViT-B/16, random weights loaded by
    the app's own path (``load_model(..., pretrained=False)``, seeded, so both runs hold the same weights), once
    with the model on the CPU and once on the device, as ``vitviz.models.default_device`` puts it on a GPU
    server. Prints a Markdown table for bench/README.md's GPU rows: each page's figures, the largest absolute
    difference of their arrays, whether the browser components received the same payloads, and the seconds
    each run took.

Exits non-zero when a result disagrees with the CPU beyond its tolerance or a page fails.

Without a GPU: ``--device cpu`` runs everything CPU against CPU (a dry run: every difference is 0), and
``--device vvfake`` against the test suite's second device (``tests/_fake_device.py``: it refuses CPU operands
as CUDA does and computes with the CPU's kernels). ``--model`` picks another catalogue model for the pages
(a small one makes a dry run quick), ``--pages`` a few pages.
"""
from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitviz.capture import capture  # noqa: E402
from vitviz.models import default_device, load_model  # noqa: E402

CASES = [
    ("test_vit", {}),
    ("deit_small_distilled_patch16_224", {}),
    ("vit_small_patch14_reg4_dinov2", dict(img_size=224)),
    ("vit_base_patch16_224", {}),
    ("eva02_tiny_patch14_224", {}),
]
PAGE_MODEL = "ViT-B/16 (AugReg)"
MAP_TOLERANCE = 1e-3  # largest |Δ| of a figure's array: maps and scores in 0..1, attention rows, norms
APP_TIMEOUT_S = 600


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device: str, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


# ------------------------------------------------------------------------------------------ capture


def check_capture(name: str, kwargs: dict, device: str) -> bool:
    """One model's capture on ``device`` against the CPU's; prints two or three lines."""
    torch.manual_seed(0)
    on_device = load_model(name, pretrained=False, device=device, **kwargs)
    cpu_model = load_model(name, pretrained=False, device="cpu", **kwargs).model
    cpu_model.load_state_dict({k: v.cpu() for k, v in on_device.model.state_dict().items()})
    size = on_device.data_config["input_size"][1:]
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    ok = True
    for storage in ("full", "qk"):
        if storage == "qk" and name.startswith("eva"):
            continue
        there = capture(on_device.model, x.to(device), storage=storage)
        here = capture(cpu_model, x, storage=storage)
        err = max((there.attention(i) - here.attention(i)).abs().max().item() for i in range(here.num_layers))
        out = (there.output - here.output).abs().max().item()
        good = err < 1e-3 and out < 1e-2
        ok &= good
        print(f"{name:38s} {storage:4s} tokens={here.num_tokens:5d} max|ΔA|={err:.2e} max|Δout|={out:.2e} "
              f"{'OK' if good else 'MISMATCH'}")
    finite: bool | str = "no classifier"  # a target names a class: a headless model has none to explain
    if on_device.model.num_classes:
        grads = capture(on_device.model, x.to(device), target=3)
        finite = all(bool(torch.isfinite(grads.attention_grad(i)).all()) for i in range(grads.num_layers))
        ok &= finite
    x_there = x.to(device)

    def plain():
        with torch.no_grad():
            on_device.model(x_there)

    t_plain = _time(plain, device)
    t_capture = _time(lambda: capture(on_device.model, x_there), device)
    print(f"{name:38s} gradients finite={finite} plain={t_plain * 1e3:.2f} ms capture={t_capture * 1e3:.2f} ms "
          f"ratio={t_capture / t_plain:.2f}")
    return ok


# ------------------------------------------------------------------------------------------- pages


def app_pages() -> list[str | None]:
    """The overview (None) and every page script."""
    return [None, *(f"pages/{path.name}" for path in sorted((ROOT / "pages").glob("*.py")))]


def _arrays(value, path: str = "") -> dict[str, np.ndarray]:
    """Every numeric array of a figure (Plotly's typed arrays ``{"dtype", "bdata"}`` and lists of numbers)."""
    found: dict[str, np.ndarray] = {}
    if isinstance(value, dict) and "bdata" in value and "dtype" in value:
        found[path] = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).astype(np.float64)
    elif isinstance(value, dict):
        for key, item in value.items():
            found.update(_arrays(item, f"{path}.{key}"))
    elif isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        found[path] = np.asarray(value, dtype=np.float64)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.update(_arrays(item, f"{path}[{i}]"))
    return found


def _page_output(at) -> tuple[list[dict[str, np.ndarray]], list[bytes]]:
    """What a rendered page drew: each Plotly figure's arrays, and each browser component's data as bytes."""
    figures, payloads = [], []
    stack = [at._tree]
    while stack:
        node = stack.pop(0)
        children = getattr(node, "children", None)
        stack[:0] = list(children.values()) if isinstance(children, dict) else []
        proto = getattr(node, "proto", None)
        if getattr(node, "type", None) == "plotly_chart":
            figures.append(_arrays(json.loads(proto.spec)))
        elif getattr(proto, "component_name", "").startswith("vitviz."):
            payloads.append(proto.SerializeToString())
    return figures, payloads


def render_pages(pages: list[str | None], model: str, device: str, loading) -> dict:
    """Each page rendered with ``model`` (seeded random weights) on ``device``: (figures, payloads, seconds,
    errors). ``loading`` is the module whose ``default_device`` ``load_model`` asks."""
    import streamlit as st
    from streamlit import config
    from streamlit.testing.v1 import AppTest

    config.set_option("client.showErrorDetails", "full")  # this check's report names the error itself
    loading.default_device = lambda: device  # where load_model puts every model, as on a GPU server
    st.cache_resource.clear()
    st.cache_data.clear()
    results = {}
    for page in pages:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=APP_TIMEOUT_S)
        at.query_params["model"] = model
        if page is not None:
            at.switch_page(page)
        start = time.perf_counter()
        at.run()
        seconds = time.perf_counter() - start
        errors = [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]
        results[page] = (*_page_output(at), seconds, errors)
    from vitviz_app import loaders

    loaded = loaders.load(model, None)  # the app's cached model: which one ran, with which weights, where
    print(f"{device}: the pages ran {loaded.name} ({loaded.source} weights) on "
          f"{next(loaded.model.parameters()).device}")
    return results


def _random_weights(load, name: str, **kwargs):
    """``load_model`` with seeded random weights: the app's loading path, no download, the same weights twice."""
    torch.manual_seed(0)
    return load(name, pretrained=False, **kwargs)


def check_pages(device: str, model: str, pages: list[str | None]) -> bool:
    """Render every page on the CPU and on ``device``; print the table; True when all agree."""
    import vitviz.models

    os.environ.setdefault("VITVIZ_OFFLINE", "1")  # never wait on the hub: the weights are random anyway
    real = vitviz.models.load_model
    loading = sys.modules[real.__module__]
    default = loading.default_device
    vitviz.models.load_model = functools.partial(_random_weights, real)  # what the app's loader calls
    try:
        on_cpu = render_pages(pages, model, "cpu", loading)
        there = render_pages(pages, model, device, loading)
    finally:
        vitviz.models.load_model, loading.default_device = real, default
    print(f"\nPages with {model} (random weights), model on the CPU and on {device}:\n")
    print("| page | figures | arrays | max abs Δ of the maps | browser payloads identical | CPU s | "
          f"{device} s | |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    ok = True
    for page in pages:
        figures_cpu, payloads_cpu, seconds_cpu, errors_cpu = on_cpu[page]
        figures, payloads, seconds, errors = there[page]
        delta, arrays, same_shapes = 0.0, 0, len(figures) == len(figures_cpu)
        for mine, theirs in zip(figures, figures_cpu):
            same_shapes &= mine.keys() == theirs.keys()
            for key in mine.keys() & theirs.keys():
                a, b = mine[key], theirs[key]
                arrays += 1
                if a.shape != b.shape:
                    same_shapes = False
                    continue
                both = np.isfinite(a) & np.isfinite(b)
                same_shapes &= bool(np.array_equal(np.isfinite(a), np.isfinite(b)))
                if both.any():
                    delta = max(delta, float(np.abs(a[both] - b[both]).max()))
        identical = sum(p == q for p, q in zip(payloads, payloads_cpu))
        good = not errors and not errors_cpu and same_shapes and delta <= MAP_TOLERANCE
        ok &= good
        verdict = "OK" if good else "MISMATCH: " + "; ".join(errors or errors_cpu or ["figures differ"])[:200]
        print(f"| {page or 'app.py (overview)'} | {len(figures)} | {arrays} | {delta:.2e} | "
              f"{identical}/{len(payloads)} | {seconds_cpu:.1f} | {seconds:.1f} | {verdict} |")
    return ok


# -------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cpu (dry run) or vvfake (test device)")
    parser.add_argument("--parts", default="capture,pages", help="comma-separated: capture, pages")
    parser.add_argument("--model", default=PAGE_MODEL, help=f"catalogue model for the pages ({PAGE_MODEL})")
    parser.add_argument("--pages", default="", help="comma-separated page scripts (pages/rollout.py, app.py)")
    args = parser.parse_args(argv)
    if args.device == "vvfake":
        from tests._fake_device import enable

        enable()
    print("device:", args.device, "| default:", default_device(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-", "| torch", torch.__version__)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: nothing to check (a dry run: --device cpu)")
        return 0
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    ok = True
    if "capture" in parts:
        ok &= all([check_capture(name, kwargs, args.device) for name, kwargs in CASES])
    if "pages" in parts:
        chosen = [None if p in ("app.py", "overview") else p for p in args.pages.split(",") if p] or app_pages()
        ok &= check_pages(args.device, args.model, chosen)
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
