"""Memory: peak resident memory of a capture, and of the app after many different images.

1. Captures, each in a fresh process (see ``bench/_timing.py``): ViT-B/16 at 224 (197 tokens) and ViT-L/16 at
   384 (577 tokens), random weights. Peak = highest resident size during the call with its result held,
   minus the resident size after building the model and one warm-up plain forward. Rows: the plain forward,
   ``capture`` with storage 'auto', 'full', and with gradients (``target=``, what the Rollout page's
   class-specific map takes).
2. The app: one AppTest session on the Rollout page (it runs both the plain and the gradient capture) with
   a random-weight ViT-B/16, fed ``--images`` different uploaded images one after another, in a fresh
   process. Resident size after each image shows whether the app's caches stay bounded: once they are
   full (the forward-pass cache holds 12 captures), the size should stop growing.

Run: ``python bench/memory.py [--quick] [--images 50] [--out bench/results/memory.md]``.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._app import use_random_hub  # noqa: E402
from bench._timing import (  # noqa: E402
    Table,
    add_common_args,
    machine,
    report,
    run_isolated,
    setup_threads,
    status_kib,
)
from bench.capture_cost import ModelCase, _memory_child  # noqa: E402

__all__ = ["CAPTURE_MODELS", "app_after_images", "main"]

CAPTURE_MODELS = (
    (ModelCase("ViT-B/16 @224", "vit_base_patch16_224", 224),
     ("plain (fused)", "capture auto", "capture full", "capture + gradients")),
    (ModelCase("ViT-L/16 @384", "vit_large_patch16_384", 384),
     ("plain (fused)", "capture auto", "capture full")),
)
APP_MODEL = ("ViT-B/16 (AugReg)", "vit_base_patch16_224.augreg_in21k_ft_in1k")


def _image_bytes(index: int, size: tuple[int, int] = (480, 640)) -> bytes:
    """A distinct, photo-sized PNG per index: smooth colour fields plus a bright square that moves."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(index)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)  # (H, W)
    base = rng.uniform(0, 1, size=(3, 3))
    pixels = np.stack([base[c, 0] + base[c, 1] * yy + base[c, 2] * xx for c in range(3)], axis=-1)  # (H, W, 3)
    pixels = (255 * (pixels / pixels.max())).astype(np.uint8)
    top, left = rng.integers(0, h - 80), rng.integers(0, w - 80)
    pixels[top:top + 80, left:left + 80] = rng.integers(150, 256, size=3)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def app_after_images(images: int, threads: int | None) -> dict:
    """In a fresh process: upload ``images`` different images to the Rollout page; RSS after each, in MiB."""
    setup_threads(threads)
    from streamlit.testing.v1 import AppTest

    from bench._app import APP

    start = status_kib()["VmRSS"] / 1024
    at = AppTest.from_file(str(APP), default_timeout=600)
    at.query_params["model"] = APP_MODEL[0]
    at.switch_page("pages/rollout.py")
    at.run()
    at.segmented_control(key="source").set_value("Upload").run()
    rss = []
    for i in range(images):
        at.file_uploader(key="upload").set_value((f"image{i:03d}.png", _image_bytes(i), "image/png")).run()
        if at.exception or at.error:
            raise RuntimeError(f"image {i}: {[e.value for e in at.exception] + [e.value for e in at.error]}")
        rss.append(status_kib()["VmRSS"] / 1024)
    from vitviz_app import loaders

    return {"start_mib": start, "rss_mib": rss, "peak_mib": status_kib()["VmHWM"] / 1024,
            "forward_passes": loaders.forward_passes()}


def capture_table(threads: int | None, quick: bool) -> Table:
    table = Table("Peak resident memory of one call (fresh process per row, batch 1, float32)",
                  ["model", "method", "tokens", "peak MiB", "held after MiB", "full attention MiB",
                   "peak / full attention", "model weights MiB"])
    for case, methods in CAPTURE_MODELS[:1] if quick else CAPTURE_MODELS:
        for method in methods[:2] if quick else methods:
            m = run_isolated(_memory_child, case, method, threads)
            label = f"{method} → {m['storage']}" if method == "capture auto" else method
            table.add(case.label, label, m["tokens"], m["peak_mib"], m["retained_mib"], m["full_attention_mib"],
                      f"{m['peak_mib'] / m['full_attention_mib']:.2f}", m["params_mib"])
    table.notes.append("peak = VmHWM during the call (result held) minus VmRSS after model build + one warm-up "
                       "plain forward; held after = VmRSS with the result alive minus the same baseline.")
    return table


def app_table(result: dict, images: int) -> Table:
    rss = result["rss_mib"]
    table = Table(f"The app's resident memory while {images} different images are uploaded "
                  f"({APP_MODEL[0]}, random weights, Rollout page: plain + gradient capture per image)",
                  ["after image", "resident MiB", "growth since image 1 MiB"])
    for k in sorted({1, 2, 5, 10, 12, 15, 20, 25, 30, 40, images} & set(range(1, images + 1))):
        table.add(k, rss[k - 1], rss[k - 1] - rss[0])
    tail = rss[-min(20, len(rss) // 2):] if len(rss) >= 4 else rss
    slope = (tail[-1] - tail[0]) / max(len(tail) - 1, 1)
    table.notes += [
        f"Process resident size before the app's first run: {result['start_mib']:,.0f} MiB (torch, timm, "
        f"streamlit imported); peak over the whole run: {result['peak_mib']:,.0f} MiB.",
        f"Growth over the last {len(tail)} images: {slope:+.1f} MiB per image "
        f"({result['forward_passes']} forward passes ran in all).",
    ]
    return table


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--images", type=int, default=50, help="different images fed to the app")
    parser.add_argument("--no-app", action="store_true", help="only the capture table")
    parser.add_argument("--no-captures", action="store_true", help="only the app table")
    args = parser.parse_args(argv)
    use_random_hub([APP_MODEL[1]])  # before any process imports huggingface_hub (the forkserver inherits it)
    images = 5 if args.quick else args.images
    tables = []
    if not args.no_captures:
        tables.append(capture_table(args.threads, args.quick))
        print(tables[-1].text(), flush=True)
    if not args.no_app:
        tables.append(app_table(run_isolated(app_after_images, images, args.threads), images))
        print(tables[-1].text(), flush=True)
    setup_threads(args.threads)
    report(tables, machine(), args.out)


if __name__ == "__main__":
    main()
