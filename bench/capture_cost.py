"""Capture cost: one forward pass with every layer's attention recorded vs the plain timm forward.

Cases, timed side by side on the same input and weights (random weights, ``pretrained=False``):

* ``plain (fused)``: ``model(x)`` under ``torch.no_grad()`` with timm's fused attention: the baseline.
* ``plain (unfused)``: the same with ``fused_attn`` off: what any method that materialises the attention
  matrix pays before it stores anything.
* ``capture auto`` / ``capture full`` / ``capture qk``: ``vitviz.capture.capture(model, x, storage=...)``.
* ``capture full + views`` / ``capture qk + views``: the capture, then every layer's attention read once
  (``Capture.attention(layer)``), what a page showing all layers costs on top: with ``qk`` storage each
  view recomputes ``softmax(q·kᵀ)``, with ``full`` it is a lookup. The storage is chosen by this sum.
* ``AttentionExtract hook`` / ``AttentionExtract fx``: ``timm.utils.AttentionExtract`` on a copy of the model
  whose attention modules run unfused (its hooks on ``attn_drop`` and its ``softmax`` graph nodes only exist
  on the unfused path), so it returns every layer's attention.

Before timing, the layer-0 attention of every capture storage and of both AttentionExtract methods is checked
against each other, so the rows compare methods that return the same thing.

Peak memory per case is measured in a process of its own (see ``bench/_timing.py``): resident-set peak while
the case runs and while its result is held, minus the resident size after building the model and one warm-up
forward pass. It is compared with the size of the full attention tensor ``4·L·H·N²`` bytes.

Run: ``python bench/capture_cost.py [--quick] [--out bench/results/capture_cost.md]``.
"""
from __future__ import annotations

import argparse
import copy
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import (  # noqa: E402
    RATIO_COLUMNS,
    Table,
    add_common_args,
    add_ratio_rows,
    interleaved,
    machine,
    peak_rss,
    report,
    run_isolated,
    setup_threads,
)

__all__ = ["METHODS", "MODELS", "ModelCase", "build", "check_agreement", "full_attention_bytes", "main", "memory_table",
           "time_model", "unfused"]

BASELINE = "plain (fused)"
METHODS = ("plain (fused)", "plain (unfused)", "capture auto", "capture full", "capture qk",
           "capture full + views", "capture qk + views", "AttentionExtract hook", "AttentionExtract fx")


@dataclass(frozen=True)
class ModelCase:
    """A model to benchmark: a timm architecture, built with random weights at one input size."""

    label: str
    timm_name: str
    img_size: int
    kwargs: tuple[tuple[str, object], ...] = ()

    def create(self):
        import timm

        return timm.create_model(self.timm_name, pretrained=False, **dict(self.kwargs)).eval()


MODELS = (
    ModelCase("ViT-S/16 @224", "vit_small_patch16_224", 224),
    ModelCase("ViT-B/16 @224", "vit_base_patch16_224", 224),
    ModelCase("DINOv2-S/14 @518", "vit_small_patch14_dinov2", 518, (("img_size", 518),)),
)


@contextmanager
def unfused(model):
    """Run every attention module's explicit softmax path for the duration."""
    modules = [block.attn for block in model.blocks]
    saved = [m.fused_attn for m in modules]
    for m in modules:
        m.fused_attn = False
    try:
        yield model
    finally:
        for m, flag in zip(modules, saved):
            m.fused_attn = flag


def _unfused_copy(model):
    clone = copy.deepcopy(model)
    for block in clone.blocks:
        block.attn.fused_attn = False
    return clone


def build(case: ModelCase, methods=METHODS, device: str = "cpu", seed: int = 0) -> tuple[dict, object, object]:
    """The model, its input and a zero-argument callable per method.

    Returns:
        (callables by method name, model, input batch (1, 3, S, S)).
    """
    import torch
    from timm.utils import AttentionExtract

    from vitviz.capture import capture

    torch.manual_seed(seed)
    model = case.create().to(device)
    x = torch.randn(1, 3, case.img_size, case.img_size, device=device)  # (B, 3, H, W)

    def plain():
        with torch.no_grad():
            return model(x)

    def plain_unfused():
        with unfused(model), torch.no_grad():
            return model(x)

    fns = {
        "plain (fused)": plain,
        "plain (unfused)": plain_unfused,
        "capture auto": lambda: capture(model, x),
        "capture full": lambda: capture(model, x, storage="full"),
        "capture qk": lambda: capture(model, x, storage="qk"),
        "capture + gradients": lambda: capture(model, x, target=0),
        "capture full + views": lambda: _view_all(capture(model, x, storage="full")),
        "capture qk + views": lambda: _view_all(capture(model, x, storage="qk")),
    }
    if "AttentionExtract hook" in methods:
        hook = AttentionExtract(_unfused_copy(model), method="hook")
        fns["AttentionExtract hook"] = _no_grad(hook, x)
    if "AttentionExtract fx" in methods:
        fx = AttentionExtract(_unfused_copy(model), method="fx")
        fns["AttentionExtract fx"] = _no_grad(fx, x)
    return {name: fns[name] for name in methods}, model, x


def _view_all(cap):
    """Read every layer's attention once (as a page showing all layers does); returns the capture."""
    for layer in range(cap.num_layers):
        cap.attention(layer)
    return cap


def _no_grad(extractor, x):
    import torch

    def run():
        with torch.no_grad():
            return extractor(x)

    return run


def check_agreement(fns: dict) -> float:
    """Largest difference of layer 0's attention between the methods that return it (should be ~1e-7)."""
    import torch

    maps = []
    for name, fn in fns.items():
        if name.startswith("capture"):
            maps.append(fn().attention(0))  # (B, H, N, N)
        elif name.startswith("AttentionExtract"):
            maps.append(next(iter(fn().values())))  # (B, H, N, N), first block
    if len(maps) < 2:
        return 0.0
    worst = max(float((m.cpu() - maps[0].cpu()).abs().max()) for m in maps[1:])
    if worst > 1e-4 or not torch.allclose(maps[0].sum(-1).cpu(), torch.ones(1), atol=1e-4):
        raise AssertionError(f"methods disagree on layer 0's attention (max diff {worst:.2e})")
    return worst


def full_attention_bytes(model, tokens: int, batch: int = 1) -> int:
    """Bytes of every layer's float32 attention probabilities, (B, L, H, N, N)."""
    heads = int(model.blocks[0].attn.num_heads)
    return 4 * batch * len(model.blocks) * heads * tokens * tokens


def _memory_child(case: ModelCase, method: str, threads: int | None) -> dict:
    """In a fresh process: build, warm up with one plain forward, then measure one call of ``method``."""
    setup_threads(threads)
    import torch

    fns, model, x = build(case, methods=(BASELINE, method) if method != BASELINE else (BASELINE,))
    fns[BASELINE]()  # warm-up: allocator and oneDNN state every case shares
    held: dict = {}
    measured = peak_rss(lambda: held.setdefault("result", fns[method]()))
    result = held.pop("result")
    storage = result.storage if hasattr(result, "num_layers") else None  # a Capture (a tensor's .storage is a method)
    del result
    tokens = int(model.patch_embed.num_patches) + int(model.num_prefix_tokens)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return {**measured, "storage": storage, "tokens": tokens,
            "full_attention_mib": full_attention_bytes(model, tokens) / 2**20, "params_mib": params / 2**20,
            "torch_threads": torch.get_num_threads()}


def time_model(case: ModelCase, methods, repeats: int, warmup: int, device: str,
               budget_s: float | None = None) -> tuple[Table, dict]:
    """Interleaved timing of every method on one model; returns the table and the raw times."""
    import torch

    fns, model, _x = build(case, methods, device=device)
    worst = check_agreement(fns)
    storage = fns["capture auto"]().storage if "capture auto" in fns else "?"
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    times = interleaved(fns, repeats=repeats, warmup=warmup, sync=sync, budget_s=budget_s)
    tokens = int(model.patch_embed.num_patches) + int(model.num_prefix_tokens)
    table = Table(
        f"{case.label} ({case.timm_name}, {tokens} tokens, {len(model.blocks)} layers × "
        f"{model.blocks[0].attn.num_heads} heads) on {device}",
        ["method"] + RATIO_COLUMNS,
    )
    add_ratio_rows(table, times, BASELINE, {"capture auto": f"capture auto → {storage}"})
    table.notes.append(f"{times.rounds} interleaved rounds after {warmup} warm-up call(s) per method; "
                       f"layer-0 attention agrees across methods to {worst:.1e}.")
    return table, {"wall_s": times.wall, "cpu_s": times.cpu, "storage_auto": storage, "tokens": tokens}


def memory_table(models, methods, threads: int | None) -> Table:
    """Peak and retained resident memory per model and method, each in a fresh process."""
    table = Table("Peak resident memory per call (fresh process per row)",
                  ["model", "method", "tokens", "peak MiB", "held after MiB", "full attention MiB",
                   "peak / full attention"])
    for case in models:
        for method in methods:
            m = run_isolated(_memory_child, case, method, threads)
            label = f"{method} → {m['storage']}" if method == "capture auto" else method
            table.add(case.label, label, m["tokens"], m["peak_mib"], m["retained_mib"], m["full_attention_mib"],
                      f"{m['peak_mib'] / m['full_attention_mib']:.2f}")
    table.notes.append("peak = VmHWM during the call (result still held) minus VmRSS after model build + one "
                       "warm-up plain forward; held after = VmRSS with the result alive minus the same baseline. "
                       "Full attention = 4·L·H·N² bytes (float32, batch 1).")
    return table


def main(argv: list[str] | None = None) -> None:
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="seconds of timing per model before rounds stop (at least 5 rounds, at most 40)")
    parser.add_argument("--models", nargs="*", default=None, help="labels or timm names to run (default: all)")
    parser.add_argument("--memory-models", nargs="*", default=["vit_small_patch14_dinov2"],
                        help="models whose per-method peak memory is measured (default: the 1370-token one; "
                        "none to skip); bench/memory.py covers ViT-B/16 and ViT-L/16")
    parser.add_argument("--no-timing", action="store_true", help="only the memory table")
    args = parser.parse_args(argv)
    models = [m for m in MODELS if not args.models or m.label in args.models or m.timm_name in args.models]
    if args.quick:
        models = [m for m in models if m.timm_name != "vit_base_patch16_224"]
    tables, memory = [], None
    mem_models = [m for m in models if m.label in args.memory_models or m.timm_name in args.memory_models]
    if mem_models and args.device == "cpu":
        mem_methods = (BASELINE, "capture auto", "AttentionExtract fx") if args.quick else METHODS
        memory = memory_table(mem_models, mem_methods, args.threads)  # before this process computes anything
        print(memory.text(), flush=True)
    setup_threads(args.threads)
    if not args.no_timing:
        for case in models:
            repeats = args.repeats or (3 if args.quick else 40)
            budget = None if args.repeats or args.quick else args.budget
            table, _raw = time_model(case, METHODS, repeats=repeats, warmup=1, device=args.device, budget_s=budget)
            print(table.text(), flush=True)
            tables.append(table)
    tables += [memory] if memory is not None else []
    report(tables, machine(args.device), args.out)


if __name__ == "__main__":
    main()
