"""Batching sessions' passes: throughput and latency of one batch of B images against B passes of batch 1.

What the app's serving queue (``vitviz.serving``) would gain by running B sessions' passes that arrive together
as one batch (``vitviz.pipeline.run_batch``: each image prepared on its own, one capture of the batch, split):

* **throughput**: images per second, batch B against batch 1 (the per-round ratio of seconds per image);
* **latency**: with a batch, every session of it waits for the whole batch; one at a time, the i-th waits for
  i passes. So the batch's time is compared with the mean (``(B + 1) / 2`` passes) and the last (``B``
  passes) of the sessions served one by one.

Cases are timed side by side (``bench/_timing.py``: one call of each per round, order rotated). Models: ViT-B/16
with random weights and the bundled ``vitviz-shapes``. Threads as in the app: torch's default for ViT-B, one
for the small bundled model (``vitviz_app.loaders.one_thread_if_small``); ``--threads N`` forces N for both.
(``bench/_timing.py`` sets ``OMP_NUM_THREADS`` to 1 for numpy; torch's count is set here.)

Run: ``python bench/batching.py [--quick] [--models vit-b,shapes] [--sizes 1,2,4,8] [--gradients]
[--device cuda] [--out bench/results/batching.md]``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import Table, add_common_args, interleaved, machine, paired_ratios, quantiles, report  # noqa: E402

__all__ = ["MODELS", "build", "photos", "time_model", "main"]

MODELS = {"vit-b": "ViT-B/16 (random weights)", "shapes": "vitviz-shapes (bundled)"}


def build(name: str, device: str):
    """(model, data_config, labels, torch threads to use) of a benchmark model."""
    import timm
    import torch

    from vitviz.images import data_config

    torch.manual_seed(0)
    if name == "vit-b":
        model = timm.create_model("vit_base_patch16_224", pretrained=False).eval().to(device)
        return model, data_config(model), None, len(os.sched_getaffinity(0))  # torch's default: one per core
    from vitviz.models import load_model

    loaded = load_model("vitviz-shapes", device=device)
    return loaded.model, loaded.data_config, loaded.labels, 1


def photos(n: int) -> list:
    """n different photos of different sizes (each is resized and cropped on its own, as uploads are)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (300 + 17 * i, 400 - 13 * i, 3), dtype=np.uint8)) for i in range(n)]


def time_model(name: str, sizes: list[int], repeats: int, gradients: bool, device: str, threads: int | None) -> Table:
    """One table: per batch size, seconds per batch, per image, and the ratios against batch 1."""
    import torch

    from vitviz import pipeline

    model, config, labels, default_threads = build(name, device)
    before = torch.get_num_threads()
    use = default_threads if threads is None else threads
    if use:
        torch.set_num_threads(use)
    images = photos(max(sizes))
    classes = int(getattr(model, "num_classes", 0) or 1)
    targets = [(3 * i) % classes for i in range(max(sizes))] if gradients else None
    sync = torch.cuda.synchronize if device.startswith("cuda") else None

    def case(size: int):
        return lambda: pipeline.run_batch(model, images[:size], data_config=config, labels=labels,
                                          targets=None if targets is None else targets[:size])

    try:
        timings = interleaved({size: case(size) for size in sizes}, repeats=repeats, warmup=1, sync=sync)
        threads_used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    per_image = {size: [t / size for t in timings.wall[size]] for size in sizes}
    ratio = paired_ratios(per_image, sizes[0])  # seconds per image, against batch 1, round by round
    one = quantiles(timings.wall[sizes[0]])[1]
    table = Table(f"{MODELS[name]}{' with gradients' if gradients else ''}, {device}, {threads_used} torch "
                  f"thread(s)", ["batch B", "batch wall s (median)", "per image ms", "throughput × batch 1 "
                                 "(p25–p75)", "batch vs mean one-by-one wait", "batch vs last one-by-one wait"])
    for size in sizes:
        batch = quantiles(timings.wall[size])[1]
        q1, q2, q3 = quantiles([1 / r for r in ratio[size]])
        table.add(size, batch, batch / size * 1e3, f"{q2:.2f} ({q1:.2f}–{q3:.2f})",
                  f"{batch / (one * (size + 1) / 2):.2f}×", f"{batch / (one * size):.2f}×")
    table.notes += [
        f"{timings.rounds} rounds, every batch size once per round (order rotated), after one warm-up round; wall "
        "time of `vitviz.pipeline.run_batch` (prepare each image, one capture, split, top-5).",
        "throughput: seconds per image of batch 1 divided by those of batch B, per round (above 1: the batch "
        "serves more images per second).",
        "latency: every session of a batch waits for the whole batch; served one by one (batch 1 each), the "
        "i-th waits i passes. Below 1× the batch is the shorter wait.",
    ]
    return table


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.set_defaults(threads=None)
    parser.add_argument("--models", default="vit-b,shapes", help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--sizes", default="1,2,4,8", help="batch sizes (the first is the baseline)")
    parser.add_argument("--gradients", action="store_true", help="also time passes with a gradient target")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    repeats = args.repeats or (3 if args.quick else 5)
    tables = []
    for name in args.models.split(","):
        for gradients in (False, True) if args.gradients else (False,):
            tables.append(time_model(name, sizes, repeats, gradients, args.device, args.threads))
            print(tables[-1].text(), flush=True)  # each table as soon as it is measured
    report(tables, machine(args.device), args.out)


if __name__ == "__main__":
    main()
