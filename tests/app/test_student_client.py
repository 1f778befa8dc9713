"""The class bench's student without a browser (``bench/_student.py``): what it reads from Streamlit's own messages,
built here with Streamlit's protobuf classes (hence the app tier), and what it sends. The client against real
servers, through HAProxy, is tested in ``tests/browser/test_deploy.py`` (slow)."""
from __future__ import annotations

import json

import pytest

from bench import _student

_CAPTION = "upload: student-00.png · 300×220 px. The model reads it as 196 patches of 16×16 px, one token each."


def _figure(z, x_end=299.5, y_end=219.5, kind="heatmap") -> str:
    return json.dumps({"data": [{"type": kind, "z": z}],
                       "layout": {"xaxis": {"range": [-0.5, x_end]}, "yaxis": {"range": [y_end, -0.5]}}})


def test_a_figure_is_read_as_a_page_reads_it_its_photos_size_its_heatmaps_hash_and_the_captions():
    shown = _student.figure_shown(_figure([[0.1, 0.2], [0.3, 0.4]]), [_CAPTION])
    assert shown["width"] == 300 and shown["height"] == 220  # the axes' far ends, rounded: the photo's pixels
    assert shown["captions"] == [_CAPTION]
    assert _student.figure_shown(_figure([[0.1, 0.2], [0.3, 0.4]]), [])["heat"] == shown["heat"]
    assert _student.figure_shown(_figure([[0.1, 0.2], [0.3, 0.5]]), [])["heat"] != shown["heat"]
    assert _student.figure_shown(_figure([[1.0]], kind="scatter"), []) is None  # not a map
    assert _student.figure_shown(json.dumps({"data": [{"type": "heatmap", "z": [[1]]}]}), []) is None  # no axes


def _message(path: tuple[int, ...] = (), **kind) -> bytes:
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msg = ForwardMsg()
    msg.metadata.delta_path.extend(path)
    for fill in kind.values():
        fill(msg)
    return msg.SerializeToString()


def _element(kind: str, **fields):
    def fill(msg):
        element = getattr(msg.delta.new_element, kind)
        for name, value in fields.items():
            setattr(element, name, value)
    return fill


def _block(block_id: str):
    def fill(msg):
        msg.delta.add_block.id = block_id
    return fill


@pytest.fixture
def student():
    return _student.Student("http://127.0.0.1:1/", ws=None, cookies={})


def _session(msg) -> None:
    msg.new_session.initialize.session_id = "session-7"
    msg.new_session.page_script_hash = "overview-hash"


def test_the_session_the_page_and_the_upload_box_are_learnt_from_the_first_run(student):
    _student._handle(student, _message(new_session=_session), 0.0)
    _student._handle(student, _message((1, 3), delta=_element("file_uploader", id="$$ID-9f-weights")), 0.0)
    _student._handle(student, _message((1, 4), delta=_element("file_uploader", id="$$ID-1c-upload")), 0.0)
    _student._handle(student, _message(page_info_changed=lambda m: setattr(m.page_info_changed, "query_string",
                                                                          "source=Upload&lang=en")), 0.0)
    assert (student.session_id, student.page_hash, student.uploader) == ("session-7", "overview-hash", "$$ID-1c-upload")
    rerun = _student._rerun(student)  # the next rerun carries what the page would send
    from streamlit.proto.BackMsg_pb2 import BackMsg

    back = BackMsg()
    back.ParseFromString(rerun)
    assert back.rerun_script.query_string == "source=Upload&lang=en"
    assert back.rerun_script.page_script_hash == "overview-hash"
    assert not student.finished.is_set()
    _student._handle(student, _message(script_finished=lambda m: setattr(m, "script_finished", 0)), 0.0)
    assert student.finished.is_set()


def _armed(student) -> None:
    student.probe.update(t0=1_000.0, t1=None, t_informed=None, notices=[], notice_at=[], shown=None,
                         ws={"sent": [], "got": []})


def test_notices_are_the_hourglass_alerts_after_the_upload_each_different_text_once_with_its_arrival(student):
    hourglass = ":material/hourglass_top:"
    notice = _element("alert", body="Running ViT-B/16 on your image… · 3 ahead of you", icon=hourglass)
    _student._handle(student, _message((0, 5), delta=notice), 500.0)  # before the upload: not this photo's wait
    _armed(student)
    _student._handle(student, _message((0, 4), delta=_element("alert", body="Upload a photo", icon="x")), 1_100.0)
    _student._handle(student, _message((0, 5), delta=notice), 1_200.0)
    _student._handle(student, _message((0, 5), delta=notice), 1_300.0)  # the same text again
    later = _element("alert", body="Running ViT-B/16 on your image… · 2 ahead of you · about 3 s", icon=hourglass)
    _student._handle(student, _message((0, 5), delta=later), 1_400.0)
    probe = student.probe
    assert probe["t_informed"] == 1_200.0
    assert probe["notices"] == ["Running ViT-B/16 on your image… · 3 ahead of you",
                                "Running ViT-B/16 on your image… · 2 ahead of you · about 3 s"]
    assert probe["notice_at"] == [1_200.0, 1_400.0]
    assert probe["ws"]["got"] == [1_100.0, 1_200.0, 1_300.0, 1_400.0]  # every message after the upload event


def test_the_map_is_the_first_figure_drawn_in_the_rollouts_container_after_the_upload(student):
    from streamlit.proto.Markdown_pb2 import Markdown

    _armed(student)
    caption = _element("markdown", body=_CAPTION, element_type=Markdown.CAPTION)
    _student._handle(student, _message((0, 6), delta=caption), 1_100.0)
    _student._handle(student, _message((0, 7), delta=_block("$$ID-aa-fig-overview-attention")), 1_100.0)
    _student._handle(student, _message((0, 7, 0), delta=_element("plotly_chart", spec=_figure([[9.0]]))), 1_150.0)
    assert student.probe["t1"] is None  # another figure of the page
    _student._handle(student, _message((0, 8), delta=_block("$$ID-bb-fig-overview-rollout")), 1_200.0)
    _student._handle(student, _message((0, 8, 0), delta=_element("plotly_chart", spec=_figure([[0.5]]))), 1_250.0)
    probe = student.probe
    assert probe["t1"] == 1_250.0 and student.mapped.is_set()
    assert (probe["shown"]["width"], probe["shown"]["height"], probe["shown"]["captions"]) == (300, 220, [_CAPTION])
