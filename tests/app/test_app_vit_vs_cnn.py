"""The ViT vs CNN page in each of its states and both languages: what it says it compares, and that every number
it draws is the one the library computes for that pair and image.

The bundled CNN's weights may not be in the tree: one state forces them absent (the page says so and runs the
seeded untrained network), the other stands a seeded network in for them (as ``stand_in_shapes_model`` does for
the ViT). The pair's fixed measurements (``vitviz.comparison.pair_reference``) use fewer images here (the page's
numbers are still compared with what the cached comparison holds), so each test takes seconds.
"""
from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from tests._apptest import values
from vitviz.i18n import _, language

PAGE = "pages/vit_vs_cnn.py"
SMALL = {"erf_images": 2, "cka_shapes": 4, "timing_repeats": 1}


@pytest.fixture
def page_setup(app_model, small_page):
    """The offline app (the bundled ViT) with :func:`small_page`."""
    return small_page


@pytest.fixture
def small_page(monkeypatch, tmp_path):
    """Small comparisons, the page's caches emptied before and after, and no data curves unless a test writes them."""
    from vitviz import comparison
    from vitviz_app import cnn_views

    monkeypatch.setattr(comparison, "pair_reference", functools.partial(comparison.pair_reference, **SMALL))
    monkeypatch.setattr(comparison, "DATA_CURVES_PATH", tmp_path / "data_curves.json")
    caches = (cnn_views.load_cnn, cnn_views.reference, cnn_views.comparison, cnn_views.cnn_looks)
    for cache in caches:
        cache.clear()
    yield tmp_path / "data_curves.json"
    for cache in caches:
        cache.clear()


def _stand_in_cnn(device: str = "cpu", **_):
    """The shapes CNN's architecture with seeded random weights, standing in for its trained weights."""
    import torch

    from vitviz.shapes.cnn import build_cnn, make_cnn_config

    torch.manual_seed(1)
    config = make_cnn_config()
    return build_cnn(config).to(device).eval(), config


@pytest.fixture
def trained_cnn(monkeypatch):
    from vitviz.shapes import cnn

    monkeypatch.setattr(cnn, "load_shapes_cnn", _stand_in_cnn)


@pytest.fixture
def missing_cnn(monkeypatch):
    from vitviz.shapes import cnn

    def missing(**_):
        raise FileNotFoundError("vitviz/assets/shapes_cnn.safetensors")

    monkeypatch.setattr(cnn, "load_shapes_cnn", missing)


def _write_curves(path):
    """A small results file in scripts/data_curves.py's own format (its summarise and reference)."""
    import importlib.util

    from tests._pages import ROOT

    spec = importlib.util.spec_from_file_location("data_curves", ROOT / "scripts" / "data_curves.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    runs = [{"arch": arch, "size": size, "seed": seed, "accuracy": {"in_distribution": base + 0.1 * k + 0.01 * seed}}
            for arch, base in (("vit", 0.4), ("cnn", 0.6)) for k, size in enumerate((250, 1000)) for seed in (0, 1)]
    results = {"command": "python scripts/data_curves.py", "settings": dict(script.SETTINGS, sizes=[250, 1000]),
               "runs": runs, "summary": script.summarise(runs), "reference": script.DOSOVITSKIY_2021}
    path.write_text(json.dumps(results))
    return results


def _pair_and_comparison(at):
    """The pair the page compared and the comparison it drew, read from the page's own caches (no new run)."""
    from vitviz_app import cnn_views, loaders
    from vitviz_app.samples import read_sample

    image_key = loaders.digest(read_sample(at.selectbox(key="image").value))
    vit = loaders.load(at.selectbox(key="model").value, None)
    cnn = cnn_views._bundled_cnn()
    image = loaders.decode(image_key, read_sample(at.selectbox(key="image").value))
    vit_key = f"{at.selectbox(key='model').value}|default"
    cmp = cnn_views.comparison(vit_key, f"{cnn.name}|{cnn.source}", image_key, vit, cnn, image)
    return vit, cnn, image, cmp


def _assert_draws_the_comparison(at, figure, cmp, lang) -> None:
    spec = figure(at, "cnn.cka")
    np.testing.assert_allclose(values(spec["data"][0]["z"]).reshape(cmp.cka.shape), cmp.cka)
    with language(lang):
        reach = {t["name"]: values(t["y"]) for t in figure(at, "cnn.reach")["data"]}
        np.testing.assert_allclose(reach[_("ViT: ERF radius, 50 %")], cmp.vit_erf.radius50)
        np.testing.assert_allclose(reach[_("CNN: ERF radius, 90 %")], cmp.cnn_erf.radius90)
        np.testing.assert_allclose(reach[_("ViT: mean attention distance")], cmp.attention_distance)
        sources = cmp.cka_sources
        said = _("**Linear CKA** (Kornblith et al. 2019) between every ViT layer and every CNN layer, as in Raghu "
                 "et al. 2021: 1 means the two layers arrange the images the same way, 0 not at all. Computed over "
                 "{count} images: your image, {samples} sample pictures and {shapes} generated shapes.").format(
            count=cmp.cka_images, samples=sources["samples"], shapes=sources["shapes"])
    assert cmp.cka_images == 1 + sources["samples"] + 4 and sources["samples"] > 0
    assert said in [m.value for m in at.main.markdown]
    assert not at.main.table  # the cost table is Markdown: st.table would load the browser's Arrow code
    (table,) = [m.value for m in at.main.markdown if m.value.startswith("| ")]
    header, _rule, *rows = [[c.strip() for c in line.strip("| ").split(" | ")] for line in table.splitlines()]
    with language(lang):
        assert [row[header.index(_("parameters"))] for row in rows] == [
            _("{count:.2f} M").format(count=c.parameters / 1e6) for c in (cmp.vit_cost, cmp.cnn_cost)]
        assert [row[header.index(_("FLOPs per image"))] for row in rows] == [
            _("{count:.1f} M").format(count=c.flops / 1e6) for c in (cmp.vit_cost, cmp.cnn_cost)]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_without_the_cnns_weights_or_the_data_curves_the_page_says_so_and_how_to_make_them(
        open_app, figure, page_setup, missing_cnn, lang):
    at = open_app(PAGE, {"lang": lang})
    assert not at.exception and not at.error, [e.value for e in at.exception]
    vit, cnn, _image, cmp = _pair_and_comparison(at)
    assert (vit.name, cnn.name, cnn.source) == ("vitviz-shapes", "vitviz-shapes-cnn", "random")
    warnings, infos = [w.value for w in at.main.warning], [i.value for i in at.main.info]
    assert any("python scripts/train_shapes_cnn.py" in w for w in warnings), warnings
    assert any("python scripts/data_curves.py" in i for i in infos), infos
    with language(lang):
        compared = _("**Compared:** {vit} (a small ViT) and {cnn} (a small ResNet with about as many parameters and "
                     "FLOPs), both trained on the same ten shapes with the same recipe.").format(
            vit="vitviz-shapes", cnn="vitviz-shapes-cnn")
    assert compared in [m.value for m in at.main.markdown]
    _assert_draws_the_comparison(at, figure, cmp, lang)
    with pytest.raises(KeyError):
        figure(at, "cnn.data")
    # the CNN's pixel-removal curves drawn are its cached curves, both orders
    from vitviz_app import cnn_views, loaders
    from vitviz_app.samples import read_sample

    image_key = loaders.digest(read_sample(at.selectbox(key="image").value))
    looks = cnn_views.cnn_looks(f"{cnn.name}|{cnn.source}", image_key, cnn, _image)
    with language(lang):
        name = _("CNN: Grad-CAM on its last stage")
    for order in ("most", "least"):
        (drawn,) = [values(t["y"]) for t in figure(at, f"cnn.curve.{order}")["data"] if t["name"] == name]
        np.testing.assert_allclose(drawn, looks.curves[order].probabilities)


@pytest.mark.slow  # recomputes every default attribution method's map and curve as the independent reference
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_with_trained_weights_and_data_curves_it_draws_grad_cam_the_most_faithful_map_and_the_curves(
        open_app, figure, page_setup, trained_cnn, lang):
    import torch

    from vitviz.attribution import METHODS, cnn_gradcam
    from vitviz.evaluation import perturbation_curve
    from vitviz.images import prepare_input

    results = _write_curves(page_setup)
    at = open_app(PAGE, {"lang": lang})
    assert not at.exception and not at.error, [e.value for e in at.exception]
    vit, cnn, image, cmp = _pair_and_comparison(at)
    assert cnn.source == "bundled" and not at.main.warning
    _assert_draws_the_comparison(at, figure, cmp, lang)

    # Grad-CAM of the stand-in CNN, computed here from the library, is the map drawn
    x, _geometry = prepare_input(image, cnn.data_config)
    reference = cnn_gradcam(_stand_in_cnn()[0], x)
    heat = next(t for t in figure(at, "cnn.cnn_map")["data"] if t["type"] == "heatmap")
    drawn = values(heat["z"]).reshape(reference.cells.shape)
    np.testing.assert_allclose(drawn, reference.cells / reference.cells.max(), atol=1e-6)

    # the ViT's map is the one whose deletion curve (pixels, most relevant first) has the lowest AUC
    x_vit, _vit_geometry = prepare_input(image, vit.data_config)
    with torch.no_grad():
        top = int(vit.model(x_vit).argmax())
    aucs = {}
    for key, method in METHODS.items():
        if key == "random" or "step" in method.passes:
            continue
        relevance = method.attribute(vit.model, x_vit, top if method.class_specific else None)
        aucs[key] = perturbation_curve(vit.model, x_vit, relevance, top, removal="pixels", order="most",
                                       mean=vit.data_config["mean"], std=vit.data_config["std"]).auc
    best = min(aucs, key=aucs.get)
    with language(lang):
        title = _("ViT: {method}").format(method=_(METHODS[best].title))
        cnn_title = _("CNN: Grad-CAM on its last stage")
    curves = {t["name"]: t for t in figure(at, "cnn.curve.most")["data"]}
    assert set(curves) >= {title, cnn_title}, list(curves)

    # the data curves: the means and standard deviations the script's summary holds, in per cent
    with language(lang):
        name = _("{model}, {images}").format(model=_("CNN"), images=_("in distribution"))
    trace = next(t for t in figure(at, "cnn.data")["data"] if t["name"] == name)
    summary = results["summary"]["cnn"]
    np.testing.assert_allclose(values(trace["y"]),
                               [100 * summary[s]["in_distribution"]["mean"] for s in ("250", "1000")])
    np.testing.assert_allclose(values(trace["error_y"]["array"]),
                               [100 * summary[s]["in_distribution"]["sd"] for s in ("250", "1000")])
    with language(lang):  # the caption reads the largest size both were trained on
        said = _("On {images:,} training images: the ViT {vit:.0f} %, the CNN {cnn:.0f} % on held-out shapes in "
                 "the training styles (ten shapes, so guessing scores 10 %).").format(
            images=1000, vit=100 * results["summary"]["vit"]["1000"]["in_distribution"]["mean"],
            cnn=100 * summary["1000"]["in_distribution"]["mean"])
    assert said in [c.value for c in at.main.caption]


def test_a_new_image_reuses_the_pairs_fixed_images_and_gets_the_numbers_of_a_whole_comparison(
        open_app, page_setup, trained_cnn, monkeypatch):
    from vitviz import comparison

    made = []
    reference = comparison.pair_reference
    monkeypatch.setattr(comparison, "pair_reference", lambda *a, **k: made.append(1) or reference(*a, **k))
    at = open_app(PAGE)
    first = _pair_and_comparison(at)[3]
    at.selectbox(key="image").set_value(at.selectbox(key="image").options[2]).run()
    assert not at.exception, [e.value for e in at.exception]
    vit, cnn, image, cmp = _pair_and_comparison(at)
    assert cmp is not first and len(made) == 1  # the CKA's and ERFs' fixed images were measured once
    whole = comparison.compare_cnn(vit.model, cnn.model, image, patch_sizes=(), **SMALL)  # all images in one run
    np.testing.assert_allclose(cmp.cka, whole.cka, atol=1e-9)
    np.testing.assert_allclose(cmp.vit_erf.maps, whole.vit_erf.maps, atol=1e-9)
    np.testing.assert_allclose(cmp.cnn_erf.radius90, whole.cnn_erf.radius90)
    np.testing.assert_allclose(cmp.attention_distance_heads, whole.attention_distance_heads, rtol=1e-9)


def test_a_damaged_data_curves_file_is_said_plainly_and_the_rest_of_the_page_still_shows(
        open_app, page_setup, trained_cnn):
    page_setup.write_text("{not json")
    at = open_app(PAGE)
    assert not at.exception
    assert [e.value for e in at.main.error] == ["data_curves.json is not a data-curves results file (JSONDecodeError)"]
    assert at.main.get("plotly_chart")


def _open_with_catalogue_vit():
    from streamlit.testing.v1 import AppTest

    from tests._apptest import APP, APP_TIMEOUT_S
    from tests._localhub import CATALOGUE_KEY

    at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
    at.query_params["model"] = CATALOGUE_KEY
    at.run()
    return at.switch_page(PAGE).run()


@pytest.mark.slow  # downloads the 23 MB catalogue ViT from the local hub and runs it at 224 px
def test_an_imagenet_vit_whose_cnn_cannot_be_fetched_is_compared_through_the_shapes_pair_and_says_why(
        catalogue_hub, small_page, missing_cnn):
    catalogue_hub()  # the ViT only: resnet18.a1_in1k is not on this hub
    at = _open_with_catalogue_vit()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    infos = [i.value for i in at.main.info]
    said = [i for i in infos if "So this page compares the bundled shapes pair" in i]
    assert said and "resnet18.a1_in1k" in said[0], infos
    compared = [m.value for m in at.main.markdown if m.value.startswith("**Compared:**")]
    assert compared == ["**Compared:** vitviz-shapes (a small ViT) and vitviz-shapes-cnn (a small ResNet with about "
                        "as many parameters and FLOPs), both trained on the same ten shapes with the same recipe."]


@pytest.mark.slow  # two hub models (23 MB and 47 MB) measured at 224 px
def test_an_imagenet_vit_is_set_beside_resnet18_from_the_same_hub(catalogue_hub, small_page, figure):
    from tests._localhub import TIMM_NAME, timm_repo_files
    from vitviz_app import cnn_views, loaders
    from vitviz_app.samples import read_sample

    local = catalogue_hub()
    weights, config, _state = timm_repo_files("resnet18", seed=2)
    local.add("timm/resnet18.a1_in1k", "model.safetensors", weights)
    local.add("timm/resnet18.a1_in1k", "config.json", config)
    at = _open_with_catalogue_vit()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    compared = [m.value for m in at.main.markdown if m.value.startswith("**Compared:**")]
    assert compared == [f"**Compared:** {TIMM_NAME} (the sidebar's ViT) and resnet18.a1_in1k (ResNet-18, He et al. "
                        "2016), both trained on ImageNet."]
    cnn = cnn_views.load_cnn("resnet18.a1_in1k")
    vit = loaders.load(at.selectbox(key="model").value, None)
    data = read_sample(at.selectbox(key="image").value)
    key = loaders.digest(data)
    cmp = cnn_views.comparison(f"{at.selectbox(key='model').value}|default", "resnet18.a1_in1k|hub", key, vit, cnn,
                               loaders.decode(key, data))
    assert cmp.cnn_erf.names[-1] == "layer4" and cmp.cka.shape == (len(vit.model.blocks) + 1, 5)
    np.testing.assert_allclose(values(figure(at, "cnn.cka")["data"][0]["z"]).reshape(cmp.cka.shape), cmp.cka)


def test_a_vit_without_a_classifier_is_compared_through_the_shapes_pair_and_the_page_says_why(
        page_setup, missing_cnn):
    from types import SimpleNamespace

    from vitviz_app import cnn_views

    dino = SimpleNamespace(name="vit_small_patch16_224.dino", labels=None)
    pair = cnn_views.pair_for(SimpleNamespace(loaded=dino, model_key="DINO ViT-S/16|default"))
    assert pair.problem == ("vit_small_patch16_224.dino has no classifier head, so it is compared through the "
                            "bundled shapes pair.")
    assert (pair.vit.name, pair.vit_key, pair.cnn_key) == ("vitviz-shapes", "vitviz-shapes|default",
                                                           "vitviz-shapes-cnn|random")
    assert pair.shapes


def test_a_markdown_table_shows_every_cell_as_written():
    """Markdown's and LaTeX's special characters in a cell are escaped, so the page shows the text itself (a ``|``
    would otherwise split the cell, ``$`` start a formula, ``*`` a stress); line breaks cannot end a row."""
    from vitviz_app.ui import markdown_table

    table = markdown_table([{"model": "ViT", "a|b": "1.5 *M* $x$", "c": "a\\b_<i>"}, {"model": "CNN", "c": "x\ny"}])
    assert table.splitlines() == [
        "| model | a\\|b | c |",
        "| --- | --- | --- |",
        "| ViT | 1.5 \\*M\\* \\$x\\$ | a\\\\b\\_\\<i\\> |",
        "| CNN |  | x y |",
    ]
    assert markdown_table([]) == ""
