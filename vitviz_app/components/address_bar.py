"""The address-bar keeper: writes a page's view, as URL ids, into the browser's address bar. It draws nothing.

A page whose reruns are a fragment's may not change the URL from Python (``vitviz_app.links.publish``): Streamlit
has been seen to lose a fragment rerun's change on its way to the address bar. Its browser component writes it too
(``committed.url`` of the explorers and the patch follower, ``vvKeepInUrl`` in ``lib.js``); this keeper does the
same for a view that has no such component on the page (How a ViT works when its patches are too many to send).
"""
from __future__ import annotations

from collections.abc import Mapping

from ._registry import RuntimeComponent

__all__ = ["keep_in_address_bar"]

_keeper = RuntimeComponent("vitviz.address_bar", "export default function ({ data }) { vvKeepInUrl(data); }\n")


def keep_in_address_bar(params: Mapping[str, str | None], *, key: str) -> None:
    """Write ``params`` (``{key: id, or None to remove}``) into the browser's address bar; invisible."""
    _keeper(data=dict(params), key=key, height=0)
