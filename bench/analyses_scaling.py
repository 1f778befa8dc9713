"""Analyses scaling: time of each ``vitviz.analysis`` function as the token count N grows.

One architecture, ViT-S/16 with random weights, built at growing input sizes so only N changes
(224 → 197 tokens, 384 → 577, 592 → 1370, 768 → 2305). Each analysis runs on a real
``vitviz.capture.Capture`` taken the way the app takes it (storage 'auto': the full attention up to the
budget, queries and keys above it, so attention is then computed layer by layer on demand):

* ``rollout`` (mean fusion, no discarding) and ``rollout`` (max fusion, discard ratio 0.9)
* ``gradient_rollout`` on a capture taken with ``target=`` (always full storage, plus gradients)
* ``position_similarity`` from the model's position embeddings
* ``mean_attention_distance``

The growth rate is the slope of log(time) against log(N), a least-squares fit over the token counts measured:
an O(N^k) algorithm shows a slope near k once N is large enough for the leading term to dominate.

Run: ``python bench/analyses_scaling.py [--quick] [--sizes 224 384 592 768] [--out ...]``.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import Table, add_common_args, interleaved, machine, report, setup_threads  # noqa: E402

__all__ = ["ANALYSES", "loglog_slope", "main"]

ANALYSES = ("rollout (mean)", "rollout (max, discard 0.9)", "gradient_rollout", "position_similarity",
            "mean_attention_distance")
ARCH = "vit_small_patch16_224"


def loglog_slope(tokens: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) against log(tokens)."""
    xs = [math.log(n) for n in tokens]
    ys = [math.log(s) for s in seconds]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def cases_at(size: int, with_gradients: bool):
    """The model at ``size`` pixels, its captures, and a callable per analysis."""
    import timm
    import torch

    from vitviz.analysis import gradient_rollout, mean_attention_distance, position_similarity, rollout
    from vitviz.capture import capture

    torch.manual_seed(0)
    model = timm.create_model(ARCH, pretrained=False, img_size=size).eval()
    x = torch.randn(1, 3, size, size)  # (B, 3, H, W)
    cap = capture(model, x)
    fns = {
        "rollout (mean)": lambda: rollout(cap, head_fusion="mean"),
        "rollout (max, discard 0.9)": lambda: rollout(cap, head_fusion="max", discard_ratio=0.9),
        "position_similarity": lambda: position_similarity(model, cap.layout),
        "mean_attention_distance": lambda: mean_attention_distance(cap),
    }
    if with_gradients:
        cap_grad = capture(model, x, target=0)
        fns["gradient_rollout"] = lambda: gradient_rollout(cap_grad)
    return fns, cap


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--sizes", type=int, nargs="*", default=[224, 384, 592, 768],
                        help="input sides in pixels (ViT-S/16: N = (side/16)² + 1)")
    parser.add_argument("--max-grad-tokens", type=int, default=1370,
                        help="largest N for gradient_rollout (its capture keeps attention, gradients and the "
                        "autograd graph: about 3 GB at 1370 tokens)")
    args = parser.parse_args(argv)
    threads = setup_threads(args.threads)
    sizes = [224, 384] if args.quick else args.sizes
    repeats = args.repeats or (2 if args.quick else 3)

    medians: dict[str, dict[int, float]] = {name: {} for name in ANALYSES}
    storages: dict[int, str] = {}
    for size in sizes:
        tokens = (size // 16) ** 2 + 1
        fns, cap = cases_at(size, with_gradients=tokens <= args.max_grad_tokens)
        storages[tokens] = cap.storage
        del cap
        timings = interleaved(fns, repeats=repeats, warmup=0)
        for name, values in timings.cpu.items():
            medians[name][tokens] = statistics.median(values)
        print(f"N={tokens} ({storages[tokens]}): " + ", ".join(f"{k} {v[tokens] * 1e3:,.0f} ms"
                                                            for k, v in medians.items() if tokens in v), flush=True)
        del fns

    token_counts = sorted(storages)
    table = Table(
        f"CPU ms per call of each analysis vs token count (ViT-S/16, 12 layers × 6 heads, {threads} thread(s))",
        ["analysis"] + [f"N={n} ({storages[n]})" for n in token_counts] + ["log-log slope", "slope, last two N"],
    )
    for name in ANALYSES:
        row = [medians[name].get(n, float("nan")) * 1e3 for n in token_counts]
        have = [n for n in token_counts if n in medians[name]]
        slope = loglog_slope(have, [medians[name][n] for n in have]) if len(have) > 1 else float("nan")
        tail = loglog_slope(have[-2:], [medians[name][n] for n in have[-2:]]) if len(have) > 1 else float("nan")
        table.add(name, *row, f"{slope:.2f}", f"{tail:.2f}")
    table.notes += [
        f"Median of {repeats} interleaved calls, process CPU time. Storage: the capture's storage at that N "
        "('qk' computes each layer's attention on demand, inside the timed call).",
        f"gradient_rollout stops at N ≤ {args.max_grad_tokens} (memory); — = not measured.",
    ]
    report([table], machine(), args.out)


if __name__ == "__main__":
    main()
