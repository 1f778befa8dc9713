"""``python -m vitviz.evaluate``: score every attribution method over a data set.

Examples::

    # 1,000 held-out shapes images with their masks, every registered method, the shipped model
    python -m vitviz.evaluate --shapes 1000 --out runs/shapes
    # a folder of images (class subfolders, or flat: then the predicted class is explained)
    python -m vitviz.evaluate photos/ --model "ViT-S/16 (AugReg)" --methods rollout,attention --out runs/photos
    # the same on 2 processes (or GPUs, or machines): one table whatever the world size
    torchrun --nproc_per_node=2 -m vitviz.evaluate --shapes 1000 --out runs/shapes
    # the tables as Markdown, into the docs between <!-- evaluation:start/end --> markers
    python -m vitviz.evaluate --markdown runs/shapes --into docs/evaluation.md

Per method it measures the perturbation AUCs (token dropping and Chefer's pixel protocol, most relevant
removed first and least relevant first), and, where the images have object masks, the pointing game,
top-region IoU and Chefer's segmentation mIoU (see :mod:`vitviz.evaluation`). Results are appended to the
output folder as each image finishes; run the same command again after an interruption (Ctrl-C included)
and it continues.

It never loses or invents data: every argument is checked before anything runs; ``--overwrite`` deletes only
the files this tool wrote (its manifest lists them), never the image folder, which ``--out`` may not be; an
image that cannot be evaluated is skipped, named, and listed in ``summary.json`` with the reason; a results
line that cannot be read back is moved aside with a warning.
"""
from __future__ import annotations

# A command-line tool for maintainers: its output and the Markdown it writes into docs/ are reports and stay
# English (not translated; the app's texts go through vitviz.i18n).
import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

MAX_SHAPES = 10**9
MAX_BATCH = 65536
MAX_THREADS = 1024
MAX_PATCH = 1024
START_LAYER_METHODS = ("rollout", "chefer2021")
"""The methods Chefer et al. 2021 run from a start layer in their Table 1 (``start_layer=1``)."""


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[low, high]``, else a one-line message."""
    span = f"from {low} to {high}" if high is not None else f">= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number {span}, not {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number {span}, not {text!r}")
        return value

    parse.__name__ = "whole number"
    return parse


def _device(text: str) -> str:
    """An argparse type: a torch device name that this machine has."""

    if not re.fullmatch(r"cpu|cuda(:\d{1,3})?|mps", text.strip()):
        raise argparse.ArgumentTypeError(f"must be cpu, cuda, cuda:N or mps, not {text!r}")
    return text.strip()


class _Parser(argparse.ArgumentParser):
    """argparse, with its error as one line (no usage block above it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m vitviz.evaluate",
        description="Perturbation AUCs, pointing game and mask IoU of every attribution method over a data set.")
    data = parser.add_argument_group("data (one of)")
    data.add_argument("folder", nargs="?", help="image folder: class subfolders (labelled) or flat (unlabelled)")
    data.add_argument("--shapes", type=_whole(1, MAX_SHAPES), metavar="N",
                      help="N held-out shapes images with their object masks")
    data.add_argument("--seed", type=_whole(0, 2**63 - 1), default=None,
                      help="seed of the shapes set (default: the model card's held-out seed)")
    data.add_argument("--layout", choices=("auto", "classes", "flat"), default="auto",
                      help="image folder layout: class subfolders, or flat (default: whichever the folder holds; "
                           "a folder with both is refused)")
    parser.add_argument("--model", default="vitviz-shapes",
                        help="catalogue key, timm name or vitviz-shapes (default)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated method keys (default: every method in vitviz.attribution.METHODS)")
    parser.add_argument("--patch-size", type=_whole(1, MAX_PATCH), default=None,
                        help="re-patchify the model (FlexiViT-style)")
    parser.add_argument("--target", choices=("predicted", "label"), default="predicted",
                        help="class to explain: the top class (Chefer's protocol, default) or the label")
    parser.add_argument("--start-layer", type=_whole(0, MAX_PATCH), default=1,
                        help="first block folded in by rollout and Chefer 2021 (default 1, as in Chefer et al.'s "
                             "Table 1; 0 folds in every block)")
    parser.add_argument("--tie-orders", type=_whole(1, 1024), default=None,
                        help="random tie-breaking orders averaged where a map's ties change a perturbation step "
                             "(default 4)")
    parser.add_argument("--out", default="vitviz-evaluation", help="output folder; the same folder resumes")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard earlier results in --out (only the files this tool wrote there)")
    parser.add_argument("--retry-skipped", action="store_true",
                        help="try again the images an earlier run skipped (corrupt, unreadable, ...)")
    parser.add_argument("--batch-size", type=_whole(1, MAX_BATCH), default=32,
                        help="perturbed inputs per forward pass")
    parser.add_argument("--device", type=_device, default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=_whole(1, MAX_THREADS), default=None,
                        help="torch CPU threads per process (numbers are bit-identical across runs only "
                             "with the same thread count)")
    parser.add_argument("--limit", type=_whole(0), default=None,
                        help="evaluate at most this many new images per process, then stop (resume later; 0 "
                             "rewrites the tables from the results so far)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--markdown", metavar="SUMMARY",
                        help="render a summary.json (or the folder holding it) as Markdown and exit")
    parser.add_argument("--into", nargs="+", metavar="PAGE",
                        help="with --markdown: replace the <!-- evaluation:start/end --> block of these pages")
    return parser


def _fail(message: str) -> int:
    print(f"vitviz.evaluate: {message}", file=sys.stderr)
    return 2


def _markdown(source: str, pages: Sequence[str] | None) -> int:
    # heavy: torch and timm (through vitviz's modules), loaded only once the arguments are checked
    from vitviz.evaluation.summary import insert_between_markers, render_markdown

    path = Path(source)
    path = path / "summary.json" if path.is_dir() else path
    if not path.is_file():
        return _fail(f"no summary at {path}")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        summary.setdefault("info", {})["summary_path"] = path.as_posix()
        block = render_markdown(summary)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        return _fail(f"{path} is damaged or not a summary of this tool ({type(exc).__name__}: {exc}); "
                     "run the evaluation again to rewrite it")
    if not pages:
        sys.stdout.write(block)
        return 0
    for page in pages:
        try:
            Path(page).write_text(insert_between_markers(Path(page).read_text(), block))
        except (OSError, ValueError) as exc:
            return _fail(f"{page}: {exc}")
        print(f"wrote the tables into {page}", file=sys.stderr)
    return 0


def _methods(text: str | None) -> list[str]:
    # heavy: torch and timm (through vitviz's modules), loaded only once the arguments are checked
    from vitviz.attribution import METHODS, get_method, renamed_note, resolve_key

    names = list(METHODS) if text is None else [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError(f"--methods {text!r} lists no method (known: {', '.join(METHODS)})")
    for name in names:
        get_method(name)  # a clear error for an unknown key
        if text is not None and (note := renamed_note(name)):
            print(f"vitviz.evaluate: note: {note}", file=sys.stderr)
    names = [resolve_key(name) for name in names]
    if len(set(names)) != len(names):
        raise ValueError(f"a method is listed twice in {text!r}")
    return names


def _dataset(args: argparse.Namespace, model: Any, loaded: Any, config: dict) -> tuple[Any, str]:
    # heavy: torch and timm (through vitviz's modules), loaded only once the arguments are checked
    from vitviz.evaluation.datasets import ImageFolderSet, ShapesEvalSet

    if args.shapes is not None:
        from vitviz.shapes.evaluation import EVAL_SEED  # heavy: torch, as above

        h, w = (int(v) for v in model.patch_embed.img_size)
        if h != w:
            raise ValueError(f"the shapes set is square; this model's input is {h}x{w}")
        seed = EVAL_SEED if args.seed is None else args.seed
        data = ShapesEvalSet(seed, args.shapes, h, config["mean"], config["std"], labels=loaded.labels)
        return data, f"held-out shapes, seed {seed}, split {data.split}, {h}x{w} px, with object masks"
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    try:
        data = ImageFolderSet(args.folder, config, loaded.labels, num_classes, layout=args.layout)
    except ValueError as exc:
        if args.target == "label" or "cannot match the" not in str(exc):
            raise
        print(f"vitviz.evaluate: labels ignored ({exc})", file=sys.stderr)
        data = ImageFolderSet(args.folder, config, loaded.labels, num_classes, use_labels=False, layout=args.layout)
    print(f"vitviz.evaluate: {data.found}", file=sys.stderr)
    kind = f"{len(data.class_names)} class folders" if data.class_names else "unlabelled"
    return data, f"folder {args.folder}, {kind}"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed its one-line message (or the help)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    try:
        return _main(args)
    except KeyboardInterrupt:
        print(f"vitviz.evaluate: interrupted; the results so far are kept in {args.out}: run the same command "
              "again to go on", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace) -> int:
    if args.markdown:
        return _markdown(args.markdown, args.into)
    if (args.folder is None) == (args.shapes is None):
        return _fail("give an image folder or --shapes N (one of them)")
    if args.into:
        return _fail("--into goes with --markdown")
    problem = _folders_problem(args)
    if problem:
        return _fail(problem)

    # heavy: torch and timm (through vitviz's modules), loaded only once the arguments are checked
    import torch

    from vitviz.evaluation.distributed import init_world

    if args.device and args.device.startswith("cuda") and not torch.cuda.is_available():
        return _fail(f"--device {args.device}: this machine has no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    world = init_world(args.device)
    try:
        return _run(args, world)
    except (ValueError, OSError) as exc:  # ModelError, ImageError, RunMismatch are ValueErrors
        return _fail(str(exc))
    finally:
        world.close()


def _folders_problem(args: argparse.Namespace) -> str | None:
    """Why the image folder and ``--out`` cannot be used together, or None."""
    out = Path(args.out).resolve()
    if out.exists() and not out.is_dir():
        return f"--out {args.out} is a file, not a folder"
    if args.folder is None:
        return None
    folder = Path(args.folder).resolve()
    if not folder.is_dir():
        return f"{args.folder} is not a folder of images"
    if out == folder or folder in out.parents:
        return f"--out {args.out} is the image folder {args.folder} or inside it: choose another output folder"
    return None


def _run(args: argparse.Namespace, world: Any) -> int:
    # heavy: torch and timm (through vitviz's modules), loaded only once the arguments are checked
    import torch

    # heavy: torch and timm (through vitviz's modules), loaded only once the arguments are checked
    from vitviz.attribution import METHODS
    from vitviz.evaluation.ranking import DEFAULT_TIE_ORDERS
    from vitviz.evaluation.records import OutputFolder, write_text
    from vitviz.evaluation.runner import evaluate_dataset, write_results
    from vitviz.evaluation.summary import summarise
    from vitviz.images import data_config
    from vitviz.models import load_model

    methods = _methods(args.methods)
    loaded = load_model(args.model, device=world.device, allow_fallback=False)
    model = loaded.model
    if args.patch_size:
        # heavy: torch and timm (through vitviz's modules), loaded only once the arguments are checked
        from vitviz.analysis import with_patch_size

        model = with_patch_size(model, args.patch_size)
    if not int(getattr(model, "num_classes", 0) or 0):
        raise ValueError(f"{args.model} has no classifier: perturbation tests need class scores")
    config = data_config(model, base=loaded.data_config)
    dataset, data_text = _dataset(args, model, loaded, config)
    out = Path(args.out)
    if args.overwrite and world.is_root:
        removed = OutputFolder(out).remove_written()
        if removed:
            print(f"vitviz.evaluate: --overwrite removed {len(removed)} files this tool wrote in {out}",
                  file=sys.stderr)
    world.barrier()
    patch = tuple(int(v) for v in model.patch_embed.patch_size)
    if args.start_layer >= len(getattr(model, "blocks", ())):
        raise ValueError(f"--start-layer {args.start_layer}: {args.model} has {len(model.blocks)} blocks")
    options = {m: {"start_layer": args.start_layer} for m in START_LAYER_METHODS if m in methods}
    tie_orders = DEFAULT_TIE_ORDERS if args.tie_orders is None else args.tie_orders
    # protocol 2: CP-LRP renamed, AttnLRP as published, ties broken at random, per-pixel maps also pooled
    settings = {"model": loaded.name, "patch_size": list(patch), "data": dataset.describe(),
                "target": args.target, "fractions": None, "protocol": 2, "options": options,
                "tie_orders": tie_orders}
    run = evaluate_dataset(model, dataset, methods, out, settings=settings, world=world, target=args.target,
                           batch_size=args.batch_size, mean=config["mean"], std=config["std"], options=options,
                           tie_orders=tie_orders, limit=args.limit, progress=not args.no_progress,
                           retry_skipped=args.retry_skipped)
    if not world.is_root:
        return 0
    write_results(out, run.rows)
    info = {"model": loaded.name, "patch_size": "x".join(map(str, patch)), "data": data_text,
            "target": args.target, "device": str(world.device), "threads": torch.get_num_threads(),
            "world_size": world.size, "torch": torch.__version__, "complete": run.complete,
            "seconds_this_call": round(run.seconds, 1), "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "options": options, "tie_orders": tie_orders}
    titles = {m: METHODS[m].title + (f" (start layer {args.start_layer})" if m in options else "") for m in methods}
    summary = summarise(run.rows, methods, titles=titles, info=info, skipped=run.skipped)
    write_text(out / "summary.json", json.dumps(summary, indent=1, allow_nan=True) + "\n")
    done = summary["images"]
    if run.skipped:
        print(f"vitviz.evaluate: {len(run.skipped)} images skipped (listed with the reason in summary.json; "
              "--retry-skipped tries them again)", file=sys.stderr)
    if not run.complete:
        print(f"stopped by --limit: {done} of {len(dataset)} images done; run the same command again to go on",
              file=sys.stderr)
    print(f"{done} images x {len(methods)} methods -> {out / 'results.csv'}, {out / 'summary.json'}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
