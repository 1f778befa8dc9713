"""The ViT vs CNN figures draw exactly the numbers they are given (vitviz.figures.cnn)."""
from __future__ import annotations

import numpy as np
import pytest

from vitviz.analysis.cost import Cost
from vitviz.analysis.receptive_field import EffectiveReceptiveField, TheoreticalReceptiveField
from vitviz.comparison import CnnComparison, read_data_curves
from vitviz.figures.cnn import cka_figure, cost_rows, data_curves_figure, erf_maps_figure, reach_figure
from vitviz.i18n import language


def _erf(names, seed):
    rng = np.random.default_rng(seed)
    maps = rng.random((len(names), 8, 8))
    maps /= maps.sum(axis=(1, 2), keepdims=True)
    return EffectiveReceptiveField(names=tuple(names), maps=maps, centres=np.full((len(names), 2), 4.0),
                                   units=np.zeros((len(names), 2)), radius50=rng.random(len(names)) * 5 + 1,
                                   radius90=rng.random(len(names)) * 5 + 6, images=3)


@pytest.fixture(scope="module")
def cmp() -> CnnComparison:
    vit_names, cnn_names = ("embed", "blocks.0", "blocks.1"), ("act1", "layer1", "layer2", "layer3")
    theory = TheoreticalReceptiveField(names=cnn_names, size=np.array([[7, 7], [19, 23], [43, 43], [99, 99]]),
                                       jump=np.ones((4, 2)), centres=np.zeros((4, 2)), units=np.zeros((4, 2)),
                                       input_size=(8, 8))
    vit_theory = TheoreticalReceptiveField(names=vit_names, size=np.array([[4, 4], [8, 8], [8, 8]]),
                                           jump=np.ones((3, 2)), centres=np.zeros((3, 2)), units=np.zeros((3, 2)),
                                           input_size=(8, 8))
    cost = Cost(parameters=1_234_567, flops=98_700_000, attention_flops=9_870_000, seconds=0.0123, repeats=5,
                input_size=(96, 96), threads=2)
    cnn_cost = Cost(parameters=700_000, flops=45_600_000, attention_flops=0, seconds=0.002, repeats=5,
                    input_size=(96, 96), threads=2)
    return CnnComparison(vit_erf=_erf(vit_names, 0), cnn_erf=_erf(cnn_names, 1), vit_theory=vit_theory,
                         cnn_theory=theory, attention_distance=np.array([12.5, 30.25]),
                         attention_distance_heads=np.zeros((2, 3)), cka=np.random.default_rng(2).random((3, 4)),
                         cka_images=7, cka_sources={"image": 1, "samples": 2, "shapes": 4}, vit_cost=cost,
                         cnn_cost=cnn_cost, patch_costs=())


def test_the_erf_maps_are_each_depths_map_scaled_to_its_peak_vit_above_cnn_below(cmp):
    fig = erf_maps_figure(cmp)
    heat = [t for t in fig.data if t.type == "heatmap"]
    expected = [m / m.max() for m in cmp.vit_erf.maps] + [m / m.max() for m in cmp.cnn_erf.maps]
    assert len(heat) == len(expected)
    for trace, reference in zip(heat, expected):
        drawn = np.asarray(trace.z)
        assert drawn.dtype == np.uint8 and (trace.zmin, trace.zmax) == (0, 255)
        np.testing.assert_allclose(drawn / 255, reference, atol=0.5 / 255 + 1e-12)  # the share of the peak, 255 steps
        assert drawn.max() == 255
    vit_axes = {t.yaxis for t in heat[:3]}
    cnn_axes = {t.yaxis for t in heat[3:]}
    assert not vit_axes & cnn_axes  # two rows


def test_the_reach_figure_draws_the_radii_the_theory_and_the_attention_distance_at_their_depths(cmp):
    traces = {t.name: t for t in reach_figure(cmp).data}
    np.testing.assert_allclose(traces["ViT: ERF radius, 50 %"].y, cmp.vit_erf.radius50)
    np.testing.assert_allclose(traces["CNN: ERF radius, 90 %"].y, cmp.cnn_erf.radius90)
    np.testing.assert_allclose(traces["CNN: theoretical field (half its side)"].y, [3.5, 11.5, 21.5, 49.5])
    distance = traces["ViT: mean attention distance"]
    assert list(distance.x) == [1, 2]  # block l leaves depth l + 1 (depth 0 is the embedding)
    np.testing.assert_allclose(distance.y, cmp.attention_distance)


def test_the_cka_heat_map_is_the_matrix_with_vit_depths_as_rows_and_cnn_depths_as_columns(cmp):
    fig = cka_figure(cmp.cka, cmp.vit_erf.names, cmp.cnn_erf.names)
    np.testing.assert_allclose(np.asarray(fig.data[0].z), cmp.cka)
    assert list(fig.data[0].y) == [0, 1, 2] and list(fig.data[0].x) == [0, 1, 2, 3]
    names = np.asarray(fig.data[0].customdata)
    assert list(names[:, 0, 0]) == ["embedding", "block 1", "block 2"]
    assert list(names[0, :, 1]) == ["stem", "stage 1", "stage 2", "stage 3"]
    with pytest.raises(ValueError):
        cka_figure(cmp.cka.T, cmp.vit_erf.names, cmp.cnn_erf.names)


def test_the_cost_rows_show_each_models_own_numbers_in_each_language(cmp):
    vit, cnn = cost_rows(cmp.vit_cost, cmp.cnn_cost)
    assert vit == {"model": "ViT", "parameters": "1.23 M", "FLOPs per image": "98.7 M", "of it in attention": "10%",
                   "time per image": "12.3 ms", "input": "96×96"}
    assert cnn["of it in attention"] == "0%" and cnn["parameters"] == "0.70 M"
    with language("zh"):
        zh = cost_rows(cmp.vit_cost, cmp.cnn_cost)[0]
    assert zh["参数量"] == "1.23 M" and zh["每张图像的时间"] == "12.3 毫秒"


@pytest.fixture(scope="module")
def script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "data_curves.py"
    spec = importlib.util.spec_from_file_location("data_curves", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results(script, tmp_path):
    """A small results file in the script's own format (its summarise and reference), read back as the app does."""
    import json

    runs = [{"arch": arch, "size": size, "seed": seed, "accuracy": {"in_distribution": acc + 0.01 * seed,
                                                                   "paint_solid": acc / 2 + 0.02 * seed}}
            for arch, base in (("vit", 0.3), ("cnn", 0.5)) for size, acc in ((250, base), (1000, base + 0.2))
            for seed in (0, 1, 2)]
    results = {"command": "python scripts/data_curves.py", "settings": dict(script.SETTINGS, sizes=[250, 1000]),
               "runs": runs, "summary": script.summarise(runs), "reference": script.DOSOVITSKIY_2021}
    path = tmp_path / "data_curves.json"
    path.write_text(json.dumps(results))
    return read_data_curves(path)


def test_the_data_curves_plot_the_scripts_means_and_standard_deviations_per_model_and_image_set(script, tmp_path):
    results = _results(script, tmp_path)
    fig = data_curves_figure(results)
    traces = {t.name: t for t in fig.data}
    assert list(fig.layout.xaxis.tickvals) == [250, 1000] and list(fig.layout.xaxis.ticktext) == ["250", "1,000"]
    assert set(traces) == {"ViT, in distribution", "ViT, held-out style: solid paint", "CNN, in distribution",
                           "CNN, held-out style: solid paint"}
    vit = traces["ViT, in distribution"]
    assert list(vit.x) == [250, 1000]
    np.testing.assert_allclose(vit.y, [100 * (0.3 + 0.01), 100 * (0.5 + 0.01)])  # mean over seeds 0, 1, 2
    np.testing.assert_allclose(vit.error_y.array, [1.0, 1.0])  # sample sd of +0, +1, +2 points
    cnn = traces["CNN, held-out style: solid paint"]
    np.testing.assert_allclose(cnn.y, [100 * (0.25 + 0.02), 100 * (0.35 + 0.02)])
    np.testing.assert_allclose(cnn.error_y.array, [2.0, 2.0])


def test_a_missing_results_file_is_none_and_a_damaged_one_is_refused(tmp_path):
    assert read_data_curves(tmp_path / "absent.json") is None
    bad = tmp_path / "bad.json"
    for text in ("{not json", '{"summary": {"vit": {"250": {"x": {"mean": "a"}}}}}', "[1, 2]"):
        bad.write_text(text)
        with pytest.raises(ValueError, match="not a data-curves results file"):
            read_data_curves(bad)
