"""Faithfulness cost: every perturbation curve of one map against one plain forward pass.

Cases, timed side by side on one 224×224 input of ViT-B/16 (``vit_base_patch16_224``, random weights):

* ``1 forward``: ``model(x)`` under ``torch.no_grad()``: the unit every other row is read in.
* ``tokens, both orders``: ``perturbation_curves(..., removal="tokens")``: 10 steps (0 %, 10 %, …, 90 %),
  positive and negative perturbation; one stacked batch per step.
* ``pixels, both orders``: the same with Chefer's pixel protocol (18 perturbed images + the clean one,
  ``batch_size`` per forward pass).
* ``all four curves``: both removals × both orders, i.e. what the Compare page and
  ``Explanation.faithfulness`` compute per method (the issue's target: ≤ 3 s on this CPU).
* ``random band, tokens``: five random orders, one order each (the band drawn under the curves).

Run: ``python bench/faithfulness_cost.py [--quick] [--threads 0] [--out bench/results/faithfulness_cost.md]``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import (  # noqa: E402
    RATIO_COLUMNS,
    Table,
    add_common_args,
    add_ratio_rows,
    interleaved,
    machine,
    report,
    setup_threads,
)

BASELINE = "1 forward"


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--model", default="vit_base_patch16_224")
    parser.add_argument("--batch-size", type=int, default=19, help="perturbed images per forward (pixels)")
    args = parser.parse_args(argv)
    threads = setup_threads(args.threads)

    import numpy as np
    import timm
    import torch

    from vitviz.evaluation import perturbation_curves, random_baseline

    torch.manual_seed(0)
    model = timm.create_model(args.model if not args.quick else "vit_tiny_patch16_224", pretrained=False).eval()
    x = torch.randn(1, 3, *model.patch_embed.img_size)
    scores = {"map": np.random.default_rng(0).random(model.patch_embed.grid_size)}

    def forward():
        with torch.no_grad():
            return model(x)

    def curves(removal):
        return lambda: perturbation_curves(model, x, scores, removal=removal, batch_size=args.batch_size)

    def both():
        return curves("tokens")(), curves("pixels")()

    cases = {
        BASELINE: forward,
        "tokens, both orders": curves("tokens"),
        "pixels, both orders": curves("pixels"),
        "all four curves": both,
        "random band, tokens": lambda: random_baseline(model, x, removal="tokens", seeds=range(5)),
    }
    repeats = args.repeats or (3 if args.quick else 5)
    times = interleaved(cases, repeats=repeats, warmup=1)
    table = Table(f"Perturbation curves of one map, {args.model if not args.quick else 'vit_tiny_patch16_224'} "
                  f"({threads} torch thread(s))", ["case"] + RATIO_COLUMNS)
    add_ratio_rows(table, times, BASELINE)
    table.notes.append(f"{times.rounds} interleaved rounds after 1 warm-up call per case; 10 steps per curve; "
                       f"pixel batches of {args.batch_size}.")
    table.notes.append("Token dropping runs (1 − fraction) of the tokens at each step, so one token curve costs "
                       "about 5.5 forward passes; a pixel curve costs 9 full ones.")
    report([table], machine(), args.out)


if __name__ == "__main__":
    main()
