"""The Compare page's state (issue 22): "Explain the class" follows the image, and the page's choices travel in the
URL as language-neutral values that a link in any language reads back; hostile values are ignored."""
from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image

PAGE = "pages/compare.py"


def _top_class(at) -> tuple[int, float]:
    """The top class and its probability of the image on the page, from the app's model run here."""
    import torch

    from vitviz_app import loaders

    ctx = at.session_state["_vitviz_context"]
    fwd = loaders.forward(ctx.model_key, ctx.image_key, None, None, ctx.loaded, ctx.image)
    probabilities = torch.as_tensor(fwd.probabilities)
    return int(probabilities.argmax()), float(probabilities.max())


def _shown_class(at) -> tuple[int, str, str, str]:
    """(class explained, its label in the picker, the faithfulness heading, the curves' axis title)."""
    picker = at.selectbox(key="cmp_class")
    heading = next(h.value for h in at.subheader if h.value.startswith("Faithfulness"))
    from tests._apptest import chart_spec

    axis = chart_spec(at, "cmp.curves.most")["layout"]["yaxis"]["title"]["text"]
    return int(picker.value), picker.format_func(picker.value), heading, axis


def _check_follows_the_image(at) -> None:
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    top, probability = _top_class(at)
    target, label, heading, axis = _shown_class(at)
    name = label.split(" (#")[0]
    assert target == top, "a new image is explained for its own top class"
    assert label.endswith(f"(#{top}, {probability:.1%})"), "the picker shows this image's probability"
    assert heading.endswith(f"“{name}”") and axis == f"probability of “{name}”", "one class everywhere"


def test_explain_the_class_follows_the_image_arrow_to_ring_then_an_upload(open_app):
    at = open_app(PAGE)
    at.pills(key="cmp_methods").set_value(["attention", "random"])
    at.toggle(key="cmp_sanity").set_value(False).run()
    at.selectbox(key="image").set_value("shapes_ring").run()
    ring = _top_class(at)[0]
    at.selectbox(key="image").set_value("shapes_arrow").run()
    _check_follows_the_image(at)
    arrow = _top_class(at)[0]
    options = [int(re.search(r"#(\d+)", o).group(1)) for o in at.selectbox(key="cmp_class").options]
    second = next(i for i in options if i not in (arrow, ring))
    at.selectbox(key="cmp_class").set_value(second).run()
    assert _shown_class(at)[0] == second, "the user's choice holds while the image stays"
    at.selectbox(key="image").set_value("shapes_ring").run()
    _check_follows_the_image(at)
    assert _shown_class(at)[0] == ring != second, "the ring's own class, not the choice made for the arrow"
    pixels = np.full((96, 96, 3), 255, np.uint8)
    pixels[20:76, 30:66] = (30, 60, 200)  # a blue rectangle
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    at.segmented_control(key="source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value(("block.png", buf.getvalue(), "image/png")).run()
    _check_follows_the_image(at)


def test_a_link_restores_methods_removal_class_and_metric_in_another_language(open_app):
    query = {"cmp_methods": "attention,attnlrp_published,rollout,nonsense", "cmp_removal": "pixels", "cmp_class": "2",
             "cmp_metric": "ssim", "lang": "zh"}
    at = open_app(PAGE, query=query)
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert sorted(at.pills(key="cmp_methods").value) == ["attention", "attnlrp", "rollout"], "a renamed key is read"
    assert at.segmented_control(key="cmp_removal").value == "pixels"
    assert at.selectbox(key="cmp_class").value == 2
    assert at.segmented_control(key="cmp_metric").value == "ssim"
    written = {k: at.query_params[k] for k in ("cmp_methods", "cmp_removal", "cmp_class", "cmp_metric")}
    assert written == {"cmp_methods": "attention,rollout,attnlrp", "cmp_removal": "pixels", "cmp_class": "2",
                       "cmp_metric": "ssim"}, "neutral ids, in registry order, whatever the language"


def test_a_changed_choice_is_written_to_the_url_and_defaults_are_left_out(open_app):
    at = open_app(PAGE)
    assert not any(k.startswith("cmp_") for k in at.query_params), "defaults: a clean URL"
    at.segmented_control(key="cmp_removal").set_value("pixels").run()
    at.pills(key="cmp_methods").set_value(["rollout", "attention"]).run()
    assert at.query_params["cmp_removal"] == "pixels"
    assert at.query_params["cmp_methods"] == "attention,rollout"


def test_hostile_url_values_are_ignored_without_a_traceback(open_app):
    query = {"cmp_methods": "<script>,../../etc", "cmp_removal": "everything", "cmp_class": "٣",
             "cmp_metric": "x" * 5000}
    at = open_app(PAGE, query=query)
    assert not at.exception and not at.error
    assert at.pills(key="cmp_methods").value == [] and any("at least one method" in i.value for i in at.info)
    assert at.segmented_control(key="cmp_removal").value == "tokens"
    for value in ("-1", "99999", "1" * 5000):
        at = open_app(PAGE, query={"cmp_class": value, "cmp_methods": "attention"})
        assert not at.exception and not at.error
        assert at.selectbox(key="cmp_class").value == _top_class(at)[0]
