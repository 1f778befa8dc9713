"""The worker of a :class:`~vitviz.serving.WorkQueue`: runs its jobs one at a time, or in batches where that pays.

A :class:`Batcher` owns one queue and one worker thread, started when a job arrives and ended once the queue
has been empty for the queue's ``linger_s``. The worker takes the oldest job; with batching on
(``policy.max_batch`` > 1) it first waits until ``policy.window_s`` after that job arrived, or until a full
batch of its kind is waiting, then runs them in one call: ``run(payloads) -> results`` (one result per payload,
in order) and hands each ticket its own. A batch that fails is run again one job at a time, so one bad input
costs only its own request. With a ``lock`` (the model's, ``vitviz.capture.model_lock``) the worker holds it
for the whole call, and the queue says ``blocked`` while another computation holds it first.

Batching pays where one call on B inputs costs much less than B calls, i.e. on a GPU. On the 2-core CPU here a
ViT-B/16 batch of 8 serves about 1.3× the images per second of batch 1, but every session in it waits for the
whole batch: 8 sessions arriving together wait 1.36× longer on average than served one by one
(``bench/batching.py``, bench/README.md §11). So :func:`batch_policy` turns it on for CUDA and leaves it off
elsewhere, unless ``VITVIZ_BATCH_WINDOW_MS`` says otherwise.
"""
from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .queue import Job, ServiceTimes, Ticket, WorkQueue

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_WINDOW_MS", "BatchPolicy", "Batcher", "batch_policy"]

DEFAULT_WINDOW_MS = 5.0
"""How long a job waits for others to join its batch where batching is on by default (CUDA)."""
DEFAULT_MAX_BATCH = 8
"""Largest batch by default (ViT-B/16: 8 × 22 MB of attention, within ``capture``'s full-storage budget)."""


@dataclass(frozen=True)
class BatchPolicy:
    """How jobs are grouped: ``window_s`` seconds of waiting for company, at most ``max_batch`` per call."""

    window_s: float = 0.0
    max_batch: int = 1

    @property
    def enabled(self) -> bool:
        return self.max_batch > 1


def batch_policy(device_type: str, env: Mapping[str, str] | None = None) -> BatchPolicy:
    """The batching for a model on ``device_type`` (``'cpu'``, ``'cuda'``, ...), from the environment.

    ``VITVIZ_BATCH_WINDOW_MS``: unset or empty, batching is on for ``'cuda'`` (``DEFAULT_WINDOW_MS``) and off
    elsewhere; ``off`` or a negative number, off; a number ≥ 0, on with that window (0: only jobs already waiting
    go together). ``VITVIZ_BATCH_MAX``: the largest batch (default ``DEFAULT_MAX_BATCH``; 1 turns batching off).
    Values that are not numbers are ignored (the default holds).
    """
    env = os.environ if env is None else env
    window = (env.get("VITVIZ_BATCH_WINDOW_MS") or "").strip().lower()
    largest = _number(env.get("VITVIZ_BATCH_MAX"))
    largest = DEFAULT_MAX_BATCH if largest is None or largest < 1 else int(largest)
    if window in ("off", "none", "false", "no"):
        return BatchPolicy()
    window_ms = _number(window)
    if window_ms is None:
        window_ms = DEFAULT_WINDOW_MS if device_type == "cuda" else -1.0
    if window_ms < 0:
        return BatchPolicy()
    return BatchPolicy(window_s=min(window_ms, 10_000.0) / 1000, max_batch=largest)


def _number(text: str | None) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None  # no NaN, no infinity


class Batcher:
    """A work queue and the thread that works it off, in batches where the policy says so.

    Args:
        run: ``run(payloads) -> results``: does the work of a batch (one result per payload, in order).
        policy: How to batch (off by default).
        lock: Held around every call of ``run`` (the shared model's lock); None for none.
        times: Measured service times to keep (shared between batchers if given).
        linger_s: See :class:`WorkQueue`; the worker also stays that long after its last job.
        name: The worker thread's name.
    """

    def __init__(self, run: Callable[[Sequence[Any]], Sequence[Any]], *, policy: BatchPolicy = BatchPolicy(),
                 lock: Any = None, times: ServiceTimes | None = None, linger_s: float = 2.0,
                 name: str = "vitviz-batcher") -> None:
        self.run, self.policy, self.lock, self.name = run, policy, lock, name
        self.queue = WorkQueue(times, linger_s=linger_s)
        self.batches: collections.deque[int] = collections.deque(maxlen=256)  # sizes of the latest calls of run
        self._thread: threading.Thread | None = None

    def submit(self, key: Hashable, kind: Hashable, payload: Any) -> Ticket:
        """Queue the job of ``key`` (or join the one queued, running or just finished): its ticket."""
        ticket = self.queue.submit(key, kind, payload)
        with self.queue.condition:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._thread.start()
        return ticket

    @property
    def busy(self) -> bool:
        """Whether the worker thread is alive (working, or lingering after its last job)."""
        with self.queue.condition:
            return self._thread is not None

    def _work(self) -> None:
        try:
            while (jobs := self._next()) is not None:
                self._run(jobs)
        finally:
            with self.queue.condition:
                if self._thread is threading.current_thread():  # not stopped by _next: an error ended it
                    self._thread = None

    def _next(self) -> list[Job] | None:
        """The next batch to run (empty after a wait that found nothing); None when it is time to stop."""
        cond, policy = self.queue.condition, self.policy
        with cond:
            first = self.queue.first_waiting()
            if first is None:
                cond.wait(self.queue.linger_s)  # stay a little: a request may come, and finished jobs are pruned
                self.queue.prune()
                if self.queue.first_waiting() is None:
                    self._thread = None  # under the condition: a submit from now on starts a new worker
                    return None
                return []
            if policy.enabled:
                deadline = first.arrived + policy.window_s
                while self.queue.queued(first.kind) < policy.max_batch and time.monotonic() < deadline:
                    cond.wait(max(0.0, deadline - time.monotonic()))
            return self.queue.take(policy.max_batch)

    def _run(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        try:
            with self._hold():
                start = time.monotonic()
                results = list(self.run([job.payload for job in jobs]))
                seconds = time.monotonic() - start
            if len(results) != len(jobs):
                raise RuntimeError(f"run returned {len(results)} results for {len(jobs)} jobs")
        except Exception as exc:  # handed to the waiting tickets, or each job tried alone
            if len(jobs) > 1:
                for job in jobs:
                    self._run([job])
            else:
                self.queue.finish(jobs, error=exc)
            return
        except BaseException as exc:  # the worker ends (interpreter exit): nobody waits forever
            self.queue.finish(jobs, error=exc)
            raise
        self.batches.append(len(jobs))
        self.queue.finish(jobs, results, seconds=seconds)

    @contextlib.contextmanager
    def _hold(self) -> Iterator[None]:
        if self.lock is None:
            yield
            return
        if not self.lock.acquire(blocking=False):
            self.queue.blocked = True
            try:
                self.lock.acquire()
            finally:
                self.queue.blocked = False
        try:
            yield
        finally:
            self.lock.release()
