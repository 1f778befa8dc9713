"""The Hugging Face cache layout, written by vitviz with names it has checked.

huggingface_hub stores a file at ``<cache>/models--<owner>--<name>/``:

* ``blobs/<etag>``: the bytes, named by their checksum (a SHA-256, or a git blob SHA-1 for small files);
* ``snapshots/<commit>/<filename>``: a relative link to the blob;
* ``refs/<revision>``: the commit a branch or tag pointed to.

``try_to_load_from_cache`` and timm read that layout, so vitviz writes the same one. The commit and the
checksum come from the server's headers: every such value is checked (:func:`commit_id`,
:func:`checksum_kind`) before it becomes part of a path, and every path is checked to resolve inside the
cache (:func:`inside`) before anything is written there.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from vitviz.i18n import N_, Message

from ._errors import DownloadError, HubFault
from ._progress import _size

__all__ = ["CacheEntry", "cached_file", "checksum_kind", "check_free_space", "inside"]

COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")
_CACHEDIR_TAG = ("Signature: 8a477f597d28d172789f06886806bc55\n"
                 "# This file is a cache directory tag created by huggingface_hub.\n")


def checksum_kind(etag: str | None) -> str | None:
    """``'sha256'`` or ``'sha1'`` (git blob) for an ETag that is one of those hashes, else None."""
    if etag is None:
        return None
    return "sha256" if _SHA256.fullmatch(etag) else "sha1" if _GIT_SHA1.fullmatch(etag) else None


def relative_name(text: str, what: str) -> str:
    """A file name or revision of ours, checked to stay a relative path without ``..`` (it becomes part of a
    path in the cache).

    Raises:
        ValueError: an absolute name, a ``..`` part, a backslash or a NUL.
    """
    parts = text.split("/")
    if not text or text.startswith("/") or "\\" in text or "\0" in text or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a valid {what} for the hub cache: {text!r}")
    return text


def inside(root: str | Path, path: str | Path, filename: str) -> Path:
    """``path``, after checking that it resolves (links followed) inside the cache ``root``.

    Raises:
        HubFault: ``'outside-cache'``.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise HubFault("outside-cache", filename, path=str(path), cache=str(root))
    return Path(path)


@dataclass(frozen=True)
class CacheEntry:
    """Where one file of one commit goes in the cache (every part checked).

    Attributes:
        root: The cache folder.
        storage: The repository's folder, ``models--<owner>--<name>``.
        filename: The file's name in the repository.
        commit: The commit the hub resolved the revision to (40 hexadecimal characters).
        revision: The branch, tag or commit asked for.
    """

    root: Path
    storage: Path
    filename: str
    commit: str
    revision: str

    @classmethod
    def make(cls, root: str | Path, repo_id: str, filename: str, revision: str, commit: str) -> CacheEntry:
        # heavy: huggingface_hub (~0.1 s), loaded on first use so that importing vitviz.models stays cheap
        from huggingface_hub.file_download import repo_folder_name

        if not COMMIT.fullmatch(commit):  # checked by the caller with a message; a second line of defence
            raise ValueError(f"not a commit id: {commit!r}")
        root = Path(root)
        storage = root / repo_folder_name(repo_id=repo_id, repo_type="model")
        return cls(root, storage, relative_name(filename, "file name"), commit, relative_name(revision, "revision"))

    def _checked(self, path: Path) -> Path:
        return inside(self.root, path, self.filename)

    @property
    def pointer(self) -> Path:
        return self._checked(self.storage / "snapshots" / self.commit / self.filename)

    def blob(self, name: str) -> Path:
        """The blob named by a checksum (``checksum_kind(name)`` must know it)."""
        if checksum_kind(name) is None:
            raise ValueError(f"not a checksum: {name!r}")
        return self._checked(self.storage / "blobs" / name)

    def cached(self, blob_name: str | None) -> Path | None:
        """The file's path if the cache has it (linking it from an existing blob if need be), else None."""
        pointer = self.pointer
        if pointer.is_file():
            self._write_ref()
            return pointer
        if blob_name is not None and self.blob(blob_name).is_file():
            return self.publish(None, blob_name)
        return None

    def lock(self, name: str) -> Path:
        """The lock file that guards one file's download: ``<cache>/.locks/<repo folder>/<name>.lock``, the path
        huggingface_hub locks for a blob, so that replicas sharing a cache (and huggingface_hub itself) wait
        for one download instead of starting their own. ``name`` is a checksum or a hash of our own."""
        folder = self._mkdirs(self.root / ".locks" / self.storage.name)
        return self._checked(folder / f"{relative_name(name, 'lock name')}.lock")

    def temporary(self) -> Path:
        """A new, unique file name for the bytes while they arrive (beside the blobs, removed on failure)."""
        folder = self._mkdirs(self.storage / "blobs")
        return self._checked(folder / f"download.{uuid.uuid4().hex[:12]}.incomplete")

    def publish(self, temporary: Path | None, blob_name: str) -> Path:
        """Move the checked bytes to their blob (``temporary``, or None when the blob is there), link the
        snapshot to it and record the revision; return the snapshot path."""
        blob = self.blob(blob_name)
        if temporary is not None:
            os.replace(temporary, blob)  # atomic, in the same folder
        pointer = self.pointer
        self._mkdirs(pointer.parent)
        link = self._checked(pointer.with_name(f"{pointer.name}.{uuid.uuid4().hex[:12]}.link"))
        try:
            os.symlink(os.path.relpath(blob, pointer.parent), link)
        except OSError:  # no symbolic links here (e.g. Windows without developer mode): a copy
            shutil.copyfile(blob, link)
        os.replace(link, pointer)
        self._write_ref()
        self._tag()
        return pointer

    def _write_ref(self) -> None:
        if self.revision == self.commit:
            return
        ref = self._checked(self.storage / "refs" / self.revision)
        if ref.is_file() and ref.read_text() == self.commit:
            return
        self._mkdirs(ref.parent)
        temporary = self._checked(ref.with_name(f"{ref.name}.{uuid.uuid4().hex[:12]}.tmp"))
        temporary.write_text(self.commit)
        os.replace(temporary, ref)

    def _mkdirs(self, folder: Path) -> Path:
        self._checked(folder).mkdir(parents=True, exist_ok=True)
        return self._checked(folder)  # again, now that it exists

    def _tag(self) -> None:
        """``CACHEDIR.TAG`` at the cache's root, as huggingface_hub writes it (backup tools skip the folder)."""
        tag = self._checked(self.root / "CACHEDIR.TAG")
        if not tag.exists():
            try:
                tag.write_text(_CACHEDIR_TAG)
            except OSError:
                pass


def cached_file(repo_id: str, filenames: str | tuple[str, ...], *, revision: str | None = None,
                root: str | Path | None = None) -> Path | None:
    """The first of ``filenames`` already in the hub cache, without touching the network (a cache entry
    that points outside the cache is ignored).

    Args:
        repo_id: Hub repository.
        filenames: A file name, or names to try in order.
        revision: Branch, tag or commit; the default branch when None.
        root: The cache folder (by default :func:`~vitviz.hub.cache_dir`, read now).
    """
    # heavy: huggingface_hub (~0.1 s), loaded on first use so that importing vitviz.models stays cheap
    from huggingface_hub import try_to_load_from_cache

    from ._settings import cache_dir

    root = cache_dir() if root is None else str(root)
    names = (filenames,) if isinstance(filenames, str) else tuple(filenames)
    for filename in names:
        path = try_to_load_from_cache(repo_id, filename, cache_dir=root, revision=revision)
        if isinstance(path, str):
            try:
                return inside(root, path, filename)
            except HubFault:
                continue
    return None


def check_free_space(needed: int, directory: str | Path) -> None:
    """Refuse a download of ``needed`` bytes that cannot fit in the free space where ``directory`` lives.

    Raises:
        DownloadError: not enough space.
    """
    here = Path(directory)
    for path in (here, *here.parents):
        try:
            free = shutil.disk_usage(path).free
        except OSError:
            continue
        if free < needed:
            raise DownloadError(Message(N_(
                "Not enough disk space: the file needs {needed} but only {free} is free where the "
                "Hugging Face cache lives ({directory}). Free some space or point HF_HOME to a larger disk."
            ), (("needed", _size(needed)), ("free", _size(free)), ("directory", str(directory)))))
        return
