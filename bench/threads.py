"""Torch's thread count: is the app's capture faster with one intra-op thread or with torch's default?

The app never calls ``torch.set_num_threads``, so torch uses one thread per physical core. On a shared machine a
descheduled thread stalls its sibling at every barrier, which hurts small models most. This script times the
app's own captured pass (``vitviz.capture.capture``, as ``vitviz_app.loaders.forward`` runs it) on the bundled
model (vitviz-shapes) and on a ViT-B/16 with random weights, with 1 thread and with torch's default, in
interleaved rounds (``torch.set_num_threads`` is switched before each call), and reports wall and CPU time and
the per-round ratio to the default.

Run with the libraries' own defaults for everything else (as the app runs):
``python bench/threads.py --threads 0 [--repeats N] [--out bench/results/threads.md]``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import RATIO_COLUMNS, Table, add_common_args, add_ratio_rows, interleaved, machine, report  # noqa: E402

__all__ = ["main"]


def _cases(name: str, model, x) -> dict:
    import torch

    from vitviz.capture import capture

    default = torch.get_num_threads()

    def run(threads: int):
        def case():
            torch.set_num_threads(threads)
            return capture(model, x)

        return case

    counts = sorted({1, default})
    return {f"{name}, {t} thread{'s' if t > 1 else ''}": run(t) for t in counts}, default


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    import timm
    import torch

    from vitviz.models import BUNDLED_MODEL, load_model

    default = torch.get_num_threads()
    torch.manual_seed(0)
    bundled = load_model(BUNDLED_MODEL)
    size = bundled.data_config["input_size"][1:]
    base = timm.create_model("vit_base_patch16_224", pretrained=False).eval()
    models = {"vitviz-shapes": (bundled.model, torch.randn(1, 3, *size)),
              "ViT-B/16": (base, torch.randn(1, 3, 224, 224))}
    repeats = args.repeats or (3 if args.quick else 15)
    tables = []
    for name, (model, x) in models.items():
        cases, _ = _cases(name, model, x)
        timings = interleaved(cases, repeats=repeats, warmup=1)
        torch.set_num_threads(default)
        table = Table(f"Captured pass of {name}, torch threads 1 vs default ({default}), {repeats} rounds",
                      ["case"] + RATIO_COLUMNS)
        add_ratio_rows(table, timings, baseline=next(k for k in cases if k.endswith(f"{default} threads"))
                       if default > 1 else next(iter(cases)))
        tables.append(table)
    tables[-1].notes.append(
        f"os.cpu_count() = {os.cpu_count()}, torch default threads = {default}, load average at the end "
        f"{os.getloadavg()[0]:.1f}. Ratios are per round against the default thread count.")
    report(tables, machine(), args.out)


if __name__ == "__main__":
    main()
