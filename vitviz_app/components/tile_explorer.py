"""The tile explorer: one small map per grid position; hovering a tile shows its map large, with no rerun.

The maps (``vitviz.export.maps_payload``) are sent once through the payload carrier; the component gets the
payload's id and the page's committed index. A click calls ``on_commit(row, col)`` before the rerun.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from ._registry import RuntimeComponent
from .payload import PAYLOAD_JS, payload_carrier

__all__ = ["tile_explorer"]

_HERE = Path(__file__).parent

_tiles = RuntimeComponent(
    "vitviz.tile_explorer",
    js=PAYLOAD_JS + "\n" + (_HERE / "tile_explorer.js").read_text(),
    css=(_HERE / "tile_explorer.css").read_text(),
)


def tile_explorer(payload: Any, *, committed: tuple[int, int], grid_width: int, caption: str, key: str,
                  on_commit: Callable[[int, int], None]) -> None:
    """Mount the explorer of a ``vitviz.export.MapsPayload`` (tier ``'maps'``).

    Args:
        payload: The maps, one per grid position (row-major).
        committed: The page's selected (row, col).
        grid_width: Columns of the grid (to turn (row, col) into the map index).
        caption: Text above the tiles.
        key: Widget key; the carrier uses ``key + '.data'``.
        on_commit: Called with (row, col) when the user clicks a tile.
    """
    payload_carrier(payload.blob, key=f"{key}.data")

    def callback() -> None:
        value = (st.session_state.get(key) or {}).get("commit")
        if isinstance(value, dict) and "row" in value:
            on_commit(int(value["row"]), int(value["col"]))

    index = int(committed[0]) * int(grid_width) + int(committed[1])
    from vitviz.export import colour_stops
    from vitviz.figures import SIMILARITY_SCALE
    from vitviz.i18n import _

    text = {"title": _("Position ({row}, {col}): similarity to every position"),
            "note": _("colour: {lo} … {hi} · hover the tiles, click one to keep it"),
            "tip": _("row {row}, column {col}: {value}")}

    _tiles(data={"payload": payload.id, "committed": index, "caption": caption,
                 "colours": colour_stops(SIMILARITY_SCALE), "text": text}, key=key,
           on_commit_change=callback)
