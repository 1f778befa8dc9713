"""The server answers its pages while sessions wait: once a model's line exists, the garbage collector's full
passes no longer walk what the server keeps for good and the event loop gets the GIL within a millisecond of asking
(``vitviz_app.server.serve_promptly``); and the class bench's trace of the websocket (``bench/_wire.py``) names the
messages of a session's wait to be told.

In a class of 30 the collector's full passes took 250–430 ms every second or so, with the GIL held, and 30 script
threads took turns at the GIL every 5 ms (bench/README.md §18): each page's rerun and notice waited meanwhile.
"""
from __future__ import annotations

import gc
import sys
from types import SimpleNamespace

import pytest
import torch
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench import _wire
from vitviz_app import loaders, server, waiting


@pytest.fixture
def python_interval():
    """Python's own switch interval (5 ms) and nothing frozen before the test; what there was put back after it."""
    before, frozen = sys.getswitchinterval(), gc.get_freeze_count()
    sys.setswitchinterval(0.005)
    gc.unfreeze()
    yield
    sys.setswitchinterval(before)
    if frozen:
        gc.freeze()


def _first_line(monkeypatch, served: bool | None = True) -> torch.nn.Module:
    """Start a model's line as a page's first pass does (``loaders.passes``) on a served app (``served=None``: in
    this process as it is); the model."""
    if served is not None:
        monkeypatch.setattr(server, "served", lambda: served)
    loaders.passes.clear()
    loaded = SimpleNamespace(model=torch.nn.Linear(2, 2))
    try:
        loaders.passes("tiny|default", id(loaded.model), loaded)
    finally:
        loaders.passes.clear()
    return loaded.model


def test_a_servers_first_line_makes_python_switch_threads_every_millisecond(python_interval, monkeypatch):
    monkeypatch.delenv("VITVIZ_SWITCH_INTERVAL_MS", raising=False)
    _first_line(monkeypatch)
    assert sys.getswitchinterval() == pytest.approx(0.001)


def test_a_servers_first_line_takes_what_is_alive_out_of_the_collectors_full_passes(python_interval, monkeypatch):
    monkeypatch.delenv("VITVIZ_GC_FREEZE", raising=False)
    model = _first_line(monkeypatch)
    assert gc.get_freeze_count() > 0
    assert not any(o is model for o in gc.get_objects())  # frozen: no generation the collector walks holds it
    gc.unfreeze()
    assert any(o is model for o in gc.get_objects())


def test_the_freeze_can_be_turned_off(python_interval, monkeypatch):
    monkeypatch.setenv("VITVIZ_GC_FREEZE", "0")
    _first_line(monkeypatch)
    assert gc.get_freeze_count() == 0


def test_tests_and_bare_imports_leave_the_interpreter_as_it_is(python_interval, monkeypatch):
    """Only a served app: a test process keeps collecting everything it makes (AppTest mocks the runtime)."""
    monkeypatch.delenv("VITVIZ_GC_FREEZE", raising=False)
    assert not server.served()
    _first_line(monkeypatch, served=None)
    assert (gc.get_freeze_count(), sys.getswitchinterval()) == (0, pytest.approx(0.005))


@pytest.mark.parametrize(("value", "interval"), [("2", 0.002), ("0.5", 0.0005), ("", 0.001), ("nan", 0.001),
                                                 ("-1", 0.001), ("0", 0.001), ("1e9", 0.001), ("inf", 0.001),
                                                 ("fast", 0.001), ("off", 0.005)])
def test_the_interval_comes_from_the_environment_and_a_hostile_value_keeps_the_default(python_interval, value,
                                                                                        interval):
    assert server.serve_promptly({"VITVIZ_SWITCH_INTERVAL_MS": value}) == pytest.approx(interval)
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
