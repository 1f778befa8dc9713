"""Deprecated: what this module held lives in one module per concept now (kept for one release).

``vitviz.figures.placement`` (where a map lies over the photo), ``vitviz.figures.traces`` (photo, map, grid
lines, the two map figures), ``vitviz.figures.mosaics``, ``vitviz.figures.tiles``, and ``vitviz.images``
(``as_rgb_array``, ``image_size``, the JPEG encoder and the photo cache). Every old name still resolves here,
with a DeprecationWarning.
"""
from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vitviz.layout import TokenLayout

__all__: list[str] = []  # nothing new is defined here

_MOVED = {
    **dict.fromkeys(("MARGIN", "MapExtent", "grid_spec", "map_extent", "style_image_axes"), "vitviz.figures.placement"),
    **dict.fromkeys(("MAP_SCALE", "VALUE_FORMAT", "cell_hover", "cell_outline", "grid_heatmap_figure",
                     "grid_lines_trace", "map_heatmap", "overlay_figure", "photo_trace", "prefix_summary"),
                    "vitviz.figures.traces"),
    **dict.fromkeys(("mosaic", "mosaic_figure", "mosaic_traces", "style_mosaic_axes"), "vitviz.figures.mosaics"),
    **dict.fromkeys(("auto_stride", "tile_array", "tile_labels", "tiled_heatmap_figure"), "vitviz.figures.tiles"),
    **dict.fromkeys(("as_rgb_array", "image_data_uri", "image_size", "photo_data_uri"), "vitviz.images"),
    **dict.fromkeys(("JPEG_QUALITY", "MAX_PHOTO_SIDE", "PHOTO_CACHE_SIZE"), "vitviz.images.encode"),
}


def split_tokens(values: np.ndarray, layout: TokenLayout) -> tuple[np.ndarray, np.ndarray]:
    """Deprecated: ``layout.split(values)`` (``TokenLayout.split``), prefix first as here."""
    warnings.warn("vitviz.figures._base.split_tokens is deprecated: use TokenLayout.split",
                  DeprecationWarning, stacklevel=2)
    return layout.split(values)


def __getattr__(name: str) -> object:
    if name in _MOVED:
        warnings.warn(f"vitviz.figures._base.{name} moved to {_MOVED[name]}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
