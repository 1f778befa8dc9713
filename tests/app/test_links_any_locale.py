"""Links carry everything (issue 22): ``lang`` stays in the URL as ``en`` or ``zh``, every value in the URL is a
language-neutral id, and a link opens the same view in a browser of any locale, on every page.

AppTest with ``at.context["locale"]`` standing in for the browser's language. A link is opened in one locale, the
URL the app then holds (``at.query_params``: what a user copies) is opened in another, and the view must match:
the same language (the link's), the same state (session values) and the same committed view of each explorer.
"""
from __future__ import annotations

import json
import re

import pytest

from tests._apptest import APP, APP_TIMEOUT_S, walk_tree
from tests._texts import glossary
from vitviz_app.ui import PATH

pytestmark = pytest.mark.slow

CJK = re.compile(r"[\u4e00-\u9fff]")

# every page with a link that moves its controls away from their defaults (ids only)
LINKS = {
    "overview": {"fit": "letterbox"},
    "patches": {"patch": "8"},
    "position_embeddings": {"pos_row": "1", "pos_col": "2", "pos_range": "true"},
    "attention": {"attn_layer": "1", "attn_head": "2", "attn_query": "patch", "attn_row": "1", "attn_col": "2"},
    "rollout": {"ro_fusion": "max", "ro_layer": "2", "ro_start": "1", "ro_class": "3"},
    "heads_depth": {"heads_state": "1"},
    "how_vit_works": {"how_head": "1", "how_layer": "1", "how_row": "0", "how_col": "1"},
    "compare": {},
    "vit_vs_cnn": {},
}
assert set(LINKS) == set(PATH)


@pytest.fixture
def open_link(app_model):
    """``open_link(page, query, locale)``: the app opened on a link, in a browser of ``locale``."""
    from streamlit.testing.v1 import AppTest

    def _open(page: str, query: dict[str, str], locale: str):
        at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
        at.context["locale"] = locale
        at.query_params.update(query)
        if page != "overview":
            at.switch_page(f"pages/{page}.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return _open


def _language(at) -> str:
    kept = {t.chinese for t in glossary() if not CJK.search(t.chinese)}  # method names kept as published
    return "zh" if CJK.search(at.title[0].value) or at.title[0].value in kept else "en"


def _components(at) -> dict[str, object]:
    """The committed state every browser component of the page was mounted with."""
    return {node.proto.component_name: json.loads(node.proto.json).get("committed")
            for node in walk_tree(at._tree) if getattr(getattr(node, "proto", None), "component_name", "")
            and node.proto.component_name != "vitviz.payload"}


def _view(at, keys) -> tuple[dict, dict]:
    return {key: str(at.session_state[key]).lower() for key in keys}, _components(at)


@pytest.mark.parametrize("page", list(LINKS))
@pytest.mark.parametrize("lang, first, second", [("zh", "en-US", "de-DE"), ("en", "zh-CN", "zh-TW")])
def test_a_link_opens_the_same_view_in_any_browser_locale(open_link, page, lang, first, second):
    link = {"lang": lang, **LINKS[page]}
    at = open_link(page, link, first)
    assert _language(at) == lang, f"{page} opened in the browser's language, not the link's"
    state, components = _view(at, LINKS[page])
    assert state == {key: value.lower() for key, value in LINKS[page].items()}, "the link's values were not read"
    copied = dict(at.query_params)
    assert copied["lang"] == lang, "lang stays in the URL"
    assert all(not CJK.search(f"{k}={v}") for k, v in copied.items()), f"a label in the URL: {copied}"
    assert {k: v for k, v in copied.items() if k in LINKS[page]} == LINKS[page], copied

    again = open_link(page, copied, second)  # the copied link, in a third locale
    assert _language(again) == lang
    assert _view(again, LINKS[page]) == (state, components)


def test_the_language_switch_writes_a_code_into_the_url(open_link):
    at = open_link("attention", {}, "en-US")
    assert at.query_params["lang"] == "en"
    at.segmented_control(key="lang").set_value("zh").run()
    assert at.query_params["lang"] == "zh" and _language(at) == "zh"


def test_links_made_with_labels_before_ids_still_open(open_link):
    """Old links held the shown labels (``?lang=中文&attn_head=注意力头+2``): they open, and the URL becomes ids."""
    at = open_link("attention", {"lang": "中文", "attn_head": "注意力头 2", "attn_query": "A patch"}, "en-US")
    assert _language(at) == "zh"
    assert (at.session_state["attn_head"], at.session_state["attn_query"]) == ("2", "patch")
    assert (at.query_params["lang"], at.query_params["attn_head"], at.query_params["attn_query"]) == \
        ("zh", "2", "patch")
