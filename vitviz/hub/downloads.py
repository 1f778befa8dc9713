"""Downloads in flight: one background thread per file, shared by everyone who asks for it, with progress.

One process-wide registry holds the downloads in flight, keyed by endpoint, cache, repository, revision,
file names and whether unchecked files are allowed. A second caller that asks for the same file while it
downloads joins that download and sees the same progress; it never starts a second one.

What a download guarantees (see :mod:`vitviz.hub._transfer` and :mod:`vitviz.hub._cache` for how):

* **Our paths.** Every value of the server's that becomes part of a path is checked first (a commit id,
  a SHA-256 or git SHA-1), and every path written resolves inside the cache; a file whose checksum cannot be
  checked is refused unless allowed (``allow_unverified=True`` or ``VITVIZ_HUB_ALLOW_UNVERIFIED=1``).
* **Bounded.** A connect timeout, a stall timeout (also for bytes that trickle), a capped number of resumes
  with back-off, and never more bytes than announced (:class:`~vitviz.hub.Limits`).
* **Steady progress.** Reported at least every :data:`DOWNLOAD_CHUNK_BYTES` or 0.2 s while bytes arrive;
  :meth:`Download.progress` counts the seconds elapsed and those spent waiting, so a progress line moves
  even when no byte comes.
* **Resume.** A dropped connection is resumed where it stopped, with an HTTP range request.
* **Integrity.** The bytes are hashed as they arrive and compared with the checksum the hub announced;
  a file that does not match is never put in the cache.
* **A reason.** A failure raises :class:`DownloadError` saying what went wrong, and leaves no partial file or
  broken entry in the cache.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vitviz.i18n import _

from . import _settings
from ._cache import CacheEntry, cached_file, check_free_space
from ._errors import DownloadError, HubFault, reason, remote_entry_not_found
from ._progress import Progress
from ._settings import Limits, cache_dir, endpoint
from ._transfer import RemoteFile, receive, remote_file

__all__ = ["DOWNLOAD_CHUNK_BYTES", "Download", "download", "in_flight", "start"]

DOWNLOAD_CHUNK_BYTES = 2**20
"""Bytes received between two progress reports at most (a report also comes every 0.2 s while bytes arrive)."""
_REPORT_EVERY_S = 0.2
_OFFLINE_FAULTS = ("connect-timeout", "no-answer")

Observer = Callable[[Progress], None]


class Download:
    """One file being fetched into the hub cache by a background thread, shared by all who ask for it.

    Use :func:`start` (or :func:`download`) rather than building one: they share downloads in flight.

    Args:
        repo_id: Hub repository, e.g. ``'timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k'``.
        filenames: File names to try in order; the first the repository has is fetched.
        revision: Branch, tag or commit; the default branch when None.
        limits: Timeouts and retries (default: :meth:`Limits.from_env`).
        allow_unverified: Keep a file whose checksum the hub does not announce as a hash (default:
            ``VITVIZ_HUB_ALLOW_UNVERIFIED``).
    """

    def __init__(self, repo_id: str, filenames: tuple[str, ...], revision: str | None = None, *,
                 limits: Limits | None = None, allow_unverified: bool | None = None):
        self.repo_id = repo_id
        self.filenames = tuple(filenames)
        self.revision = revision
        self.endpoint = endpoint()
        self.cache_dir = cache_dir()
        self.limits = limits or Limits.from_env()
        self.allow_unverified = _settings.allow_unverified(allow_unverified)
        self.key = (self.endpoint, self.cache_dir, repo_id, revision or "main", self.filenames, self.allow_unverified)
        self._changed = threading.Condition()
        self._observers: list[Observer] = []
        self._progress = Progress(repo_id, self.filenames[0])
        self._asked_at = time.monotonic()  # when the hub was asked about the current file
        self._receiving_since: float | None = None  # when its bytes started
        self._last_byte_at: float | None = None
        self._resumed_from = 0  # bytes the current file started from
        self._reported = (0, 0.0)  # bytes and time of the last report
        self._path: Path | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"vitviz-download-{repo_id}", daemon=True)

    # ---------------------------------------------------------------- reading

    def progress(self) -> Progress:
        """Where the download stands now (its elapsed and waiting seconds counted up to this moment)."""
        with self._changed:
            progress = self._progress
            if progress.finished:
                return progress
            now = time.monotonic()
            since = self._last_byte_at or self._receiving_since or self._asked_at
            elapsed = now - self._receiving_since if self._receiving_since is not None else 0.0
            return dataclasses.replace(progress, elapsed_s=elapsed, waiting_s=now - since)

    @property
    def finished(self) -> bool:
        return self.progress().finished

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(progress)`` now and on every change (from the download thread, so keep it quick)."""
        with self._changed:
            self._observers.append(observer)
            progress = self._progress
        observer(progress)

    def remove_observer(self, observer: Observer) -> None:
        with self._changed:
            if observer in self._observers:
                self._observers.remove(observer)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the progress moves or the download ends (at most ``timeout`` seconds); return whether
        it has ended. :meth:`result` waits for the end."""
        with self._changed:
            if not self._progress.finished:
                self._changed.wait(timeout)
            return self._progress.finished

    def result(self, timeout: float | None = None) -> Path:
        """The local path of the file, once downloaded.

        Raises:
            DownloadError: The download failed (with the reason), or ``timeout`` passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.wait(None if deadline is None else max(deadline - time.monotonic(), 0)):
            if deadline is not None and time.monotonic() >= deadline:
                raise DownloadError(_("{repo}: still downloading after {seconds:.0f} s.").format(
                    repo=self.repo_id, seconds=timeout))
        if self._error is not None:  # a fresh exception per waiter (several threads may raise it at once),
            # in the waiter's language when the download thread kept the message as a Message
            raise DownloadError(self._error.notice or str(self._error)) from self._error
        assert self._path is not None
        return self._path

    # ---------------------------------------------------------------- the download thread

    def _start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            path = self._fetch_first()
            with self._changed:
                self._path = path
        except BaseException as exc:  # every failure is reported to the waiters, never lost in the thread
            error = exc if isinstance(exc, DownloadError) else DownloadError(reason(exc, self))
            error.__cause__ = None if error is exc else exc
            with self._changed:
                self._error = error
        finally:
            _forget(self)
            self._update(finished=True)

    def _fetch_first(self) -> Path:
        for index, filename in enumerate(self.filenames):
            with self._changed:
                self._asked_at, self._receiving_since, self._last_byte_at = time.monotonic(), None, None
                self._resumed_from, self._reported = 0, (0, 0.0)
            self._update(filename=filename, done=0, total=None)
            try:
                return self._fetch(filename)
            except remote_entry_not_found():  # the hub has no such file: try the next name
                if index == len(self.filenames) - 1:
                    raise
        raise AssertionError("unreachable")

    def _fetch(self, filename: str) -> Path:
        try:
            remote = remote_file(self.repo_id, filename, self.revision, self.endpoint, self.limits,
                                 self.allow_unverified)
        except Exception as exc:
            cached = cached_file(self.repo_id, filename, revision=self.revision, root=self.cache_dir)
            if cached is not None and _unreachable(exc):  # as huggingface_hub does: the cached copy, offline
                return cached
            raise
        entry = CacheEntry.make(self.cache_dir, self.repo_id, filename, self.revision or "main", remote.commit)
        found = entry.cached(remote.etag if remote.checksum else None)
        if found is not None:
            return found
        # another process sharing this cache (a replica) may be fetching the same file: wait for it, then
        # take its copy; the lock is huggingface_hub's own for a blob, so timm's downloads wait for us too
        name = remote.etag if remote.checksum else hashlib.sha256(f"{remote.commit}/{filename}".encode()).hexdigest()
        with _file_lock(entry.lock(name)):
            found = entry.cached(remote.etag if remote.checksum else None)
            return found if found is not None else self._receive(remote, entry, filename)

    def _receive(self, remote: RemoteFile, entry: CacheEntry, filename: str) -> Path:
        check_free_space(remote.size, self.cache_dir)
        with self._changed:
            self._receiving_since = time.monotonic()
        self._update(done=0, total=remote.size)
        temporary = entry.temporary()
        try:
            with open(temporary, "wb") as handle:
                digest = receive(remote, handle, self.limits, self._received)
            if remote.checksum is not None and digest != remote.etag:
                raise HubFault("damaged", filename, checksum=remote.checksum, actual=digest[:12],
                               expected=remote.etag[:12])
            return entry.publish(temporary, remote.etag if remote.checksum else digest)
        finally:
            temporary.unlink(missing_ok=True)

    def _received(self, done: int, restarted: bool) -> None:
        now = time.monotonic()
        with self._changed:
            self._last_byte_at = now
            if restarted:  # the server ignored a range request: the file starts over
                self._resumed_from = 0
            last_done, last_at = self._reported
            total = self._progress.total or 0
            if not restarted and done < total and done - last_done < DOWNLOAD_CHUNK_BYTES \
                    and now - last_at < _REPORT_EVERY_S:
                return
            self._reported = (done, now)
        self._update(done=done)

    def _update(self, **changes) -> None:
        with self._changed:
            fields = {**self._progress.__dict__, **changes, "waiting_s": 0.0}
            if self._receiving_since is not None:
                fields["elapsed_s"] = time.monotonic() - self._receiving_since
                fields["received"] = max(fields["done"] - self._resumed_from, 0)
            else:
                fields["elapsed_s"], fields["received"] = 0.0, 0
            self._progress = progress = Progress(**fields)
            observers = list(self._observers)
            self._changed.notify_all()
        for observer in observers:
            observer(progress)


def _file_lock(path: Path) -> contextlib.AbstractContextManager:
    # heavy: huggingface_hub (~0.1 s), loaded on first use so that importing vitviz.models stays cheap
    from huggingface_hub.utils import WeakFileLock

    return WeakFileLock(path)


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the hub could not be reached (not that it refused or misbehaved)."""
    if isinstance(exc, HubFault):
        return exc.kind in _OFFLINE_FAULTS
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("httpx", "httpx2")


# --------------------------------------------------------------------------------------------- registry


_IN_FLIGHT: dict[tuple, Download] = {}
_REGISTRY_LOCK = threading.Lock()


def start(repo_id: str, filenames: str | tuple[str, ...], *, revision: str | None = None,
          limits: Limits | None = None, allow_unverified: bool | None = None) -> Download:
    """Start fetching a file into the hub cache, or join the download of it already in flight.

    Args:
        repo_id: Hub repository.
        filenames: A file name, or names to try in order (the first the repository has is fetched).
        revision: Branch, tag or commit; the default branch when None.
        limits: Timeouts and retries (default: :meth:`Limits.from_env`; a download joined keeps its own).
        allow_unverified: Keep a file whose checksum cannot be checked (default:
            ``VITVIZ_HUB_ALLOW_UNVERIFIED``).
    """
    names = (filenames,) if isinstance(filenames, str) else tuple(filenames)
    candidate = Download(repo_id, names, revision, limits=limits, allow_unverified=allow_unverified)
    with _REGISTRY_LOCK:
        running = _IN_FLIGHT.get(candidate.key)
        if running is not None:
            return running
        _IN_FLIGHT[candidate.key] = candidate
    candidate._start()
    return candidate


def _forget(job: Download) -> None:
    with _REGISTRY_LOCK:
        if _IN_FLIGHT.get(job.key) is job:
            del _IN_FLIGHT[job.key]


def in_flight() -> list[Download]:
    """The downloads running now (for tests and diagnostics)."""
    with _REGISTRY_LOCK:
        return list(_IN_FLIGHT.values())


def download(
    repo_id: str,
    filenames: str | tuple[str, ...],
    *,
    revision: str | None = None,
    on_progress: Observer | None = None,
    timeout: float | None = None,
    limits: Limits | None = None,
    allow_unverified: bool | None = None,
) -> Path:
    """Fetch a file into the hub cache (joining a download in flight) and return its local path.

    Args:
        repo_id: Hub repository.
        filenames: A file name, or names to try in order.
        revision: Branch, tag or commit; the default branch when None.
        on_progress: Called with a :class:`Progress` on every change (from the download thread).
        timeout: Seconds to wait at most (the download goes on in the background after a timeout).
        limits: Timeouts and retries of the download (default: :meth:`Limits.from_env`).
        allow_unverified: Keep a file whose checksum the hub does not announce as a SHA-256 or git SHA-1
            (default: ``VITVIZ_HUB_ALLOW_UNVERIFIED``; off).

    Raises:
        DownloadError: The download failed, with the reason.
    """
    job = start(repo_id, filenames, revision=revision, limits=limits, allow_unverified=allow_unverified)
    if on_progress is not None:
        job.add_observer(on_progress)
    try:
        return job.result(timeout)
    finally:
        if on_progress is not None:
            job.remove_observer(on_progress)
