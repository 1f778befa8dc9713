"""What the browser components send back is untrusted: each component's Python handler checks it before the page
uses it (issue 20, item 4). Hostile values (strings, NaN, negative, huge, missing keys, wrong types, nested junk)
go through the real handler that each component's mount function builds; none reaches the page, each leaves a
log line, none raises. The data each component is mounted with follows one contract: ``{payload, committed,
colours, text}``."""
from __future__ import annotations

import base64
import importlib
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from tests import _imagefactory
from vitviz.layout import TokenLayout
from vitviz_app.components import _contract

# the modules (the package's names of the same spelling are the mount functions)
attention_explorer, drawing_canvas, patch_follower, rollout_explorer, tiles = (
    importlib.import_module(f"vitviz_app.components.{name}")
    for name in ("attention_explorer", "drawing_canvas", "patch_follower", "rollout_explorer", "tile_explorer"))

LAYOUT = TokenLayout(prefix_names=("cls", "reg0"), grid_size=(4, 5), patch_size=(16, 16), input_size=(64, 80))
LAYERS, HEADS = 3, 4
CONTRACT = {"payload", "committed", "colours", "text"}
NAN, INF = float("nan"), float("inf")

# values that are no commit of any component: wrong types, missing keys, nested junk
JUNK = ["patch", 3, 2.5, True, [], [1, 2], {"$gt": ""}, {}, "x" * 100_000, {"row": None, "col": None}]


class Mounted:
    """Stands in for a component's mount function: keeps the keyword arguments of its last call."""

    def __init__(self) -> None:
        self.kwargs: dict[str, Any] = {}

    def __call__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


@pytest.fixture
def session(monkeypatch) -> dict:
    """A plain dict as Streamlit's session state, for the handlers (and the drawing pad's kept sketch)."""
    state: dict = {}
    fake = SimpleNamespace(session_state=state)
    monkeypatch.setattr(_contract, "st", fake)
    monkeypatch.setattr(drawing_canvas, "st", fake)
    return state


def _payload(tier: str = "heads") -> SimpleNamespace:
    return SimpleNamespace(tier=tier, id="payload-1", blob=b"", nbytes=0)


def _fwd() -> SimpleNamespace:
    return SimpleNamespace(key="fwd", layout=LAYOUT, capture=SimpleNamespace(num_layers=LAYERS, num_heads=HEADS))


def _handle(session: dict, kwargs: dict, key: str, value: Any) -> None:
    """Send ``value`` as the component's trigger value ``commit`` and run its change callback."""
    session[key] = {"commit": value}
    kwargs["on_commit_change"]()


def _ignored_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ignored a value from the browser" in r.getMessage()]


# ----------------------------------------------------------------------------------------- attention explorer

@pytest.fixture
def explorer(monkeypatch, session):
    mounted, commits = Mounted(), []
    monkeypatch.setattr(attention_explorer, "_explorer", mounted)
    monkeypatch.setattr(attention_explorer, "payload_carrier", lambda blob, key: None)
    monkeypatch.setattr(attention_explorer, "explorer_payload", lambda *args: _payload())
    attention_explorer.attention_explorer(_fwd(), None, query_token=0, layer=2, head="mean", labels={"cls": "Class"},
                                          key="attn_explorer", on_commit=commits.append)
    return mounted.kwargs, commits


GOOD = {"query": "patch", "row": 3, "col": 4, "layer": 2, "head": "3", "at": 1}


@pytest.mark.parametrize("value", JUNK + [
    {**GOOD, "row": 4}, {**GOOD, "col": -1}, {**GOOD, "row": NAN}, {**GOOD, "row": INF}, {**GOOD, "row": 10**18},
    {**GOOD, "row": "3"}, {**GOOD, "row": 1.5}, {**GOOD, "row": True}, {**GOOD, "row": [3]},
    {**GOOD, "layer": LAYERS}, {**GOOD, "layer": -1}, {**GOOD, "layer": "1"}, {**GOOD, "layer": None},
    {**GOOD, "head": str(HEADS)}, {**GOOD, "head": "-1"}, {**GOOD, "head": "1e3"}, {**GOOD, "head": "mean; drop"},
    {**GOOD, "head": NAN}, {**GOOD, "head": {"mean": 1}}, {**GOOD, "query": "dist"}, {**GOOD, "query": ["patch"]},
    {"query": "patch", "layer": 0, "head": "0"}, {"query": "cls", "head": "max"}, {"query": "cls", "layer": 0},
], ids=lambda v: repr(v)[:60])
def test_the_attention_explorer_ignores_a_hostile_commit_with_a_log_line(explorer, session, caplog, value):
    kwargs, commits = explorer
    with caplog.at_level(logging.WARNING):
        _handle(session, kwargs, "attn_explorer", value)
    assert commits == []
    assert len(_ignored_lines(caplog)) == 1
    assert all(len(line) < 400 for line in _ignored_lines(caplog)), "a huge value is cut short in the log"


def test_the_attention_explorer_hands_a_checked_commit_to_the_page(explorer, session):
    kwargs, commits = explorer
    _handle(session, kwargs, "attn_explorer", GOOD)
    _handle(session, kwargs, "attn_explorer", {"query": "reg0", "layer": 0, "head": "max", "at": 2, "junk": [1]})
    _handle(session, kwargs, "attn_explorer", {**GOOD, "row": 0.0, "head": 2})  # JSON's 0.0 and a numeric head
    assert commits == [{"query": "patch", "row": 3, "col": 4, "layer": 2, "head": "3"},
                       {"query": "reg0", "layer": 0, "head": "max"},
                       {"query": "patch", "row": 0, "col": 4, "layer": 2, "head": "2"}]
    assert all(type(c["layer"]) is int for c in commits) and type(commits[2]["row"]) is int
    session["attn_explorer"] = "not a component state"  # whatever Streamlit holds: never an exception
    kwargs["on_commit_change"]()
    assert len(commits) == 3


def test_the_attention_explorer_is_mounted_with_the_contract(explorer):
    data = explorer[0]["data"]
    assert set(data) == CONTRACT
    assert data["committed"] == {"token": 0, "layer": 2, "head": "mean", "rows": None}
    assert data["text"]["prefix_labels"] == {"cls": "Class"} and data["payload"] == "payload-1"


# ---------------------------------------------------------------------------------- patch follower, tile explorer

@pytest.fixture(params=["patch_follower", "tile_explorer"])
def cell_component(request, monkeypatch, session):
    """A component whose commit is a cell of the 4 × 5 grid: ``(kwargs of its mount, commits, key)``."""
    mounted, commits = Mounted(), []
    if request.param == "patch_follower":
        monkeypatch.setattr(patch_follower, "_follower", mounted)
        monkeypatch.setattr(patch_follower, "payload_carrier", lambda blob, key: None)
        patch_follower.patch_follower(_payload("patches"), grid=LAYOUT.grid_size, committed=(1, 1), text={"tip": "t"},
                                      key="how_follow", on_commit=lambda r, c: commits.append((r, c)))
    else:
        monkeypatch.setattr(tiles, "_tiles", mounted)
        monkeypatch.setattr(tiles, "payload_carrier", lambda blob, key: None)
        tiles.tile_explorer(_payload("maps"), committed=(1, 1), grid=LAYOUT.grid_size, caption="c",
                            key="how_follow", on_commit=lambda r, c: commits.append((r, c)))
    return mounted.kwargs, commits


@pytest.mark.parametrize("value", JUNK + [
    {"row": 4, "col": 0}, {"row": 0, "col": 5}, {"row": -1, "col": 0}, {"row": NAN, "col": 0},
    {"row": 0, "col": -INF}, {"row": 10**100, "col": 0}, {"row": "1", "col": "1"}, {"row": 0.5, "col": 0},
    {"row": False, "col": 0}, {"row": 1}, {"col": 1}, {"row": {"row": 1}, "col": 1}, {"row": [[0]], "col": 0},
], ids=lambda v: repr(v)[:60])
def test_a_grid_component_ignores_a_hostile_cell_with_a_log_line(cell_component, session, caplog, value):
    kwargs, commits = cell_component
    with caplog.at_level(logging.WARNING):
        _handle(session, kwargs, "how_follow", value)
    assert commits == [] and len(_ignored_lines(caplog)) == 1


def test_a_grid_component_hands_a_checked_cell_to_the_page(cell_component, session):
    kwargs, commits = cell_component
    for value in ({"row": 3, "col": 4, "at": 5}, {"row": 0, "col": 0.0}):
        _handle(session, kwargs, "how_follow", value)
    assert commits == [(3, 4), (0, 0)] and all(type(v) is int for cell in commits for v in cell)
    assert set(kwargs["data"]) == CONTRACT and kwargs["data"]["committed"] == {"row": 1, "col": 1}


# ------------------------------------------------------------------------------------------------ rollout explorer

@pytest.fixture
def scrubber(monkeypatch, session):
    """The rollout explorer mounted on three fusions over layers 1…3 (start layer 1); its commits are collected."""
    mounted, commits = Mounted(), []
    monkeypatch.setattr(rollout_explorer, "_rollout", mounted)
    monkeypatch.setattr(rollout_explorer, "payload_carrier", lambda blob, key: None)
    monkeypatch.setattr(rollout_explorer, "_payload", lambda *args: _payload("maps"))
    views = {f: SimpleNamespace(layers=(1, 2, 3)) for f in ("mean", "max", "min")}
    rollout_explorer.rollout_explorer(_fwd(), None, views, fusion="max", layer=2, discard_ratio=0.0, start_layer=1,
                                      titles={"max": ["a"]}, text={"tip": "t"}, fusion_names={"max": "Max"},
                                      prefix_labels={"cls": "class"}, key="ro", on_commit=commits.append)
    return mounted.kwargs, commits


def test_the_rollout_explorer_commits_a_fusion_and_a_layer_it_has(scrubber, session):
    kwargs, commits = scrubber
    data = kwargs["data"]
    assert set(data) == CONTRACT and data["committed"] == {"fusion": "max", "layer": 2}
    assert data["text"]["titles"] == {"max": ["a"]} and data["text"]["fusion_names"] == {"max": "Max"}
    _handle(session, kwargs, "ro", {"fusion": "min", "layer": 3, "at": 1})
    assert commits == [{"fusion": "min", "layer": 3}]


@pytest.mark.parametrize("value", JUNK + [{"fusion": "median", "layer": 2}, {"fusion": "max", "layer": 0},
                                          {"fusion": "max", "layer": 4}, {"fusion": "max", "layer": NAN},
                                          {"fusion": "max", "layer": "2"}, {"fusion": ["max"], "layer": 2}])
def test_the_rollout_explorer_ignores_what_it_does_not_have(scrubber, session, caplog, value):
    kwargs, commits = scrubber
    with caplog.at_level(logging.WARNING):
        _handle(session, kwargs, "ro", value)
    assert commits == [] and len(_ignored_lines(caplog)) == 1


# --------------------------------------------------------------------------------------------------- drawing pad

PNG = "data:image/png;base64," + base64.b64encode(_imagefactory.make_png((8, 8))).decode()
SKETCH = {"png": PNG, "strokes": [{"c": "#000000", "w": 12, "p": [10, 10, 40.5, 40]}], "background": "#ffffff",
          "pen": "#000000", "width": 12, "at": 1}


def _stroke(**change: Any) -> dict:
    return {**SKETCH, "strokes": [{**SKETCH["strokes"][0], **change}]}


@pytest.fixture
def pad(monkeypatch, session):
    mounted = Mounted()
    monkeypatch.setattr(drawing_canvas, "_pad", mounted)
    drawing_canvas.drawing_canvas(key="drawing", text={"undo": "Undo"})
    return mounted.kwargs


def _draw(session: dict, pad: dict, value: Any) -> Any:
    session["drawing"] = {"drawing": value}
    pad["on_drawing_change"]()
    return session.get(drawing_canvas.kept_key("drawing"))


@pytest.mark.parametrize("value", JUNK + [
    {**SKETCH, "png": 12}, {**SKETCH, "png": ["data:"]}, {**SKETCH, "png": "data:image/gif;base64,R0lGODlh"},
    {**SKETCH, "png": "A" * 3_000_000}, {**SKETCH, "png": "data:image/png;base64,%%%"},
    {**SKETCH, "strokes": "x"}, {**SKETCH, "strokes": [SKETCH["strokes"][0]] * 501}, {**SKETCH, "strokes": [None]},
    _stroke(p=[1, 2, 3]), _stroke(p=[]), _stroke(p=[NAN, 1]), _stroke(p=[-1, 1]), _stroke(p=[1e9, 1]),
    _stroke(p=[[1, 2]]), _stroke(p=["1", "2"]), _stroke(p=[0.5] * 50_000), _stroke(w=NAN), _stroke(w=-3),
    _stroke(w="12"), _stroke(c="red"), _stroke(c="#00000g"), _stroke(c=None), {**SKETCH, "background": "url(x)"},
    {"strokes": []}, {"png": None}, {"png": None, "strokes": None},
    {**SKETCH, "pen": 0}, {**SKETCH, "width": INF}, {**SKETCH, "width": 10**9},
], ids=lambda v: repr(v)[:60])
def test_the_pad_ignores_a_hostile_sketch_and_keeps_the_last_good_one(pad, session, caplog, value):
    good = _draw(session, pad, SKETCH)
    with caplog.at_level(logging.WARNING):
        assert _draw(session, pad, value) is good, "the last good sketch stays"
    assert len(_ignored_lines(caplog)) == 1


def test_the_pad_keeps_a_checked_copy_of_a_good_sketch(pad, session):
    kept = _draw(session, pad, {**SKETCH, "script": "<b>"})
    assert kept == {name: SKETCH[name] for name in ("png", "strokes", "background", "pen", "width")}
    assert _draw(session, pad, {"png": None, "strokes": []}) == {"png": None, "strokes": []}, "a cleared pad"
    assert set(pad["data"]) == CONTRACT and pad["data"]["payload"] is None and pad["data"]["text"] == {"undo": "Undo"}


def test_a_hostile_kept_sketch_is_not_handed_back_to_the_pad(monkeypatch, session, caplog):
    """What the pad redraws on mounting comes from the session, checked again: junk there reaches neither the pad
    nor the page."""
    mounted = Mounted()
    monkeypatch.setattr(drawing_canvas, "_pad", mounted)
    session[drawing_canvas.kept_key("drawing")] = _stroke(p=[NAN, NAN])
    with caplog.at_level(logging.WARNING):
        assert drawing_canvas.drawing_canvas(key="drawing", text={}) is None
    assert mounted.kwargs["data"]["committed"]["strokes"] == [] and len(_ignored_lines(caplog)) == 1


def test_the_explorers_are_sent_the_figures_colours():
    from vitviz.export import colour_stops
    from vitviz_app.components import map_colours

    assert map_colours() == colour_stops("Inferno")
