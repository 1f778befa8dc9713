"""The Compare methods page (AppTest, in-process): maps, AUC table and sanity plot against the library.

The numbers on the page are recomputed here from the app's own (cached, shared) model object and the
sample image with ``vitviz.attribution`` and ``vitviz.evaluation`` called directly.
"""
from __future__ import annotations

import numpy as np
import pytest

PAGE = "pages/compare.py"
DEFAULT_METHODS = ["attention", "rollout", "gradient_rollout", "random"]


def _reference(at):
    from vitviz.images import load_image, prepare_input
    from vitviz_app import loaders
    from vitviz_app.samples import read_sample

    loaded = loaders.load(at.selectbox(key="model").value, None)
    image = load_image(read_sample(at.selectbox(key="image").value))
    x, _ = prepare_input(image, loaded.data_config)
    return loaded, x


def _values(data) -> np.ndarray:
    """Plotly JSON arrays come as lists or as base64 typed arrays ({'dtype', 'bdata', 'shape'})."""
    import base64

    if isinstance(data, dict) and "bdata" in data:
        array = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
        shape = data.get("shape")
        return array.reshape([int(v) for v in str(shape).split(",")]) if shape else array
    return np.asarray(data, dtype=np.float64)


def _traces(spec: dict, kind: str) -> list[dict]:
    return [t for t in spec["data"] if t["type"] == kind]


def test_the_page_shows_maps_table_curves_and_sanity_as_the_library_computes_them(open_app, figure):
    at = open_app(PAGE)
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert [t.value for t in at.title] == ["Compare methods"]
    from vitviz.attribution import METHODS

    methods = at.multiselect(key="cmp_methods").value
    assert set(DEFAULT_METHODS) <= set(methods), "the fast methods are on by default"
    assert "cmp.download" in [d.key for d in at.download_button]
    maps = figure(at, "cmp.maps")
    titles = [a["text"].replace("<br>", " ") for a in maps["layout"]["annotations"]]
    assert titles == [METHODS[k].title for k in methods]
    assert len(_traces(maps, "heatmap")) == len(methods) == len(_traces(maps, "image"))
    _check_maps_and_table(at, figure, methods)
    _check_curves_and_sanity(at, figure, methods)


def _check_maps_and_table(at, figure, methods):
    from vitviz.attribution import get_method
    from vitviz.evaluation import faithfulness, random_baseline
    from vitviz.figures import scaled_map

    loaded, x = _reference(at)
    target = int(at.selectbox(key="cmp_class").value)
    import torch

    with torch.no_grad():
        assert target == int(loaded.model(x).argmax()), "the class picker opens on the top class"
    heats = _traces(figure(at, "cmp.maps"), "heatmap")
    table = at.dataframe[0].value
    mean, std = loaded.data_config["mean"], loaded.data_config["std"]
    for i, key in enumerate(methods):
        method = get_method(key)
        relevance = method.attribute(loaded.model, x, target if method.class_specific else None)
        np.testing.assert_allclose(_values(heats[i]["z"]).reshape(relevance.patches.shape),
                                   scaled_map(relevance.patches), atol=1e-5)
        expected = faithfulness(loaded.model, x, relevance, target, "tokens", mean=mean, std=std)
        row = table.iloc[i]
        assert row["method"] == method.title
        assert row["positive perturbation AUC ↓"] == pytest.approx(expected.positive_auc, rel=1e-5)
        assert row["negative perturbation AUC ↑"] == pytest.approx(expected.negative_auc, rel=1e-5)
    band = random_baseline(loaded.model, x, target, removal="tokens", order="most", mean=mean, std=std)
    assert table.iloc[-1]["positive perturbation AUC ↓"] == pytest.approx(band.auc_mean, rel=1e-5)
    winners = table["best"].tolist()[:-1]
    positives = table["positive perturbation AUC ↓"].tolist()[:-1]
    assert "★ positive" in winners[int(np.argmin(positives))], "the winner is marked"
    assert sum("★ positive" in w for w in winners) == 1
    negatives = table["negative perturbation AUC ↑"].tolist()[:-1]
    assert "★ negative" in winners[int(np.argmax(negatives))] and sum("★ negative" in w for w in winners) == 1


def _check_curves_and_sanity(at, figure, methods):
    curves = figure(at, "cmp.curves")
    lines = [t for t in curves["data"] if t.get("mode") == "lines+markers"]
    assert len(lines) == 2 * len(methods), "each method: a positive and a negative curve"
    assert any("random" in (t.get("name") or "") for t in curves["data"]), "the random band is drawn"
    sanity = figure(at, "cmp.sanity")
    names = [t["name"] for t in sanity["data"]]
    assert any(n.startswith("Raw attention") and "never reads head" in n for n in names)
    assert any(n.startswith("Random (baseline)") and "(flagged)" in n for n in names), "a map that ignores the model"
    caption = " ".join(c.value for c in at.caption)
    assert "never read the classifier head" in caption and "Raw attention (last layer)" in caption


def test_another_class_and_pixel_removal(open_app):
    import torch

    from vitviz.attribution import get_method
    from vitviz.evaluation import faithfulness

    at = open_app(PAGE)
    first = at.dataframe[0].value
    loaded, x = _reference(at)
    with torch.no_grad():
        second = int(torch.argsort(loaded.model(x)[0], descending=True)[1])
    at.selectbox(key="cmp_class").set_value(second)
    at.segmented_control(key="cmp_removal").set_value("pixels").run()
    assert not at.exception and not at.error
    target = int(at.selectbox(key="cmp_class").value)
    assert target == second
    relevance = get_method("gradient_rollout").attribute(loaded.model, x, target)
    expected = faithfulness(loaded.model, x, relevance, target, "pixels", mean=loaded.data_config["mean"],
                            std=loaded.data_config["std"])
    table = at.dataframe[0].value
    row = table[table["method"] == get_method("gradient_rollout").title].iloc[0]
    assert row["positive perturbation AUC ↓"] == pytest.approx(expected.positive_auc, rel=1e-5)
    assert not np.allclose(at.dataframe[0].value["positive perturbation AUC ↓"],
                           first["positive perturbation AUC ↓"])
    assert "set to 0" in " ".join(c.value for c in at.caption)


def test_no_method_chosen_says_so(open_app):
    at = open_app(PAGE)
    at.multiselect(key="cmp_methods").set_value([]).run()
    assert not at.exception
    assert any("at least one method" in i.value for i in at.info)
