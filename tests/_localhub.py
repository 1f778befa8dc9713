"""A Hugging Face hub on 127.0.0.1 for tests: the part of the protocol ``hf_hub_download`` speaks.

``HEAD``/``GET /{owner}/{name}/resolve/{revision}/{filename}`` answers like the real hub:

* a small (git) file: 200 with ``ETag`` = its git blob SHA-1, ``X-Repo-Commit`` and ``Content-Length``;
* an LFS file (``.safetensors``, ``.bin``): 302 to a "CDN" (a second server on another port, so another
  origin) with ``X-Linked-Etag`` = its SHA-256, ``X-Linked-Size`` and ``X-Repo-Commit``; the CDN serves the
  bytes with range requests (206 + ``Content-Range``) for resumed downloads;
* errors with the hub's ``X-Error-Code``: ``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``.

Faults for tests (each keyed by file name where it concerns one file):

* ``throttle_s`` sleeps between 64 kB chunks (so progress is visible);
* ``cut_after`` drops the connection after some bytes of a file's first GET, ``drop_after`` after some bytes
  of every GET (with ``ignore_range``: a server that never lets a download finish);
* ``corrupt`` serves a file with one byte changed (the announced checksum stays the right one);
* ``headers`` replaces or adds headers on the hub's answers for a file, its 404 included: a hostile
  ``X-Linked-Etag``, ``X-Repo-Commit``, ``ETag``, ``X-Linked-Size`` or ``Location``;
* ``ignore_range`` answers a range request with 200 and the whole file;
* ``longer`` sends that many bytes more than the file, delimited by closing the connection (no
  ``Content-Length``), so only the client can stop it;
* ``trickle_s`` sends the file one byte every that many seconds; ``stall_after`` sends that many bytes,
  then nothing, the connection held open; ``hang`` makes the hub read requests and never answer.

``requests`` records every request; ``sent`` counts the body bytes sent per file.
"""
from __future__ import annotations

import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

CHUNK = 64 * 1024
LFS_SUFFIXES = (".safetensors", ".bin", ".pth")


@dataclass(frozen=True)
class Request:
    """One request the hub or CDN saw."""

    method: str
    path: str
    range: str | None
    server: str  # 'hub' or 'cdn'


@dataclass
class _File:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_sha1(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


@dataclass
class LocalHub:
    """Serve repositories from memory on 127.0.0.1; use as a context manager or ``start()``/``stop()``.

    Attributes:
        throttle_s: Seconds slept after each 64 kB chunk sent.
        cut_after: ``filename -> bytes``: the first GET of that file sends this many bytes, then drops.
        corrupt: File names served with one byte changed.
    """

    throttle_s: float = 0.0
    cut_after: dict[str, int] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    drop_after: dict[str, int] = field(default_factory=dict)
    ignore_range: set[str] = field(default_factory=set)
    longer: dict[str, int] = field(default_factory=dict)
    trickle_s: dict[str, float] = field(default_factory=dict)
    stall_after: dict[str, int] = field(default_factory=dict)
    hang: bool = False
    requests: list[Request] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._repos: dict[str, dict[str, _File]] = {}
        self._servers: list[ThreadingHTTPServer] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.hub_port = self.cdn_port = 0

    # ------------------------------------------------------------------ content

    def add(self, repo_id: str, filename: str, data: bytes) -> None:
        self._repos.setdefault(repo_id, {})[filename] = _File(bytes(data), filename.endswith(LFS_SUFFIXES))

    def commit(self, repo_id: str) -> str:
        return hashlib.sha1(repo_id.encode()).hexdigest()

    def sha256(self, repo_id: str, filename: str) -> str:
        return self._repos[repo_id][filename].sha256

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self.cdn_port}"

    def seen(self, method: str | None = None, server: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if method in (None, r.method) and server in (None, r.server)]

    # ------------------------------------------------------------------ life

    def start(self) -> LocalHub:
        self._stopping.clear()
        for role in ("hub", "cdn"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, role))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            self._servers.append(server)
        self.hub_port, self.cdn_port = (s.server_address[1] for s in self._servers)
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends the answers held open (stall, hang)
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ answers

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_cut(self, filename: str) -> int | None:
        with self._lock:
            cut = self.cut_after.pop(filename, None)
        return self.drop_after.get(filename) if cut is None else cut

    def _count(self, filename: str, size: int) -> None:
        with self._lock:
            self.sent[filename] = self.sent.get(filename, 0) + size

    def _find(self, sha256: str) -> tuple[str, _File] | None:
        for files in self._repos.values():
            for name, file in files.items():
                if file.sha256 == sha256:
                    return name, file
        return None


def _handler(hub: LocalHub, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            path = unquote(urlparse(self.path).path)
            hub._record(Request(self.command, path, self.headers.get("Range"), role))
            if hub.hang:
                hub._stopping.wait()
                self.close_connection = True
                return
            if role == "cdn":
                self._cdn(path, body)
            else:
                self._resolve(path, body)

        # ---------------------------------------------------------- hub: /owner/name/resolve/rev/file
        def _resolve(self, path: str, body: bool) -> None:
            parts = path.strip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                return self._empty(404, {"X-Error-Code": "RepoNotFound"})
            repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            files = hub._repos.get(repo_id)
            if files is None:
                return self._empty(404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
            commit = hub.commit(repo_id)
            if revision not in ("main", commit):
                return self._empty(404, {"X-Error-Code": "RevisionNotFound"})
            file = files.get(filename)
            hostile = hub.headers.get(filename, {})
            if file is None:
                return self._empty(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit, **hostile})
            if file.lfs:
                return self._empty(302, {
                    "Location": f"{hub.cdn}/cdn/{file.sha256}",
                    "X-Repo-Commit": commit,
                    "X-Linked-Etag": f'"{file.sha256}"',
                    "X-Linked-Size": str(len(file.data)),
                    "ETag": f'"{file.git_sha1}"',
                    **hostile,
                })
            self._send(filename, file.data, body, {"ETag": f'"{file.git_sha1}"', "X-Repo-Commit": commit,
                                                   **hostile})

        # ---------------------------------------------------------- cdn: /cdn/<sha256>
        def _cdn(self, path: str, body: bool) -> None:
            found = hub._find(path.rsplit("/", 1)[-1]) if path.startswith("/cdn/") else None
            if found is None:
                return self._empty(404, {})
            filename, file = found
            self._send(filename, file.data, body, {"ETag": f'"{file.sha256}"'})

        # ---------------------------------------------------------- bytes, ranges and faults
        def _send(self, filename: str, data: bytes, body: bool, headers: dict[str, str]) -> None:
            if filename in hub.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start = None if filename in hub.ignore_range else _range_start(self.headers.get("Range"))
            status = 200
            if start is not None and 0 < start < len(data):
                status = 206
                headers = {**headers, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            else:
                start = 0
            payload = data[start:]
            extra = hub.longer.get(filename, 0)
            length = {"Connection": "close"} if extra else {"Content-Length": str(len(payload))}
            self.send_response(status)
            for key, value in {"Accept-Ranges": "bytes", **length, "Content-Type": "application/octet-stream",
                               **headers}.items():
                self.send_header(key, value)
            self.end_headers()
            if not body:
                return
            if extra:
                self.close_connection = True
                payload += b"\0" * extra
            cut = hub._take_cut(filename) if status == 200 or filename in hub.drop_after else None
            stall = hub.stall_after.get(filename)
            trickle = hub.trickle_s.get(filename)
            step = 1 if trickle else CHUNK
            sent = 0
            try:
                for offset in range(0, len(payload), step):
                    chunk = payload[offset:offset + step]
                    if cut is not None and sent + len(chunk) > cut:
                        self.wfile.write(chunk[: cut - sent])
                        self.wfile.flush()
                        hub._count(filename, cut - sent)
                        return self._drop()  # the line drops mid-file
                    if stall is not None and sent + len(chunk) > stall:
                        self.wfile.write(chunk[: stall - sent])
                        self.wfile.flush()
                        hub._count(filename, stall - sent)
                        hub._stopping.wait()  # nothing more, the connection held open
                        return self._drop()
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    sent += len(chunk)
                    hub._count(filename, len(chunk))
                    if trickle and hub._stopping.wait(trickle):
                        return self._drop()
                    if hub.throttle_s:
                        time.sleep(hub.throttle_s)
            except OSError:  # the client hung up
                self.close_connection = True

        def _drop(self) -> None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _empty(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in {"Content-Length": "0", **headers}.items():
                self.send_header(key, value)
            self.end_headers()

    return Handler


def _range_start(header: str | None) -> int | None:
    """Start of a ``bytes=N-`` range (the only form huggingface_hub sends to resume)."""
    if not header or not header.startswith("bytes="):
        return None
    first = header[len("bytes="):].split(",")[0].split("-")[0]
    return int(first) if first.isdigit() else None


class Blackhole:
    """An address on 127.0.0.1 whose connections never open: a listening socket with a full backlog, so the
    kernel drops every new SYN (as a firewall that drops packets does). ``endpoint`` is its URL."""

    def __enter__(self) -> Blackhole:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(0)
        port = self._server.getsockname()[1]
        self._fillers = []
        for _ in range(3):  # fill the accept queue; nobody ever accepts
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            self._fillers.append(filler)
        time.sleep(0.1)
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        for sock in (*self._fillers, self._server):
            sock.close()


# ------------------------------------------------------------------------------------------ the catalogue model
# ``ViT-Ti/16 (AugReg)``: timm's real ``vit_tiny_patch16_224`` architecture (5.7 M parameters, a 23 MB safetensors
# file) under the repository id timm expects for it, with seeded random weights. It is the smallest catalogue
# entry, so the whole path runs unchanged: catalogue key → timm's pretrained config → ``vitviz.hub`` →
# ``load_model``. The fixtures serving it (``vit_tiny``, ``hub_env``, ``catalogue_hub``) are in tests/conftest.py.

CATALOGUE_KEY = "ViT-Ti/16 (AugReg)"
TIMM_NAME = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"
REPO = "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k"


def timm_repo_files(name: str, seed: int) -> tuple[bytes, bytes, dict]:
    """(model.safetensors, config.json, state dict) of a seeded random timm model, as timm's own
    ``save_for_hf`` (behind ``push_to_hf_hub``) writes a hub repository."""
    import tempfile
    from pathlib import Path

    import timm
    import torch
    from timm.models._hub import save_for_hf

    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    with tempfile.TemporaryDirectory() as folder:
        save_for_hf(model, folder, safe_serialization=True)
        files = Path(folder)
        return (files / "model.safetensors").read_bytes(), (files / "config.json").read_bytes(), {
            k: v.clone() for k, v in model.state_dict().items()}
