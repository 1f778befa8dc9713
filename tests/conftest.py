"""Shared pytest fixtures.

App fixtures (``app_model``, ``open_app``, ``figure``) drive the Streamlit app in-process with
``streamlit.testing.v1.AppTest``. The app's default model offline is the bundled ``vitviz-shapes``; until its
weights are shipped, ``app_model`` stands in the same network with random weights.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
APP_TIMEOUT_S = 240  # the first run imports torch and timm on a busy 2-core machine


def bundled_model_shipped() -> bool:
    """Whether ``vitviz-shapes`` (weights + config) is in the tree."""
    assets = ROOT / "vitviz" / "assets"
    return (assets / "shapes_vit.safetensors").is_file() and (assets / "shapes_vit.json").is_file()


def stand_in_shapes_model(device: str = "cpu", **_: Any):
    """``load_shapes_model`` stand-in while the weights are not shipped: the shapes ViT built from its own
    config (``vitviz.shapes.build_model(make_config())``: same architecture, input size, patch sizes and
    classes) with random, seeded weights."""
    import torch

    from vitviz.shapes.model import build_model, make_config

    torch.manual_seed(0)
    config = make_config()
    return build_model(config).to(device).eval(), config


@pytest.fixture
def app_model(monkeypatch) -> str:
    """Make the app's offline default model loadable; returns the name of the network behind it.

    With the shipped weights nothing is patched. Without them, ``vitviz.shapes.load_shapes_model`` returns
    :func:`stand_in_shapes_model` (untrained), so every code path (including the offline fallback) still runs.
    """
    monkeypatch.setenv("VITVIZ_OFFLINE", "1")  # never wait on the hub in tests
    if bundled_model_shipped():
        return "vitviz-shapes"
    import vitviz.shapes

    monkeypatch.setattr(vitviz.shapes, "load_shapes_model", stand_in_shapes_model, raising=False)
    return "vitviz-shapes (untrained stand-in)"


@pytest.fixture
def open_app(app_model) -> Callable[..., Any]:
    """Factory: ``open_app(page=None, query=None)`` runs the app (optionally a page, or a URL query)."""
    from streamlit.testing.v1 import AppTest

    def _open(page: str | None = None, query: dict[str, str] | None = None):
        at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
        for key, value in (query or {}).items():
            at.query_params[key] = value
        if page is not None:  # open the page directly, as a shared link /page?... would
            at.switch_page(page)
        return at.run()

    return _open


def chart_spec(at, key: str) -> dict:
    """The Plotly figure (as a dict) of the chart drawn by ``vitviz_app.show_figure(..., key=key)``."""
    from vitviz_app.downloads import slug

    block = at.main.get_by_key(f"fig-{slug(key)}")
    charts = [node for node in block if getattr(node, "type", None) == "plotly_chart"]
    assert charts, f"no chart inside container {key!r}"
    return json.loads(charts[0].proto.spec)


def walk_tree(node):
    """Every element below an AppTest node (``at._tree``), depth first."""
    children = getattr(node, "children", None)
    for child in (children.values() if isinstance(children, dict) else []):
        yield child
        yield from walk_tree(child)


def component_data(at, name: str) -> dict:
    """The ``data`` a Components v2 component (``vitviz.<name>``) was mounted with; exactly one must be."""
    found = [json.loads(node.proto.json) for node in walk_tree(at._tree)
             if getattr(getattr(node, "proto", None), "component_name", "") == f"vitviz.{name}"]
    assert len(found) == 1, f"{name}: {len(found)} mounted"
    return found[0]


@pytest.fixture
def figure() -> Callable[[Any, str], dict]:
    """``figure(at, key)``: the figure dict shown by ``show_figure(..., key=key)`` on the current page."""
    return chart_spec


def _layout_stand_in(name: str, **model_args):
    def load_shapes_model(device: str = "cpu", **_):
        import timm
        import torch

        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False, **model_args).eval()
        classes = [f"shape {i}" for i in range(model.num_classes)] if model.num_classes else []
        return model, {"classes": classes, "patch_sizes": [8, 16], "native_patch_size": 16}

    return load_shapes_model


@pytest.fixture
def swap_bundled(monkeypatch, app_model):
    """Run the app with another network behind the bundled model's name (caches cleared around the test)."""
    import streamlit as st

    import vitviz.shapes

    def swap(name: str, **model_args) -> None:
        monkeypatch.setattr(vitviz.shapes, "load_shapes_model", _layout_stand_in(name, **model_args), raising=False)

    st.cache_resource.clear()
    st.cache_data.clear()
    yield swap
    st.cache_resource.clear()
    st.cache_data.clear()
