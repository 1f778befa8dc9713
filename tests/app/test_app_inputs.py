"""Images and models from the user: uploads, the camera, typed model names, weight files; errors stay readable."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests import _imagefactory as factory


def _png(width: int = 300, height: int = 200) -> bytes:
    """A landscape image with a bright square at a known place."""
    pixels = np.full((height, width, 3), 40, dtype=np.uint8)
    pixels[50:90, 200:240] = (250, 220, 30)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _clean(at) -> None:
    """No exception reached the page (so no traceback either)."""
    assert not at.exception, [e.value for e in at.exception]


def _upload(at, name: str, data: bytes, mime: str):
    at.segmented_control(key="source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value((name, data, mime)).run()
    return at


def test_an_uploaded_photo_is_explained(open_app, figure):
    at = _upload(open_app(), "holiday.png", _png(), "image/png")
    _clean(at)
    assert not at.error
    assert any("upload: holiday.png · 300×200 px" in c.value for c in at.main.caption)
    rollout = figure(at, "overview.rollout")
    assert rollout["layout"]["xaxis"]["range"][1] >= 300 and rollout["layout"]["yaxis"]["range"][0] >= 200
    at.switch_page("pages/attention.py").run()
    _clean(at)
    assert at.file_uploader(key="upload").value is not None, "the upload is kept on other pages"
    from tests._apptest import component_data

    assert component_data(at, "attention_explorer")["committed"]["layer"] == at.session_state["attn_layer"] == 3


def test_a_camera_photo_is_explained(open_app):
    at = open_app()
    at.segmented_control(key="source").set_value("Camera").run()
    at.camera_input(key="camera").set_value(("photo.jpg", factory.make_jpeg((240, 320)), "image/jpeg")).run()
    _clean(at)
    assert not at.error
    assert any("camera photo" in c.value for c in at.main.caption)


@pytest.mark.parametrize(
    "name, data, mime",
    [
        ("notes.png", factory.make_text(), "image/png"),
        ("page.jpg", factory.make_html(), "image/jpeg"),
        ("cut.jpg", factory.make_truncated_jpeg(), "image/jpeg"),
        ("cut.png", factory.make_truncated_png(), "image/png"),
        ("bomb.png", factory.make_bomb_png(), "image/png"),
        ("drawing.svg", factory.make_svg(), "image/svg+xml"),
        ("phone.heic", factory.make_heic(), "image/heic"),
        ("empty.png", factory.make_empty(), "image/png"),
    ],
    ids=["text", "html", "truncated-jpeg", "truncated-png", "bomb", "svg", "heic", "empty"],
)
def test_a_bad_upload_shows_the_reason_not_a_traceback(open_app, name, data, mime):
    from vitviz.images import ImageError, load_image

    with pytest.raises(ImageError) as reason:
        load_image(data)
    at = _upload(open_app(), name, data, mime)
    _clean(at)
    shown = [e.value for e in at.error]
    assert any(str(reason.value) in message for message in shown), shown
    assert not at.get("plotly_chart"), "nothing is drawn for a bad image"
    assert all("Traceback" not in message for message in shown)


def test_an_unknown_model_name_is_a_clear_error(open_app):
    from vitviz_app.sidebar import OTHER_MODEL

    at = open_app()
    at.selectbox(key="model").set_value(OTHER_MODEL).run()
    at.text_input(key="timm").input("vit_smal_patch16_224").run()
    _clean(at)
    shown = [e.value for e in at.error]
    assert any("Unknown model 'vit_smal_patch16_224'" in message for message in shown), shown
    assert any("vit_small_patch16_224" in message for message in shown), "it suggests the close name"
    assert not at.get("plotly_chart")


def test_a_model_that_is_not_a_vit_is_refused_clearly(open_app):
    from vitviz_app.sidebar import OTHER_MODEL

    at = open_app()
    at.selectbox(key="model").set_value(OTHER_MODEL).run()
    at.text_input(key="timm").input("resnet18").run()
    _clean(at)
    assert any("not a plain Vision Transformer" in e.value for e in at.error)


def test_a_typed_timm_vit_runs_with_random_weights_offline_or_falls_back(open_app):
    """Offline, a typed hub model falls back to the bundled model and the sidebar says so."""
    from vitviz_app.sidebar import OTHER_MODEL

    at = open_app()
    at.selectbox(key="model").set_value(OTHER_MODEL).run()
    at.text_input(key="timm").input("deit_tiny_patch16_224").run()
    _clean(at)
    assert not at.error
    warnings = [w.value for w in at.sidebar.warning]
    assert any("unreachable" in w and "deit_tiny_patch16_224" in w for w in warnings), warnings


def _typed(at, name: str):
    from vitviz_app.sidebar import OTHER_MODEL

    at.selectbox(key="model").set_value(OTHER_MODEL).run()
    at.text_input(key="timm").input(name).run()
    return at


def _weights(at, filename: str, data: bytes):
    at.file_uploader(key="weights").set_value((filename, data, "application/octet-stream")).run()
    return at


def test_local_weights_are_loaded_and_reported(open_app, figure):
    """Weights saved from an architecture load into it; the sidebar says they come from the local file."""
    import timm
    import torch
    from safetensors.torch import save

    torch.manual_seed(1)
    state = timm.create_model("test_vit", pretrained=False).state_dict()
    at = _weights(_typed(open_app(), "test_vit"), "mine.safetensors", save(state))
    _clean(at)
    assert not at.error, [e.value for e in at.error]
    assert any("local file" in m.value for m in at.sidebar.markdown)
    assert figure(at, "overview.rollout")["data"], "the page is drawn with the uploaded weights"

    from vitviz_app import loaders

    loaded = loaders.load("test_vit", loaders.digest(save(state)))
    for name, tensor in state.items():  # the model the app uses holds exactly the uploaded tensors
        torch.testing.assert_close(loaded.model.state_dict()[name], tensor)


def test_weights_that_do_not_fit_are_a_clear_error(open_app):
    import torch
    from safetensors.torch import save

    at = _weights(_typed(open_app(), "test_vit"), "mine.safetensors",
                  save({"blocks.0.attn.qkv.weight": torch.zeros(3, 3)}))
    _clean(at)
    assert any("do not fit" in e.value for e in at.error), [e.value for e in at.error]


def test_a_corrupt_weights_file_is_a_clear_error(open_app):
    at = _weights(_typed(open_app(), "test_vit"), "mine.pth", b"\x00not a checkpoint" * 10)
    _clean(at)
    shown = [e.value for e in at.error]
    assert shown and not at.get("plotly_chart"), "a bad weights file stops the page with a message"
    # the wording is vitviz.models' (ModelError); the app shows it unchanged
    from vitviz.models import ModelError, load_model

    with pytest.raises(ModelError) as reason:
        load_model("test_vit", weights=b"\x00not a checkpoint" * 10)
    assert str(reason.value) in shown


def test_weights_for_the_bundled_model_are_ignored_with_a_reason(open_app):
    at = open_app()
    if at.selectbox(key="model").value != "vitviz-shapes":
        pytest.skip("the hub is reachable: the default model is not the bundled one")
    at = _weights(at, "mine.safetensors", b"whatever")
    _clean(at)
    assert any("shipped weights" in w.value for w in at.sidebar.warning)
    assert at.get("plotly_chart"), "the page still shows the bundled model"
