"""The Attention page's explorer section (AppTest): it states what the browser holds, falls back to clicks
when the attention is too large to send, and its commit callback moves the page's query, layer and head."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vitviz_app.components.attention_explorer import BUDGET_ENV
from vitviz_app.plotting import _plotly_module


def _explorer_caption(at) -> str:
    texts = [c.value for c in at.caption if "redrawn in your browser" in c.value]
    assert len(texts) == 1, [c.value for c in at.caption]
    return texts[0]


@pytest.mark.parametrize("budget, says", [
    (None, "Every layer, head and query is in the browser"),
    ("12000", "too many to send every query's attention"),  # prefix rows only: clicks load a patch
    ("300", "too many to send attention to the browser"),  # nothing fits
])
def test_the_page_says_what_the_browser_holds(open_app, monkeypatch, budget, says):
    if budget is not None:
        monkeypatch.setenv(BUDGET_ENV, budget)
    at = open_app("pages/attention.py")
    assert not at.exception, [e.value for e in at.exception]
    assert says in _explorer_caption(at)


def test_a_commit_becomes_the_pages_query_layer_and_head():
    from vitviz_app.components import commit_updates

    patch = {"query": "patch", "row": 3, "col": 5, "layer": 1, "head": "2", "at": 1}
    assert commit_updates(patch, "attn") == {"attn_query": "patch", "attn_row": 3, "attn_col": 5, "attn_layer": 1,
                                             "attn_head": "2"}
    cls = {"query": "cls", "layer": 0, "head": "max"}
    assert commit_updates(cls, "attn") == {"attn_query": "cls", "attn_layer": 0, "attn_head": "max"}
    assert commit_updates({"layer": 0}, "attn") == {}  # not a commit


def test_the_top_patches_table_is_the_querys_five_largest_attentions(open_app):
    """The static table beside the map: rows, columns and values from an independent capture."""
    from tests._apptest import reference_capture

    at = open_app("pages/attention.py", query={"attn_layer": "2", "attn_head": "Head 1", "attn_query": "A patch",
                                                 "attn_row": "3", "attn_col": "4"})
    assert not at.exception, [e.value for e in at.exception]
    _loaded, cap = reference_capture(at)
    gh, gw = cap.layout.grid_size
    row = cap.attention(2)[0, 1, cap.layout.num_prefix_tokens + 3 * gw + 4].double().numpy()  # (N,) head 1's row
    patches = row[cap.layout.num_prefix_tokens:]
    top = np.argsort(-patches, kind="stable")[:5]
    table = at.table[0].value
    assert list(table["row"]) == [int(i // gw) for i in top] and list(table["column"]) == [int(i % gw) for i in top]
    np.testing.assert_allclose(table["attention"].to_numpy(dtype=float), patches[top], rtol=1e-5, atol=1e-7)


def test_the_explorer_is_the_pages_map_and_its_plotly_figures_come_on_demand(open_app, figure):
    """By default the page's map is the explorer, mounted on the committed query; the shares and the heading
    agree with an independent capture; the Plotly map and grid appear with their toggle, on the same query."""
    from tests._apptest import component_data, heat, reference_capture

    at = open_app("pages/attention.py", query={"attn_layer": "2", "attn_head": "Head 1", "attn_query": "A patch",
                                                 "attn_row": "3", "attn_col": "4"})
    assert not at.exception, [e.value for e in at.exception]
    _loaded, cap = reference_capture(at)
    layout = cap.layout
    token = layout.patch_index(3, 4)
    assert component_data(at, "attention_explorer")["committed"] == {
        "token": token, "layer": 2, "head": "1", "rows": None,  # the browser holds every row
        # ids in the URL, a default left out: column 4 is the middle of the 8 × 8 grid, where a patch query starts
        "url": {"attn_layer": "2", "attn_head": "1", "attn_query": "patch", "attn_row": "3", "attn_col": None}}
    assert not at.get("plotly_chart"), "no server-drawn map by default: a click must not wait for one"
    assert [h.value for h in at.subheader] == ["Committed view: patch (3, 4) · layer 2 · Head 1"]
    row = cap.attention(2)[0, 1, token].double().numpy()
    # the shares are said once, by the explorer under its map (they follow the preview there), not again here
    assert not [m.value for m in at.markdown if "Share of this query's attention" in m.value]
    assert component_data(at, "attention_explorer")["text"]["shares"].startswith("Share of this query's attention")

    # with the figures off, the browser is told to load Streamlit's Plotly code once the page is drawn and idle
    assert [h.proto.body.count(_plotly_module()) for h in at.get("html") if "PlotlyChart." in h.proto.body] == [1]
    at.toggle(key="attn_figures").set_value(True).run()
    assert not [h for h in at.get("html") if "PlotlyChart." in h.proto.body], "the figures load it themselves"
    np.testing.assert_allclose(heat(figure(at, "attn.map")).ravel(), row[layout.patch_slice], rtol=1e-5, atol=1e-7)
    assert "Attention of patch (3, 4)" in figure(at, "attn.grid")["layout"]["title"]["text"]


def test_the_plotly_module_the_page_preloads_is_the_one_this_streamlit_ships():
    """``preload_plotly`` names Streamlit's own Plotly chunk: a Streamlit that renamed it would make the preload
    silently do nothing, and the first figures toggle 1.1 s slower (bench/README §14)."""
    import streamlit

    module = _plotly_module()
    assert module is not None and module.startswith("./static/js/PlotlyChart.")
    assert (Path(streamlit.__file__).parent / "static" / module.removeprefix("./")).is_file()
