"""What the app tests read from an ``AppTest`` run, and the bundled model's stand-in.

Fixtures that use these (``open_app``, ``figure``, ``app_model`` ...) are in ``tests/conftest.py``.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from tests._pages import APP, ROOT

__all__ = ["APP", "APP_TIMEOUT_S", "ROOT", "app_capture", "bundled_model_shipped", "chart_spec", "component_data",
           "commit", "heat", "reference_capture", "stand_in_shapes_model", "values", "walk_tree"]

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


def chart_spec(at, key: str) -> dict:
    """The Plotly figure (as a dict) of the chart drawn by ``vitviz_app.show_figure(..., key=key)``."""
    from vitviz_app.downloads import slug

    block = at.main.get_by_key(f"fig-{slug(key)}")
    charts = [node for node in block if getattr(node, "type", None) == "plotly_chart"]
    assert charts, f"no chart inside container {key!r}"
    return json.loads(charts[0].proto.spec)


def walk_tree(node) -> Iterator[Any]:
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


def values(data) -> np.ndarray:
    """Plotly JSON arrays: a list, or a base64 typed array (``{'dtype', 'bdata', 'shape'}``), as float64."""
    if isinstance(data, dict) and "bdata" in data:
        array = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
        if data.get("shape"):
            array = array.reshape([int(v) for v in str(data["shape"]).split(",")])
        return array.astype(np.float64)
    return np.asarray(data, dtype=np.float64)


def heat(spec: dict) -> np.ndarray:
    """The values of a figure's (first) heat map."""
    return values(next(t for t in spec["data"] if t["type"] == "heatmap")["z"])


def app_capture(at):
    """The capture the page is showing: the app's own cached forward pass (no new pass: it is cached)."""
    from vitviz_app import loaders
    from vitviz_app.samples import read_sample

    name = at.selectbox(key="model").value
    loaded = loaders.load(name, None)
    data = read_sample(at.selectbox(key="image").value)
    key = loaders.digest(data)
    return loaders.forward(f"{name}|default", key, None, None, loaded, loaders.decode(key, data))


def reference_capture(at):
    """An independent forward pass: the app's (cached, shared) model object, the library's own capture."""
    from vitviz.capture import capture
    from vitviz.images import load_image, prepare_input
    from vitviz_app import loaders
    from vitviz_app.samples import read_sample

    loaded = loaders.load(at.selectbox(key="model").value, None)
    image = load_image(read_sample(at.selectbox(key="image").value))
    x, _ = prepare_input(image, loaded.data_config)
    return loaded, capture(loaded.model, x)


def commit(at, **state) -> None:
    """What a commit of a browser component does: set the page's states, then rerun."""
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
