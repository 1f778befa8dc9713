"""The payload carrier: delivers one capture's attention payload (bytes) to the page, once.

It draws nothing. Its message is the same on every rerun for the same capture, so Streamlit's message
cache sends it once (later reruns send a reference); the explorer components look the payload up by id.
"""
from __future__ import annotations

from pathlib import Path

from ._registry import RuntimeComponent

__all__ = ["payload_carrier", "PAYLOAD_JS"]

PAYLOAD_JS = (Path(__file__).parent / "payload.js").read_text()

_carrier = RuntimeComponent(
    "vitviz.payload",
    # every rerun hands the carrier its data again: a payload already kept is not copied and decoded again
    js=PAYLOAD_JS + "\nexport default function ({ data }) {\n  const id = vvPeekId(data);\n"
    "  if (id !== null && vvStore().has(id)) return;\n  const p = vvDecode(data);\n  if (p) vvRemember(p);\n}\n",
)


def payload_carrier(blob: bytes, *, key: str) -> None:
    """Mount the carrier of ``blob`` (a ``vitviz.export`` container); invisible."""
    _carrier(data=blob, key=key, height=0)
