"""Where downloads come from and go, and how long they may take: read from the environment on every call.

huggingface_hub reads ``HF_ENDPOINT`` and the cache location once, when it is imported; vitviz reads them
(and its own download limits) each time a download starts, so a notebook or a test can change them.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace

__all__ = ["ALLOW_UNVERIFIED_ENV", "DEFAULT_ENDPOINT", "Limits", "allow_unverified", "cache_dir", "endpoint"]

DEFAULT_ENDPOINT = "https://huggingface.co"
ALLOW_UNVERIFIED_ENV = "VITVIZ_HUB_ALLOW_UNVERIFIED"
"""Set to ``1`` to accept files whose checksum the hub (or mirror) does not announce as a SHA-256 or git SHA-1."""
_TRUE = ("1", "true", "yes", "on")
_LOG = logging.getLogger(__name__)


def endpoint() -> str:
    """The hub or mirror to download from: ``HF_ENDPOINT`` read now (without a trailing slash), else
    huggingface_hub's own setting."""
    # heavy: huggingface_hub (~0.1 s), loaded on first use so that importing vitviz.models stays cheap
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT", "").strip() or constants.ENDPOINT or DEFAULT_ENDPOINT).rstrip("/")


def cache_dir() -> str:
    """The Hugging Face hub cache: ``HF_HUB_CACHE`` or ``HF_HOME`` read now, else huggingface_hub's own
    setting."""
    # heavy: huggingface_hub (~0.1 s), loaded on first use so that importing vitviz.models stays cheap
    from huggingface_hub import constants

    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return os.path.expanduser(os.path.expandvars(explicit))
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.path.expandvars(os.environ["HF_HOME"])), "hub")
    return constants.HF_HUB_CACHE


def allow_unverified(explicit: bool | None = None) -> bool:
    """Whether a file without a checkable checksum may be kept: ``explicit`` when given, else
    ``VITVIZ_HUB_ALLOW_UNVERIFIED``."""
    if explicit is not None:
        return bool(explicit)
    return os.environ.get(ALLOW_UNVERIFIED_ENV, "").strip().lower() in _TRUE


@dataclass(frozen=True)
class Limits:
    """How long a download may wait, and how often it tries again.

    Each default can be changed with an environment variable (read when a download starts), or per call
    (``hub.download(..., limits=Limits(stall_s=5))``).

    Attributes:
        connect_s: Seconds to open a connection (``VITVIZ_HUB_CONNECT_TIMEOUT_S``).
        stall_s: A download stalls, and ends with a message, when fewer than ``stall_bytes`` arrive in this
            many seconds; the hub's first answer must come within it too (``VITVIZ_HUB_STALL_TIMEOUT_S``).
        stall_bytes: Bytes that must arrive in every ``stall_s`` window (``VITVIZ_HUB_STALL_BYTES``).
        retries: A connection that drops is resumed (an HTTP range request) at most this many times in a
            row without getting further into the file (``VITVIZ_HUB_RETRIES``).
        backoff_s: Seconds before the first retry; each further retry waits twice as long, at most
            ``16 * backoff_s`` (``VITVIZ_HUB_BACKOFF_S``).
    """

    connect_s: float = 10.0
    stall_s: float = 30.0
    stall_bytes: int = 1024
    retries: int = 5
    backoff_s: float = 1.0

    _ENV = {
        "connect_s": "VITVIZ_HUB_CONNECT_TIMEOUT_S",
        "stall_s": "VITVIZ_HUB_STALL_TIMEOUT_S",
        "stall_bytes": "VITVIZ_HUB_STALL_BYTES",
        "retries": "VITVIZ_HUB_RETRIES",
        "backoff_s": "VITVIZ_HUB_BACKOFF_S",
    }

    def __post_init__(self) -> None:
        for name in ("connect_s", "stall_s", "backoff_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name != "backoff_s" and value == 0):
                raise ValueError(f"Limits.{name} must be a positive number of seconds, not {value!r}")
        if self.retries < 0 or self.stall_bytes < 1:
            raise ValueError(f"Limits: retries must be >= 0 and stall_bytes >= 1 ({self.retries}, {self.stall_bytes})")

    @classmethod
    def from_env(cls) -> Limits:
        """The defaults, each replaced by its environment variable when that holds a valid number (an invalid
        one is logged and ignored)."""
        limits = cls()
        for name, var in cls._ENV.items():
            text = os.environ.get(var, "").strip()
            if not text:
                continue
            try:
                value = int(text) if name in ("retries", "stall_bytes") else float(text)
                limits = replace(limits, **{name: value})
            except ValueError as exc:
                _LOG.warning("ignoring %s=%r: %s", var, text, exc)
        return limits

    def backoff(self, failures: int) -> float:
        """Seconds to wait before retry number ``failures`` (1, 2, …)."""
        return min(self.backoff_s * 2 ** (failures - 1), 16 * self.backoff_s)
