"""Train, evaluate and ship vitviz-shapes: the small ViT that vitviz uses offline.

    # version 2 (shipped) starts from version 1's weights, kept in git history:
    git show 77d725f:vitviz/assets/shapes_vit.safetensors > /tmp/shapes_v1.safetensors
    python scripts/train_shapes.py --init /tmp/shapes_v1.safetensors   # vitviz/assets/shapes_vit.*, model card
    python scripts/train_shapes.py --quick    # 1-minute smoke run into a temporary folder
    python scripts/train_shapes.py --card-only  # rewrite the card's results from the shipped JSON's metrics

The full run generates the training images from ``--seed`` in the style-family mix
(``vitviz.shapes.families.TRAIN_MIX``), trains FlexiViT-style over every patch size
(``vitviz.shapes.training``), evaluates on a held-out seed (``vitviz.shapes.evaluation``): the mix at every
patch size, then each style family on its own, held-out families included. It then writes the weights
(safetensors), the config JSON with the metrics, the gallery images, and the results section of the model
card. Deterministic for a given seed, init, torch version and thread count.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts._markers import replace_between  # noqa: E402

CARD = ROOT / 'docs' / 'model_card.md'
START, END = '<!-- results:start -->', '<!-- results:end -->'
GALLERY_CLASSES = ('star', 'heart', 'arrow', 'ring', 'crescent', 'cross')
# new styles in the gallery: (class, family), saved as shapes_<class>_<family>.png
FAMILY_GALLERY = (('triangle', 'photo'), ('heart', 'sketch'), ('cross', 'flat'), ('star', 'outline'))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seed', type=int, default=0, help='training seed')
    parser.add_argument('--quick', action='store_true', help='tiny smoke run into a temporary folder')
    parser.add_argument('--out-dir', type=Path, default=None,
                        help='where to write shapes_vit.{safetensors,json} (default vitviz/assets; --quick: temp)')
    parser.add_argument('--card', type=Path, default=None, help='model card to update (default docs/model_card.md)')
    parser.add_argument('--eval-count', type=int, default=None, help='held-out images for accuracy')
    parser.add_argument('--localise-count', type=int, default=None, help='held-out images for localisation')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (2 on the reference machine)')
    parser.add_argument('--workers', type=int, default=2, help='processes generating training images')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    parser.add_argument('--eval-only', action='store_true',
                        help='skip training: evaluate the weights already in --out-dir and write the results')
    parser.add_argument('--card-only', action='store_true',
                        help='only rewrite the model card\'s results from the metrics in --out-dir\'s config JSON')
    parser.add_argument('--no-gallery', action='store_true', help='do not rewrite the sample images')
    parser.add_argument('--init', type=Path, default=None,
                        help='start from these safetensors weights instead of a random initialisation')
    parser.add_argument('--train-images', type=int, default=None, help='training images (default: TrainConfig)')
    parser.add_argument('--epochs', type=int, default=None, help='epochs (default: TrainConfig)')
    parser.add_argument('--family-count', type=int, default=None,
                        help='images per style family for the per-style table (accuracy; localisation on half)')
    return parser.parse_args(argv)


def pct(v: float) -> str:
    return f'{100 * v:.1f}%'


def results_markdown(config: dict) -> str:
    """The model card's results section, from the metrics in the config."""
    m, t = config['metrics'], config['training']
    native = str(config['native_patch_size'])
    sizes = [str(p) for p in config['patch_sizes']]
    size_of = config['model_args']['img_size']
    lines = [
        f"Measured by `scripts/train_shapes.py` (seed {config['seed']}, torch {t.get('torch')}, "
        f"{t['threads']} threads) on **{m['eval_count']} freshly generated images in the training mix of "
        f"style families** (seed {m['eval_seed']}, split {m['eval_split']}: never seen in training); "
        f"localisation on the first {m['localise_count']} of them, for the ground-truth class. Data generation took "
        f"{t['generate_seconds']} s, training {t['train_seconds']} s and evaluation {m['eval_seconds']} s "
        f"on the 2-core CPU of the development machine, which other jobs were sharing at the time.",
        '',
        '### Accuracy per patch size',
        '',
        '| patch size | grid | tokens | accuracy |',
        '|---|---|---|---|',
    ]
    for p in sizes:
        g = size_of // int(p)
        tag = ' (native)' if p == native else ''
        lines.append(f'| {p}{tag} | {g}×{g} | {g * g + 1} | {pct(m["accuracy"][p])} |')
    lines += ['', f'### Localisation against the object mask (native patch size {native})', '',
              '| method | pointing game | pointing (≥ half-covered patch) | top-region IoU | map mass on object |',
              '|---|---|---|---|---|']
    loc = m['localisation'][native]
    for method, scores in loc.items():
        lines.append(f"| {method} | {pct(scores['pointing'])} | {pct(scores['pointing_strict'])} | "
                     f"{scores['iou']:.3f} | {pct(scores['mass'])} |")
    any_loc = next(iter(loc.values()))
    lines += ['', f"Chance levels: a uniformly random patch overlaps the object {pct(any_loc['chance_pointing'])} "
              f"of the time; a flat map puts {pct(any_loc['chance_mass'])} of its mass on the object.", '',
              '### Pointing game at every patch size', '',
              '| patch size | ' + ' | '.join(loc) + ' | chance |', '|---|' + '---|' * (len(loc) + 1)]
    for p in sizes:
        row = m['localisation'][p]
        lines.append(f'| {p} | ' + ' | '.join(pct(row[k]['pointing']) for k in loc)
                     + f" | {pct(next(iter(row.values()))['chance_pointing'])} |")
    lines += families_markdown(config)
    pl = m['position_locality']
    lines += ['', '### Position embeddings', '',
              f"Mean cosine similarity of a position's embedding to its 4-neighbours: **{pl['neighbour']:.3f}**; "
              f"to positions at least half the grid away: **{pl['far']:.3f}** (gap {pl['gap']:.3f}).", '']
    return '\n'.join(lines)


TARGETS = {'in distribution': 0.95, 'plainly drawn solid': 0.90, 'held out': 0.85, 'pointing': 0.90}
PLAIN_SOLID = ('flat', 'paint_solid')


def target_of(family: str, held_out: bool) -> float:
    """The issue's accuracy target for one style family."""
    if family in PLAIN_SOLID:
        return TARGETS['plainly drawn solid'] if held_out else max(TARGETS['plainly drawn solid'],
                                                                   TARGETS['in distribution'])
    return TARGETS['held out'] if held_out else TARGETS['in distribution']


def families_markdown(config: dict) -> list[str]:
    """The per-style table: accuracy and pointing game of each style family at the native patch size."""
    fam = config['metrics'].get('families')
    if not fam:
        return []
    native = str(config['native_patch_size'])
    any_family = next(iter(fam.values()))
    methods = list(any_family['localisation'][native])
    lines = ['', f'### Per style family (native patch size {native})', '',
             f"Each family on its own freshly generated images ({any_family['eval_count']} per family for "
             f"accuracy, the first {any_family['localise_count']} for the pointing game; seed "
             f"{any_family['eval_seed']}, split {any_family['eval_split']}). **Held-out** families were never "
             'seen in training: they are drawn by `vitviz.shapes.painter`, an independent routine (its own '
             'rasteriser and proportions). Targets (issue 13): ≥ 95% in distribution, ≥ 90% on plainly drawn '
             'solid shapes (`flat`, `paint_solid`), ≥ 85% on every held-out family, pointing game ≥ 90% '
             'everywhere. ± is one binomial standard error.', '',
             '| style family | seen in training | accuracy | target | ' + ' | '.join(
                 f'pointing: {m}' for m in methods) + ' | chance |',
             '|---|---|---|---|' + '---|' * (len(methods) + 1)]
    missed = []
    for name, result in fam.items():
        held = result['held_out']
        acc = result['accuracy'][native]
        n = result['eval_count']
        se = (acc * (1 - acc) / n) ** 0.5
        target = target_of(name, held)
        ok = acc >= target
        if not ok:
            missed.append(f'{name} accuracy {pct(acc)} < {pct(target)}')
        loc = result['localisation'][native]
        cells = []
        for m in methods:
            v = loc[m]['pointing']
            cells.append(pct(v) if v >= TARGETS['pointing'] else f'**{pct(v)}** (missed)')
            if v < TARGETS['pointing']:
                missed.append(f'{name} pointing ({m}) {pct(v)} < {pct(TARGETS["pointing"])}')
        lines.append(f"| {name} | {'no (held out)' if held else 'yes'} | {pct(acc)} ± {100 * se:.1f} | "
                     f"{'≥ ' + pct(target)}{'' if ok else ' **missed**'} | " + ' | '.join(cells)
                     + f" | {pct(next(iter(loc.values()))['chance_pointing'])} |")
    lines += ['', ('Targets missed: ' + '; '.join(missed) + '.') if missed else 'Every target is met.']
    return lines


def update_card(card: Path, section: str) -> None:
    """Replace the text between the results markers of the model card."""
    try:
        card.write_text(replace_between(card.read_text(), START, END, f'\n{section}\n'))
    except ValueError as exc:
        raise SystemExit(f'{card}: {exc} to update') from exc


def write_gallery(folder: Path, image_size: int) -> list[Path]:
    """One image per gallery class, the first of that class in the fixed gallery data set (no model involved)."""
    from PIL import Image

    from vitviz.shapes.families import family_gallery
    from vitviz.shapes.generator import gallery_samples

    paths = []
    for sample in gallery_samples(GALLERY_CLASSES, image_size):
        path = folder / f'shapes_{sample.class_name}.png'
        Image.fromarray(sample.image).save(path, optimize=True)
        paths.append(path)
    for sample in family_gallery(FAMILY_GALLERY, image_size):
        path = folder / f'shapes_{sample.class_name}_{sample.family}.png'
        Image.fromarray(sample.image).save(path, optimize=True)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from tqdm.auto import tqdm

    from vitviz.shapes.evaluation import evaluate
    from vitviz.shapes.families import HELD_OUT_FAMILIES, TRAIN_FAMILIES, TRAIN_MIX
    from vitviz.shapes.model import ASSETS_DIR, load_shapes_model, save_shapes_model
    from vitviz.shapes.training import TrainConfig, train

    if args.card_only:
        config = json.loads(((args.out_dir or ASSETS_DIR) / 'shapes_vit.json').read_text())
        update_card(args.card or CARD, results_markdown(config))
        print(f'updated {args.card or CARD}')
        return 0
    start = time.perf_counter()
    cfg = TrainConfig(seed=args.seed, threads=args.threads, workers=args.workers,
                      init=str(args.init) if args.init else None)
    if args.train_images:
        cfg = replace(cfg, train_images=args.train_images)
    if args.epochs:
        cfg = replace(cfg, epochs=args.epochs)
    eval_count, localise_count, family_count = 2000, 500, 600
    if args.quick:
        cfg = replace(cfg, train_images=2048, epochs=1, warmup_steps=4)
        eval_count, localise_count, family_count = 200, 100, 60
    family_count = args.family_count or family_count
    eval_count = args.eval_count or eval_count
    localise_count = args.localise_count or localise_count
    out_dir = args.out_dir or (Path(tempfile.mkdtemp(prefix='shapes_quick_')) if args.quick else ASSETS_DIR)
    weights, config_path = out_dir / 'shapes_vit.safetensors', out_dir / 'shapes_vit.json'
    card = args.card or (None if args.quick else CARD)
    torch.set_num_threads(cfg.threads)

    if args.eval_only:
        model, config = load_shapes_model(weights_path=weights, config_path=config_path)
    else:
        print(f'training {cfg.architecture} ({cfg.embed_dim} wide, {cfg.depth} deep, {cfg.num_heads} heads) on '
              f'{cfg.train_images} images x {cfg.epochs} epochs, patch sizes {cfg.patch_sizes}')
        result = train(cfg, progress=not args.no_progress)
        model, config = result.model, result.config
        out_dir.mkdir(parents=True, exist_ok=True)
        save_shapes_model(model, config, weights, config_path)  # saved before evaluating: nothing is lost
    eval_start = time.perf_counter()
    with tqdm(total=len(config['patch_sizes']) * localise_count, desc='evaluate', unit='img',
              disable=args.no_progress) as bar:
        metrics = evaluate(model, config, count=eval_count, localise_count=localise_count, progress=bar.update,
                           mix=TRAIN_MIX)
    native = config['native_patch_size']
    metrics['families'] = {}
    for family in (*TRAIN_FAMILIES, *HELD_OUT_FAMILIES):
        result = evaluate(model, config, count=family_count, localise_count=family_count // 2,
                          patch_sizes=[native], mix=((family, 1.0),))
        result.pop('position_locality')
        metrics['families'][family] = dict(result, held_out=family in HELD_OUT_FAMILIES)
        print(f"{family}: accuracy {pct(result['accuracy'][str(native)])}", flush=True)
    metrics['eval_seconds'] = round(time.perf_counter() - eval_start)
    config = dict(config, metrics=metrics)
    save_shapes_model(model, config, weights, config_path)
    wall = time.perf_counter() - start
    section = results_markdown(config)
    print(section)
    print(f'wrote {weights} and {config_path}')
    if not args.quick and not args.no_gallery:
        paths = write_gallery(ASSETS_DIR / 'samples', config['model_args']['img_size'])
        print('gallery:', ', '.join(p.name for p in paths))
    if card is not None:
        update_card(card, section)
        print(f'updated {card}')
    print(json.dumps({'accuracy': metrics['accuracy'], 'minutes': round(wall / 60, 1)}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
