"""Draw: the sketch pad's payload becomes the image exactly as an upload would; empty and bad payloads stay readable.

AppTest cannot draw, so these tests put a payload where the pad's change callback keeps it
(``kept_key('drawing')``); ``test_drawing_browser.py`` draws with a real mouse.
"""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests import _imagefactory as factory
from vitviz_app.components.drawing_canvas import (
    DRAWING_SIZE,
    MAX_DRAWING_BYTES,
    MAX_DRAWING_SIDE,
    DrawingError,
    drawing_png,
    kept_key,
)

KEPT = kept_key("drawing")


def _ring(size: int = DRAWING_SIZE) -> np.ndarray:
    """A black ring on white, as a user would draw one."""
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    pixels = np.full((size, size, 3), 255, dtype=np.uint8)
    pixels[(radius > size * 0.25) & (radius < size * 0.32)] = 0
    return pixels


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _sent(data: bytes, prefix: str = "data:image/png;base64,") -> dict:
    """A payload as the pad sends it (one stroke)."""
    return {"png": prefix + base64.b64encode(data).decode(),
            "strokes": [{"c": "#000000", "w": 12, "p": [10, 10, 40, 40]}],
            "background": "#ffffff", "pen": "#000000", "width": 12}


def _header_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels and holds none (the size check reads only it)."""
    return factory.make_raw_png(width, height, 8, 2, b"")


# ---- the payload, without Streamlit ------------------------------------------------------------------------------

def test_a_pads_png_comes_back_byte_for_byte():
    data = _png(_ring())
    assert drawing_png(_sent(data)) == data
    assert drawing_png(_sent(data, prefix="")) == data  # bare base64 too


@pytest.mark.parametrize("value", [None, {}, {"png": None, "strokes": []}, {"png": ""}])
def test_an_empty_pad_is_no_image(value):
    assert drawing_png(value) is None


@pytest.mark.parametrize("value, says", [
    ("just text", "not an object"),
    ({"png": 12}, "not a PNG image"),
    ({"png": "data:image/jpeg;base64," + base64.b64encode(factory.make_jpeg()).decode()}, "it says image/jpeg"),
    ({"png": "data:image/png;base64,not base64!"}, "not valid base64"),
    ({"png": base64.b64encode(factory.make_jpeg()).decode()}, "not a PNG image"),
    ({"png": base64.b64encode(b"<html>hello</html>").decode()}, "not a PNG image"),
    ({"png": "A" * (2 * MAX_DRAWING_BYTES)}, "too large"),
    (_sent(_header_png(MAX_DRAWING_SIDE + 1, 16)), f"{MAX_DRAWING_SIDE + 1}×16 px"),
], ids=["not-a-dict", "not-a-string", "jpeg", "bad-base64", "jpeg-bytes", "html", "huge-string", "huge-pixels"])
def test_a_bad_payload_is_refused_with_a_reason(value, says):
    with pytest.raises(DrawingError, match=says):
        drawing_png(value)


def test_the_size_limits_are_inclusive():
    assert drawing_png(_sent(_header_png(MAX_DRAWING_SIDE, MAX_DRAWING_SIDE))) is not None  # the header passes
    with pytest.raises(DrawingError, match="too large"):
        drawing_png(_sent(b"\x89PNG\r\n\x1a\n" + bytes(MAX_DRAWING_BYTES)))


# ---- the app ------------------------------------------------------------------------------------------------------

def _clean(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _captions(at) -> list[str]:
    return [c.value for c in at.main.caption]  # the Overview names the image under its patches


def _draw(at, payload: dict):
    at.session_state[KEPT] = payload
    return at.run()


def test_the_url_opens_the_pad_with_a_prompt_not_an_error(open_app):
    at = open_app(query={"source": "Draw"})
    _clean(at)
    assert at.segmented_control(key="source").value == "Draw"
    assert not at.error, [e.value for e in at.error]
    assert any("Draw a shape" in i.value for i in at.info), [i.value for i in at.info]
    assert not at.get("plotly_chart"), "nothing is drawn before the first stroke"


def test_a_drawing_is_explained_like_an_upload(open_app, figure):
    from vitviz_app import loaders

    pixels = _ring()
    data = _png(pixels)
    at = _draw(open_app(query={"source": "Draw"}), _sent(data))
    _clean(at)
    assert not at.error, [e.value for e in at.error]
    assert any(c.startswith(f"drawing · {DRAWING_SIZE}×{DRAWING_SIZE} px") for c in _captions(at)), _captions(at)
    ctx = at.session_state["_vitviz_context"]
    assert ctx.image_label == "drawing" and ctx.image_key == loaders.digest(data)  # the upload path's cache key
    assert np.array_equal(np.asarray(ctx.image), pixels)  # decoded pixel for pixel
    rollout = figure(at, "overview.rollout")
    assert rollout["layout"]["xaxis"]["range"][1] >= DRAWING_SIZE - 1


def test_the_drawing_survives_other_sources_and_pages(open_app):
    data = _png(_ring())
    at = _draw(open_app(query={"source": "Draw"}), _sent(data))
    at.segmented_control(key="source").set_value("Sample").run()
    _clean(at)
    assert not any(c.startswith("drawing") for c in _captions(at))
    at.segmented_control(key="source").set_value("Draw").run()
    _clean(at)
    assert any(c.startswith("drawing") for c in _captions(at)), "the sketch is back"
    at.switch_page("pages/attention.py").run()
    _clean(at)
    assert at.segmented_control(key="source").value == "Draw"
    assert at.session_state["_vitviz_context"].image_label == "drawing"


def _pad_data(at) -> dict:
    """The data the app hands the pad in this run."""
    pads = [e.proto for e in at.sidebar if getattr(e, "type", None) == "bidi_component"
            and e.proto.component_name == "vitviz.drawing_canvas"]
    assert len(pads) == 1, "one pad in the sidebar"
    return json.loads(pads[0].json)


NEW_PAD = {"size": DRAWING_SIZE, "strokes": [], "pen": "#000000", "width": 12, "background": "#ffffff"}


def test_the_kept_sketch_goes_back_to_a_new_pad_without_its_png(open_app):
    at = open_app(query={"source": "Draw"})
    assert _pad_data(at)["committed"] == NEW_PAD, "a new session's pad starts empty"
    sent = _sent(_png(_ring()))
    sent["background"] = "#ffeedd"
    at = _draw(at, sent)
    committed = _pad_data(at)["committed"]
    assert committed == {"size": DRAWING_SIZE, **{key: sent[key] for key in ("strokes", "background", "pen", "width")}}
    assert _pad_data(at)["payload"] is None and _pad_data(at)["colours"] is None


def test_clearing_the_pad_brings_back_the_prompt(open_app):
    at = _draw(open_app(query={"source": "Draw"}), _sent(_png(_ring())))
    at = _draw(at, {"png": None, "strokes": [], "background": "#ffffff"})
    _clean(at)
    assert not at.error and any("Draw a shape" in i.value for i in at.info)


@pytest.mark.parametrize("payload, says", [
    ({"png": "data:image/gif;base64,R0lGODlh", "strokes": []}, "not a PNG image (it says image/gif)"),
    ({**_sent(_png(_ring())), "strokes": [{"c": "#000000", "w": float("nan"), "p": [1, 1]}]}, "stroke width"),
    (_sent(factory.make_truncated_png()), "does not decode"),  # a PNG header on bytes that are no image
], ids=["not-png", "nan-stroke", "truncated-png"])
def test_a_bad_payload_is_ignored_with_a_log_line_not_an_error_box(open_app, caplog, payload, says):
    at = _draw(open_app(query={"source": "Draw"}), payload)
    _clean(at)
    assert not at.error, [e.value for e in at.error]
    assert any("Draw a shape" in i.value for i in at.info), "the pad counts as empty: its prompt"
    assert not at.get("plotly_chart"), "nothing is drawn for a bad drawing"
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("vitviz_app")]
    assert any(says in line for line in logged), logged


def test_the_pad_speaks_the_users_language(open_app):
    at = open_app(query={"source": "Draw", "lang": "zh"})
    _clean(at)
    assert any("画板上画一个形状" in i.value for i in at.info), [i.value for i in at.info]
    assert _pad_data(at)["text"]["undo"] == "撤销"  # the pad's own words come from the catalogue too
