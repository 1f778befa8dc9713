"""vitviz_app: the Streamlit UI layer of vitviz (sidebar, cached loaders, clicks, downloads).

Unlike the ``vitviz`` library, this package imports Streamlit. Pages stay thin: they read the sidebar's
:class:`AppContext`, ask it for the cached forward pass, compute views with ``vitviz.analysis`` and draw
them with ``vitviz.figures`` through :func:`show_figure`.
"""
from .clicks import TILE_LAYER_HEAD, TILE_POSITION, add_cell_targets, add_tile_targets, click_to_state, clicked_cell
from .export import download_arrays, npz_bytes, read_npz, show_figure
from .loaders import Forward, forward_passes
from .sidebar import AppContext, context, sidebar
from .ui import (
                 HEAD_FUSIONS,
                 bar_max,
                 entry_point,
                 fallback_notice,
                 head_label,
                 mark_entry_point,
                 model_facts,
                 no_classifier_note,
                 page_header,
                 responsive_layout,
                 shapes_note,
                 top_table,
)

__all__ = [
    "AppContext",
    "Forward",
    "HEAD_FUSIONS",
    "TILE_LAYER_HEAD",
    "TILE_POSITION",
    "add_cell_targets",
    "bar_max",
    "add_tile_targets",
    "click_to_state",
    "clicked_cell",
    "context",
    "download_arrays",
    "fallback_notice",
    "entry_point",
    "forward_passes",
    "mark_entry_point",
    "head_label",
    "model_facts",
    "no_classifier_note",
    "npz_bytes",
    "page_header",
    "read_npz",
    "responsive_layout",
    "shapes_note",
    "show_figure",
    "sidebar",
    "top_table",
]
