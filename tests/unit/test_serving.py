"""vitviz.serving: the queue that tells a waiting session its place, and the worker that batches.

Plain Python work (no model): what is checked is who runs what, how often, in which batch, and what each
waiter is told. Every wait has a deadline, so a deadlock fails instead of hanging.
"""
from __future__ import annotations

import threading
import time

import pytest

from vitviz.serving import Batcher, BatchPolicy, Cancelled, ServiceTimes, WorkQueue, batch_policy

DEADLINE_S = 30.0


class Gate:
    """A ``run`` for a Batcher that records its calls and can be held shut (every call waits for ``open``)."""

    def __init__(self, held: bool = False) -> None:
        self.calls: list[list] = []
        self.opened = threading.Event()
        self.entered = threading.Event()
        if not held:
            self.opened.set()

    def __call__(self, payloads):
        self.calls.append(list(payloads))
        self.entered.set()
        assert self.opened.wait(DEADLINE_S), "the gate was never opened"
        if any(p == "bad" for p in payloads):
            raise ValueError("bad payload")
        return [f"done {p}" for p in payloads]

    def run_count(self, payload) -> int:
        return sum(call.count(payload) for call in self.calls)


def together(work, n: int) -> list:
    """``work(i)`` in n threads released at once; the results in order (re-raises the first error)."""
    barrier, results, errors = threading.Barrier(n), [None] * n, []

    def target(i):
        try:
            barrier.wait(DEADLINE_S)
            results[i] = work(i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    assert not any(t.is_alive() for t in threads), "deadlock"
    if errors:
        raise errors[0]
    return results


def test_thirty_requests_for_one_key_at_once_run_it_once():
    gate = Gate()
    batcher = Batcher(gate, linger_s=0.5)
    results = together(lambda i: batcher.submit("cat|vit", "plain", "cat").result(DEADLINE_S), 30)
    assert results == ["done cat"] * 30
    assert gate.calls == [["cat"]]


def test_a_request_that_comes_while_its_key_runs_joins_it_instead_of_running_again():
    gate = Gate(held=True)
    batcher = Batcher(gate, linger_s=0.5)
    first = batcher.submit("k", "plain", "cat")
    assert gate.entered.wait(DEADLINE_S)
    second = batcher.submit("k", "plain", "cat")
    assert second.place().started  # it is the running job
    gate.opened.set()
    assert first.result(DEADLINE_S) == second.result(DEADLINE_S) == "done cat"
    assert gate.run_count("cat") == 1


def test_a_request_just_after_the_result_joins_the_finished_job_and_a_later_one_runs_again():
    gate = Gate()
    batcher = Batcher(gate, linger_s=0.3)
    assert batcher.submit("k", "plain", "cat").result(DEADLINE_S) == "done cat"
    late = batcher.submit("k", "plain", "cat")  # e.g. a session that asked before the first one cached it
    assert late.done and late.result() == "done cat" and gate.run_count("cat") == 1
    time.sleep(0.4)
    assert batcher.submit("k", "plain", "cat").result(DEADLINE_S) == "done cat"
    assert gate.run_count("cat") == 2


def test_a_waiter_is_told_how_many_are_ahead_and_an_estimate_from_measured_times():
    times = ServiceTimes(warmups=0, least=1)
    times.record("plain", 2.0)
    gate = Gate(held=True)
    batcher = Batcher(gate, times=times, linger_s=0.5)
    running = batcher.submit("a", "plain", "a")
    assert gate.entered.wait(DEADLINE_S)
    tickets = [batcher.submit(k, "plain", k) for k in "bcd"]
    places = [t.place() for t in tickets]
    assert [p.ahead for p in places] == [1, 2, 3]
    assert not any(p.started or p.done for p in places)
    # the running job's remaining part of 2 s, then 2 s per job ahead and 2 s for its own
    for n, place in enumerate(places):
        assert 2.0 * (n + 1) < place.seconds_left <= 2.0 * (n + 2)
    assert running.place().started and running.place().ahead == 0
    gate.opened.set()
    assert [t.result(DEADLINE_S) for t in tickets] == ["done b", "done c", "done d"]  # in order of arrival
    assert tickets[0].place().done and tickets[0].place().seconds_left == 0.0


def test_the_estimate_is_unknown_until_a_job_of_that_kind_was_timed():
    gate = Gate(held=True)
    batcher = Batcher(gate, linger_s=0.5)
    batcher.submit("a", "plain", "a")
    assert gate.entered.wait(DEADLINE_S)
    place = batcher.submit("b", "gradients", "b").place()
    assert place.ahead == 1 and place.seconds_left is None
    gate.opened.set()


def test_a_withdrawn_ticket_is_never_run_and_rejoining_before_its_turn_keeps_the_place():
    gate = Gate(held=True)
    batcher = Batcher(gate, linger_s=0.5)
    batcher.submit("a", "plain", "a")
    assert gate.entered.wait(DEADLINE_S)
    left = batcher.submit("b", "plain", "b")
    rerun = batcher.submit("c", "plain", "c")
    behind = batcher.submit("d", "plain", "d")
    left.withdraw()  # went to another page
    rerun.withdraw()  # a rerun of the same session: it asks again at once
    again = batcher.submit("c", "plain", "c")
    assert again.place().ahead == 1  # b is not counted (nobody waits for it); c kept its place before d
    assert behind.place().ahead == 2
    gate.opened.set()
    assert again.result(DEADLINE_S) == "done c" and behind.result(DEADLINE_S) == "done d"
    assert left.cancelled and left.done
    with pytest.raises(Cancelled):
        left.result()
    assert gate.run_count("b") == 0 and gate.run_count("c") == 1


def test_withdrawing_a_running_or_finished_ticket_changes_nothing():
    gate = Gate(held=True)
    batcher = Batcher(gate, linger_s=0.5)
    ticket = batcher.submit("a", "plain", "a")
    assert gate.entered.wait(DEADLINE_S)
    ticket.withdraw()
    gate.opened.set()
    assert ticket.wait(DEADLINE_S) and not ticket.cancelled
    assert batcher.submit("a", "plain", "a").result() == "done a"  # kept for whoever comes back
    ticket.withdraw()
    assert gate.run_count("a") == 1


def test_a_failed_job_raises_for_its_waiters_and_is_tried_again_by_the_next_request():
    gate = Gate()
    batcher = Batcher(gate, linger_s=0.5)
    with pytest.raises(ValueError, match="bad payload"):
        batcher.submit("k", "plain", "bad").result(DEADLINE_S)
    with pytest.raises(ValueError):
        batcher.submit("k", "plain", "bad").result(DEADLINE_S)
    assert gate.run_count("bad") == 2


def test_requests_within_the_window_run_as_one_batch_and_each_gets_its_own_result():
    gate = Gate()
    batcher = Batcher(gate, policy=BatchPolicy(window_s=1.0, max_batch=8), linger_s=0.5)
    results = together(lambda i: batcher.submit(i, "plain", i).result(DEADLINE_S), 8)
    assert results == [f"done {i}" for i in range(8)]
    assert list(batcher.batches) == [8]  # full before the window ended
    assert sorted(gate.calls[0]) == list(range(8))


def test_a_batch_holds_one_kind_and_at_most_max_batch_jobs():
    gate = Gate(held=True)
    batcher = Batcher(gate, policy=BatchPolicy(window_s=0.0, max_batch=3), linger_s=0.5)
    batcher.submit("first", "plain", "first")
    assert gate.entered.wait(DEADLINE_S)
    kinds = ["plain", "gradients", "plain", "plain", "gradients", "plain"]
    tickets = [batcher.submit(i, kind, i) for i, kind in enumerate(kinds)]
    gate.opened.set()
    assert [t.result(DEADLINE_S) for t in tickets] == [f"done {i}" for i in range(6)]
    assert gate.calls[1:] == [[0, 2, 3], [1, 4], [5]]


def test_one_bad_input_in_a_batch_costs_only_its_own_request():
    gate = Gate()
    batcher = Batcher(gate, policy=BatchPolicy(window_s=1.0, max_batch=3), linger_s=0.5)
    payloads = ["a", "bad", "c"]
    outcomes = together(lambda i: _outcome(batcher.submit(i, "plain", payloads[i])), 3)
    assert outcomes == ["done a", "ValueError", "done c"]
    assert len(gate.calls[0]) == 3 and sorted(map(tuple, gate.calls[1:])) == [("a",), ("bad",), ("c",)]


def _outcome(ticket):
    try:
        return ticket.result(DEADLINE_S)
    except ValueError as exc:
        return type(exc).__name__


def test_the_queue_says_blocked_while_work_outside_it_holds_the_models_lock():
    lock = threading.RLock()
    gate = Gate()
    batcher = Batcher(gate, lock=lock, linger_s=0.5)
    with lock:  # e.g. another page's attribution method running on the model
        ticket = batcher.submit("a", "plain", "a")
        deadline = time.monotonic() + DEADLINE_S
        while not ticket.place().blocked:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert ticket.place().started and not gate.calls
    assert ticket.result(DEADLINE_S) == "done a" and not batcher.queue.blocked


def test_the_worker_thread_ends_when_idle_and_a_new_request_starts_another():
    gate = Gate()
    batcher = Batcher(gate, linger_s=0.05)
    assert batcher.submit("a", "plain", "a").result(DEADLINE_S) == "done a"
    deadline = time.monotonic() + DEADLINE_S
    while batcher.busy:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert batcher.submit("b", "plain", "b").result(DEADLINE_S) == "done b"


def test_service_times_are_the_median_of_the_latest_measurements_per_kind():
    times = ServiceTimes(window=5, warmups=0, least=1)
    assert times.typical("plain") is None
    times.record("gradients", 9.0)
    times.record("plain", 8.0)  # one slow pass (the sample photo's, while a class's pages loaded)
    assert times.typical("plain") == 8.0
    for seconds in (1.0, 1.2):
        times.record("plain", seconds)
    assert times.typical("plain") == pytest.approx(1.2)  # two ordinary passes outvote it
    for seconds in (0.9, 1.1, 1.0, 1.3):
        times.record("plain", seconds)
    assert times.typical("plain") == pytest.approx(1.1)  # the window holds 1.2, 0.9, 1.1, 1.0, 1.3
    assert times.typical("gradients") == 9.0  # each kind its own
    with pytest.raises(ValueError):
        ServiceTimes(window=0)
    with pytest.raises(ValueError):
        ServiceTimes(warmups=-1)
    for least in (0, 6):
        with pytest.raises(ValueError):
            ServiceTimes(window=5, least=least)


def test_the_first_job_of_each_kind_is_a_warm_up_and_three_more_give_the_estimate():
    """A class of §22: the model's first pass (cold, while 30 pages loaded) and the first pass after the uploads
    (while the server took them in) were slow, and an estimate from either promised 30 students several times
    their real wait. The warm-up is not a measurement, and a median is given only once three passes can outvote
    one slow one: until then the line gives the place alone."""
    times = ServiceTimes()
    queue = WorkQueue(times)
    tickets = [queue.submit(k, "plain", k) for k in "abc"]
    for seconds in (7.0, 3.5, 0.7):  # the warm-up, then one slow pass and one ordinary: no estimate yet
        times.record("plain", seconds)
        assert times.typical("plain") is None and tickets[2].place().seconds_left is None
    times.record("plain", 0.6)
    assert times.typical("plain") == 0.7  # the median of 3.5, 0.7 and 0.6: the slow one is outvoted
    assert tickets[2].place().ahead == 2 and tickets[2].place().seconds_left == pytest.approx(3 * 0.7)
    for seconds in (9.0, 1.0, 1.0, 1.0):  # each kind warms up and is counted on its own
        times.record("gradients", seconds)
    assert times.typical("gradients") == 1.0 and times.typical("plain") == 0.7


def test_a_batchers_passes_give_an_estimate_from_the_fourth_of_a_kind_on():
    gate = Gate()
    batcher = Batcher(gate, linger_s=0.0)
    for n, key in enumerate("abcd"):
        assert batcher.queue.times.typical("plain") is None, f"an estimate after {n} passes"
        assert batcher.submit(key, "plain", key).result(DEADLINE_S) == f"done {key}"
    assert batcher.queue.times.typical("plain") is not None


def test_after_one_slow_pass_the_line_estimates_from_the_ordinary_ones():
    """A queue's estimate for the third in line, once a slow first pass and three ordinary ones were timed."""
    times = ServiceTimes(warmups=0)
    for seconds in (8.0, 1.0, 1.0, 1.0):
        times.record("plain", seconds)
    queue = WorkQueue(times)
    tickets = [queue.submit(k, "plain", k) for k in "abc"]
    place = tickets[2].place()
    assert place.ahead == 2 and place.seconds_left == pytest.approx(3.0)


def test_finished_jobs_are_forgotten_after_lingering():
    queue = WorkQueue(linger_s=0.0)
    ticket = queue.submit("k", "plain", "p")
    jobs = queue.take()
    queue.finish(jobs, ["r"], seconds=0.5)
    queue.prune()
    assert ticket.result() == "r" and queue.queued() == 0 and not queue._by_key


@pytest.mark.parametrize(("device", "env", "expected"), [
    ("cpu", {}, BatchPolicy()),
    ("cuda", {}, BatchPolicy(0.005, 8)),
    ("cpu", {"VITVIZ_BATCH_WINDOW_MS": "3"}, BatchPolicy(0.003, 8)),
    ("cpu", {"VITVIZ_BATCH_WINDOW_MS": "0", "VITVIZ_BATCH_MAX": "4"}, BatchPolicy(0.0, 4)),
    ("cuda", {"VITVIZ_BATCH_WINDOW_MS": "off"}, BatchPolicy()),
    ("cuda", {"VITVIZ_BATCH_WINDOW_MS": "-1"}, BatchPolicy()),
    ("cuda", {"VITVIZ_BATCH_MAX": "1"}, BatchPolicy(0.005, 1)),
    ("cuda", {"VITVIZ_BATCH_WINDOW_MS": "nan", "VITVIZ_BATCH_MAX": "many"}, BatchPolicy(0.005, 8)),
    ("cpu", {"VITVIZ_BATCH_WINDOW_MS": "1e9"}, BatchPolicy(10.0, 8)),
])
def test_batching_is_on_for_cuda_off_on_the_cpu_and_set_by_the_environment(device, env, expected):
    policy = batch_policy(device, env)
    assert policy == expected
    assert policy.enabled == (expected.max_batch > 1)
