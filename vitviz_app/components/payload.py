"""The payload carrier: delivers one capture's attention payload (bytes) to the page, once.

It draws nothing. Its message is the same on every rerun for the same capture, so Streamlit's message
cache sends it once (later reruns send a reference); the explorer components look the payload up by id
(``vvWhenPayload`` in ``lib.js``).
"""
from __future__ import annotations

from ._registry import RuntimeComponent

__all__ = ["payload_carrier"]

# every rerun hands the carrier its data again: a payload already kept is not copied and decoded again (vvCarry)
_carrier = RuntimeComponent("vitviz.payload", "export default function ({ data }) { vvCarry(data); }\n")


def payload_carrier(blob: bytes, *, key: str) -> None:
    """Mount the carrier of ``blob`` (a ``vitviz.export`` container); invisible."""
    _carrier(data=blob, key=key, height=0)
