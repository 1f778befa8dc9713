"""vitviz_app: the Streamlit UI layer of vitviz (context, sidebar, cached loaders, plotting, downloads, components).

Unlike the ``vitviz`` library, this package imports Streamlit. Pages stay thin: they read the sidebar's
:class:`AppContext` (``context.py``), ask it for the cached forward pass (``loaders.py``), compute views with
``vitviz.analysis`` and draw them with ``vitviz.figures`` through :func:`show_figure` (``plotting.py``);
:func:`download_arrays` (``downloads.py``) hands their arrays out. Browser-side views live in ``components/``.
"""
from .clicks import TILE_LAYER_HEAD, TILE_POSITION, add_cell_targets, add_tile_targets, click_to_state, clicked_cell
from .context import AppContext
from .downloads import download_arrays, npz_bytes, read_npz
from .loaders import Forward, forward_passes
from .plotting import preload_plotly, show_figure
from .sidebar import context, sidebar
from .ui import (
                 HEAD_FUSIONS,
                 PATH,
                 bar_max,
                 entry_point,
                 fallback_notice,
                 head_label,
                 mark_entry_point,
                 model_facts,
                 next_steps,
                 no_classifier_note,
                 page_header,
                 pointer_text,
                 responsive_layout,
                 shapes_note,
                 start_here,
                 static_table,
                 top_table,
)

__all__ = [
    "AppContext",
    "Forward",
    "HEAD_FUSIONS",
    "PATH",
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
    "next_steps",
    "no_classifier_note",
    "npz_bytes",
    "page_header",
    "pointer_text",
    "preload_plotly",
    "read_npz",
    "responsive_layout",
    "shapes_note",
    "start_here",
    "show_figure",
    "sidebar",
    "static_table",
    "top_table",
]
