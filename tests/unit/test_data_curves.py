"""scripts/data_curves.py: equal budgets for every point, and the shipped results are what the script writes."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / 'vitviz' / 'assets' / 'data_curves.json'
needs_results = pytest.mark.skipif(not RESULTS.is_file(), reason='data_curves.json is not in the tree')


@pytest.fixture(scope='module')
def script():
    spec = importlib.util.spec_from_file_location('data_curves', ROOT / 'scripts' / 'data_curves.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def shipped():
    return json.loads(RESULTS.read_text())


def test_every_point_gets_the_same_steps_and_batch_in_whole_epochs(script):
    s = script.SETTINGS
    for arch in s['archs']:
        for size in s['sizes']:
            cfg = script.recipe(arch, size, 0, s, threads=2, workers=1)
            assert cfg.steps == s['steps'] and cfg.batch_size == s['batch_size'] and cfg.train_images == size
            assert not cfg.augment and cfg.patch_sizes == (12,)


def test_the_reference_numbers_show_the_papers_finding(script):
    ref = script.DOSOVITSKIY_2021
    models = ref['models']
    bit = models['BiT ResNet152x4']
    vits = {k: v for k, v in models.items() if k.startswith('ViT')}
    assert all(v[0] is None or v[0] < bit[0] for v in vits.values())  # ImageNet alone: below the ResNet
    assert max(v[2] for v in vits.values()) > bit[2]  # JFT-300M: the best ViT overtakes it
    assert vits['ViT-L/16'][0] < vits['ViT-B/16'][0] and vits['ViT-L/16'][2] > vits['ViT-B/16'][2]


@needs_results
def test_shipped_results_cover_every_point_and_the_page_table_is_what_the_script_writes(script, shipped):
    s = shipped['settings']
    points = {(r['arch'], r['size'], r['seed']) for r in shipped['runs']}
    assert points == {(a, n, seed) for a in s['archs'] for n in s['sizes'] for seed in s['seeds']}
    assert shipped['command'] == 'python scripts/data_curves.py' and shipped['reference'] == script.DOSOVITSKIY_2021
    assert shipped['summary'] == json.loads(json.dumps(script.summarise(shipped['runs'])))
    doc = (ROOT / 'docs' / 'data_curves.md').read_text()
    table = doc.split(script.START, 1)[1].split(script.END, 1)[0]
    assert table.strip() == script.markdown(shipped).strip()  # python scripts/data_curves.py --markdown


@needs_results
def test_what_the_doc_says_the_curves_show_is_what_the_shipped_results_hold(shipped):
    doc = (ROOT / 'docs' / 'data_curves.md').read_text().split('## What the curves show', 1)[1]
    text = ' '.join(doc.split())  # one line: the doc wraps its sentences
    runs, summary = shipped['runs'], shipped['summary']

    def curve(arch):
        return ' → '.join(f"{100 * summary[arch][str(n)]['in_distribution']['mean']:.1f}"
                          for n in shipped['settings']['sizes'])

    def span(values, unit=' %', scale=100):
        low, high = min(values) * scale, max(values) * scale
        return f'{low:.0f}–{high:.0f}{unit}'

    def fit(arch, sizes):
        return [r['final_train_accuracy'] for r in runs if r['arch'] == arch and r['size'] in sizes]

    seconds = [r['train_seconds'] for r in runs]
    quoted = [curve('vit') + ' %', curve('cnn') + ' %', f"The {round(shipped['wall_seconds'] / 60)} minutes",
              f'up to {max(seconds):.0f} s', span([r['train_seconds'] for r in runs if r['seed'] == 2], ' s', 1),
              'fits 78–96 % of its 1,000 images', span(fit('vit', (4000, 16000))) + ' and the CNN\'s '
              + span(fit('cnn', (4000, 16000)))]
    assert span(fit('vit', (1000,))) == '78–96 %' and min(fit('cnn', (1000,))) == 1.0 == min(fit('vit', (250,)))
    missing = [q for q in quoted if q not in text]
    assert not missing, missing


@needs_results
@pytest.mark.slow
def test_rerunning_the_smallest_point_gives_the_shipped_result_exactly(script, shipped):
    import torch

    settings = shipped['settings']
    point = next(r for r in shipped['runs'] if (r['arch'], r['size'], r['seed']) == ('vit', 250, 0))
    threads = torch.get_num_threads()
    torch.set_num_threads(shipped['threads'])
    try:
        pool = script.training_pool(0, 250, workers=1)
        result = script.run_point('vit', 250, 0, settings, pool, script.evaluation_sets(settings),
                                  threads=shipped['threads'], workers=1)
    finally:
        torch.set_num_threads(threads)
    assert result['accuracy'] == point['accuracy']
    assert result['final_train_accuracy'] == point['final_train_accuracy']
