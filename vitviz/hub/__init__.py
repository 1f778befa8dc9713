"""Hub downloads: fetching weight files from the Hugging Face hub (or a mirror), with progress.

The endpoint (``HF_ENDPOINT``, e.g. a mirror) and the cache (``HF_HUB_CACHE`` / ``HF_HOME``) are read from
the environment on every call: huggingface_hub reads them only once, when it is imported.

A hub or mirror is trusted for the bytes of the weights (safetensors, or ``torch.load(weights_only=True)``),
not for the names of files on this machine: vitviz asks with huggingface_hub's metadata call, checks every
value that becomes part of a path, and writes the standard cache layout itself (so that
``try_to_load_from_cache`` and timm find the files). Every wait is bounded (:class:`Limits`).

- :mod:`~vitviz.hub.downloads`: :func:`download`, :func:`start`, :class:`Download` (shared while in flight);
- :mod:`~vitviz.hub.sources`: :func:`weights_source`, which files hold a timm model's weights;
- :mod:`~vitviz.hub.reachability`: :func:`hub_reachable`, whether the hub answers, decided in about a second;
- ``_settings`` (endpoint, cache, :class:`Limits`), ``_progress`` (:class:`Progress`), ``_errors``
  (:class:`DownloadError` and the reasons), ``_cache`` (the checked cache layout), ``_transfer`` (the
  checked metadata and the bounded transfer).
"""
from ._cache import cached_file
from ._errors import DownloadError
from ._errors import reason as _reason  # noqa: F401  (the names vitviz.hub had before it became a package)
from ._errors import remote_entry_not_found as _remote_entry_not_found  # noqa: F401
from ._progress import Progress
from ._settings import ALLOW_UNVERIFIED_ENV, DEFAULT_ENDPOINT, Limits, cache_dir, endpoint
from .downloads import DOWNLOAD_CHUNK_BYTES, Download, download, in_flight, start
from .reachability import hub_reachable
from .sources import WEIGHT_FILES, WeightsSource, weights_source

__all__ = [
    "ALLOW_UNVERIFIED_ENV",
    "DEFAULT_ENDPOINT",
    "DOWNLOAD_CHUNK_BYTES",
    "Download",
    "DownloadError",
    "Limits",
    "Progress",
    "WEIGHT_FILES",
    "WeightsSource",
    "cache_dir",
    "cached_file",
    "download",
    "endpoint",
    "hub_reachable",
    "in_flight",
    "start",
    "weights_source",
]
