"""A class on one server: passes wait in one line per model, each session is told its place, nothing runs twice,
a session that leaves before its turn costs nothing, and passes that arrive together can run as one batch.

Sessions are threads calling what a page calls (``loaders.pass_for``, ``loaders.forward``), as Streamlit runs
each browser session in a thread of one process; the stop of a run that navigates away is a real AppTest run
stopped by Streamlit at the page's wait.
"""
from __future__ import annotations

import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests import _imagefactory as factory
from vitviz import pipeline
from vitviz.serving import WorkQueue
from vitviz_app import loaders, trace, waiting
from vitviz_app.samples import list_samples, read_sample

DEADLINE_S = 120.0


def together(work, n: int) -> list:
    """``work(i)`` in n threads released at once (re-raises the first error; fails on a hang)."""
    barrier, results, errors = threading.Barrier(n), [None] * n, []

    def target(i):
        try:
            barrier.wait(DEADLINE_S)
            results[i] = work(i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,), daemon=True, name=f"session-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    assert not any(t.is_alive() for t in threads), "a session never finished: deadlock"
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def model(app_model):
    """The app's default model as a page gets it: (model_key, LoadedModel); the pass cache and the model's queue
    (where a finished pass can still be joined for a moment) start empty."""
    name = "vitviz-shapes"
    loaders.forward.clear()
    loaders.passes.clear()
    yield f"{name}|default", loaders.load(name, None)
    loaders.forward.clear()
    loaders.passes.clear()


def photo(i: int) -> tuple[str, Image.Image]:
    """Session i's own photo: (its cache key, the decoded image); a fresh key per test run."""
    data = factory.encode(factory.make_marker_image((90 + 6 * i, 120), markers=((8 + 5 * i, 10 + 9 * i),),
                                                    marker_size=20, background=(25 * i % 255, 90, 180)), "PNG")
    return f"{loaders.digest(data)}-{uuid.uuid4().hex[:8]}", loaders.decode(loaders.digest(data), data)


def queue(model_key: str, loaded, i: int):
    """Queue session i's pass (its photo, the model's own patch size, no target): the ticket."""
    key, image = photo(i)
    return loaders.submit(model_key, key, None, None, loaded, image)


class Hold:
    """Holds the model's worker at the start of each pass (a forward pre-hook on block 0) until let through:
    :meth:`step` lets one pass go, :meth:`close` all."""

    def __init__(self, model) -> None:
        self.inside, self.permits, self.released = threading.Event(), threading.Semaphore(0), threading.Event()
        self.handle = model.blocks[0].register_forward_pre_hook(self)

    def __call__(self, _module, _args):
        if threading.current_thread().name.startswith("vitviz-passes") and not self.released.is_set():
            self.inside.set()
            deadline = time.monotonic() + DEADLINE_S
            while not self.permits.acquire(timeout=0.05) and not self.released.is_set():
                assert time.monotonic() < deadline

    def step(self) -> None:
        self.permits.release()

    def close(self) -> None:
        self.released.set()
        self.handle.remove()


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_thirty_sessions_on_the_same_sample_run_the_model_once(model):
    model_key, loaded = model
    data = read_sample(list_samples()[0].name)
    key = loaders.digest(data)
    image = loaders.decode(key, data)
    passes = loaders.forward_passes()
    # half the sessions as pages ask (queue, wait, keep), half straight through the cache
    results = together(lambda i: loaders.pass_for(model_key, key, None, None, loaded, image) if i % 2 else
                       loaders.forward(model_key, key, None, None, loaded, image), 30)
    assert loaders.forward_passes() == passes + 1
    assert all(r is results[0] for r in results)  # one shared pass, not thirty equal ones


def test_a_session_that_leaves_before_its_turn_runs_nothing(model, open_app):
    """Streamlit stops a run that waits in line (here AppTest's timeout, as navigating away does): the page's
    wait lets it stop, its ticket is withdrawn and the model never runs its pass."""
    model_key, loaded = model
    at = open_app()  # the default sample's pass, cached
    samples = [s.name for s in list_samples()]
    other = next(name for name in samples if name != at.selectbox(key="image").value)
    other_key = loaders.digest(read_sample(other))
    hold = Hold(loaded.model)
    timer = threading.Timer(60.0, hold.released.set)  # a wait that ignores the stop would end here (and fail below)
    timer.start()
    try:
        blocker = queue(model_key, loaded, 1)
        assert hold.inside.wait(DEADLINE_S)
        passes = loaders.forward_passes()
        at.selectbox(key="image").set_value(other)
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="timed out"):
            at.run(timeout=8)
        assert time.monotonic() - started < 30, "the run did not stop at the page's wait"
    finally:
        hold.close()
        timer.cancel()
    blocker.result(DEADLINE_S)
    queue(model_key, loaded, 2).result(DEADLINE_S)  # queued after the abandoned pass, so run after its turn
    assert loaders.forward_passes() == passes + 1  # the sentinel only
    assert loaders.cached_forward(model_key, other_key, None, None, loaded, loaders.decode(
        other_key, read_sample(other))) is None


def test_a_waiting_session_sees_its_place_and_the_time_left_update(model, monkeypatch):
    model_key, loaded = model
    shown = notices(monkeypatch)
    for k in (0, 4, 5, 6):  # a warm-up and three timed passes: estimates are known (vitviz.serving.ServiceTimes)
        key, image = photo(k)
        loaders.pass_for(model_key, key, None, None, loaded, image)
    hold = Hold(loaded.model)
    try:
        queue(model_key, loaded, 1)
        assert hold.inside.wait(DEADLINE_S)
        ahead = queue(model_key, loaded, 2)
        key, image = photo(3)
        waiter = threading.Thread(target=lambda: loaders.pass_for(
            model_key, key, None, None, loaded, image,
            wait=lambda ticket: waiting.wait_for(ticket, "Running it…", poll_s=0.05, quiet_s=0.0)), daemon=True)
        waiter.start()
        wait_until(lambda: shown, "the waiting session was never told its place")
        hold.step()  # the first pass ahead ends; the second starts
        wait_until(lambda: any(" 1 ahead of you" in text for text in shown), "the place was not updated")
    finally:
        hold.close()
    waiter.join(DEADLINE_S)
    ahead.result(DEADLINE_S)
    assert shown[0].startswith("Running it… · 2 ahead of you · about ")
    assert shown[-1] == ""  # and the notice went away with the result
    assert loaders.cached_forward(model_key, key, None, None, loaded, image) is not None


def notices(monkeypatch) -> list[str]:
    """What the page's notice box shows, in order ("" when it is emptied), instead of Streamlit's element."""
    shown: list[str] = []

    class Box:
        def info(self, text, icon=None):
            shown.append(text)

        def empty(self):
            shown.append("")

    monkeypatch.setattr(waiting.st, "empty", Box)
    return shown


def waiter(ticket, quiet_s: float) -> threading.Thread:
    """A session's page waiting for ``ticket`` (``waiting.wait_for``), in a thread of its own."""
    thread = threading.Thread(target=waiting.wait_for, args=(ticket, "Running it…"),
                              kwargs={"poll_s": 0.01, "quiet_s": quiet_s}, daemon=True)
    thread.start()
    return thread


def test_a_session_behind_others_is_told_its_place_at_once_not_after_the_quiet_time(monkeypatch):
    """A class uploads together: a pass with another ahead of it will wait, so its place is shown straight away
    (a page that first waited out the quiet time, here far longer than the test's deadline, fails)."""
    shown = notices(monkeypatch)
    line = WorkQueue()
    line.submit("someone else's photo", "pass", None)
    running = line.take()
    session = waiter(line.submit("my photo", "pass", None), quiet_s=10 * DEADLINE_S)
    try:
        wait_until(lambda: shown, "the session behind another was not told its place before the quiet time")
    finally:
        line.finish(running, ["theirs"])
        mine = line.take()
        line.finish(mine, ["mine"])
    session.join(DEADLINE_S)
    assert shown[0] == "Running it… · 1 ahead of you"
    assert shown[-1] == ""


def test_a_pass_at_the_front_of_the_line_done_within_the_quiet_time_shows_nothing(monkeypatch):
    """No flicker for a quick pass on an idle server: nothing is ahead, so the page first waits the quiet time."""
    shown = notices(monkeypatch)
    line = WorkQueue()
    ticket = line.submit("my photo", "pass", None)
    session = waiter(ticket, quiet_s=DEADLINE_S)
    line.finish(line.take(), ["mine"])
    session.join(DEADLINE_S)
    assert not session.is_alive() and ticket.result() == "mine"
    assert shown == []


def test_the_trace_of_a_run_is_what_the_class_benchmark_reads(model, open_app, monkeypatch):
    """With VITVIZ_TRACE=1 a page's run logs its steps in order, in the format ``bench/_trace.py`` reads (the
    photo's digest ties the run to the page that uploaded it); without it, nothing."""
    import logging

    from streamlit.logger import get_logger

    from bench import _trace

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = get_logger(trace.__name__)
    keep = Keep(level=logging.INFO)
    logger.addHandler(keep)
    try:
        at = open_app()  # tracing off
        assert lines == []
        monkeypatch.setenv(trace.ENV, "1")
        loaders.forward.clear()  # the page's pass is not cached: it joins the line
        at.run()
    finally:
        logger.removeHandler(keep)
    log = Path(tempfile.mkdtemp()) / "streamlit.log"
    log.write_text("".join(f"2026-12-07 06:00:00.000 {line}\n" for line in lines))
    marks = _trace.read(log)
    image_key = loaders.digest(read_sample(at.selectbox(key="image").value))
    order = [m.step for m in marks]  # "told" only when the pass took longer than the quiet time
    assert order in (["run", "image", "ticket", "pass"], ["run", "image", "ticket", "told", "pass"])
    assert {m.words.get("key") for m in marks if m.step != "told"} - {None} == {image_key}
    assert len({m.session for m in marks}) == 1 and marks[0].session != "-"
    assert [m.epoch for m in marks] == sorted(m.epoch for m in marks)
    steps = _trace.steps(marks, image_key, {"t0": marks[0].epoch * 1e3 - 50})
    assert steps["joined the line"] >= 0 and not {"upload sent", "run started"} & set(steps)


def test_eight_sessions_batched_each_get_exactly_the_pass_they_get_alone(app_model, monkeypatch):
    """With batching on (as on a GPU), eight sessions' passes that arrive together run as one batch, and each
    session's pass equals the pipeline's pass of its own photo alone."""
    monkeypatch.setenv("VITVIZ_BATCH_WINDOW_MS", "3000")
    loaders.passes.clear()
    loaders.forward.clear()
    name = "vitviz-shapes"
    loaded = loaders.load(name, None)
    model_key = f"{name}|batched-{uuid.uuid4().hex[:6]}"
    photos = [photo(i) for i in range(8)]
    try:
        results = together(lambda i: loaders.pass_for(model_key, photos[i][0], None, None, loaded, photos[i][1]), 8)
        batcher = loaders.passes(model_key, id(loaded.model), loaded)
        assert list(batcher.batches) == [8]
    finally:
        loaders.passes.clear()
        loaders.forward.clear()
    outputs = []
    for (_key, image), fwd in zip(photos, results):
        alone = pipeline.run(loaded.model, image, data_config=loaded.data_config, labels=loaded.labels)
        torch.testing.assert_close(fwd.capture.output, alone.capture.output, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fwd.capture.hidden_states, alone.capture.hidden_states, rtol=1e-4, atol=1e-5)
        for layer in range(alone.capture.num_layers):
            torch.testing.assert_close(fwd.capture.attention(layer), alone.capture.attention(layer), rtol=1e-4,
                                       atol=1e-6)
        assert [p.label for p in fwd.predictions] == [p.label for p in alone.predictions]
        outputs.append(alone.capture.output[0].numpy())
    gaps = np.abs(np.stack(outputs)[:, None] - np.stack(outputs)[None]).max(-1)  # (8, 8)
    assert (gaps + np.eye(8) * 1e9).min() > 1e-4  # a swapped pass could not have passed the comparison


def test_the_waiting_text_names_a_catalogue_model_as_the_sidebar_does():
    """The line a student waits in says "Running ViT-B/16 (AugReg) …", the name they picked, not timm's."""
    from vitviz.i18n import Message
    from vitviz.models import CATALOGUE, LoadedModel
    from vitviz_app.context import _spinner_text

    spec = CATALOGUE["ViT-B/16 (AugReg)"]
    loaded = LoadedModel(model=None, name=spec.timm_name, spec=spec, source="hub", message=Message("hub"),
                         data_config={}, labels=None)
    assert _spinner_text(loaded, None, None) == "Running ViT-B/16 (AugReg) on your image…"
    assert _spinner_text(loaded, 32, None) == "Running ViT-B/16 (AugReg) at patch size 32 on your image…"
    plain = LoadedModel(model=None, name="test_vit.r160_in1k", spec=None, source="random", message=Message("r"),
                        data_config={}, labels=None)
    assert _spinner_text(plain, None, None) == "Running test_vit.r160_in1k on your image…"
