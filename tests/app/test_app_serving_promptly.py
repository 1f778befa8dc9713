"""The server answers its pages while sessions wait: the event loop gets the GIL within a millisecond of asking
once a model's line exists (``vitviz_app.waiting.serve_promptly``), and the class bench's trace of the websocket
(``bench/_wire.py``) names the messages of a session's wait to be told.

A class of 30 stalled Streamlit's event loop for up to 1.5 s while 30 script threads and the model's worker took
turns at the GIL every 5 ms (bench/README.md §18): each page's rerun and notice waited in the loop meanwhile.
"""
from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench import _wire
from vitviz_app import loaders, waiting


@pytest.fixture
def python_interval():
    """Python's own switch interval (5 ms) before the test, and whatever there was put back after it."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


def test_a_servers_first_line_makes_python_switch_threads_every_millisecond(python_interval, monkeypatch):
    monkeypatch.delenv("VITVIZ_SWITCH_INTERVAL_MS", raising=False)
    loaders.passes.clear()
    loaded = SimpleNamespace(model=torch.nn.Linear(2, 2))
    try:
        loaders.passes("tiny|default", id(loaded.model), loaded)
    finally:
        loaders.passes.clear()
    assert sys.getswitchinterval() == pytest.approx(0.001)


@pytest.mark.parametrize(("value", "interval"), [("2", 0.002), ("0.5", 0.0005), ("", 0.001), ("nan", 0.001),
                                                 ("-1", 0.001), ("0", 0.001), ("1e9", 0.001), ("inf", 0.001),
                                                 ("fast", 0.001), ("off", 0.005)])
def test_the_interval_comes_from_the_environment_and_a_hostile_value_keeps_the_default(python_interval, value,
                                                                                        interval):
    assert waiting.serve_promptly({"VITVIZ_SWITCH_INTERVAL_MS": value}) == pytest.approx(interval)
    assert sys.getswitchinterval() == pytest.approx(interval)


def _message(build) -> ForwardMsg:
    msg = ForwardMsg()
    build(msg)
    return msg


def test_the_wire_trace_names_the_answers_and_the_notice_of_a_wait_and_nothing_else():
    notice = _message(lambda m: m.delta.new_element.alert.MergeFrom(
        type(m.delta.new_element.alert)(body="3 ahead of you", icon=waiting.ICON)))
    other_alert = _message(lambda m: m.delta.new_element.alert.MergeFrom(
        type(m.delta.new_element.alert)(body="Upload a photo", icon=":material/upload:")))
    text = _message(lambda m: m.delta.new_element.markdown.MergeFrom(type(m.delta.new_element.markdown)(body="x")))
    urls = _message(lambda m: m.file_urls_response.MergeFrom(type(m.file_urls_response)(response_id="1")))
    started = _message(lambda m: m.new_session.MergeFrom(type(m.new_session)()))
    assert [_wire.outgoing(m) for m in (notice, other_alert, text, urls, started)] == \
        ["notice", None, None, "file_urls_response", "new_session"]
