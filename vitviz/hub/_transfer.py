"""Asking the hub about a file and receiving its bytes, with every answer checked and every wait bounded.

:func:`remote_file` asks with huggingface_hub's own metadata call (``hf_hub_url`` + ``get_hf_file_metadata``:
its headers, token, proxies and redirects) and checks what comes back before any of it is used: the commit
must be a commit id, the checksum a SHA-256 or git SHA-1 (unless unchecked files are allowed), the size a
number, the location an http(s) address.

:func:`receive` then fetches the bytes with huggingface_hub's HTTP client, into a file it is given:

* a connection must open within ``Limits.connect_s``; a download whose bytes stop (fewer than
  ``Limits.stall_bytes`` in ``Limits.stall_s``) ends with a message, however slowly the bytes trickle;
* a connection that drops is resumed where it stopped (an HTTP range request), after a back-off, at most
  ``Limits.retries`` times in a row without getting further; a server that ignores the range starts the
  file over, and counts as not getting further;
* never more bytes than the announced size are written: a longer answer is refused;
* the bytes are hashed as they arrive and compared with the announced checksum at the end.
"""
from __future__ import annotations

import hashlib
import importlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlparse

from vitviz.i18n import N_, Message

from ._cache import COMMIT, checksum_kind
from ._errors import HubFault, shown
from ._settings import Limits

__all__ = ["RemoteFile", "receive", "remote_file"]

_RETRY_STATUS = (408, 429, 500, 502, 503, 504)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


@dataclass(frozen=True)
class RemoteFile:
    """A file as the hub described it, every value checked.

    Attributes:
        filename: Its name in the repository.
        commit: The commit the revision resolved to (40 hexadecimal characters).
        etag: The announced checksum (a SHA-256 or git SHA-1; anything with ``checksum`` None).
        checksum: ``'sha256'``, ``'sha1'`` (git blob), or None when unchecked files were allowed.
        size: Bytes announced.
        location: Where the bytes are (the hub itself, or a CDN it redirects to).
        same_origin: Whether ``location`` is on the hub's own origin (only then does the token go along).
    """

    filename: str
    commit: str
    etag: str
    checksum: str | None
    size: int
    location: str
    same_origin: bool


def _http(session: Any):
    """The HTTP library huggingface_hub's client comes from (``httpx2`` in huggingface_hub 2.x)."""
    return importlib.import_module(type(session).__module__.split(".")[0])


def _timeout(http: Any, limits: Limits):
    return http.Timeout(connect=limits.connect_s, read=limits.stall_s, write=limits.stall_s, pool=limits.connect_s)


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = urlparse(url)
    return parsed.scheme, (parsed.hostname or "").lower(), parsed.port


def remote_file(repo_id: str, filename: str, revision: str | None, endpoint: str, limits: Limits,
                allow_unverified: bool) -> RemoteFile:
    """Ask the hub about ``filename`` (one HEAD request) and check its answer.

    Raises:
        HubFault: a value that vitviz refuses, or a timeout.
        huggingface_hub.errors.HfHubHTTPError: the hub said no (no such repository, revision or file, ...).
    """
    # heavy: huggingface_hub (~0.1 s), loaded on first use so that importing vitviz.models stays cheap
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import get_session

    http = _http(get_session())
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, timeout=_timeout(http, limits), endpoint=endpoint)
    except http.ConnectTimeout:
        raise HubFault("connect-timeout", filename, seconds=limits.connect_s) from None
    except http.TimeoutException:
        raise HubFault("no-answer", filename, seconds=limits.stall_s) from None
    commit = meta.commit_hash
    if commit is None or not COMMIT.fullmatch(commit):
        raise HubFault("hostile", filename, header="X-Repo-Commit", value=shown(commit),
                       expected=Message(N_("commit id (40 hexadecimal characters)")))
    checksum = checksum_kind(meta.etag)
    if checksum is None and not allow_unverified:
        raise HubFault("unverifiable", filename, value=shown(meta.etag))
    if not isinstance(meta.size, int) or meta.size < 0:
        raise HubFault("no-size", filename)
    location = urljoin(url, meta.location or url)
    if urlparse(location).scheme not in ("http", "https"):
        raise HubFault("hostile", filename, header="Location", value=shown(meta.location),
                       expected=Message(N_("http(s) address")))
    return RemoteFile(filename, commit, meta.etag or "", checksum, meta.size, location,
                      _origin(location) == _origin(url))


class _Incomplete(Exception):
    """The answer ended before the file did (a dropped connection that closed cleanly)."""


class _RetryStatus(Exception):
    """A status worth trying again (408, 429, 5xx)."""


class _Receiver:
    """One file's bytes into ``handle``, over as many requests as the connection needs."""

    def __init__(self, remote: RemoteFile, handle: Any, limits: Limits, report: Callable[[int, bool], None]):
        # heavy: huggingface_hub (~0.1 s), loaded on first use so that importing vitviz.models stays cheap
        from huggingface_hub.utils import build_hf_headers, get_session

        self.remote, self.handle, self.limits, self.report = remote, handle, limits, report
        self.session = get_session()
        self.http = _http(self.session)
        self.headers = build_hf_headers() if remote.same_origin else build_hf_headers(token=False)
        self.headers["Accept-Encoding"] = "identity"  # the announced size and checksum are of the raw bytes
        self.done = 0
        self.hash = self._new_hash()

    def _new_hash(self):
        if self.remote.checksum == "sha1":  # a git blob id hashes a header with the size, then the bytes
            return hashlib.sha1(b"blob %d\0" % self.remote.size)
        return hashlib.sha256()

    def run(self) -> str:
        """Receive the whole file; return its checksum (of the announced kind, SHA-256 when unchecked)."""
        http, name = self.http, self.remote.filename
        best = failures = 0
        retryable = (http.RemoteProtocolError, http.ReadError, http.WriteError, http.ConnectError, _Incomplete,
                     _RetryStatus)
        while True:
            try:
                self._attempt()
                return self.hash.hexdigest()
            except http.ConnectTimeout:
                raise HubFault("connect-timeout", name, seconds=self.limits.connect_s) from None
            except http.TimeoutException:
                raise HubFault("stalled", name, seconds=self.limits.stall_s, bytes=self.limits.stall_bytes) from None
            except retryable as exc:
                if self.done > best:  # it got further: the count starts again
                    best, failures = self.done, 0
                failures += 1
                if failures > self.limits.retries:
                    raise HubFault("gave-up", name, count=failures, done=self.done, size=self.remote.size) from exc
                time.sleep(self.limits.backoff(failures))

    def _attempt(self) -> None:
        headers = dict(self.headers)
        if self.done:
            headers["Range"] = f"bytes={self.done}-"
        timeout = _timeout(self.http, self.limits)
        with self.session.stream("GET", self.remote.location, headers=headers, timeout=timeout) as response:
            if response.status_code in _RETRY_STATUS:
                raise _RetryStatus(response.status_code)
            # heavy: huggingface_hub (~0.1 s), loaded on first use so that importing vitviz.models stays cheap
            from huggingface_hub.utils import hf_raise_for_status

            hf_raise_for_status(response)
            self._check_answer(response)
            self._read(response)
        if self.done < self.remote.size:
            raise _Incomplete(self.done)

    def _check_answer(self, response: Any) -> None:
        """Compare where the answer starts and how long it says it is with what was asked and announced."""
        name, size = self.remote.filename, self.remote.size
        start = 0
        if response.status_code == 206:
            found = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if found is None or int(found[3]) != size or int(found[1]) != self.done:
                raise HubFault("wrong-range", name, detail=shown(response.headers.get("Content-Range")))
            start = self.done
        elif self.done:  # the server ignored the range: the file starts over
            self.handle.seek(0)
            self.handle.truncate()
            self.done, self.hash = 0, self._new_hash()
            self.report(0, True)
        length = response.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and start + int(length) > size:
            raise HubFault("too-long", name, size=size)

    def _read(self, response: Any) -> None:
        name, size, limits = self.remote.filename, self.remote.size, self.limits
        window_start, window_bytes = time.monotonic(), 0
        for chunk in response.iter_raw():
            if not chunk:
                continue
            if self.done + len(chunk) > size:  # never a byte past the announced size
                raise HubFault("too-long", name, size=size)
            self.handle.write(chunk)
            self.hash.update(chunk)
            self.done += len(chunk)
            self.report(self.done, False)
            window_bytes += len(chunk)
            now = time.monotonic()
            if now - window_start >= limits.stall_s:
                if window_bytes < limits.stall_bytes:  # a trickle is a stall too
                    raise HubFault("stalled", name, seconds=limits.stall_s, bytes=limits.stall_bytes)
                window_start, window_bytes = now, 0


def receive(remote: RemoteFile, handle: Any, limits: Limits, report: Callable[[int, bool], None]) -> str:
    """Write ``remote``'s bytes into the open binary file ``handle``; return their checksum.

    Args:
        remote: The checked description of the file (:func:`remote_file`).
        handle: A new binary file opened for writing.
        limits: Timeouts and retries.
        report: ``report(done, restarted)`` after each piece (``restarted`` when the file started over).

    Raises:
        HubFault: a stall, a timeout, too many failed resumes, a longer answer than announced, a wrong range.
        huggingface_hub.errors.HfHubHTTPError: the server refused.
    """
    return _Receiver(remote, handle, limits, report).run()
