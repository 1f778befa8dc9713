"""The Rollout page's layer/fusion explorer and the walk-through's patch follower, in AppTest: what the page
sends the browser decodes to what the page's own server figures show (within half a quantisation step), for
every token layout; switching the fusion needs no new data; too little budget falls back to the figures."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests._apptest import app_capture, heat, values
from vitviz.export import FUSIONS, read_patch_steps, read_rollout
from vitviz_app.components.attention_explorer import BUDGET_ENV


def _components(at) -> dict[str, object]:
    """``{component name: json data or carrier bytes}`` of the page's browser components."""
    found: dict[str, object] = {}

    def walk(node):
        children = getattr(node, "children", None)
        for child in (children.values() if isinstance(children, dict) else []):
            if getattr(child, "type", None) == "bidi_component":
                proto = child.proto
                kind = proto.WhichOneof("data")
                data = json.loads(proto.json) if kind == "json" else bytes(getattr(proto, kind))
                name = proto.component_name
                if name == "vitviz.payload":
                    name = f"{name}:{proto.id.rsplit('-', 1)[-1]}"
                elif isinstance(data, dict) and isinstance(data.get("committed"), dict) and "step" in data["committed"]:
                    name = f"{name}:{data['committed']['step']}"  # a later step's view of the walk-through
                found[name] = data
            walk(child)

    walk(at.main)
    return found


def _carrier(at, key: str) -> bytes:
    return next(v for k, v in _components(at).items() if k.endswith(f"{key}.data"))


def _half(rows: np.ndarray) -> np.ndarray:
    return (rows.max(-1) - rows.min(-1)) / 255 / 2


def _check_rollout(at, fusion: str) -> dict:
    """The explorer's maps of ``fusion`` against the library's rollout of the page's own pass, one per layer."""
    from vitviz.analysis import rollout

    data = _components(at)["vitviz.rollout_explorer"]
    decoded = read_rollout(_carrier(at, "ro_explorer"))
    assert list(decoded) == list(FUSIONS)
    expected = rollout(app_capture(at).capture, head_fusion=fusion, discard_ratio=at.slider(key="ro_discard").value,
                       start_layer=at.slider(key="ro_start").value)
    frames = np.asarray(expected.maps, dtype=np.float64)  # (L', gh, gw)
    maps = decoded[fusion][0]
    assert maps.shape == frames.shape
    flat = frames.reshape(len(frames), -1)
    assert np.all(np.abs(maps.reshape(len(maps), -1) - flat) <= _half(flat)[:, None] + 1e-6)
    assert len(data["text"]["titles"][fusion]) == len(frames)  # one title per layer shown
    return data


def test_rollout_explorer_holds_every_fusion_and_matches_the_figure(open_app):
    at = open_app("pages/rollout.py")
    assert not at.exception
    data = _check_rollout(at, "mean")
    assert data["committed"] == {"fusion": "mean", "layer": at.slider(key="ro_start").max,
                                 "url": {"ro_fusion": None, "ro_layer": None}}  # the defaults: a clean URL
    assert data["colours"][0][1:] == [0, 0, 4], "the server maps' Inferno"
    assert "{row}" in data["text"]["tip"] and "{value}" in data["text"]["tip"]
    first = data["payload"]
    at.session_state["ro_fusion"] = "max"  # the scrubber's fusion button commits it
    at.run()
    data = _check_rollout(at, "max")
    assert data["committed"]["fusion"] == "max"
    assert data["payload"] == first, "switching the fusion needs no new data: the browser holds every fusion"
    at.slider(key="ro_discard").set_value(0.5).run()
    data = _check_rollout(at, "max")
    assert data["payload"] != first
    assert any("redrawn in your browser" in c.value for c in at.caption)


def _check_follower(at) -> dict:
    """The follower's numbers of the committed patch against the page's step figures."""
    from tests._apptest import chart_spec

    data = _components(at)["vitviz.patch_follower"]
    got = read_patch_steps(_carrier(at, "how_follow"))
    row, col = data["committed"]["row"], data["committed"]["col"]
    gw = chart_spec(at, "how.attention")  # the step-5 figure: the committed patch's attention over patches
    gh_gw = heat(gw).shape
    k = row * gh_gw[1] + col
    flat = np.concatenate([values(t["y"]) for t in chart_spec(at, "how.flat")["data"]])
    assert np.all(np.abs(got["pixels"][k] - flat) <= _half(flat) + 1e-6)
    emb = values(chart_spec(at, "how.embed")["data"][0]["y"])
    assert np.all(np.abs(got["embeddings"][k] - emb) <= _half(emb) + 1e-5 * np.abs(emb).max())
    patches = heat(gw).ravel()
    num_prefix = got["attention"].shape[1] - patches.size
    drawn = got["attention"][k][num_prefix:]
    assert np.all(np.abs(drawn - patches) <= _half(got["attention"][k]) + 1e-6)
    blocks = chart_spec(at, "how.blocks")["data"]
    mine = values(blocks[num_prefix]["y"])  # traces: each prefix token, then the patch
    np.testing.assert_allclose(got["norms"][:, num_prefix + k], mine, rtol=1e-5)
    return data


def test_patch_follower_holds_every_patch_and_matches_the_steps(open_app):
    at = open_app("pages/how_vit_works.py", {"how_figures": "true"})  # the steps as Plotly figures
    assert not at.exception
    data = _check_follower(at)
    first = data["payload"]
    assert data["colours"][0][1:] == [0, 0, 4]
    at.number_input(key="how_row").set_value(0)
    at.number_input(key="how_col").set_value(1).run()
    data = _check_follower(at)
    assert (data["committed"]["row"], data["committed"]["col"]) == (0, 1)
    assert data["payload"] == first, "a new patch needs no new data"
    at.slider(key="how_layer").set_value(1).run()
    assert _check_follower(at)["payload"] != first, "another layer: another attention row per patch"


@pytest.mark.parametrize(
    "name, model_args",
    [("test_vit2", {"num_classes": 10}), ("test_vit3", {"num_classes": 10}), ("test_vit", {"num_classes": 0})],
    ids=["registers-avg-pool", "attention-pool", "no-head"],
)
def test_both_work_for_other_token_layouts(open_app, swap_bundled, name, model_args):
    swap_bundled(name, **model_args)
    at = open_app("pages/rollout.py")
    assert not at.exception, [e.value for e in at.exception]
    for fusion in ("mean", "min"):
        at.session_state["ro_fusion"] = fusion
        at.run()
        _check_rollout(at, fusion)
    at.query_params["how_figures"] = "true"  # the steps as Plotly figures, to compare with
    at.switch_page("pages/how_vit_works.py").run()
    assert not at.exception, [e.value for e in at.exception]
    _check_follower(at)


def test_a_small_budget_falls_back_to_the_figures_and_says_so(open_app, monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "3000")
    at = open_app("pages/rollout.py")
    assert not at.exception
    assert "vitviz.rollout_explorer" not in _components(at)
    assert any("too large to send to the browser" in c.value for c in at.caption)
    at.switch_page("pages/how_vit_works.py").run()
    assert not at.exception
    assert "vitviz.patch_follower" not in _components(at)
    assert at.main.get_by_key("fig-how-grid") is not None, "the click-only figure is back"
    assert any("too many to send their numbers" in c.value for c in at.caption)


def test_every_text_the_attention_explorer_shows_comes_from_python():
    import re
    from pathlib import Path

    from vitviz.i18n import language
    from vitviz_app.components.attention_explorer import explorer_text

    js = (Path(__file__).resolve().parents[2] / "vitviz_app/components/attention_explorer.js").read_text()
    names = set(re.findall(r'this\.t\("(\w+)"', js)) - {"option_", "fusion_", "status_"}
    names |= {f"{kind}_{v}" for kind in ("option", "fusion") for v in ("mean", "max", "min")}
    names |= {f"status_{tier}" for tier in ("heads", "fused", "prefix", "none")}
    text = explorer_text()
    assert names <= set(text), names - set(text)
    code = re.sub(r"//[^\n]*", "", js)  # comments may stay English
    assert not re.search(r"over heads|Attention of|click to|Share of|Loading", code), "no English left in the JS"
    with language("zh"):
        chinese = explorer_text()
    assert chinese["map_title"] != text["map_title"] and "{token}" in chinese["map_title"]
