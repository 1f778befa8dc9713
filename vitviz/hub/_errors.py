"""Why a download failed, in words: :class:`DownloadError` and the faults a hub or mirror can commit.

The transfer code raises a :class:`HubFault` naming the file and what went wrong; :func:`reason` turns it
(or any error of huggingface_hub, the HTTP client or the disk) into a :class:`~vitviz.i18n.Message`, so that
each waiter of a shared download reads it in its own language.
"""
from __future__ import annotations

import errno
import logging
from urllib.parse import urlparse

from vitviz.i18n import N_, Message

from ._progress import _size

__all__ = ["DownloadError", "HubFault", "reason"]

_LOG = logging.getLogger("vitviz.hub")
_CHECKSUM_NAMES = {"sha256": "SHA-256", "sha1": "git SHA-1"}
_SHOWN_CHARS = 80


class DownloadError(Exception):
    """A download that failed, with a message meant for the user.

    The message is kept as a :class:`~vitviz.i18n.Message` (``notice``) when it was made in the download
    thread, so that each waiter re-raises it in its own language (:meth:`Download.result`).
    """

    def __init__(self, message: str | Message) -> None:
        super().__init__(str(message))
        self.notice = message if isinstance(message, Message) else None


class HubFault(Exception):
    """Something a hub or mirror did that vitviz refuses (turned into words by :func:`reason`).

    Args:
        kind: What happened: ``'hostile'`` (a value that would become a path), ``'unverifiable'`` (a checksum
            that is no hash), ``'no-size'``, ``'too-long'``, ``'wrong-range'``, ``'stalled'``,
            ``'no-answer'``, ``'connect-timeout'``, ``'gave-up'``, ``'damaged'``, ``'outside-cache'``.
        filename: The file being fetched.
        values: The numbers and texts the message needs.
    """

    def __init__(self, kind: str, filename: str, **values) -> None:
        super().__init__(f"{kind}: {filename} {values}")
        self.kind, self.filename, self.values = kind, filename, values


def shown(value: object) -> str:
    """A server's value as it may appear in a message: printable, quoted, at most 80 characters."""
    text = repr(str(value))
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


_FAULTS = {
    "hostile": N_(
        "Refused: {host} sent {header} = {value} for {file} of {repo}, which is not a {expected}. vitviz never "
        "lets a server choose a file name in the cache; nothing was written. The mirror is misbehaving: check "
        "HF_ENDPOINT."),
    "unverifiable": N_(
        "Refused: {host} announced {value} as the checksum of {file} of {repo}: neither a SHA-256 nor a git SHA-1, "
        "so the file cannot be checked, and nothing was kept. If you trust this mirror, allow unchecked files with "
        "VITVIZ_HUB_ALLOW_UNVERIFIED=1 (or allow_unverified=True)."),
    "no-size": N_("Refused: {host} did not say how large {file} of {repo} is, so vitviz cannot bound the download; "
                  "nothing was kept. Check HF_ENDPOINT."),
    "too-long": N_("Refused: {host} sent more than the {size} it announced for {file} of {repo}. vitviz stopped "
                   "reading at the announced size and kept nothing. The mirror is misbehaving: check HF_ENDPOINT."),
    "wrong-range": N_("Refused: {host} answered a request for {file} of {repo} with other bytes than asked for "
                      "({detail}); nothing was kept. Check HF_ENDPOINT and try again."),
    "stalled": N_("The download of {file} from {host} stalled: less than {bytes} arrived in {seconds} s. "
                  "The partial file was removed. Check the network (or HF_ENDPOINT) and try again."),
    "no-answer": N_("{host} did not answer within {seconds} s when asked for {file} of {repo}. Check the network "
                    "(or HF_ENDPOINT) and try again."),
    "connect-timeout": N_("Could not connect to {host} within {seconds} s to download {repo}. Check the "
                          "connection, or set HF_ENDPOINT to a mirror you can reach, and try again."),
    "gave-up": N_("The download of {file} from {host} broke off {count} times in a row without getting further "
                  "(at {done} of {size}); vitviz gave up and removed the partial file. Try again later."),
    "damaged": N_("The downloaded {file} of {repo} is damaged: its {checksum} checksum is {actual}…, but "
                  "the hub announced {expected}…. The file was removed from the cache; try again (a mirror may "
                  "be serving a broken copy)."),
    "outside-cache": N_("Refused to write {path}: it is outside the Hugging Face cache ({cache}). Nothing was "
                        "written there; check the cache folder for links that point elsewhere."),
}


def _fault_notice(fault: HubFault, values: tuple[tuple[str, object], ...]) -> Message:
    extra = dict(fault.values)
    if "checksum" in extra:
        extra["checksum"] = _CHECKSUM_NAMES.get(extra["checksum"], extra["checksum"])
    for key in ("size", "done", "bytes"):
        if isinstance(extra.get(key), int):
            extra[key] = _size(extra[key])
    if isinstance(extra.get("seconds"), float):
        extra["seconds"] = f"{extra['seconds']:g}"
    return Message(_FAULTS[fault.kind], values + (("file", fault.filename),) + tuple(extra.items()))


def remote_entry_not_found() -> type[Exception]:
    """The error for a file the hub does not have (``EntryNotFoundError`` before huggingface_hub 1.0)."""
    # heavy: huggingface_hub (~0.1 s), loaded on first use so that importing vitviz.models stays cheap
    from huggingface_hub import errors

    return getattr(errors, "RemoteEntryNotFoundError", errors.EntryNotFoundError)


def reason(exc: BaseException, job) -> Message:
    """Say in words why a download failed (a :class:`Message`: each waiter reads it in its own language).

    Args:
        exc: The error.
        job: The download (``endpoint``, ``repo_id``, ``filenames``, ``revision``).
    """
    # heavy: huggingface_hub (~0.1 s), loaded on first use so that importing vitviz.models stays cheap
    from huggingface_hub import errors

    host = urlparse(job.endpoint).netloc or job.endpoint
    values = (("repo", job.repo_id), ("host", host), ("error", type(exc).__name__))
    if isinstance(exc, HubFault):
        return _fault_notice(exc, values)
    if isinstance(exc, errors.GatedRepoError):
        return Message(N_("{repo} is a gated repository on {host}: accept its terms on the hub and log in first."),
                      values)
    if isinstance(exc, errors.RepositoryNotFoundError):
        return Message(N_("{host} has no model repository named {repo} (or it is private). Check the name; with "
                         "a mirror (HF_ENDPOINT), check that the mirror has it."), values)
    if isinstance(exc, errors.RevisionNotFoundError):
        return Message(N_("{repo} on {host} has no revision '{revision}'."), values + (("revision", job.revision),))
    if isinstance(exc, remote_entry_not_found()):
        names = job.filenames[0] if len(job.filenames) == 1 else Message(
            N_("{first} or {last}"), (("first", ", ".join(job.filenames[:-1])), ("last", job.filenames[-1])))
        return Message(N_("{repo} on {host} has no {files}."), values + (("files", names),))
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        return Message(N_("{host} answered HTTP {status} while downloading {repo} from {host}; try again later."),
                      values + (("status", status),))
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return Message(N_("The disk filled up while downloading {repo} from {host}; the partial file was removed. "
                         "Free some space or point HF_HOME to a larger disk."), values)
    if isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "requests", "urllib3"):
        return Message(N_("Could not download {repo} from {host}: the network failed ({error}). Check the "
                         "connection, or set HF_ENDPOINT to a mirror you can reach, and try again."), values)
    _LOG.error("downloading %s from %s failed", job.repo_id, host, exc_info=exc)
    return Message(N_("Could not download {repo} from {host} ({error}); the server log has the details."), values)
