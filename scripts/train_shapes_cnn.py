"""Train, evaluate and ship vitviz-shapes-cnn: the small CNN set beside vitviz-shapes.

    python scripts/train_shapes_cnn.py              # vitviz/assets/shapes_cnn.*, the model card's CNN section
    python scripts/train_shapes_cnn.py --quick      # tiny smoke run into a temporary folder
    python scripts/train_shapes_cnn.py --card-only  # rewrite the card's CNN section from the shipped JSON

The same recipe and budget as the ViT (``vitviz.shapes.training.TrainConfig``, the same loop ``fit``), in the
ViT's two stages: stage 1 from scratch on 100,000 ``classic`` images for 5 epochs (3,905 steps: version 1 of
the ViT), stage 2 from stage 1's weights on 90,000 images of the style-family mix for 5 epochs (3,515 steps:
version 2). Then the CNN is scored on the very images ``scripts/train_shapes.py`` scores the ViT on (the mix,
2,000 images; each style family, 600), and the card gets both models' numbers side by side. Deterministic for
a given seed, torch version and thread count.
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
START, END = '<!-- cnn-results:start -->', '<!-- cnn-results:end -->'
STAGE1 = dict(train_images=100_000, mix=None)  # version 1 of the ViT: classic style only, from scratch
STAGE2 = dict(train_images=90_000)  # version 2: the family mix (TrainConfig's default), from stage 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seed', type=int, default=0, help='training seed')
    parser.add_argument('--quick', action='store_true', help='tiny smoke run into a temporary folder')
    parser.add_argument('--out-dir', type=Path, default=None, help='where to write shapes_cnn.* (default assets)')
    parser.add_argument('--card', type=Path, default=None, help='model card to update (default docs/model_card.md)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (2 on the reference machine)')
    parser.add_argument('--workers', type=int, default=2, help='processes generating training images')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    parser.add_argument('--eval-only', action='store_true', help='evaluate the weights in --out-dir, no training')
    parser.add_argument('--card-only', action='store_true', help='only rewrite the card section from the JSON')
    parser.add_argument('--resume', action='store_true',
                        help="start from stage 1's weights kept in --out-dir by an earlier, interrupted run")
    return parser.parse_args(argv)


def pct(v: float) -> str:
    return f'{100 * v:.1f}%'


def results_markdown(cnn: dict, vit: dict) -> str:
    """The model card's CNN section: its accuracy beside the ViT's, overall and per style family."""
    m, vm = cnn['metrics'], vit['metrics']
    native = str(vit['native_patch_size'])
    stages = cnn['stages']
    seconds = sum(s['train_seconds'] for s in stages)
    lines = [
        f"Measured by `scripts/train_shapes_cnn.py` (seed {cnn['seed']}, torch {stages[-1]['torch']}, "
        f"{stages[-1]['threads']} threads) on the images `scripts/train_shapes.py` measures the ViT on "
        f"(seed {m['eval_seed']}, split {m['eval_split']}). Training took {stages[0]['train_seconds']} s "
        f"(stage 1) + {stages[1]['train_seconds']} s (stage 2) = {seconds / 60:.1f} min and evaluation "
        f"{m['eval_seconds']} s on the shared 2-core CPU. ± is one binomial standard error.",
        '',
        f"| images | seen in training | CNN | ViT (patch {native}) | CNN − ViT |",
        '|---|---|---|---|---|',
    ]

    def row(name: str, seen: str, acc: float, vacc: float, n: int) -> str:
        se = (acc * (1 - acc) / n) ** 0.5
        return (f'| {name} | {seen} | {pct(acc)} ± {100 * se:.1f} | {pct(vacc)} | '
                f'{100 * (acc - vacc):+.1f} points |')

    lines.append(row(f"training mix ({m['eval_count']})", 'yes', m['accuracy'], vm['accuracy'][native],
                     m['eval_count']))
    for name, result in m['families'].items():
        vacc = vm['families'][name]['accuracy'][native]
        seen = 'no (held out)' if result['held_out'] else 'yes'
        lines.append(row(f"{name} ({result['eval_count']})", seen, result['accuracy'], vacc, result['eval_count']))
    gap = 100 * (m['accuracy'] - vm['accuracy'][native])
    verdict = ('within 2 points of the ViT in distribution (the issue\'s goal)' if abs(gap) <= 2 else
               f'{gap:.1f} points above the ViT in distribution: the issue\'s goal (no more than 2 points below '
               f'it) is met' if gap > 0 else
               f'{-gap:.1f} points below the ViT in distribution: the issue\'s goal of 2 points is missed')
    lines += ['', f'The CNN is {verdict}.', '']
    return '\n'.join(lines)


def update_card(card: Path, section: str) -> None:
    """Replace the text between the CNN markers of the model card."""
    try:
        card.write_text(replace_between(card.read_text(), START, END, f'\n{section}\n'))
    except ValueError as exc:
        raise SystemExit(f'{card}: {exc} to update') from exc


def evaluate_cnn(model, config: dict, eval_count: int, family_count: int) -> dict:
    """Accuracy on the ViT's held-out images: the training mix, then each style family on its own."""
    # torch (through vitviz.shapes): loaded only when the script runs, so --help is instant
    from vitviz.shapes.cnn import accuracy
    from vitviz.shapes.evaluation import EVAL_SEED
    from vitviz.shapes.families import HELD_OUT_FAMILIES, TRAIN_FAMILIES, TRAIN_MIX

    start = time.perf_counter()
    metrics = {'eval_seed': EVAL_SEED, 'eval_split': 1, 'eval_count': eval_count,
               'accuracy': accuracy(model, config, seed=EVAL_SEED, count=eval_count, mix=TRAIN_MIX), 'families': {}}
    print(f"training mix: {pct(metrics['accuracy'])}", flush=True)
    for family in (*TRAIN_FAMILIES, *HELD_OUT_FAMILIES):
        acc = accuracy(model, config, seed=EVAL_SEED, count=family_count, mix=((family, 1.0),))
        metrics['families'][family] = {'accuracy': acc, 'eval_count': family_count,
                                       'held_out': family in HELD_OUT_FAMILIES}
        print(f'{family}: {pct(acc)}', flush=True)
    metrics['eval_seconds'] = round(time.perf_counter() - start)
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # torch (through vitviz.shapes): loaded only when the script runs, so --help is instant
    import torch

    from vitviz.shapes.cnn import CNN_CONFIG_PATH, load_shapes_cnn, make_cnn_config, save_shapes_cnn, train_cnn
    from vitviz.shapes.model import ASSETS_DIR, CONFIG_PATH
    from vitviz.shapes.training import TrainConfig

    vit = json.loads(CONFIG_PATH.read_text())
    if args.card_only:
        update_card(args.card or CARD, results_markdown(json.loads(CNN_CONFIG_PATH.read_text()), vit))
        return 0
    out_dir = args.out_dir or (Path(tempfile.mkdtemp(prefix='shapes_cnn_quick_')) if args.quick else ASSETS_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights, config_path = out_dir / 'shapes_cnn.safetensors', out_dir / 'shapes_cnn.json'
    eval_count, family_count = (200, 60) if args.quick else (2000, 600)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.eval_only:
        model, config = load_shapes_cnn(weights_path=weights, config_path=config_path)
    else:
        base = TrainConfig(seed=args.seed, threads=args.threads, workers=args.workers)
        stage1, stage2 = replace(base, **STAGE1), replace(base, **STAGE2)
        if args.quick:
            stage1, stage2 = (replace(s, train_images=512, epochs=1, warmup_steps=2) for s in (stage1, stage2))
        config = make_cnn_config(image_size=base.image_size, seed=args.seed)
        # stage 1 is kept beside the result until the end, so that an interrupted run can go on with --resume
        init, init_config = out_dir / 'shapes_cnn_stage1.safetensors', out_dir / 'shapes_cnn_stage1.json'
        if args.resume and init.exists() and init_config.exists():
            first_training = json.loads(init_config.read_text())['training']
            if first_training.get('seed') != args.seed:
                raise SystemExit(f'{init_config}: stage 1 was trained with seed {first_training.get("seed")}, '
                                 f'not {args.seed}; remove it or pass that seed')
            print(f'stage 1 from {init} (--resume)', flush=True)
        else:
            first = train_cnn(stage1, config, progress=not args.no_progress)
            save_shapes_cnn(first.model, first.config, init, init_config)
            first_training = first.config['training']
        second = train_cnn(replace(stage2, init=str(init)), config, progress=not args.no_progress)
        model, config = second.model, dict(second.config)
        config['training']['init'] = 'stage 1 (the same script, classic style, from scratch)'
        config['stages'] = [first_training, config['training']]
        save_shapes_cnn(model, config, weights, config_path)  # saved before evaluating: nothing is lost
        init.unlink()
        init_config.unlink()
    config['metrics'] = evaluate_cnn(model, config, eval_count, family_count)
    save_shapes_cnn(model, config, weights, config_path)
    section = results_markdown(config, vit)
    print(section)
    card = args.card or (None if args.quick else CARD)
    if card is not None:
        update_card(card, section)
    print(json.dumps({'accuracy': config['metrics']['accuracy'],
                      'minutes': round((time.perf_counter() - start) / 60, 1), 'out': str(out_dir)}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
