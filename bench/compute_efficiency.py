"""Compute efficiency: how much of the machine's practical FLOP rate a ViT forward pass (and a capture) gets.

For each model the script counts the forward pass's floating-point operations twice, with
``torch.utils.flop_counter.FlopCounterMode`` on the unfused model (so the attention products appear as plain
matrix products) and analytically:

    per block   2·(12·N·D² + 2·N²·D) = 24·N·D² + 4·N²·D FLOPs
                (multiply-adds: qkv 3ND², proj ND², MLP 8ND², q·kᵀ and attn·v N²D each; 1 MAC = 2 FLOPs)
    patch embed 2·Np·(3·p²)·D,  head 2·D·C

and times three cases side by side, in interleaved rounds: a large float32 matrix product
(2048×2048 @ 2048×2048, 2·2048³ FLOPs: the practical limit of this CPU with this thread count), the plain
forward (fused attention, no capture) and ``vitviz.capture.capture`` (storage 'auto'). The fraction is the
model's achieved GFLOP/s over the matrix product's, from the same rounds.

Run: ``python bench/compute_efficiency.py [--quick] [--out bench/results/compute_efficiency.md]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import Table, add_common_args, interleaved, machine, report, setup_threads  # noqa: E402
from bench.capture_cost import MODELS, ModelCase, unfused  # noqa: E402

__all__ = ["analytic_flops", "counted_flops", "main"]

MATMUL_SIDE = 2048


def analytic_flops(model, tokens: int) -> int:
    """FLOPs of one forward pass from the architecture (matrix products only; 1 multiply-add = 2 FLOPs)."""
    dim = int(model.embed_dim)
    patches = int(model.patch_embed.num_patches)
    ph, pw = (int(p) for p in model.patch_embed.patch_size)
    hidden = int(model.blocks[0].mlp.fc1.out_features)
    per_block = 2 * (4 * tokens * dim * dim + 2 * tokens * dim * hidden + 2 * tokens * tokens * dim)
    patch_embed = 2 * patches * 3 * ph * pw * dim
    head = 2 * dim * int(getattr(model, "num_classes", 0) or 0)
    return len(model.blocks) * per_block + patch_embed + head


def counted_flops(model, x) -> int:
    """FLOPs of one forward pass as counted by torch's FlopCounterMode (unfused attention)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with unfused(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def measure(case: ModelCase, repeats: int, budget_s: float | None, device: str) -> tuple[list, dict]:
    """Time the matrix product, the plain forward and the capture of one model, interleaved."""
    import torch

    from vitviz.capture import capture

    torch.manual_seed(0)
    model = case.create().to(device)
    x = torch.randn(1, 3, case.img_size, case.img_size, device=device)  # (B, 3, H, W)
    a = torch.randn(MATMUL_SIDE, MATMUL_SIDE, device=device)
    b = torch.randn(MATMUL_SIDE, MATMUL_SIDE, device=device)
    tokens = int(model.patch_embed.num_patches) + int(model.num_prefix_tokens)
    flops = {"counted": counted_flops(model, x), "analytic": analytic_flops(model, tokens)}

    def plain():
        with torch.no_grad():
            return model(x)

    cases = {"matmul": lambda: a @ b, "plain": plain, "capture": lambda: capture(model, x)}
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    timings = interleaved(cases, repeats=repeats, warmup=1, sync=sync, budget_s=budget_s)
    storage = capture(model, x).storage
    return _rows(case, tokens, flops, timings, storage, device), {"flops": flops, "wall_s": timings.wall,
                                                                  "cpu_s": timings.cpu}


def _rows(case, tokens, flops, timings, storage, device) -> list:
    matmul_flops = 2 * MATMUL_SIDE**3
    clock = timings.wall if device.startswith("cuda") else timings.cpu
    limit = matmul_flops / statistics.median(clock["matmul"]) / 1e9
    rows = []
    for name in ("plain", "capture"):
        seconds = statistics.median(clock[name])
        rate = flops["counted"] / seconds / 1e9
        label = f"{case.label} {name}" + (f" ({storage})" if name == "capture" else "")
        rows.append([label, tokens, flops["counted"] / 1e9, flops["analytic"] / 1e9, seconds * 1e3,
                     statistics.median(timings.wall[name]) * 1e3, rate, limit, f"{rate / limit:.0%}"])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--budget", type=float, default=35.0, help="seconds of timing per model (at least 5 rounds)")
    args = parser.parse_args(argv)
    threads = setup_threads(args.threads)
    models = [m for m in MODELS if not args.quick or m.timm_name == "vit_small_patch16_224"]
    clock = "wall" if args.device.startswith("cuda") else "CPU"
    table = Table(
        f"Achieved GFLOP/s vs a {MATMUL_SIDE}² float32 matrix product ({threads} torch thread(s), {args.device})",
        ["case", "tokens", "GFLOP (FlopCounterMode)", "GFLOP (analytic)", f"{clock} ms (median)",
         "wall ms (median)", "GFLOP/s", "matmul GFLOP/s (same rounds)", "fraction of matmul"],
    )
    raw = {}
    for case in models:
        rows, raw[case.label] = measure(case, repeats=args.repeats or (3 if args.quick else 30),
                                        budget_s=None if args.quick or args.repeats else args.budget,
                                        device=args.device)
        for row in rows:
            table.add(*row)
        print(table.text(), flush=True)
    table.notes += [
        f"GFLOP/s use the median {clock} time per call; on CPU, process CPU time (one torch thread by default) "
        "is what the computation itself took, steadier than wall time on a shared machine.",
        "FlopCounterMode counts matrix products and convolutions only (softmax, LayerNorm, GELU are not "
        "counted); the analytic count agrees with it to the head's bias.",
        "The matrix product was timed in the same interleaved rounds as the model it sits next to.",
    ]
    report([table], machine(args.device), args.out)


if __name__ == "__main__":
    main()
