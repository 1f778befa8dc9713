"""A hub or mirror that misbehaves (``tests/_localhub.py`` in its fault modes): vitviz refuses what could hurt.

Each test asserts the exact outcome (the message, what was kept) and that nothing was written outside a
temporary hub cache: the cache lives at ``tmp_path/home/.cache/huggingface/hub``, so a path that escapes it
(``../../../escape``) still lands inside ``tmp_path``, where :func:`_outside` finds it.
"""
from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import pytest

from tests._localhub import Blackhole, LocalHub

REPO = "someone/tiny"
SIZE = 300_000
WEIGHTS = bytes(range(256)) * (SIZE // 256) + b"w" * (SIZE % 256)
CONFIG = b'{"architecture": "test_vit"}'


@pytest.fixture
def cache(monkeypatch, tmp_path) -> Path:
    """An empty hub cache deep inside ``tmp_path``, online, with no unchecked files allowed."""
    import huggingface_hub.constants

    for var in ("VITVIZ_OFFLINE", "HF_HUB_OFFLINE", "VITVIZ_HUB_ALLOW_UNVERIFIED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    path = tmp_path / "home" / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(path))
    return path


@pytest.fixture
def serve(cache, monkeypatch):
    """``serve(**faults)``: a started :class:`LocalHub` with ``REPO`` (an LFS weights file and a small git
    file), at ``HF_ENDPOINT``."""
    hubs: list[LocalHub] = []

    def _serve(**faults) -> LocalHub:
        local = LocalHub(**faults).start()
        hubs.append(local)
        local.add(REPO, "model.safetensors", WEIGHTS)
        local.add(REPO, "config.json", CONFIG)
        monkeypatch.setenv("HF_ENDPOINT", local.endpoint)
        return local

    yield _serve
    for local in hubs:
        local.stop()


def _fast():
    from vitviz import hub

    return hub.Limits(connect_s=1.0, stall_s=1.0, retries=2, backoff_s=0.01)


def _outside(tmp_path: Path, cache: Path) -> list[str]:
    """Everything under ``tmp_path`` that is not the cache or one of the folders holding it."""
    holders = {cache, *cache.parents}
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                  if p not in holders and cache not in p.parents)


def _kept(cache: Path) -> list[str]:
    """Files (and links) in the cache; folders left out, and the empty lock files that huggingface_hub leaves
    too (``.locks/<repo folder>/<checksum>.lock``)."""
    locks = [p for p in (cache / ".locks").rglob("*") if p.is_file()]
    assert all(p.suffix == ".lock" and p.stat().st_size == 0 for p in locks), locks
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*")
                  if (p.is_symlink() or not p.is_dir()) and p not in locks)


def _refused(filename: str = "model.safetensors", **kwargs) -> str:
    from vitviz import hub

    with pytest.raises(hub.DownloadError) as info:
        hub.download(REPO, filename, limits=kwargs.pop("limits", _fast()), timeout=30, **kwargs)
    assert "Traceback" not in str(info.value)
    return str(info.value)


# ------------------------------------------------------------------------------------ values that become paths


@pytest.mark.parametrize("etag", ["../../../escape/PWNED", "/tmp/PWNED", "0", "", "A" * 64, "a" * 63,
                                  "blobs/../" + "a" * 64])
def test_a_hostile_linked_etag_never_names_a_file(serve, cache, tmp_path, etag):
    local = serve(headers={"model.safetensors": {"X-Linked-Etag": f'"{etag}"'}})
    message = _refused()
    assert re.match(rf"Refused: 127\.0\.0\.1:\d+ announced '{re.escape(etag)}' as the checksum of "
                    rf"model\.safetensors of {REPO}: neither a SHA-256 nor a git SHA-1", message), message
    assert "VITVIZ_HUB_ALLOW_UNVERIFIED=1" in message
    assert local.seen("GET") == []  # refused from the headers, before a byte was fetched
    assert _outside(tmp_path, cache) == [] and not cache.exists()


def test_an_etag_of_0_on_a_small_file_is_refused_not_taken_for_no_checksum(serve, cache, tmp_path):
    """The early return that accepted a damaged file announced with ``ETag: "0"``."""
    serve(headers={"config.json": {"ETag": '"0"'}}, corrupt={"config.json"})
    assert _refused("config.json").startswith("Refused: ")
    assert _outside(tmp_path, cache) == [] and not cache.exists()


@pytest.mark.parametrize("commit", ["../../escape/X", "/tmp/X", "main", "a" * 39, "a" * 40 + "/..", ""])
def test_a_hostile_repo_commit_is_refused_before_anything_is_written(serve, cache, tmp_path, commit):
    local = serve(headers={"model.safetensors": {"X-Repo-Commit": commit}})
    message = _refused()
    assert re.match(rf"Refused: 127\.0\.0\.1:\d+ sent X-Repo-Commit = '{re.escape(commit)}' for model\.safetensors "
                    rf"of {REPO}, which is not a commit id \(40 hexadecimal characters\)\.", message), message
    assert local.seen("GET") == []
    assert _outside(tmp_path, cache) == [] and not cache.exists()


def test_a_404_with_a_hostile_repo_commit_writes_nothing(serve, cache, tmp_path):
    """huggingface_hub 2.4.0 records a missing file at ``.no_exist/<X-Repo-Commit>/<file>``, unchecked."""
    serve(headers={"missing.bin": {"X-Repo-Commit": "../../escape/X"}})
    assert re.fullmatch(rf"{REPO} on 127\.0\.0\.1:\d+ has no missing\.bin\.", _refused("missing.bin"))
    assert _outside(tmp_path, cache) == [] and not cache.exists()


def test_a_location_that_is_not_http_is_refused(serve, cache, tmp_path):
    serve(headers={"model.safetensors": {"Location": "file:///etc/passwd"}})
    message = _refused()
    assert "sent Location = 'file:///etc/passwd'" in message and "not a http(s) address" in message
    assert _outside(tmp_path, cache) == [] and not cache.exists()


@pytest.mark.parametrize("size", ["lots", "-5"])
def test_a_size_that_is_no_size_is_refused(serve, cache, tmp_path, size):
    serve(headers={"model.safetensors": {"X-Linked-Size": size}})
    assert re.match(r"Refused: 127\.0\.0\.1:\d+ did not say how large model\.safetensors", _refused())
    assert _outside(tmp_path, cache) == [] and not cache.exists()


def test_a_link_in_the_cache_that_points_outside_is_never_written_through(serve, cache, tmp_path):
    """The last line of defence: every path written must resolve inside the cache."""
    from vitviz import hub

    local = serve()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    storage = cache / "models--someone--tiny"
    storage.mkdir(parents=True)
    (storage / "blobs").symlink_to(elsewhere, target_is_directory=True)
    message = _refused()
    assert re.match(r"Refused to write .*/models--someone--tiny/blobs/\w+: it is outside the Hugging Face cache",
                    message), message
    assert list(elsewhere.iterdir()) == []
    (storage / "blobs").unlink()
    assert hub.download(REPO, "model.safetensors", limits=_fast()).read_bytes() == WEIGHTS  # the cache repaired
    assert len(local.seen("GET", "cdn")) == 1


# ------------------------------------------------------------------------------------ checksums


def test_an_unverifiable_checksum_is_kept_only_when_the_user_allows_it(serve, cache, tmp_path, monkeypatch):
    from vitviz import hub

    serve(headers={"model.safetensors": {"X-Linked-Etag": '"../../../escape/PWNED"'}})
    assert _refused().startswith("Refused: ")
    path = hub.download(REPO, "model.safetensors", limits=_fast(), allow_unverified=True)
    assert path.read_bytes() == WEIGHTS
    blob = Path(os.path.realpath(path))  # named by the SHA-256 of what arrived, never by the server's value
    assert blob.parent == cache / "models--someone--tiny" / "blobs"
    assert blob.name == hashlib.sha256(WEIGHTS).hexdigest()
    assert hub.cached_file(REPO, "model.safetensors") == path  # try_to_load_from_cache finds it
    assert _outside(tmp_path, cache) == []

    monkeypatch.setenv("VITVIZ_HUB_ALLOW_UNVERIFIED", "1")  # the same, by the environment
    serve(headers={"config.json": {"ETag": 'W/"mirror-7"'}})
    assert hub.download(REPO, "config.json", limits=_fast()).read_bytes() == CONFIG
    assert "Refused" in _refused("config.json", allow_unverified=False)  # the parameter wins


def test_a_damaged_small_file_is_refused_by_its_git_sha1(serve, cache, tmp_path):
    serve(corrupt={"config.json"})
    message = _refused("config.json")
    assert "damaged: its git SHA-1 checksum is" in message
    assert _kept(cache) == [] and _outside(tmp_path, cache) == []


def test_a_good_download_writes_the_standard_cache_layout(serve, cache, tmp_path):
    """blobs/<sha256>, snapshots/<commit>/<file> as a relative link, refs/main: what huggingface_hub and timm
    read."""
    from huggingface_hub import try_to_load_from_cache

    from vitviz import hub

    local = serve()
    path = hub.download(REPO, "model.safetensors", limits=_fast())
    commit, sha = local.commit(REPO), local.sha256(REPO, "model.safetensors")
    assert _kept(cache) == ["CACHEDIR.TAG", "models--someone--tiny/blobs/" + sha,
                            "models--someone--tiny/refs/main",
                            f"models--someone--tiny/snapshots/{commit}/model.safetensors"]
    assert os.readlink(path) == f"../../blobs/{sha}"
    assert (cache / "models--someone--tiny" / "refs" / "main").read_text() == commit
    assert try_to_load_from_cache(REPO, "model.safetensors", cache_dir=str(cache)) == str(path)
    assert _outside(tmp_path, cache) == []


# ------------------------------------------------------------------------------------ bounded transfers


def _count_writes(monkeypatch) -> list[int]:
    """The sizes of the writes into the file being downloaded."""
    from vitviz.hub import downloads

    written: list[int] = []
    receive = downloads.receive

    class Counting:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data: bytes) -> int:
            written.append(len(data))
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

    monkeypatch.setattr(downloads, "receive", lambda remote, handle, *a: receive(remote, Counting(handle), *a))
    return written


def test_a_body_longer_than_announced_is_refused_at_the_announced_size(serve, cache, tmp_path, monkeypatch):
    """The server sends 20 MB more than announced, without a Content-Length: only the client can stop it."""
    from vitviz import hub

    serve(longer={"model.safetensors": 20_000_000})
    written = _count_writes(monkeypatch)
    with pytest.raises(hub.DownloadError, match=r"sent more than the 300\.0 kB it announced for model\.safetensors"):
        hub.download(REPO, "model.safetensors", limits=_fast(), timeout=30)
    assert 0 < sum(written) <= SIZE  # the piece that would cross the announced size is never written
    assert _kept(cache) == [] and _outside(tmp_path, cache) == []


def test_a_content_length_above_the_announced_size_is_refused_before_a_byte_is_written(serve, cache, tmp_path,
                                                                                       monkeypatch):
    from vitviz import hub

    serve(headers={"model.safetensors": {"X-Linked-Size": str(SIZE - 10)}})
    written = _count_writes(monkeypatch)
    with pytest.raises(hub.DownloadError, match=r"sent more than the 300\.0 kB it announced"):
        hub.download(REPO, "model.safetensors", limits=_fast(), timeout=30)
    assert written == []
    assert _kept(cache) == [] and _outside(tmp_path, cache) == []


def test_a_server_that_ignores_range_and_drops_gives_up_after_the_retries(serve, cache, tmp_path):
    local = serve(ignore_range={"model.safetensors"}, drop_after={"model.safetensors": 100_000})
    message = _refused()
    assert re.match(r"The download of model\.safetensors from 127\.0\.0\.1:\d+ broke off 3 times in a row without "
                    r"getting further \(at 100\.0 kB of 300\.0 kB\); vitviz gave up", message), message
    assert [g.range for g in local.seen("GET", "cdn")] == [None, "bytes=100000-", "bytes=100000-"]  # retries=2
    assert _kept(cache) == [] and _outside(tmp_path, cache) == []


def test_drops_that_get_further_each_time_are_resumed_to_the_end(serve, cache):
    """More drops than ``retries``, but each resume gets further: the count starts again, the file arrives."""
    from vitviz import hub

    local = serve(drop_after={"model.safetensors": 70_000})
    path = hub.download(REPO, "model.safetensors", limits=_fast(), timeout=30)
    assert path.read_bytes() == WEIGHTS
    assert [g.range for g in local.seen("GET", "cdn")] == [None] + [f"bytes={n}-" for n in range(70_000, SIZE, 70_000)]


def test_a_trickling_hub_stalls_with_a_message(serve, cache, tmp_path):
    """A byte every 0.2 s is not a download: less than ``stall_bytes`` in ``stall_s`` ends it."""
    local = serve(trickle_s={"model.safetensors": 0.2})
    start = time.monotonic()
    message = _refused()
    assert re.match(r"The download of model\.safetensors from 127\.0\.0\.1:\d+ stalled: less than 1\.0 kB arrived "
                    r"in 1 s\. The partial file was removed\.", message), message
    assert time.monotonic() - start < 10 and 0 < local.sent["model.safetensors"] < 50
    assert _kept(cache) == [] and _outside(tmp_path, cache) == []


def test_a_hub_that_stops_sending_stalls_with_a_message(serve, cache, tmp_path):
    serve(stall_after={"model.safetensors": 100_000})
    assert "stalled: less than 1.0 kB arrived in 1 s" in _refused()
    assert _kept(cache) == [] and _outside(tmp_path, cache) == []


def test_a_hub_that_never_answers_times_out_with_a_message(serve, cache, tmp_path):
    serve(hang=True)
    message = _refused()
    assert re.fullmatch(rf"127\.0\.0\.1:\d+ did not answer within 1 s when asked for model\.safetensors of {REPO}\. "
                        r"Check the network \(or HF_ENDPOINT\) and try again\.", message), message
    assert _outside(tmp_path, cache) == [] and not cache.exists()


def test_a_connection_that_never_opens_times_out_with_a_message(cache, tmp_path, monkeypatch):
    with Blackhole() as hole:
        monkeypatch.setenv("HF_ENDPOINT", hole.endpoint)
        start = time.monotonic()
        message = _refused()
    assert re.fullmatch(rf"Could not connect to 127\.0\.0\.1:\d+ within 1 s to download {REPO}\. Check the "
                        r"connection, or set HF_ENDPOINT to a mirror you can reach, and try again\.", message), message
    assert time.monotonic() - start < 10
    assert _outside(tmp_path, cache) == [] and not cache.exists()


def test_the_progress_line_moves_every_second_while_no_byte_arrives(serve, cache):
    from vitviz import hub

    serve(stall_after={"model.safetensors": 1000})
    job = hub.start(REPO, "model.safetensors", limits=hub.Limits(stall_s=5.0, retries=0))
    lines = []
    for _ in range(3):
        time.sleep(1.05)
        lines.append(job.progress().describe())
    assert len(set(lines)) == 3, lines  # a new line every second
    assert lines[-1].startswith("model.safetensors: 1.0 kB of 300.0 kB · waiting for data 3 s · "), lines
    assert lines[-1].endswith(" left · 3 s elapsed"), lines
    with pytest.raises(hub.DownloadError, match="stalled"):
        job.result(10)
    assert job.progress().finished


def test_limits_come_from_the_environment_and_back_off_doubles_up_to_a_cap(monkeypatch):
    from vitviz import hub

    monkeypatch.setenv("VITVIZ_HUB_CONNECT_TIMEOUT_S", "2.5")
    monkeypatch.setenv("VITVIZ_HUB_STALL_TIMEOUT_S", "7")
    monkeypatch.setenv("VITVIZ_HUB_RETRIES", "3")
    monkeypatch.setenv("VITVIZ_HUB_BACKOFF_S", "not a number")  # ignored (logged), never a crash
    limits = hub.Limits.from_env()
    assert (limits.connect_s, limits.stall_s, limits.retries, limits.backoff_s) == (2.5, 7.0, 3, 1.0)
    assert [limits.backoff(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 16, 16]
    with pytest.raises(ValueError, match="stall_s"):
        hub.Limits(stall_s=0)


def test_cache_names_of_our_own_are_checked_too():
    from vitviz.hub._cache import checksum_kind, relative_name

    assert checksum_kind("a" * 64) == "sha256" and checksum_kind("0" * 40) == "sha1"
    assert checksum_kind("0") is checksum_kind("A" * 64) is checksum_kind(None) is None
    assert relative_name("refs/pr/1", "revision") == "refs/pr/1"
    for bad in ("../x", "a/../../x", "/etc/passwd", "a\\b", "", "a//b", "x\0"):
        with pytest.raises(ValueError):
            relative_name(bad, "revision")
