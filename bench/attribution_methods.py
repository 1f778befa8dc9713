"""Attribution methods: what each promises, measured on the trained shapes model, and what each costs.

1. **Conservation on a trained model** (the shipped ``vitviz-shapes`` ViT, held-out shapes images, top
   class): AttnLRP's input relevance over the target logit, pixels alone and pixels + position embedding +
   prefix tokens (the biases hold the rest; exact identity with biases counted is a test); Chefer 2021's
   relevance at every block's input (LRP starts with 1 at the logit); integrated gradients' completeness
   gap at the default 32 steps, relative to ``f(x) - f(black)``.
2. **Cost**: every registered method on the shapes model and on ViT-S/16 at 224 px (random weights), timed
   side by side in interleaved rounds, as a ratio to the plain forward pass timed in the same round.

Run: ``python bench/attribution_methods.py [--quick] [--images 20] [--out bench/results/attribution_methods.md]``.
"""
from __future__ import annotations

import argparse
import statistics
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

__all__ = ["conservation_table", "cost_table", "main"]


def _shapes_inputs(count: int):
    import torch

    from vitviz.shapes import load_shapes_model
    from vitviz.shapes.dataset import EVAL_SPLIT
    from vitviz.shapes.evaluation import EVAL_SEED
    from vitviz.shapes.generator import generate_batch

    model, config = load_shapes_model()
    images, _, labels = generate_batch(EVAL_SEED, count, split=EVAL_SPLIT,
                                       image_size=config["model_args"]["img_size"])
    mean = torch.tensor(config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["std"]).view(1, 3, 1, 1)
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std  # (N, 3, H, W)
    return model, x, labels


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    low, high = ordered[int(0.1 * (len(ordered) - 1))], ordered[int(0.9 * (len(ordered) - 1))]
    return f"{statistics.median(values):.4f} [{low:.4f}, {high:.4f}]"


def conservation_table(count: int) -> Table:
    """Conservation / completeness of CP-LRP, AttnLRP, Chefer 2021 and IG on ``count`` held-out shapes images."""
    from vitviz.attribution.chefer2021 import chefer_relevance
    from vitviz.attribution.conservation import decompose_logit
    from vitviz.attribution.integrated_gradients import integrated_gradients

    model, x, _ = _shapes_inputs(count)
    pixels, inputs, chefer, ig = {"cp_lrp": [], "attnlrp": []}, {"cp_lrp": [], "attnlrp": []}, [], []
    for i in range(count):
        image = x[i: i + 1]
        for method in pixels:
            lrp = decompose_logit(model, image, method=method)
            pixels[method].append(lrp.patches / lrp.logit)
            inputs[method].append((lrp.patches + lrp.position + sum(lrp.prefix.values())) / lrp.logit)
        target = lrp.relevance.target
        chefer.append(float(abs(chefer_relevance(model, image, target).input_totals - 1).max()))
        result = integrated_gradients(model, image, target)
        ig.append(abs(result.completeness_gap) / abs(result.score - result.baseline_score))
    table = Table(f"Conservation on vitviz-shapes, {count} held-out images, top class "
                  "(median [10th, 90th percentile])", ["method", "quantity", "value", "ideal"])
    for method, title in (("cp_lrp", "CP-LRP"), ("attnlrp", "AttnLRP")):
        table.add(title, "Σ pixel relevance / logit", _spread(pixels[method]), "1 minus the biases' share")
        table.add(title, "(pixels + position emb. + prefix) / logit", _spread(inputs[method]),
                  "1 minus the biases' (and AttnLRP's softmax's) share")
    table.add("Chefer 2021", "max over blocks |Σ R(block input) - 1|", _spread(chefer), "0")
    table.add("Integrated gradients (32 steps)", "|Σ IG - (f(x) - f(black))| / |f(x) - f(black)|",
              _spread(ig), "0 (trapezoid error)")
    table.notes.append("Biases (qkv, proj, MLP, LayerNorm, head) absorb the rest of the CP-LRP logit, biases and "
                       "the softmax rule's bias term the rest of AttnLRP's (vitviz.attribution.conservation): the "
                       "test suite checks that the parts sum to the logit to 1e-9 (float64).")
    return table


def cost_table(repeats: int) -> Table:
    """Time per call of every registered method, as a ratio to one plain forward pass."""
    import timm
    import torch

    from vitviz.attribution import METHODS

    table = Table("Cost per image, ratio to a plain forward pass timed in the same round",
                  ["model / method"] + RATIO_COLUMNS)
    shapes_model, shapes_x, _ = _shapes_inputs(1)
    torch.manual_seed(0)
    vit_s = timm.create_model("vit_small_patch16_224", pretrained=False).eval()
    for label, model, x in (("vitviz-shapes 96px", shapes_model, shapes_x[:1]),
                            ("ViT-S/16 224px", vit_s, torch.randn(1, 3, 224, 224))):
        def forward(model=model, x=x):
            with torch.no_grad():
                return model(x)
        cases = {"forward": forward}
        for key, method in METHODS.items():
            cases[key] = lambda method=method, model=model, x=x: method.attribute(model, x, target=1)
        timings = interleaved(cases, repeats=repeats, warmup=1)
        add_ratio_rows(table, timings, "forward", labels={k: f"{label}: {k}" for k in cases})
    table.notes.append("Methods' declared cost: " + "; ".join(f"{k}: {m.passes}" for k, m in METHODS.items()))
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="held-out shapes images for conservation")
    add_common_args(parser)
    args = parser.parse_args(argv)
    threads = setup_threads(args.threads)
    count = 5 if args.quick else args.images
    repeats = args.repeats or (2 if args.quick else 5)
    tables = [conservation_table(count), cost_table(repeats)]
    info = machine()
    info["threads"] = threads
    report(tables, info, args.out)


if __name__ == "__main__":
    main()
