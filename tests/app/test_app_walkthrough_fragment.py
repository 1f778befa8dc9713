"""How a ViT works below its header is one ``st.fragment``: following a patch (the follower's commit) reruns only the
steps, not the sidebar, navigation and header. The view a commit leaves (patch, layer, head, figures toggle) is
handed to the browser as URL ids, which the follower writes into the address bar since a fragment's rerun may not;
a link made of them reopens the same view. A model the walk-through cannot follow still stops the page.
"""
from __future__ import annotations

import functools
import importlib

import pytest

from tests._apptest import commit, walk_tree

PAGE = "pages/how_vit_works.py"
GRID = 8  # the bundled model's 8 × 8 patches: row and column 4 are the defaults


def _url(at, component: str = "patch_follower") -> dict:
    """The URL ids the page handed to the browser (the follower's ``committed.url``, or the keeper's data)."""
    data = _mounted(at, component)
    assert len(data) == 1, data
    return data[0]["committed"]["url"] if component == "patch_follower" else data[0]


def _mounted(at, component: str) -> list[dict]:
    import json

    found = []
    for node in walk_tree(at._tree):
        if getattr(getattr(node, "proto", None), "component_name", "") == f"vitviz.{component}":
            data = json.loads(node.proto.json)
            if component != "patch_follower" or "step" not in data["committed"]:  # the follower, not a step view
                found.append(data)
    return found


def _committed_patches(at) -> set[tuple[int, int]]:
    """The patch every view of the page shows: the follower, each step view, step 1's inputs."""
    import json

    views = [json.loads(node.proto.json)["committed"] for node in walk_tree(at._tree)
             if getattr(getattr(node, "proto", None), "component_name", "") == "vitviz.patch_follower"]
    assert len(views) == 5, "the follower and the views of steps 2, 3, 5 and 6"
    return {(v["row"], v["col"]) for v in views} | {(at.number_input(key="how_row").value,
                                                      at.number_input(key="how_col").value)}


def test_everything_below_the_header_is_one_fragment(open_app, monkeypatch):
    """The follower, every step and the download are drawn inside the page's one fragment (its commit reruns only
    them); the header and the "next" link are outside it."""
    import streamlit as st

    import vitviz_app as ui
    follower = importlib.import_module("vitviz_app.components.patch_follower")  # the module, not its function

    real = st.fragment
    inside: list[str] = []
    where: dict[str, list[bool]] = {}

    def fragment(func=None, **kwargs):  # st.fragment, noting when its body runs
        @functools.wraps(func)
        def body(*args, **kw):
            inside.append(func.__name__)
            try:
                return func(*args, **kw)
            finally:
                inside.pop()

        return real(body, **kwargs)

    def noted(name, function):
        def call(*args, **kwargs):
            where.setdefault(name, []).append(bool(inside))
            return function(*args, **kwargs)

        return call

    monkeypatch.setattr(st, "fragment", fragment)
    for name in ("page_header", "download_arrays", "next_steps", "show_figure"):
        monkeypatch.setattr(ui, name, noted(name, getattr(ui, name)))
    for name in ("patch_follower", "patch_step"):
        monkeypatch.setattr(follower, name, noted(name, getattr(follower, name)))
    at = open_app(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert where == {"page_header": [False], "patch_follower": [True], "patch_step": [True] * 4,
                     "show_figure": [True] * 2,  # steps 4 and 7
                     "download_arrays": [True], "next_steps": [False]}


def test_a_commit_in_the_fragment_keeps_the_view_for_the_address_bar_and_its_link_reopens_it(open_app):
    at = open_app(PAGE, {"how_layer": "1", "how_head": "1"})
    assert not at.exception
    assert _url(at) == {"how_row": None, "how_col": None, "how_layer": "1", "how_head": "1", "how_figures": None}
    commit(at, how_row=0, how_col=3)  # what the follower's commit does (its handler: test_component_commits.py)
    assert not at.exception
    assert _committed_patches(at) == {(0, 3)}
    link = _url(at)
    assert link == {"how_row": "0", "how_col": "3", "how_layer": "1", "how_head": "1", "how_figures": None}

    again = open_app(PAGE, {key: value for key, value in link.items() if value is not None})
    assert not again.exception
    assert _committed_patches(again) == {(0, 3)}
    assert (again.slider(key="how_layer").value, again.selectbox(key="how_head").value) == (1, 1)
    assert _url(again) == link

    commit(at, how_row=GRID // 2, how_col=GRID // 2)  # back to the defaults: a clean URL
    assert {key: value for key, value in _url(at).items() if value is not None} == {"how_layer": "1",
                                                                                     "how_head": "1"}


def test_the_figures_toggle_is_part_of_the_view_the_follower_keeps(open_app):
    at = open_app(PAGE, {"how_figures": "true"})
    assert not at.exception
    assert _url(at)["how_figures"] == "true"
    at.toggle(key="how_figures").set_value(False).run()
    assert _url(at)["how_figures"] is None
    assert len(_mounted(at, "patch_follower")) == 1


def test_without_a_follower_the_address_bar_keeper_holds_the_view(open_app, monkeypatch):
    """Patches too many to send: step 1 is a Plotly figure to click, and an invisible keeper writes the URL."""
    from vitviz_app.components.attention_explorer import BUDGET_ENV

    monkeypatch.setenv(BUDGET_ENV, "3000")
    at = open_app(PAGE)
    assert not at.exception
    assert not _mounted(at, "patch_follower")
    assert at.main.get_by_key("fig-how-grid") is not None
    commit(at, how_row=1, how_col=2)  # what a click on step 1's figure does (ui.click_to_state)
    assert _url(at, "address_bar") == {"how_row": "1", "how_col": "2", "how_layer": None, "how_head": None,
                                       "how_figures": None}


@pytest.mark.parametrize("lang, note", [("en", "need a standard timm VisionTransformer"), ("zh", "标准的 timm")])
def test_a_model_the_walk_through_cannot_follow_stops_the_page_with_a_note(open_app, monkeypatch, lang, note):
    """``st.stop()`` inside the fragment ends the whole run: the note, no step, no follower, no "next" link."""
    from vitviz.analysis import walkthrough

    monkeypatch.setattr(walkthrough, "supports_walkthrough", lambda model: False)
    at = open_app(PAGE, {"lang": lang})
    assert not at.exception, [e.value for e in at.exception]
    assert [i.value for i in at.info if note in i.value]
    assert not at.header, "no step is drawn"
    assert not _mounted(at, "patch_follower") and not _mounted(at, "address_bar")
    assert not at.main.get("page_link"), "no link to the next page under the note"
