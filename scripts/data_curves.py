"""How much data does a ViT need? Train the small ViT and the small CNN from scratch on growing shapes sets.

    python scripts/data_curves.py              # every point -> vitviz/assets/data_curves.json, docs/data_curves.md
    python scripts/data_curves.py --markdown   # rewrite docs/data_curves.md's table from the shipped JSON
    python scripts/data_curves.py --only vit 250 0 --out /tmp/point.json   # one point

Both architectures are those of vitviz-shapes and vitviz-shapes-cnn, freshly initialised. Every run uses the
same recipe (``vitviz.shapes.training.TrainConfig`` and its loop ``fit``: AdamW, warm-up and cosine decay,
label smoothing, clipping, token labelling, no augmentation) and the same number of steps and batch size
whatever the data size, so a small set is seen for many epochs and a large one for few; the ViT trains at its
native patch size 12 only. The training images of seed ``s`` are the first ``n`` items of shapes data set
``(s, split 0)`` in the style-family mix, so each set contains the smaller ones. Held-out accuracy is measured
on images neither saw: the training mix (in distribution) and the two held-out style families drawn by the
independent painter. Deterministic for a given torch version and thread count (recorded in the JSON).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts._markers import replace_between  # noqa: E402

OUT = ROOT / 'vitviz' / 'assets' / 'data_curves.json'
DOC = ROOT / 'docs' / 'data_curves.md'
START, END = '<!-- curves:start -->', '<!-- curves:end -->'
SETTINGS = {
    'sizes': [250, 1000, 4000, 16000],
    'seeds': [0, 1, 2],
    'archs': ['vit', 'cnn'],
    'steps': 640,  # a multiple of every size // batch, so each run is whole epochs
    'batch_size': 50,
    'warmup_steps': 64,
    'eval_count': 500,  # in distribution: the first 500 of the model card's 2,000 held-out images
    'held_out_count': 300,  # per held-out family: the first 300 of the model card's 600
}
ARCH_NAMES = {'vit': 'ViT', 'cnn': 'CNN'}
SET_NAMES = {'in_distribution': 'in distribution', 'paint_solid': 'paint_solid (held out)',
             'paint_outline': 'paint_outline (held out)'}

# Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", ICLR 2021: ImageNet top-1 accuracy (%) after
# fine-tuning at 384 px, by pre-training data set (Fig. 3; the ViT numbers are Appendix Table 5's "ImageNet"
# rows). BiT: the largest Big Transfer ResNet (ResNet152x4, Kolesnikov et al. 2020) pre-trained on each set, the
# top of the grey BiT band in Fig. 3 (BiT-L's 87.54 is also Table 2 of the ViT paper).
DOSOVITSKIY_2021 = {
    'source': 'Dosovitskiy et al. 2021, An Image is Worth 16x16 Words (ICLR), Fig. 3 and Table 5; '
              'BiT ResNet152x4 from Kolesnikov et al. 2020, Big Transfer (BiT), ECCV',
    'metric': 'ImageNet top-1 accuracy (%) after fine-tuning',
    'pretraining': [
        {'name': 'ImageNet', 'images': 1_300_000},
        {'name': 'ImageNet-21k', 'images': 14_000_000},
        {'name': 'JFT-300M', 'images': 300_000_000},
    ],
    'models': {
        'ViT-B/32': [73.38, 81.28, 80.73],
        'ViT-B/16': [77.91, 83.97, 84.15],
        'ViT-L/32': [71.16, 80.99, 84.37],
        'ViT-L/16': [76.53, 85.15, 87.12],
        'ViT-H/14': [None, 85.13, 88.04],
        'BiT ResNet152x4': [81.30, 85.39, 87.54],
    },
    'finding': 'Pre-trained on ImageNet alone, every ViT is below the BiT ResNet and the large ViTs are below the '
               'base ones; with ImageNet-21k the large ViTs come within a point of the ResNet; with JFT-300M the '
               'large ViTs beat the base ones and ViT-H/14 overtakes the ResNet.',
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', type=Path, default=OUT, help='results JSON (default vitviz/assets/data_curves.json)')
    parser.add_argument('--doc', type=Path, default=DOC, help='Markdown page whose table to rewrite')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (2 on the reference machine)')
    parser.add_argument('--workers', type=int, default=2, help='processes generating images')
    parser.add_argument('--only', nargs=3, metavar=('ARCH', 'SIZE', 'SEED'), help='run one point only')
    parser.add_argument('--markdown', action='store_true', help='only rewrite the doc table from --out')
    return parser.parse_args(argv)


def recipe(arch: str, size: int, seed: int, settings: dict, threads: int, workers: int):
    """The ``TrainConfig`` of one point: fixed steps and batch, whole epochs over ``size`` images."""
    # torch (through vitviz.shapes): loaded only when the script runs, so --help is instant
    from vitviz.shapes.training import TrainConfig

    per_epoch = size // settings['batch_size']
    if settings['steps'] % per_epoch:
        raise ValueError(f"{settings['steps']} steps are not whole epochs of {size} images")
    return replace(TrainConfig(seed=seed, threads=threads, workers=workers), train_images=size,
                   batch_size=settings['batch_size'], epochs=settings['steps'] // per_epoch,
                   warmup_steps=settings['warmup_steps'], patch_sizes=(12,))


def training_pool(seed: int, count: int, workers: int):
    """Items ``0 .. count-1`` of training set ``(seed, split 0)`` in the family mix, with mask cells."""
    # torch (through vitviz.shapes): loaded only when the script runs, so --help is instant
    from vitviz.shapes.dataset import TRAIN_SPLIT, pregenerate
    from vitviz.shapes.families import TRAIN_MIX
    from vitviz.shapes.training import MASK_CELL

    return pregenerate(seed, count, split=TRAIN_SPLIT, workers=workers, mask_cell=MASK_CELL, mix=TRAIN_MIX)


def evaluation_sets(settings: dict) -> dict:
    """``name -> (x, labels)``: the training mix and each held-out family, on the model card's held-out seed."""
    # torch (through vitviz.shapes): loaded only when the script runs, so --help is instant
    from vitviz.shapes.dataset import EVAL_SPLIT, normalize, pregenerate
    from vitviz.shapes.evaluation import EVAL_SEED
    from vitviz.shapes.families import HELD_OUT_FAMILIES, TRAIN_MIX
    from vitviz.shapes.model import MEAN, STD

    sets = {}
    for name, mix, count in [('in_distribution', TRAIN_MIX, settings['eval_count'])] + [
            (f, ((f, 1.0),), settings['held_out_count']) for f in HELD_OUT_FAMILIES]:
        images, _, labels = pregenerate(EVAL_SEED, count, split=EVAL_SPLIT, keep_masks=False, mix=mix)
        sets[name] = (normalize(images, MEAN, STD), labels)
    return sets


def run_point(arch: str, size: int, seed: int, settings: dict, pool, eval_sets: dict, threads: int = 2,
              workers: int = 2) -> dict:
    """Train one model on the first ``size`` images of ``pool`` and measure it on ``eval_sets``."""
    # torch (through vitviz.shapes): loaded only when the script runs, so --help is instant
    import torch

    from vitviz.shapes.cnn import train_cnn
    from vitviz.shapes.training import train

    cfg = recipe(arch, size, seed, settings, threads, workers)
    data = tuple(a[:size] for a in pool)
    trainer = train if arch == 'vit' else train_cnn
    result = trainer(cfg, progress=False, log=lambda _: None, data=data)
    model = result.model.eval()
    accuracy = {}
    with torch.no_grad():
        for name, (x, labels) in eval_sets.items():
            preds = torch.cat([model(x[i:i + 250]).argmax(1) for i in range(0, len(x), 250)]).numpy()
            accuracy[name] = float((preds == labels).mean())
    return {'arch': arch, 'size': size, 'seed': seed, 'accuracy': accuracy,
            'final_train_accuracy': float(sum(result.accuracies[-20:]) / 20),
            'train_seconds': round(result.seconds, 1)}


def summarise(runs: list[dict]) -> dict:
    """``arch -> size -> set -> {mean, sd, n}`` over seeds (sd: sample standard deviation)."""
    out: dict = {}
    for run in runs:
        for name, acc in run['accuracy'].items():
            out.setdefault(run['arch'], {}).setdefault(str(run['size']), {}).setdefault(name, []).append(acc)
    for sizes in out.values():
        for sets in sizes.values():
            for name, values in sets.items():
                sets[name] = {'mean': statistics.fmean(values), 'n': len(values),
                              'sd': statistics.stdev(values) if len(values) > 1 else 0.0}
    return out


def markdown(results: dict) -> str:
    """The table of docs/data_curves.md: mean ± sd over seeds, per architecture, data size and image set."""
    s = results['settings']
    summary = results['summary']
    names = list(next(iter(next(iter(summary.values())).values())))
    lines = [
        f"Written by `{results['command']}` in {results['wall_seconds'] / 60:.0f} min on the shared 2-core CPU "
        f"(torch {results['torch']}, {results['threads']} threads): {len(results['runs'])} runs, "
        f"{s['steps']} steps of {s['batch_size']} images each, mean ± standard deviation over seeds "
        f"{', '.join(map(str, sorted({r['seed'] for r in results['runs']})))}; held-out accuracy on "
        f"{s['eval_count']} images of the training mix "
        f"and {s['held_out_count']} of each held-out family.",
        '',
        '| training images | epochs | ' + ' | '.join(f'{ARCH_NAMES[arch]}: {SET_NAMES.get(n, n)}'
                                                    for arch in summary for n in names) + ' |',
        '|---|---|' + '---|' * (len(summary) * len(names)),
    ]
    for size in [n for n in s['sizes'] if all(str(n) in summary[arch] for arch in summary)]:
        cells = []
        for arch in summary:
            for n in names:
                v = summary[arch][str(size)][n]
                cells.append(f"{100 * v['mean']:.1f} ± {100 * v['sd']:.1f}")
        epochs = s['steps'] * s['batch_size'] // size
        lines.append(f'| {size:,} | {epochs} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines + [''] + reference_markdown(results['reference'])) + '\n'


def reference_markdown(ref: dict) -> list[str]:
    """Dosovitskiy et al.'s finding as a table: ImageNet accuracy by pre-training set and model."""
    sets = ref['pretraining']
    lines = [f"For comparison, {ref['metric']}, by pre-training data set ({ref['source']}):", '',
             '| model | ' + ' | '.join(f"{p['name']} ({p['images'] / 1e6:g} M images)" for p in sets) + ' |',
             '|---|' + '---|' * len(sets)]
    for model, values in ref['models'].items():
        lines.append(f'| {model} | ' + ' | '.join('–' if v is None else f'{v:.2f}' for v in values) + ' |')
    return lines + ['', ref['finding']]


def update_doc(doc: Path, table: str) -> None:
    try:
        doc.write_text(replace_between(doc.read_text(), START, END, f'\n{table}'))
    except ValueError as exc:
        raise SystemExit(f'{doc}: {exc} to update') from exc


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown:
        update_doc(args.doc, markdown(json.loads(args.out.read_text())))
        return 0
    # torch (through vitviz.shapes): loaded only when the script runs, so --help is instant
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    settings = dict(SETTINGS)
    points = [(a, n, s) for s in settings['seeds'] for n in settings['sizes'] for a in settings['archs']]
    if args.only:
        points = [(args.only[0], int(args.only[1]), int(args.only[2]))]
    eval_sets = evaluation_sets(settings)
    runs = []
    for seed in sorted({p[2] for p in points}):
        pool = training_pool(seed, max(p[1] for p in points if p[2] == seed), args.workers)
        for arch, size, s in points:
            if s == seed:
                runs.append(run_point(arch, size, seed, settings, pool, eval_sets, args.threads, args.workers))
                print(json.dumps(runs[-1]), flush=True)
    command = 'python scripts/data_curves.py' + (' --only ' + ' '.join(args.only) if args.only else '')
    results = {'command': command, 'torch': torch.__version__, 'threads': args.threads, 'settings': settings,
               'runs': runs, 'summary': summarise(runs), 'wall_seconds': round(time.perf_counter() - start),
               'reference': DOSOVITSKIY_2021}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + '\n')
    if not args.only:
        update_doc(args.doc, markdown(results))
    print(markdown(results))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
