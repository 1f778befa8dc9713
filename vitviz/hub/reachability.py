"""Reachability: whether the Hugging Face hub (or the mirror in ``HF_ENDPOINT``) answers, decided quickly.

One bounded TCP connection, cached for five minutes, so an offline machine learns it in about a second
instead of timm's ~47 s of retries. ``vitviz.models`` decides with it between the hub, the cache and the bundled
model.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from urllib.parse import urlparse

__all__ = ["hub_reachable"]

_HUB_CHECK: dict[str, tuple[float, bool]] = {}


_HUB_LOCK = threading.Lock()


_HUB_TTL_S = 300.0


def _hub_host() -> tuple[str, int]:
    """Host and port of ``HF_ENDPOINT`` (a mirror, or a local hub in tests), read now."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co")
    return endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)


def _connects(address: tuple[str, int], timeout: float) -> bool:
    """One TCP connection to (host, port), bounded in time (including name resolution)."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection(address, timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def hub_reachable(timeout: float = 2.0, *, refresh: bool = False) -> bool:
    """Whether the Hugging Face hub answers, decided within ``timeout`` seconds and cached for 5 minutes.

    ``HF_HUB_OFFLINE=1`` (or ``VITVIZ_OFFLINE=1``) makes it False without touching the network.
    """
    for var in ("HF_HUB_OFFLINE", "VITVIZ_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    host, port = _hub_host()
    with _HUB_LOCK:
        cached = _HUB_CHECK.get(f"{host}:{port}")
        if cached and not refresh and time.monotonic() - cached[0] < _HUB_TTL_S:
            return cached[1]
        ok = _connects((host, port), timeout)
        _HUB_CHECK[f"{host}:{port}"] = (time.monotonic(), ok)
        return ok
