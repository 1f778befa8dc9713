"""Hub downloads: fetching weight files from the Hugging Face hub (or a mirror), with progress.

One process-wide registry holds the downloads in flight, keyed by endpoint, cache, repository, revision
and file names. A second caller that asks for the same file while it downloads joins that download and
sees the same progress; it never starts a second one. Progress comes from huggingface_hub's own
reporting (the ``tqdm_class`` hook of ``hf_hub_download``), not from watching the disk.

The endpoint (``HF_ENDPOINT``, e.g. a mirror) and the cache (``HF_HUB_CACHE`` / ``HF_HOME``) are read from
the environment on every call: huggingface_hub reads them only once, when it is imported.

What a download guarantees:

* **Steady progress.** huggingface_hub hands over bytes (and reports them) in chunks of
  ``huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE``, 10 MiB by default: on a slow line the bar would stand
  still for minutes. A download lowers it to :data:`DOWNLOAD_CHUNK_BYTES` (1 MiB) for the whole process.
* **Resume.** A connection dropped in the middle of a file is resumed where it stopped (at the last whole
  chunk), with an HTTP range request: huggingface_hub retries up to 5 times, and starts over only if the
  server ignores the range. A download stopped with the process starts over: huggingface_hub keeps no
  partial file between calls.
* **Integrity.** A file that was just downloaded is hashed and compared with the checksum the hub
  announced (its ETag: the SHA-256 of an LFS file, the git blob SHA-1 of a small file). A file that does
  not match is removed from the cache and refused.
* **A reason.** A failure raises :class:`DownloadError` saying what went wrong (no network, disk full, no
  such repository or file, a damaged file) and leaves no partial file or broken entry in the cache.
"""
from __future__ import annotations

import errno
import hashlib
import inspect
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from tqdm import tqdm as _tqdm

from vitviz.i18n import N_, _
from vitviz.models import Notice

__all__ = [
    "DEFAULT_ENDPOINT",
    "DOWNLOAD_CHUNK_BYTES",
    "WEIGHT_FILES",
    "Download",
    "DownloadError",
    "Progress",
    "WeightsSource",
    "cache_dir",
    "cached_file",
    "download",
    "endpoint",
    "in_flight",
    "start",
    "weights_source",
]

DEFAULT_ENDPOINT = "https://huggingface.co"
DOWNLOAD_CHUNK_BYTES = 2**20
"""Bytes huggingface_hub receives between two progress reports (and the granularity of a resume)."""
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
"""Weight files timm looks for in a hub repository, in its order of preference."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")
_CHECKSUM_NAMES = {"sha256": "SHA-256", "sha1": "git SHA-1"}
_LOG = logging.getLogger(__name__)


class DownloadError(Exception):
    """A download that failed, with a message meant for the user.

    The message is kept as a :class:`~vitviz.models.Notice` (``notice``) when it was made in the download
    thread, so that each waiter re-raises it in its own language (:meth:`Download.result`).
    """

    def __init__(self, message: str | Notice) -> None:
        super().__init__(str(message))
        self.notice = message if isinstance(message, Notice) else None


# --------------------------------------------------------------------------------------------- settings


def endpoint() -> str:
    """The hub or mirror to download from: ``HF_ENDPOINT`` read now (without a trailing slash), else
    huggingface_hub's own setting."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT", "").strip() or constants.ENDPOINT or DEFAULT_ENDPOINT).rstrip("/")


def cache_dir() -> str:
    """The Hugging Face hub cache: ``HF_HUB_CACHE`` or ``HF_HOME`` read now, else huggingface_hub's own
    setting."""
    from huggingface_hub import constants

    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return os.path.expanduser(os.path.expandvars(explicit))
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.path.expandvars(os.environ["HF_HOME"])), "hub")
    return constants.HF_HUB_CACHE


# --------------------------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class Progress:
    """Where one download stands.

    Attributes:
        repo_id: Hub repository.
        filename: File being fetched (the last one tried when several names are possible).
        done: Bytes of the file on disk so far (a resumed download starts above 0).
        total: Size of the file in bytes, or None until the hub has said.
        elapsed_s: Seconds spent receiving the file (since the hub answered; 0 before).
        received: Bytes received in that time (``done`` less what a resumed file started from).
        finished: Whether the download has ended, successfully or not.
    """

    repo_id: str
    filename: str
    done: int = 0
    total: int | None = None
    elapsed_s: float = 0.0
    received: int = 0
    finished: bool = False

    @property
    def fraction(self) -> float | None:
        """Share of the file done, in [0, 1], or None while the size is unknown."""
        if not self.total:
            return None
        return min(max(self.done / self.total, 0.0), 1.0)

    @property
    def speed(self) -> float | None:
        """Average bytes per second received so far, or None before the first bytes."""
        if self.received <= 0 or self.elapsed_s <= 0:
            return None
        return self.received / self.elapsed_s

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the average speed, or None when unknown."""
        speed = self.speed
        if speed is None or not self.total:
            return None
        return max(self.total - self.done, 0) / speed

    def describe(self) -> str:
        """One line for a progress bar, e.g. ``'model.safetensors: 12.3 MB of 22.9 MB · 4.1 MB/s · 3 s left'``."""
        if self.total is None and self.done == 0:
            return _("{file}: asking the hub…").format(file=self.filename)
        if self.total:
            done = _("{file}: {done} of {total}").format(file=self.filename, done=_size(self.done),
                                                         total=_size(self.total))
        else:
            done = f"{self.filename}: {_size(self.done)}"
        parts = [done]
        if self.speed is not None:
            parts.append(f"{_size(self.speed)}/s")
        if self.eta_s is not None and not self.finished:
            parts.append(_("{duration} left").format(duration=_duration(self.eta_s)))
        return " · ".join(parts)


def _size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class _Bar(_tqdm):
    """The progress bar huggingface_hub creates for a file (``tqdm_class``), reporting to a :class:`Download`.

    It never prints. ``update_transfer`` makes a Xet download report file bytes and network bytes on one bar.
    Before the first byte, a file that cannot fit in the free space of the cache is refused.
    """

    download: Download  # set on the subclass made for each download

    def __init__(self, *args, **kwargs):
        kwargs["disable"] = True
        kwargs.pop("name", None)
        super().__init__(*args, **kwargs)
        self._done = int(kwargs.get("initial") or 0)
        self.download._bar_opened(self._done, kwargs.get("total"))

    def update(self, n: float | None = 1) -> bool | None:
        self._done += int(n or 0)
        self.download._bar_moved(self._done, getattr(self, "total", None), int(n or 0))
        return None

    def update_transfer(self, n: float | None = 1) -> None:
        """Network bytes of a Xet download (file bytes arrive through :meth:`update`)."""

    def set_transfer_postfix_str(self, *args, **kwargs) -> None:
        """Xet's speed text for its transfer bar: the app computes its own."""


# --------------------------------------------------------------------------------------------- downloads


Observer = Callable[[Progress], None]


class Download:
    """One file being fetched into the hub cache by a background thread, shared by all who ask for it.

    Use :func:`start` (or :func:`download`) rather than building one: they share downloads in flight.

    Args:
        repo_id: Hub repository, e.g. ``'timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k'``.
        filenames: File names to try in order; the first the repository has is fetched.
        revision: Branch, tag or commit; the default branch when None.
    """

    def __init__(self, repo_id: str, filenames: tuple[str, ...], revision: str | None = None):
        self.repo_id = repo_id
        self.filenames = tuple(filenames)
        self.revision = revision
        self.endpoint = endpoint()
        self.cache_dir = cache_dir()
        self.key = (self.endpoint, self.cache_dir, repo_id, revision or "main", self.filenames)
        self._changed = threading.Condition()
        self._observers: list[Observer] = []
        self._progress = Progress(repo_id, self.filenames[0])
        self._receiving_since: float | None = None  # when the hub answered with the current file
        self._resumed_from = 0  # bytes the current file started from
        self._bar_used = False
        self._path: Path | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"vitviz-download-{repo_id}", daemon=True)

    # ---------------------------------------------------------------- reading

    def progress(self) -> Progress:
        with self._changed:
            return self._progress

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
            # in the waiter's language when the download thread kept the message as a Notice
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
            error = exc if isinstance(exc, DownloadError) else DownloadError(_reason(exc, self))
            error.__cause__ = None if error is exc else exc
            with self._changed:
                self._error = error
        finally:
            _forget(self)
            self._update(finished=True)

    def _fetch_first(self) -> Path:
        for index, filename in enumerate(self.filenames):
            with self._changed:
                self._receiving_since, self._resumed_from = None, 0
            self._update(filename=filename, done=0, total=None)
            try:
                return self._fetch(filename)
            except _remote_entry_not_found():  # the hub has no such file: try the next name
                if index == len(self.filenames) - 1:
                    raise
        raise AssertionError("unreachable")

    def _fetch(self, filename: str) -> Path:
        from huggingface_hub import hf_hub_download

        _report_every_chunk_of(DOWNLOAD_CHUNK_BYTES)
        bar = type("_DownloadBar", (_Bar,), {"download": self})
        hooks = {"tqdm_class": bar} if "tqdm_class" in inspect.signature(hf_hub_download).parameters else {}
        self._bar_used = False
        path = Path(
            hf_hub_download(
                self.repo_id, filename, revision=self.revision, cache_dir=self.cache_dir, endpoint=self.endpoint,
                **hooks,
            )
        )
        if self._bar_used:  # fetched now, not found in the cache: check it before anyone reads it
            _verify(path, filename, self.repo_id)
        return path

    def _bar_opened(self, initial: int, total: int | None) -> None:
        self._bar_used = True
        if total:
            _check_free_space(total - initial, self.cache_dir)
        with self._changed:
            self._receiving_since, self._resumed_from = time.monotonic(), initial
        self._update(done=initial, total=total)

    def _bar_moved(self, done: int, total: int | None, step: int) -> None:
        if step < 0:  # the server ignored a range request: the file starts over
            with self._changed:
                self._resumed_from = 0
        self._update(done=done, total=total or self._progress.total)

    def _update(self, **changes) -> None:
        with self._changed:
            fields = {**self._progress.__dict__, **changes}
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


def _report_every_chunk_of(size: int) -> None:
    from huggingface_hub import constants

    if getattr(constants, "DOWNLOAD_CHUNK_SIZE", 0) > size:
        constants.DOWNLOAD_CHUNK_SIZE = size


# --------------------------------------------------------------------------------------------- registry


_IN_FLIGHT: dict[tuple, Download] = {}
_REGISTRY_LOCK = threading.Lock()


def start(repo_id: str, filenames: str | tuple[str, ...], *, revision: str | None = None) -> Download:
    """Start fetching a file into the hub cache, or join the download of it already in flight.

    Args:
        repo_id: Hub repository.
        filenames: A file name, or names to try in order (the first the repository has is fetched).
        revision: Branch, tag or commit; the default branch when None.
    """
    names = (filenames,) if isinstance(filenames, str) else tuple(filenames)
    candidate = Download(repo_id, names, revision)
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
) -> Path:
    """Fetch a file into the hub cache (joining a download in flight) and return its local path.

    Args:
        repo_id: Hub repository.
        filenames: A file name, or names to try in order.
        revision: Branch, tag or commit; the default branch when None.
        on_progress: Called with a :class:`Progress` on every change (from the download thread).
        timeout: Seconds to wait at most (the download goes on in the background after a timeout).

    Raises:
        DownloadError: The download failed, with the reason.
    """
    job = start(repo_id, filenames, revision=revision)
    if on_progress is not None:
        job.add_observer(on_progress)
    try:
        return job.result(timeout)
    finally:
        if on_progress is not None:
            job.remove_observer(on_progress)


def cached_file(repo_id: str, filenames: str | tuple[str, ...], *, revision: str | None = None) -> Path | None:
    """The first of ``filenames`` already in the hub cache, without touching the network."""
    from huggingface_hub import try_to_load_from_cache

    names = (filenames,) if isinstance(filenames, str) else tuple(filenames)
    for filename in names:
        path = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir(), revision=revision)
        if isinstance(path, str):
            return Path(path)
    return None


# --------------------------------------------------------------------------------------------- checks


def _check_free_space(needed: int, directory: str) -> None:
    here = Path(directory)
    for path in (here, *here.parents):
        try:
            free = shutil.disk_usage(path).free
        except OSError:
            continue
        if free < needed:
            raise DownloadError(Notice(N_(
                "Not enough disk space: the file needs {needed} but only {free} is free where the "
                "Hugging Face cache lives ({directory}). Free some space or point HF_HOME to a larger disk."
            ), (("needed", _size(needed)), ("free", _size(free)), ("directory", directory))))
        return


def _file_digest(path: Path, kind: str) -> str:
    size = path.stat().st_size
    digest = hashlib.sha256() if kind == "sha256" else hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, filename: str, repo_id: str) -> None:
    """Compare a freshly downloaded file with the hub's checksum (its cache blob is named by it); remove it
    from the cache and raise when they differ."""
    blob = Path(os.path.realpath(path))
    expected = blob.name
    kind = "sha256" if _SHA256.fullmatch(expected) else "sha1" if _GIT_SHA1.fullmatch(expected) else None
    if kind is None:  # a cache without symlinks keeps no checksum to compare with
        return
    actual = _file_digest(blob, kind)
    if actual == expected:
        return
    for leftover in (path, blob):
        try:
            leftover.unlink()
        except FileNotFoundError:
            pass
    raise DownloadError(Notice(N_(
        "The downloaded {file} of {repo} is damaged: its {checksum} checksum is {actual}…, but "
        "the hub announced {expected}…. The file was removed from the cache; try again (a mirror may "
        "be serving a broken copy)."
    ), (("file", filename), ("repo", repo_id), ("checksum", _CHECKSUM_NAMES[kind]), ("actual", actual[:12]),
        ("expected", expected[:12]))))


def _remote_entry_not_found() -> type[Exception]:
    """The error for a file the hub does not have (``EntryNotFoundError`` before huggingface_hub 1.0)."""
    from huggingface_hub import errors

    return getattr(errors, "RemoteEntryNotFoundError", errors.EntryNotFoundError)


def _reason(exc: BaseException, job: Download) -> Notice:
    """Say in words why a download failed (a :class:`Notice`: each waiter reads it in its own language)."""
    from huggingface_hub import errors

    host = urlparse(job.endpoint).netloc or job.endpoint
    values = (("repo", job.repo_id), ("host", host), ("error", type(exc).__name__))
    if isinstance(exc, errors.GatedRepoError):
        return Notice(N_("{repo} is a gated repository on {host}: accept its terms on the hub and log in first."),
                      values)
    if isinstance(exc, errors.RepositoryNotFoundError):
        return Notice(N_("{host} has no model repository named {repo} (or it is private). Check the name; with "
                         "a mirror (HF_ENDPOINT), check that the mirror has it."), values)
    if isinstance(exc, errors.RevisionNotFoundError):
        return Notice(N_("{repo} on {host} has no revision '{revision}'."), values + (("revision", job.revision),))
    if isinstance(exc, _remote_entry_not_found()):
        names = job.filenames[0] if len(job.filenames) == 1 else Notice(
            N_("{first} or {last}"), (("first", ", ".join(job.filenames[:-1])), ("last", job.filenames[-1])))
        return Notice(N_("{repo} on {host} has no {files}."), values + (("files", names),))
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        return Notice(N_("{host} answered HTTP {status} while downloading {repo} from {host}; try again later."),
                      values + (("status", status),))
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return Notice(N_("The disk filled up while downloading {repo} from {host}; the partial file was removed. "
                         "Free some space or point HF_HOME to a larger disk."), values)
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return Notice(N_("The download of {repo} from {host} ended early: the file arrived incomplete and was "
                         "discarded. Check the network and try again."), values)
    if isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "requests", "urllib3"):
        return Notice(N_("Could not download {repo} from {host}: the network failed ({error}). Check the "
                         "connection, or set HF_ENDPOINT to a mirror you can reach, and try again."), values)
    _LOG.error("downloading %s from %s failed", job.repo_id, host, exc_info=exc)
    return Notice(N_("Could not download {repo} from {host} ({error}); the server log has the details."), values)


# --------------------------------------------------------------------------------------------- timm models


@dataclass(frozen=True)
class WeightsSource:
    """Where a timm model's pretrained weights live on the hub.

    Attributes:
        repo_id: Hub repository.
        revision: Branch, tag or commit, or None for the default branch.
        filenames: Weight file names to try, in order.
        needs_config: Whether the repository's ``config.json`` is needed too (an ``hf-hub:`` model, whose
            architecture it describes).
    """

    repo_id: str
    revision: str | None
    filenames: tuple[str, ...]
    needs_config: bool = False

    @property
    def files(self) -> tuple[tuple[str, ...], ...]:
        """What to download, in order: each entry is the file names to try for one file."""
        return (("config.json",), self.filenames) if self.needs_config else (self.filenames,)


def weights_source(timm_name: str) -> WeightsSource | None:
    """The hub files holding a timm model's pretrained weights, or None when timm does not take them from
    the hub (e.g. a model with no pretrained weights, or weights behind a plain URL)."""
    if timm_name.startswith(("hf-hub:", "hf_hub:")):
        repo, _at, revision = timm_name.split(":", 1)[1].partition("@")
        return WeightsSource(repo, revision or None, WEIGHT_FILES, needs_config=True)
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(timm_name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    repo, _at, revision = hub_id.partition("@")
    filename = getattr(cfg, "hf_hub_filename", None)
    return WeightsSource(repo, revision or None, (filename,) if filename else WEIGHT_FILES)

