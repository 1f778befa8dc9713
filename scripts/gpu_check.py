"""Check vitviz's capture on a CUDA device against the CPU, and time it against the plain forward.

Run on a machine with a GPU: ``python scripts/gpu_check.py``. Prints one line per check and exits non-zero
when a GPU result disagrees with the CPU. Random weights only (no download).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vitviz.capture import capture  # noqa: E402
from vitviz.models import default_device, load_model  # noqa: E402

CASES = [
    ("test_vit", {}),
    ("deit_small_distilled_patch16_224", {}),
    ("vit_small_patch14_reg4_dinov2", dict(img_size=224)),
    ("vit_base_patch16_224", {}),
    ("eva02_tiny_patch14_224", {}),
]


def _time(fn, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def check(name: str, kwargs: dict) -> bool:
    torch.manual_seed(0)
    gpu = load_model(name, pretrained=False, device="cuda", **kwargs)
    cpu_model = load_model(name, pretrained=False, device="cpu", **kwargs).model
    cpu_model.load_state_dict({k: v.cpu() for k, v in gpu.model.state_dict().items()})
    size = gpu.data_config["input_size"][1:]
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    ok = True
    for storage in ("full", "qk"):
        if storage == "qk" and name.startswith("eva"):
            continue
        on_gpu = capture(gpu.model, x.cuda(), storage=storage)
        on_cpu = capture(cpu_model, x, storage=storage)
        err = max((on_gpu.attention(i) - on_cpu.attention(i)).abs().max().item() for i in range(on_cpu.num_layers))
        out = (on_gpu.output - on_cpu.output).abs().max().item()
        good = err < 1e-3 and out < 1e-2
        ok &= good
        print(f"{name:38s} {storage:4s} tokens={on_cpu.num_tokens:5d} max|ΔA|={err:.2e} max|Δout|={out:.2e} "
              f"{'OK' if good else 'MISMATCH'}")
    grads = capture(gpu.model, x.cuda(), target=3)
    finite = all(torch.isfinite(grads.attention_grad(i)).all() for i in range(grads.num_layers))
    ok &= bool(finite)
    xg = x.cuda()

    def plain():
        with torch.no_grad():
            gpu.model(xg)

    t_plain = _time(plain)
    t_capture = _time(lambda: capture(gpu.model, xg))
    print(f"{name:38s} gradients finite={finite} plain={t_plain * 1e3:.2f} ms capture={t_capture * 1e3:.2f} ms "
          f"ratio={t_capture / t_plain:.2f}")
    return ok


def main() -> int:
    print("device:", default_device(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-",
          "torch", torch.__version__)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    ok = all([check(name, kwargs) for name, kwargs in CASES])
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
