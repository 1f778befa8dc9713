"""ViT vs CNN: what a new image costs once the pair's fixed images are measured, against a whole comparison.

``vitviz.compare_cnn`` measures the pair on the image, on 7 generated shapes (the receptive fields and attention
distances average over them) and on the 46 fixed pictures of the CKA batch (the samples and 32 shapes), and the
theoretical fields and costs. All but the image are the same for every image: ``vitviz.comparison.pair_reference``
measures them once and its ``compare(image)`` adds one image (the ViT vs CNN page keeps one reference per pair).
This times, interleaved, on the bundled shapes pair and each bundled sample picture:

* **whole comparison**: ``compare_cnn(vit, cnn, image)``, what the page did for every new image before;
* **the pair's reference**: ``pair_reference(vit, cnn)``, once per pair and server;
* **a new image**: ``reference.compare(image)``, what the page does for every new image now.

Run: ``python bench/cnn_comparison.py [--repeats N] [--threads 1] [--out bench/results/cnn_comparison.md]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import Table, add_common_args, interleaved, machine, report, setup_threads  # noqa: E402

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    args = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0])).parse_args(argv)
    threads = setup_threads(args.threads)
    from vitviz.comparison import IMAGE_SUFFIXES, compare_cnn, pair_reference
    from vitviz.shapes.cnn import load_shapes_cnn
    from vitviz.shapes.model import ASSETS_DIR, load_shapes_model

    vit, cnn = load_shapes_model()[0], load_shapes_cnn()[0]
    images = sorted(p for p in (ASSETS_DIR / "samples").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    reference = pair_reference(vit, cnn, patch_sizes=())
    cases = {"whole comparison": lambda: [compare_cnn(vit, cnn, im, patch_sizes=()) for im in images],
             "the pair's reference": lambda: pair_reference(vit, cnn, patch_sizes=()),
             "a new image": lambda: [reference.compare(im) for im in images]}
    timings = interleaved(cases, repeats=args.repeats or (1 if args.quick else 3), warmup=0)
    per_image = {"whole comparison": len(images), "the pair's reference": 1, "a new image": len(images)}
    table = Table(f"ViT vs CNN on the bundled shapes pair, {len(images)} sample pictures ({threads} torch thread(s))",
                  ["what", "s per call (median)", "CPU s per call (median)", "calls per round"])
    for name in cases:
        n = per_image[name]
        table.add(name, statistics.median(timings.wall[name]) / n, statistics.median(timings.cpu[name]) / n, n)
    table.notes.append("Per call: a round's time divided by its calls (one per sample picture, or one reference). "
                       "Rounds interleaved, the order rotated each round; read ratios within this table only.")
    report([table], machine(), args.out)


if __name__ == "__main__":
    main()
