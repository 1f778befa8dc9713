"""The Compare methods page (AppTest, in-process): maps, logit shares, AUC table, stars, sanity plot and verdict
against the library.

The numbers on the page are recomputed here from the app's own (cached, shared) model object and the sample image
with ``vitviz.attribution`` and ``vitviz.evaluation`` called directly.
"""
from __future__ import annotations

import numpy as np
import pytest

PAGE = "pages/compare.py"
DEFAULT_METHODS = ["attention", "rollout", "gradient_rollout", "cp_lrp", "attnlrp", "random"]
MOST, LEAST = "most relevant first ↓", "least relevant first ↑"


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


def _auc(cell: str) -> float:
    return float(cell.split()[0])


def test_the_page_shows_maps_shares_table_curves_and_sanity_as_the_library_computes_them(open_app, figure):
    at = open_app(PAGE)
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert [t.value for t in at.title] == ["Compare methods"]
    from vitviz.attribution import METHODS

    methods = at.pills(key="cmp_methods").value
    assert set(DEFAULT_METHODS) <= set(methods), "the fast methods are on by default"
    assert "integrated_gradients" not in methods
    assert "cmp.download" in [d.key for d in at.download_button]
    for key in methods:
        spec = figure(at, f"cmp.map.{key}")
        assert len(_traces(spec, "heatmap")) == 1 == len(_traces(spec, "image"))
        heading = spec["layout"]["annotations"][0]["text"].replace("<br>", " ")
        assert heading.startswith(METHODS[key].title)
        assert ("% of the logit)" in heading) == METHODS[key].conserves
    _check_maps_shares_and_table(at, figure, methods)
    _check_curves_sanity_and_verdict(at, figure, methods)


def _check_maps_shares_and_table(at, figure, methods):
    import torch

    from vitviz.attribution import get_method
    from vitviz.attribution.conservation import decompose_logit
    from vitviz.evaluation import faithfulness, random_baseline
    from vitviz.evaluation.verdict import read_curves, winners
    from vitviz.figures import scaled_map

    loaded, x = _reference(at)
    target = int(at.selectbox(key="cmp_class").value)
    with torch.no_grad():
        assert target == int(loaded.model(x).argmax()), "the class picker opens on the top class"
    table = at.table[0].value
    mean, std = loaded.data_config["mean"], loaded.data_config["std"]
    results = {}
    for i, key in enumerate(methods):
        method = get_method(key)
        relevance = method.attribute(loaded.model, x, target if method.class_specific else None)
        heat = _traces(figure(at, f"cmp.map.{key}"), "heatmap")[0]
        np.testing.assert_allclose(_values(heat["z"]).reshape(relevance.patches.shape),
                                   scaled_map(relevance.patches), atol=1e-5)
        results[key] = faithfulness(loaded.model, x, relevance, target, "tokens", mean=mean, std=std)
        row = table.iloc[i]
        assert row["method"] == method.title
        assert _auc(row[MOST]) == pytest.approx(results[key].positive_auc, abs=6e-4)
        assert _auc(row[LEAST]) == pytest.approx(results[key].negative_auc, abs=6e-4)
    bands = {o: random_baseline(loaded.model, x, target, removal="tokens", order=o, mean=mean, std=std)
             for o in ("most", "least")}
    assert _auc(table.iloc[-1][MOST]) == pytest.approx(bands["most"].auc_mean, abs=6e-4)
    readings = read_curves(results, bands)
    words = {"better": "clearly better than random", "inside": "inside the random band", "worse": "worse than random"}
    for i, key in enumerate(methods):
        assert table.iloc[i]["against random ↓"] == words[readings[key, "most"].standing]
        assert table.iloc[i]["against random ↑"] == words[readings[key, "least"].standing]
    won = winners(readings, {o: b.noise for o, b in bands.items()})
    for order, column in (("most", MOST), ("least", LEAST)):
        starred = [methods[i] for i in range(len(methods)) if "★" in table.iloc[i][column]]
        assert starred == ([won[order].best] if won[order].clear else []), "a star only for a clear winner"
    shares = figure(at, "cmp.conservation")
    parts = {t["name"]: _values(t["x"]) for t in shares["data"]}
    for row, key in enumerate(k for k in methods if get_method(k).conserves):
        d = decompose_logit(loaded.model, x, target, method=key)
        assert parts["the map (input pixels)"][row] == pytest.approx(100 * d.patches / d.logit, rel=1e-4)
        assert parts["biases"][row] == pytest.approx(100 * sum(d.biases.values()) / d.logit, rel=1e-4)
        total = sum(values[row] for values in parts.values())
        assert total == pytest.approx(100.0, abs=1e-3), "the parts on the page add up to the logit"


def _check_curves_sanity_and_verdict(at, figure, methods):
    for order in ("most", "least"):
        curves = figure(at, f"cmp.curves.{order}")
        lines = [t for t in curves["data"] if t.get("mode") == "lines+markers"]
        assert len(lines) == len(methods), "each method: one curve per order"
        assert any("random" in (t.get("name") or "") for t in curves["data"]), "the random band is drawn"
    sanity = figure(at, "cmp.sanity")
    names = [t["name"] for t in sanity["data"]]
    assert any(n.startswith("Raw attention") and "never reads head" in n for n in names)
    assert any(n.startswith("Random (baseline)") and "(flagged)" in n for n in names), "a map that ignores the model"
    assert list(sanity["data"][0]["x"])[-2:] == ["final norm", "embeddings"], "randomised to the end"
    caption = " ".join(c.value for c in at.caption)
    assert "never read the classifier head" in caption and "Raw attention (last layer)" in caption
    verdict = at.success[0].value
    assert verdict.startswith("On this image") and "Raw attention (last layer)" in verdict
    assert "do not depend on the class" in verdict


def test_the_sanity_plot_shows_the_chosen_similarity_and_the_url_keeps_it(open_app, figure):
    at = open_app(PAGE)
    spearman = figure(at, "cmp.sanity")
    at.segmented_control(key="cmp_metric").set_value("ssim").run()
    assert not at.exception
    ssim = figure(at, "cmp.sanity")
    assert ssim["layout"]["yaxis"]["title"]["text"] == "SSIM with the original"
    assert [t["name"] for t in ssim["data"]] == [t["name"] for t in spearman["data"]]
    assert at.query_params["cmp_metric"] == "ssim"


def test_another_class_and_pixel_removal(open_app):
    import torch

    from vitviz.attribution import get_method
    from vitviz.evaluation import faithfulness

    at = open_app(PAGE)
    first = at.table[0].value
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
    table = at.table[0].value
    row = table[table["method"] == get_method("gradient_rollout").title].iloc[0]
    assert _auc(row[MOST]) == pytest.approx(expected.positive_auc, abs=6e-4)
    assert list(table[MOST]) != list(first[MOST])
    assert "set to 0" in " ".join(c.value for c in at.caption)
    assert at.query_params["cmp_removal"] == "pixels" and at.query_params["cmp_class"] == str(second)


def test_no_method_chosen_says_so(open_app):
    at = open_app(PAGE)
    at.pills(key="cmp_methods").set_value([]).run()
    assert not at.exception
    assert any("at least one method" in i.value for i in at.info)
