"""What the model sees of a 1000×200 upload (issue 22: it predicted from the middle 200×200, and nothing said so):
every page says it, every map over the photo dims the unseen sides, and the sidebar's choice of the whole photo
(letterbox or squash, ``?fit=``) runs the model on all of it."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vitviz.figures.placement import UNSEEN_FILL
from vitviz_app.loaders import forward_passes
from vitviz_app.ui import PATH

pytestmark = pytest.mark.slow

FIGURES = {"overview": ["overview.patches", "overview.rollout"], "patches": ["patches.grid"],
           "rollout": ["ro.gradient"], "heads_depth": ["heads.pca"], "attention": ["attn.map"]}


def _strip() -> bytes:
    """1000×200: a triangle on the left, a circle on the right, nothing in the middle."""
    pixels = np.full((200, 1000, 3), 235, np.uint8)
    for y in range(40, 160):  # a triangle at x 40…200
        half = (y - 40) * 80 // 120
        pixels[y, 120 - half:120 + half] = (200, 30, 30)
    yy, xx = np.mgrid[:200, :1000]
    pixels[(yy - 100) ** 2 + (xx - 880) ** 2 < 70 ** 2] = (30, 30, 200)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _upload(at, query_fit: str | None = None):
    at.segmented_control(key="source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value(("strip.png", _strip(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _notes(at) -> list[str]:
    return [i.value for i in at.main.info if "px image" in i.value]


def _dimmed(figure_spec: dict) -> list[dict]:
    return [s for s in figure_spec["layout"].get("shapes", []) if s.get("fillcolor") == UNSEEN_FILL]


def test_every_page_says_the_model_sees_only_the_centre_and_every_map_dims_the_rest(open_app, figure):
    at = _upload(open_app())
    for page in PATH:
        if page != "overview":
            at.switch_page(f"pages/{page}.py")
        at.query_params["attn_figures"] = "true"
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        notes = _notes(at)
        assert len(notes) == 1, (page, notes)
        assert "only the centre" in notes[0] and "1000×200 px" in notes[0], notes[0]
        for key in FIGURES.get(page, []):
            dimmed = _dimmed(figure(at, key))
            assert dimmed, f"{page}: {key} draws the unseen sides at full brightness"
            xs = sorted((s["x0"], s["x1"]) for s in dimmed)
            assert xs[0][0] == pytest.approx(0) and xs[-1][1] == pytest.approx(1000), (page, key, xs)


@pytest.mark.parametrize("fit, words", [("letterbox", "padded"), ("squash", "squashed")])
def test_the_whole_photo_is_one_choice_away_and_kept_in_the_link(open_app, figure, fit, words):
    at = _upload(open_app())
    passes = forward_passes()
    crop = figure(at, "overview.predictions")["data"][0]["x"]
    at.segmented_control(key="fit").set_value(fit).run()
    assert not at.exception
    assert forward_passes() == passes + 1, "the whole photo is another input: one more pass"
    assert at.query_params["fit"] == fit
    notes = _notes(at)
    assert len(notes) == 1 and words in notes[0] and "only the centre" not in notes[0], notes
    assert not _dimmed(figure(at, "overview.rollout")), "nothing is unseen"
    assert figure(at, "overview.predictions")["data"][0]["x"] != crop, "the model saw another input"
    at.segmented_control(key="fit").set_value("crop").run()
    assert forward_passes() == passes + 1, "back to the crop: its pass is cached"
    assert "fit" not in at.query_params


def test_a_square_photo_gets_no_note(open_app):
    at = open_app()
    assert not _notes(at)
