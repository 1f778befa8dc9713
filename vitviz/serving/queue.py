"""Waiting in line for a shared model: tickets that know their place and how long the wait should take.

A :class:`WorkQueue` holds the jobs waiting for one shared resource (a model every session of a server uses),
first come, first served. A job is known by its key (model, image, settings): a request for a key already in
line, in progress or just finished (``linger_s``) joins that job instead of adding another, so work for the
same key is done once however many sessions ask at once. Every request gets a :class:`Ticket`, which tells its
:class:`Place` (how many jobs are ahead, whether its own has started, the seconds left, estimated from
:class:`ServiceTimes`, the median of the latest measured times per job of each kind, once three are timed after a
warm-up), and gives the result once the job is done.

A waiter who leaves withdraws its ticket. A job nobody waits for any more keeps its place until the worker
reaches it, and is then dropped instead of run: a session that reruns (a click while it waits) asks again for
the same key, rejoins its job and keeps its place; a session that went away costs nothing.

Thread-safe, and free of torch and streamlit: the worker that takes jobs off the queue is
``vitviz.serving.Batcher``; the app draws the place while it waits.
"""
from __future__ import annotations

import collections
import statistics
import threading
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Cancelled", "Job", "Place", "ServiceTimes", "Ticket", "WorkQueue"]

QUEUED, RUNNING, DONE, CANCELLED = "queued", "running", "done", "cancelled"


class Cancelled(RuntimeError):
    """The job was dropped before it started: every ticket waiting for it had been withdrawn."""


@dataclass(frozen=True)
class Place:
    """Where a ticket's job stands.

    Attributes:
        ahead: Jobs before this one that have not finished (running ones included; 0 once this one runs).
        started: This job is running (or finished).
        done: The result (or error) is there.
        seconds_left: Estimated seconds until the result, from the measured times per job; None while a kind of
            job involved has not been timed yet.
        blocked: The worker waits for the model, busy with work outside this queue (another computation holds
            the model's lock).
    """

    ahead: int
    started: bool
    done: bool
    seconds_left: float | None
    blocked: bool = False


class ServiceTimes:
    """Measured seconds per job: per kind of job, the median of the latest ``window`` measurements, given once there
    are ``least`` of them, the first ``warmups`` jobs not counted (thread-safe).

    A job's time depends on what else the machine does meanwhile, and one measurement can be far from the next.
    Classes of 30 with ViT-B/16 here (bench/README.md §22) showed three kinds of pass:

    * the model's first pass in the process, which pays its one-time costs (torch's first pass at these shapes,
      the first allocations) and, on a server that has just started, shares the machine with the pages loading:
      0.5–7 s. It is a warm-up, as in any benchmark, and its time is not a measurement;
    * the first passes after 30 uploads arrived at once, while the server took them in and 30 pages redrew:
      0.7–3.6 s for the first (over 2 s in most classes), often 1–2 s for a few after it;
    * the passes after that: 0.6–0.9 s.

    With an exponentially weighted mean of every time the first estimate a student read was up to 8.8 times the
    real wait (§21); with the median of whatever was timed, 0.4–6.3 times (§22), as a slow pass was the only one
    timed or one of two. A median outvotes one outlier only from three values on: until three passes of the kind
    are timed after the warm-up the estimate is unknown, and the notice gives the place alone.

    Args:
        window: How many of the latest measurements of a kind count (≥ 1).
        warmups: How many first jobs of each kind are not measurements (≥ 0).
        least: How many measurements of a kind give an estimate (1 ≤ least ≤ window).
    """

    def __init__(self, window: int = 5, warmups: int = 1, least: int = 3) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        if warmups < 0:
            raise ValueError(f"warmups must be at least 0, not {warmups}")
        if not 1 <= least <= window:
            raise ValueError(f"least must lie in [1, window={window}], not {least}")
        self.window, self.warmups, self.least = window, warmups, least
        self._seen: collections.Counter[Hashable] = collections.Counter()
        self._latest: dict[Hashable, collections.deque[float]] = {}
        self._typical: dict[Hashable, float] = {}  # the median, kept at each record: every waiter reads it often
        self._lock = threading.Lock()

    def record(self, kind: Hashable, seconds: float) -> None:
        """Add one job of ``kind`` that took ``seconds`` (a warm-up's time is dropped)."""
        with self._lock:
            self._seen[kind] += 1
            if self._seen[kind] <= self.warmups:
                return
            latest = self._latest.setdefault(kind, collections.deque(maxlen=self.window))
            latest.append(seconds)
            if len(latest) >= self.least:
                self._typical[kind] = statistics.median(latest)

    def typical(self, kind: Hashable) -> float | None:
        """The median seconds per job of ``kind`` over its latest measurements, or None before ``least`` of them."""
        with self._lock:
            return self._typical.get(kind)


class Job:
    """One unit of work in the queue, shared by every ticket that asked for its key (``payload``: what to do)."""

    def __init__(self, key: Hashable, kind: Hashable, payload: Any) -> None:
        self.key, self.kind, self.payload = key, kind, payload
        self.arrived = time.monotonic()
        self.state = QUEUED
        self.waiters = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.batch_size = 1
        self.finished = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class Ticket:
    """One request's claim on a job: its place in line, an estimate, and the result.

    A ticket is a future: :meth:`wait` and :meth:`result` block, :meth:`place` never does. Call :meth:`withdraw`
    when the waiter leaves before the result (a Streamlit run that stops); it does nothing after the result.
    """

    def __init__(self, queue: WorkQueue, job: Job) -> None:
        self._queue, self._job = queue, job
        self._withdrawn = False

    @property
    def key(self) -> Hashable:
        return self._job.key

    @property
    def done(self) -> bool:
        """The job ended: result, error, or dropped."""
        return self._job.finished.is_set()

    @property
    def cancelled(self) -> bool:
        """The job was dropped before it started (nobody waited for it any more)."""
        return self._job.state == CANCELLED

    def place(self) -> Place:
        """Where the job stands now."""
        return self._queue.place(self._job)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends, at most ``timeout`` seconds; whether it did."""
        return self._job.finished.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The job's result (waiting for it).

        Raises:
            TimeoutError: Not done within ``timeout`` seconds.
            Cancelled: The job was dropped before it started.
            Exception: Whatever the job raised.
        """
        if not self.wait(timeout):
            raise TimeoutError(f"job {self._job.key!r} not done within {timeout} s")
        if self._job.error is not None:
            raise self._job.error
        return self._job.result

    def withdraw(self) -> None:
        """Leave the line (once; nothing happens after the result): a job nobody waits for is not started."""
        if not self._withdrawn and not self.done:
            self._withdrawn = True
            self._queue.withdraw(self._job)


class WorkQueue:
    """The jobs waiting for one shared resource, first come first served, each key done once.

    Args:
        times: Where measured job times are kept (a new :class:`ServiceTimes` when None).
        linger_s: How long a finished job can still be joined by a request for its key (the moment between one
            session's result and its copy in the app's cache, when another session may ask for it).
    """

    def __init__(self, times: ServiceTimes | None = None, linger_s: float = 2.0) -> None:
        self.times = times or ServiceTimes()
        self.linger_s = linger_s
        self.blocked = False  # set by the worker while it waits for a resource held outside the queue
        self._cond = threading.Condition()
        self._queued: list[Job] = []
        self._running: list[Job] = []
        self._by_key: dict[Hashable, Job] = {}

    @property
    def condition(self) -> threading.Condition:
        """The queue's lock and condition: notified on every submit, withdraw and finish."""
        return self._cond

    def submit(self, key: Hashable, kind: Hashable, payload: Any) -> Ticket:
        """A ticket for the job of ``key``: the one queued, running or just finished for it, or a new one."""
        with self._cond:
            self.prune()
            job = self._by_key.get(key)
            if job is None:
                job = self._by_key[key] = Job(key, kind, payload)
                self._queued.append(job)
            job.waiters += 1
            self._cond.notify_all()
            return Ticket(self, job)

    def withdraw(self, job: Job) -> None:
        with self._cond:
            job.waiters -= 1
            self._cond.notify_all()

    def prune(self) -> None:
        """Forget finished jobs older than ``linger_s`` (their results stay with whoever holds a ticket)."""
        with self._cond:
            now = time.monotonic()
            for key in [k for k, job in self._by_key.items()
                        if job.finished_at is not None and now - job.finished_at >= self.linger_s]:
                del self._by_key[key]

    def _drop_abandoned(self) -> None:
        for job in [job for job in self._queued if job.waiters <= 0]:
            self._queued.remove(job)
            del self._by_key[job.key]
            job.state, job.error = CANCELLED, Cancelled(f"job {job.key!r} was withdrawn before it started")
            job.finished_at = time.monotonic()
            job.finished.set()

    def queued(self, kind: Hashable | None = None) -> int:
        """Jobs someone waits for that have not started (of ``kind`` only, when given)."""
        with self._cond:
            return sum(1 for job in self._queued if job.waiters > 0 and (kind is None or job.kind == kind))

    def first_waiting(self) -> Job | None:
        """The oldest job someone waits for that has not started (None when there is none)."""
        with self._cond:
            return next((job for job in self._queued if job.waiters > 0), None)

    def take(self, limit: int = 1) -> list[Job]:
        """Start the oldest queued job and up to ``limit - 1`` more of its kind (in order of arrival); returns
        them (empty when nothing is queued). Jobs that nobody waits for any more are dropped here, unrun."""
        with self._cond:
            self._drop_abandoned()
            if not self._queued:
                return []
            kind = self._queued[0].kind
            jobs = [job for job in self._queued if job.kind == kind][: max(1, limit)]
            now = time.monotonic()
            for job in jobs:
                self._queued.remove(job)
                job.state, job.started_at, job.batch_size = RUNNING, now, len(jobs)
            self._running.extend(jobs)
            return jobs

    def finish(self, jobs: Iterable[Job], results: list[Any] | None = None,
               error: BaseException | None = None, seconds: float | None = None) -> None:
        """End running ``jobs``: each gets its result (``results`` in the same order) or ``error``. ``seconds``,
        the time they took together, is recorded per job."""
        jobs = list(jobs)
        with self._cond:
            now = time.monotonic()
            for i, job in enumerate(jobs):
                if error is None:
                    job.result = results[i]
                else:
                    job.error = error
                    del self._by_key[job.key]  # a failed job is not joined: the next request tries again
                job.state, job.finished_at = DONE, now
                self._running.remove(job)
            if seconds is not None and error is None:
                for job in jobs:
                    self.times.record(job.kind, seconds / len(jobs))
            for job in jobs:
                job.finished.set()
            self._cond.notify_all()

    def place(self, job: Job) -> Place:
        """Where ``job`` stands: the jobs ahead and the estimated seconds until its result."""
        with self._cond:
            if job.finished.is_set():
                return Place(0, True, True, 0.0)
            now, left, known = time.monotonic(), 0.0, True
            for running in self._running:  # a batch ends together: its time is the sum of its jobs'
                typical = self.times.typical(running.kind)
                known &= typical is not None
                left = max(left, (typical or 0.0) * running.batch_size - (now - running.started_at))
            if job.state == RUNNING:
                return Place(0, True, False, left if known else None, self.blocked)
            ahead = [other for other in self._queued[: self._queued.index(job)] if other.waiters > 0]
            for waiting in [*ahead, job]:
                typical = self.times.typical(waiting.kind)
                known &= typical is not None
                left += typical or 0.0
            return Place(len(self._running) + len(ahead), False, False, left if known else None, self.blocked)
