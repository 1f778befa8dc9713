"""View changes reuse what they do not change (issue 10): no model run, no heavy compute run twice, and the
cached values are the ones the uncached computation gives."""
from __future__ import annotations

import json

import numpy as np
import plotly.io as pio
import pytest

import vitviz.analysis
from tests._apptest import app_capture
from vitviz.analysis import walkthrough as wt
from vitviz_app import views
from vitviz_app.loaders import forward_passes


def _counting(monkeypatch, module, name: str) -> list:
    """Replace ``module.name`` by a wrapper that records each call; returns the list of calls."""
    calls, real = [], getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args[1:] if args else ())
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_rollout_start_layer_reuses_the_step_matrices(open_app, figure, monkeypatch, downloads):
    views.rollout_steps_view.clear()
    views.gradient_rollout_steps_view.clear()
    views.rollout_view.clear()
    views.gradient_rollout_view.clear()
    steps = _counting(monkeypatch, vitviz.analysis, "rollout_steps")
    grad_steps = _counting(monkeypatch, vitviz.analysis, "gradient_rollout_steps")
    at = open_app("pages/rollout.py")
    fwd = app_capture(at)
    passes = forward_passes()
    fusions = len(set(call[0] for call in steps))  # the page's fusion, and every fusion for the browser explorer
    assert len(steps) == fusions and len(grad_steps) == (1 if fwd.predictions else 0)
    for start in (1, 2):
        at.slider(key="ro_start").set_value(start).run()
        expected = vitviz.analysis.rollout(fwd.capture, "mean", 0.0, start_layer=start)  # no cache, no steps
        np.testing.assert_allclose(downloads["ro.download"][0]["rollout_maps"], expected.maps, rtol=1e-6, atol=1e-9)
    assert len(steps) == fusions, "a new start layer only multiplies the kept step matrices again"
    assert len(grad_steps) == (1 if fwd.predictions else 0)
    at.slider(key="ro_discard").set_value(0.5).run()
    assert len(steps) == 2 * fusions, "a new discard ratio forms its own steps, once per fusion"
    expected = vitviz.analysis.rollout(fwd.capture, "mean", 0.5, start_layer=2)
    np.testing.assert_allclose(downloads["ro.download"][0]["rollout_maps"], expected.maps, rtol=1e-6, atol=1e-9)
    assert forward_passes() == passes
    assert not at.exception


def test_filter_components_slice_one_decomposition(open_app, figure, monkeypatch):
    views._all_filters.clear()
    views.filters_view.clear()
    calls = _counting(monkeypatch, vitviz.analysis, "embedding_filters")
    at = open_app("pages/position_embeddings.py")
    fwd = app_capture(at)
    assert len(calls) == 1
    for n in (14, 42, 7):
        at.slider(key="pos_filters").set_value(n).run()
        shown = views.filters_view(fwd.key, n, fwd)
        direct = vitviz.analysis.filters.embedding_filters(fwd.model, n=n)  # the module's own, not counted
        np.testing.assert_array_equal(shown.tiles, direct.tiles)
        np.testing.assert_array_equal(shown.explained_variance_ratio, direct.explained_variance_ratio)
    assert len(calls) == 1, "one SVD per model, whatever the number of components"
    assert not at.exception


def test_hidden_state_feature_pca_is_computed_once_per_state(open_app, monkeypatch):
    views.feature_pca_view.clear()
    calls = _counting(monkeypatch, vitviz.analysis, "feature_pca")
    at = open_app("pages/heads_depth.py")
    fwd = app_capture(at)
    last = int(at.slider(key="heads_state").max)
    passes = forward_passes()
    for state in (0, 1, 0, last, 1):
        at.slider(key="heads_state").set_value(state).run()
    assert len(calls) == 3, "states last, 0 and 1, once each"
    for state in (0, 1, last):
        np.testing.assert_array_equal(views.feature_pca_view(fwd.key, state, fwd),
                                      vitviz.analysis.features.feature_pca(fwd.capture, fwd.layout, layer=state))
    assert forward_passes() == passes
    assert not at.exception


def test_walkthrough_head_and_patch_changes_run_no_model_module(open_app, figure):
    wt._MEMO.clear()  # an earlier test may have seen this pass at layer 1 already (the memo is per process)
    at = open_app("pages/how_vit_works.py", {"how_figures": "true"})  # the steps as Plotly figures
    fwd = app_capture(at)
    passes, calls = forward_passes(), wt.MODEL_CALLS["count"]
    at.selectbox(key="how_head").set_value(1).run()
    at.number_input(key="how_row").set_value(0)
    at.number_input(key="how_col").set_value(1).run()
    assert wt.MODEL_CALLS["count"] == calls, "queries, keys, patch embedding and z0 are kept per pass"
    at.slider(key="how_layer").set_value(1).run()
    assert wt.MODEL_CALLS["count"] == calls + 1, "a new layer computes its queries and keys once"
    checks = [c.value for c in at.caption if "Recomputed by hand" in c.value]
    assert len(checks) == 4 and all(":material/check_circle:" in c for c in checks), checks
    kept = wt.attention_numbers(fwd.model, fwd.capture, 1, 1, fwd.layout.patch_index(0, 1))
    wt._MEMO.clear()
    fresh = wt.attention_numbers(fwd.model, fwd.capture, 1, 1, fwd.layout.patch_index(0, 1))
    np.testing.assert_array_equal(kept.weights, fresh.weights)
    np.testing.assert_array_equal(kept.dots, fresh.dots)
    assert "Layer 1" in figure(at, "how.attention")["layout"]["title"]["text"]
    assert forward_passes() == passes
    assert not at.exception


def test_walkthrough_memo_never_mistakes_a_new_object_for_a_dead_one():
    class Thing:
        pass

    first = Thing()
    assert wt._memo("t", (first,), (), lambda: 1) == 1
    assert wt._memo("t", (first,), (), lambda: 2) == 1, "kept while the object lives"
    other = Thing()
    assert wt._memo("t", (other,), (), lambda: 3) == 3, "another object, another entry"
    del first
    again = Thing()  # may reuse the dead object's address
    assert wt._memo("t", (again,), (), lambda: 4) == 4


def test_template_without_validation_gives_the_same_figure():
    import plotly.graph_objects as go

    from vitviz_app.plotting import APP_TEMPLATE, apply_template

    def build():
        fig = go.Figure(go.Heatmap(z=np.arange(6.0).reshape(2, 3), colorscale="Inferno"))
        fig.update_layout(title="t")
        return fig

    slow, fast = build(), apply_template(build())
    slow.update_layout(template=APP_TEMPLATE)
    assert pio.to_json(fast, validate=False) == pio.to_json(slow, validate=False)
    assert fast.layout.template.layout.font.color == "#1f2430"
    with pytest.raises(ValueError):
        fast.update_layout(height=3)  # validation is back on after the template


def test_a_cached_figure_is_prepared_once_and_shown_the_same(open_app, figure):
    at = open_app("pages/heads_depth.py")
    before = figure(at, "heads.distance")
    at.slider(key="heads_state").set_value(0).run()
    at.slider(key="heads_state").set_value(1).run()
    after = figure(at, "heads.distance")
    assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)
    assert after["layout"]["template"]["layout"]["font"]["color"] == "#1f2430"
    assert after["layout"]["height"] == 460


def test_small_models_capture_on_one_thread_and_the_count_is_restored():
    import threading

    import timm
    import torch

    from vitviz_app import loaders

    small = timm.create_model("test_vit", pretrained=False).eval()
    large = torch.nn.Linear(4000, 3000)  # 12 M parameters
    before = torch.get_num_threads()
    seen = []
    with loaders.one_thread_if_small(small):
        seen.append(torch.get_num_threads())
        with loaders.one_thread_if_small(small):  # overlapping passes (another session)
            seen.append(torch.get_num_threads())
        seen.append(torch.get_num_threads())  # the inner one ended: still one thread for the outer
    assert seen == [1, 1, 1] and torch.get_num_threads() == before
    with loaders.one_thread_if_small(large):
        assert torch.get_num_threads() == before
    errors = []

    def small_pass():
        try:
            with loaders.one_thread_if_small(small):
                small(torch.randn(1, 3, *small.patch_embed.img_size))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=small_pass) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and torch.get_num_threads() == before
