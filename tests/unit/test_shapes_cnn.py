"""vitviz-shapes-cnn: a stock timm ResNet, trained by the ViT's own loop and recipe, shipped and loadable."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vitviz.shapes.cnn import (
    CNN_CONFIG_PATH,
    CNN_WEIGHTS_PATH,
    VIT_ONLY_FIELDS,
    build_cnn,
    cnn_forward,
    load_shapes_cnn,
    make_cnn_config,
    recipe,
)
from vitviz.shapes.generator import CLASSES
from vitviz.shapes.training import TrainConfig

TEST_SEED = 424_242  # neither a training seed nor the model card's evaluation seed
SHIPPED = CNN_WEIGHTS_PATH.is_file() and CNN_CONFIG_PATH.is_file()
needs_weights = pytest.mark.skipif(not SHIPPED, reason='vitviz-shapes-cnn weights are not in the tree')


def test_the_cnn_is_a_timm_resnet_with_basic_blocks_the_vit_s_size():
    from timm.models.resnet import BasicBlock, ResNet

    from vitviz.shapes.model import build_model, make_config

    model = build_cnn(make_cnn_config())
    assert type(model) is ResNet and isinstance(model.layer4[-1], BasicBlock)
    assert [info['module'] for info in model.feature_info] == ['act1', 'layer1', 'layer2', 'layer3', 'layer4']
    params = sum(p.numel() for p in model.parameters())
    vit_params = sum(p.numel() for p in build_model(make_config()).parameters())
    assert abs(params - vit_params) / vit_params < 0.02 and 4 * params < 5 * 2 ** 20  # float32 under 5 MB
    from timm.data import resolve_model_data_config

    data = resolve_model_data_config(model)
    assert data['input_size'] == (3, 96, 96) and data['mean'] == (0.5, 0.5, 0.5) and data['crop_pct'] == 1.0


def test_the_training_forward_reads_the_last_feature_map_as_32_px_cells():
    torch.manual_seed(0)
    model = build_cnn(make_cnn_config()).eval()
    x = torch.randn(2, 3, 96, 96)
    logits, cells, side = cnn_forward(model, x)
    assert side == 32 and cells.shape == (2, 9, 128)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x))
        torch.testing.assert_close(cells[:, 4], model.forward_features(x)[:, :, 1, 1])  # the centre cell


def test_the_recipe_is_the_vit_s_without_its_architecture():
    cfg = TrainConfig()
    r = recipe(cfg)
    assert not set(r) & set(VIT_ONLY_FIELDS) and r['lr'] == cfg.lr and r['batch_size'] == cfg.batch_size
    assert r['mix'] == [list(pair) for pair in cfg.mix]


def test_cnn_training_is_deterministic_and_returns_a_plain_timm_resnet():
    from timm.models.resnet import ResNet

    from vitviz.shapes.cnn import train_cnn

    cfg = TrainConfig(train_images=64, epochs=2, batch_size=32, warmup_steps=1, workers=1)
    runs = [train_cnn(cfg, progress=False, log=lambda _: None) for _ in range(2)]
    assert type(runs[0].model) is ResNet and len(runs[0].losses) == cfg.steps == 4
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(cfg.seed)
    fresh = build_cnn(make_cnn_config()).state_dict()
    assert any(not torch.equal(a[k], fresh[k]) for k in a if a[k].is_floating_point())
    assert runs[0].config['training']['token_label_weight'] == cfg.token_label_weight


# ----------------------------------------------------------------------------------------- shipped weights

@pytest.fixture(scope='module')
def shipped():
    return load_shapes_cnn()


@needs_weights
def test_shipped_files_config_and_weights(shipped):
    from safetensors.torch import load_file

    model, config = shipped
    assert CNN_WEIGHTS_PATH.stat().st_size <= 5 * 10 ** 6
    assert json.loads(CNN_CONFIG_PATH.read_text()) == config
    assert config['name'] == 'vitviz-shapes-cnn' and config['classes'] == list(CLASSES)
    state = load_file(str(CNN_WEIGHTS_PATH))
    assert set(state) == set(model.state_dict()) and not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k].to(v.dtype)), k


@needs_weights
def test_shipped_cnn_was_trained_with_the_vit_s_recipe_in_its_two_stages():
    from vitviz.shapes.model import CONFIG_PATH

    cnn, vit = json.loads(CNN_CONFIG_PATH.read_text()), json.loads(CONFIG_PATH.read_text())
    skip = {'init', 'train_seconds', 'generate_seconds', 'torch', 'workers', *VIT_ONLY_FIELDS}
    stage1, stage2 = cnn['stages']
    for key, value in vit['training'].items():
        if key not in skip:
            assert stage2[key] == value, key
    assert stage1['mix'] is None and stage1['train_images'] == 100_000 and stage2['train_images'] == 90_000
    assert {k: v for k, v in stage1.items() if k not in skip | {'mix', 'train_images'}} == {
        k: v for k, v in stage2.items() if k not in skip | {'mix', 'train_images'}}


@needs_weights
def test_shipped_cnn_accuracy_on_fresh_images_is_near_the_model_card(shipped):
    from vitviz.shapes.dataset import EVAL_SPLIT, mix_batch, normalize
    from vitviz.shapes.families import TRAIN_MIX

    model, config = shipped
    images, _, labels = mix_batch(TEST_SEED, 300, TRAIN_MIX, split=EVAL_SPLIT)
    with torch.no_grad():
        preds = torch.cat([model(normalize(images[i:i + 100], config['mean'], config['std'])).argmax(1)
                           for i in range(0, 300, 100)]).numpy()
    card = config['metrics']['accuracy']
    assert (preds == labels).mean() >= card - 3 * np.sqrt(card * (1 - card) / 300) - 0.01


@needs_weights
def test_model_card_cnn_section_is_what_the_script_writes():
    import importlib.util
    from pathlib import Path

    from vitviz.shapes.model import CONFIG_PATH

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location('train_shapes_cnn', root / 'scripts' / 'train_shapes_cnn.py')
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    card = (root / 'docs' / 'model_card.md').read_text()
    section = card.split(script.START, 1)[1].split(script.END, 1)[0]
    expected = script.results_markdown(json.loads(CNN_CONFIG_PATH.read_text()), json.loads(CONFIG_PATH.read_text()))
    assert section.strip() == expected.strip()  # python scripts/train_shapes_cnn.py --card-only
