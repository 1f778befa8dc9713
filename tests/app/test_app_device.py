"""Every page with the model on another device than the CPU, as on a GPU server.

``vitviz.models.default_device`` says ``cuda`` on a GPU server, and every model the app loads goes there; an
input left on the CPU then fails every page. Here the model goes to ``vvfake`` (``tests/_fake_device.py``: a
second torch device that refuses CPU operands as CUDA does and otherwise computes exactly what the CPU
computes), so each page must move what it feeds the model, and must draw the very same figures and browser
payloads as with the model on the CPU.
"""
from __future__ import annotations

import base64
import json
import sys

import numpy as np
import pytest

from tests._apptest import walk_tree
from tests._fake_device import enable
from tests._pages import app_pages

DEVICE = enable()  # before this process's first backward pass: the autograd engine sizes its device queues once
def _drawn(at) -> list:
    """Every Plotly figure and every browser component's data on the page, in page order."""
    drawn = []
    for node in walk_tree(at._tree):
        proto = getattr(node, "proto", None)
        if getattr(node, "type", None) == "plotly_chart":
            drawn.append(json.loads(proto.spec))
        elif getattr(proto, "component_name", "").startswith("vitviz."):
            kind = proto.WhichOneof("data")  # json, arrow_data, bytes or mixed (JSON with binary parts)
            drawn.append((proto.component_name, kind, getattr(proto, kind).SerializeToString()
                          if kind in ("arrow_data", "mixed") else getattr(proto, kind) if kind else None))
    return drawn


def _same(a, b, path: str = "") -> None:
    """``a == b``, but Plotly's typed arrays (``{"dtype", "bdata"}``) as numbers, equal to 1e-4 of their largest
    value: the other device runs the CPU's kernels, though not always in the same order of sums (gradients differ
    by ~1e-7, and a map scaled to its maximum shows that as ~1e-5)."""
    if isinstance(a, dict) and "bdata" in a and isinstance(b, dict) and "bdata" in b:
        assert a.keys() == b.keys() and a["dtype"] == b["dtype"], path
        x, y = (np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]) for v in (a, b))
        scale = float(np.nanmax(np.abs(y), initial=0.0)) if y.dtype.kind == "f" else 0.0
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4 * scale, err_msg=path)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-7), path
    else:
        assert a == b, path


@pytest.fixture
def clear_caches():
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()  # never leave a model on the fake device to the next test
    st.cache_data.clear()


def _models_go_to(monkeypatch, device: str) -> None:
    """Make ``load_model`` put every model on ``device``, as ``default_device()`` does on a GPU server."""
    import vitviz.models

    loading = sys.modules[vitviz.models.load_model.__module__]
    monkeypatch.setattr(loading, "default_device", lambda: device)


@pytest.mark.slow
@pytest.mark.parametrize("page", app_pages(), ids=lambda p: p.name)
def test_every_page_runs_with_the_model_on_another_device_and_draws_what_the_cpu_draws(
        open_app, clear_caches, monkeypatch, page):
    import streamlit as st

    from vitviz_app import loaders

    on_cpu = open_app(page.file)
    assert not on_cpu.exception and not on_cpu.error
    st.cache_resource.clear()
    st.cache_data.clear()
    _models_go_to(monkeypatch, DEVICE)
    passes = loaders.forward_passes()
    at = open_app(page.file)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    loaded = loaders.load(at.selectbox(key="model").value, None)
    assert next(loaded.model.parameters()).device.type == "vvfake"
    assert loaders.forward_passes() > passes, "the page ran the model on the other device"
    _same(_drawn(at), _drawn(on_cpu))
