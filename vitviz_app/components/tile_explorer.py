"""The tile explorer: one small map per grid position; hovering a tile shows its map large, with no rerun.

The maps (``vitviz.export.maps_payload``) are sent once through the payload carrier; the component gets the
payload's id and the page's committed position. A click calls ``on_commit(row, col)`` before the rerun, once its
handler has checked it against the grid.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._contract import as_cell, commit_handler, mount_data
from ._registry import component
from .payload import payload_carrier

__all__ = ["tile_explorer"]

_tiles = component("tile_explorer")


def tile_explorer(payload: Any, *, committed: tuple[int, int], grid: tuple[int, int], caption: str, key: str,
                  on_commit: Callable[[int, int], None], caption_touch: str | None = None,
                  url: dict[str, str | None] | None = None) -> None:
    """Mount the explorer of a ``vitviz.export.MapsPayload`` (tier ``'maps'``).

    Args:
        payload: The maps, one per grid position (row-major).
        committed: The page's selected (row, col).
        grid: The grid's (rows, cols).
        caption: Text above the tiles.
        caption_touch: The same for a touch screen (tap, no hover); ``caption`` when None.
        url: The committed position's URL parameters (``{key: id, or None}``), written into the address bar by the
            explorer (``vvKeepInUrl``).
        key: Widget key; the carrier uses ``key + '.data'``.
        on_commit: Called with (row, col) when the user clicks a tile (checked against the grid).
    """
    from vitviz.export import colour_stops
    from vitviz.figures import SIMILARITY_SCALE
    from vitviz.i18n import _

    payload_carrier(payload.blob, key=f"{key}.data")
    text = {"title": _("Position ({row}, {col}): similarity to every position"),
            "note": _("colour: {lo} … {hi} · hover the tiles, click one to keep it"),
            "note_touch": _("colour: {lo} … {hi} · tap a tile to see it large"),
            "tip": _("row {row}, column {col}: {value}"), "caption": caption, "caption_touch": caption_touch or caption}
    position = {"row": int(committed[0]), "col": int(committed[1]), **({"url": url} if url is not None else {})}
    _tiles(data=mount_data(payload=payload.id, committed=position,
                           colours=colour_stops(SIMILARITY_SCALE), text=text),
           key=key, on_commit_change=commit_handler(key, lambda value: as_cell(value, grid),
                                                    lambda cell: on_commit(*cell), "tile explorer"))
