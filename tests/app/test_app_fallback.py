"""The offline fallback in the app: the page says which model really runs, and that it knows only shapes."""
from __future__ import annotations

import pytest

from tests._pages import app_pages


@pytest.fixture
def no_hub_cache(monkeypatch):
    import vitviz.models.loading

    monkeypatch.setattr(vitviz.models.loading, "_cached_hub_file", lambda name: None)


def _sidebar_text(at) -> str:
    return " ".join(str(e.value) for e in at.sidebar.caption) + " " + " ".join(str(e.value) for e in at.sidebar.warning)


@pytest.mark.parametrize("page", app_pages(), ids=lambda p: p.name)
def test_every_page_says_that_the_model_asked_for_was_swapped(open_app, no_hub_cache, page):
    at = open_app(page.file, query={"model": "DINO ViT-S/16"})
    assert not at.exception and not at.error, [e.value for e in at.error]
    notices = [w.value for w in at.main.warning]
    assert any(n.startswith("You asked for DINO ViT-S/16 (vit_small_patch16_224.dino)") for n in notices), notices
    notice = next(n for n in notices if n.startswith("You asked for"))
    assert "vitviz-shapes" in notice and "vit_small_patch16_224.dino" in notice
    assert "augreg" not in notice, "the advice names the model that was asked for"
    assert "HF_ENDPOINT" in notice and "local weights file" in notice
    # the sidebar describes the model that really runs, not DINO's "no classifier"
    sidebar = _sidebar_text(at)
    assert "no classifier" not in sidebar and "Running instead: **vitviz-shapes**" in sidebar


def test_an_unknown_other_model_offline_names_itself(open_app, no_hub_cache):
    at = open_app(query={"model": "Other timm model…", "timm": "deit_tiny_patch16_224.fb_in1k"})
    assert not at.exception
    notice = next(w.value for w in at.main.warning if w.value.startswith("You asked for"))
    assert "timm.create_model('deit_tiny_patch16_224.fb_in1k', pretrained=True)" in notice


def test_the_model_really_chosen_gives_no_fallback_notice(open_app):
    at = open_app("pages/attention.py", query={"model": "vitviz-shapes"})
    assert not [w.value for w in at.main.warning if "You asked for" in w.value]
    assert "Running instead" not in _sidebar_text(at)


@pytest.mark.parametrize("page", [None, "pages/patches.py", "pages/rollout.py", "pages/how_vit_works.py"],
                         ids=lambda p: p or "overview")
def test_shapes_predictions_say_the_model_knows_only_shapes(open_app, page):
    at = open_app(page, query={"model": "vitviz-shapes", "image": "cat"})
    assert not at.exception
    import json

    from vitviz.shapes.model import CONFIG_PATH

    classes = json.loads(CONFIG_PATH.read_text())["classes"]  # the shipped model's classes, read independently
    notes = [c.value for c in at.main.caption if "knows only" in c.value]
    assert notes == [f"vitviz-shapes knows only {len(classes)} shapes: {', '.join(classes)}. A photo is always "
                     "forced into one of them, so these percentages say which shape it resembles most, not what "
                     "it shows."]
