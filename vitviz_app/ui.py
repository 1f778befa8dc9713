"""Small pieces of page furniture shared by the pages: headers, model facts, value formatting."""
from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import streamlit as st

from vitviz.i18n import N_, _

from .context import current_context
from .plotting import PRELOAD_KEY

__all__ = ["entry_point", "mark_entry_point", "page_header", "fallback_notice", "shapes_note", "responsive_layout",
           "model_facts", "head_label", "HEAD_FUSIONS", "no_classifier_note", "bar_max", "top_table", "static_table",
           "markdown_table", "pointer_text",
           "PATH", "next_steps", "start_here"]

HEAD_FUSIONS = ("mean", "max", "min")
_FUSION_LABELS = {"mean": N_("Mean over heads"), "max": N_("Max over heads"), "min": N_("Min over heads")}


_RUN = threading.local()


def mark_entry_point() -> None:
    """Say that ``app.py`` is running in this script thread (called first thing in every run of app.py)."""
    _RUN.entered = True


def entry_point() -> None:
    """Make sure a page runs inside ``app.py`` (its navigation and sidebar), also on a fresh server.

    Streamlit treats a ``pages/`` folder next to the entry point as a classic (v1) multipage app until
    ``st.navigation`` has run once in the process; until then a deep link such as ``/attention`` runs the
    page script alone, without ``app.py``. A page that finds no mark from ``app.py`` in its run switches the
    process to ``st.navigation`` mode and reruns, so ``app.py`` runs first and routes to the same page (both
    modes derive the page from its URL path). The mark is per script thread and consumed here, so several
    sessions opening deep links at once each get routed.
    """
    from streamlit.runtime.pages_manager import PagesManager

    entered = getattr(_RUN, "entered", False)
    _RUN.entered = False
    if not entered:
        PagesManager.uses_pages_directory = False
        st.rerun()


STACK_BELOW_PX = 720
"""Main-area width (sidebar excluded) under which side-by-side columns stack, as on a phone."""

METRICS_KEY = "metrics"
"""Key prefix of a container holding one row of metrics (``st.container(key="metrics-...")``): on a narrow
screen such a row wraps instead of stacking."""
_METRIC_ROW = f'[class*="st-key-{METRICS_KEY}-"] [data-testid="stHorizontalBlock"]'
_RESPONSIVE_CSS = f"""<style>
/* The main area is a size container: columns stack when *its* width is small, so an open sidebar on a
   laptop-sized window counts, not only a phone's viewport. */
[data-testid="stMainBlockContainer"] {{ container-type: inline-size; container-name: vitviz-main; }}
@container vitviz-main (max-width: {STACK_BELOW_PX}px) {{
  [data-testid="stHorizontalBlock"] {{ flex-direction: column; flex-wrap: nowrap; }}
  [data-testid="stHorizontalBlock"] > [data-testid="stColumn"] {{
    width: 100% !important; min-width: 100% !important; flex: 1 1 auto !important; }}
  /* a row of metrics wraps instead: each metric keeps its whole value */
  {_METRIC_ROW} {{ flex-direction: row; flex-wrap: wrap; }}
  {_METRIC_ROW} > [data-testid="stColumn"] {{
    width: auto !important; min-width: 7.5rem !important; flex: 1 1 7.5rem !important; }}
}}
/* a map is never squeezed below a readable size, and nothing pushes the page sideways */
[data-testid="stMain"] [data-testid="stPlotlyChart"] {{ min-width: min(300px, 100%); }}
[data-testid="stMain"] img {{ max-width: 100%; height: auto; }}
[data-testid="stMain"] .katex-display {{ overflow-x: auto; overflow-y: hidden; }}
/* a Markdown table (static_table) scrolls within the column on a phone; its numbers and their units stay whole */
[data-testid="stMain"] [data-testid="stMarkdownContainer"] table {{
  display: block; max-width: 100%; overflow-x: auto; }}
[data-testid="stMain"] [data-testid="stMarkdownContainer"] td {{ white-space: nowrap; }}
[data-testid="stMetricValue"] > div {{ overflow: visible; text-overflow: clip; white-space: normal; }}
/* a "next" link's whole label, on as many lines as it needs (Streamlit cuts it with an ellipsis) */
[data-testid="stPageLink"] a, [data-testid="stPageLink"] a * {{
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important; }}
/* the script that loads the Plotly code once the page is idle (plotting.preload_plotly): out of the flow */
.st-key-{PRELOAD_KEY} {{ position: absolute !important; width: 1px; height: 1px; overflow: hidden;
  visibility: hidden; pointer-events: none; }}
/* words for the pointer the reader has: hover and Shift with a mouse, tap on a touch screen (pointer_text) */
@media (hover: none) {{ .vz-hover-only {{ display: none !important; }} }}
@media (hover: hover) {{ .vz-touch-only {{ display: none !important; }} }}
</style>"""


def responsive_layout() -> None:
    """Make the pages work from a phone (390 px) up: inject the layout CSS once per run (``app.py``)."""
    st.html(_RESPONSIVE_CSS)


def page_header(title: str, intro: str) -> None:
    """The page title, the offline-fallback notice when it applies, and what the page shows and how to use it."""
    st.title(title)
    fallback_notice()
    st.markdown(intro, unsafe_allow_html=True)  # our own text; it may hold pointer_text()'s spans


def fallback_notice() -> None:
    """Say on the page, not only in the sidebar, that the model shown is not the one asked for, and why."""
    ctx = current_context()
    loaded = getattr(ctx, "loaded", None)
    if loaded is not None and getattr(loaded, "fallback", False):
        st.warning(loaded.notice, icon=":material/wifi_off:")


def shapes_note(loaded: Any) -> None:
    """Under predictions of ``vitviz-shapes``: it knows only its shapes, and forces any photo into one."""
    from vitviz.models import BUNDLED_MODEL

    if loaded is None or loaded.name != BUNDLED_MODEL or not loaded.labels:
        return
    st.caption(_("vitviz-shapes knows only {count} shapes: {shapes}. A photo is always forced into one of them, "
                 "so these percentages say which shape it resembles most, not what it shows.").format(
        count=len(loaded.labels), shapes=", ".join(loaded.labels)))


def head_label(head: str) -> str:
    """Selectbox text for a head option: ``'mean'`` -> ``'Mean over heads'``, ``'3'`` -> ``'Head 3'``."""
    return _(_FUSION_LABELS[head]) if head in _FUSION_LABELS else _("Head {head}").format(head=head)


def model_facts(fwd: Any) -> None:
    """A row of metrics: tokens, layers, heads, patch size, input size."""
    layout, cap = fwd.layout, fwd.capture
    cells = st.container(key=f"{METRICS_KEY}-model-facts").columns(5)
    cells[0].metric(_("Tokens"), layout.num_tokens, help=layout.describe())
    cells[1].metric(_("Layers"), cap.num_layers)
    cells[2].metric(_("Heads per layer"), cap.num_heads)
    cells[3].metric(_("Patch size"), _("{height}×{width} px").format(
        height=layout.patch_size[0], width=layout.patch_size[1]))  # (H, W)
    cells[4].metric(_("Model input"), _("{height}×{width} px").format(
        height=layout.input_size[0], width=layout.input_size[1]))  # (H, W)


def no_classifier_note() -> None:
    st.info(
        _("This model has no classifier head (self-supervised features), so there are no class predictions. "
          "Attention maps and rollout still show where it looks."),
        icon=":material/info:",
    )


def top_table(columns: dict[str, list], value_name: str, values: list[float], *, upper: float,
              value_format: str = "{:.1%}", formats: dict[str, str] | None = None) -> None:
    """A short ranked list as a static table: ``columns``, then ``value_name`` (``value_format``, a percentage by
    default) with a bar (0 … ``upper``) behind it; ``formats`` formats other columns (``{"q·k": "{:.3f}"}``).

    For a few rows that change on every click: Streamlit's interactive data grid costs tens of milliseconds
    of the browser's time each time it is drawn again; an HTML table a few.
    """
    import pandas as pd

    frame = pd.DataFrame({**columns, value_name: values})
    styler = (frame.style.hide(axis="index").format({**(formats or {}), value_name: value_format})
              .bar(subset=[value_name], vmin=0.0, vmax=upper, color="#f4a26166", height=70))
    st.table(styler)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|$~#])")


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` as a Markdown table: the first row's keys head the columns, each cell is its value's text as
    written (Markdown's and LaTeX's special characters escaped, line breaks made spaces)."""
    def cell(value: Any) -> str:
        return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))

    if not rows:
        return ""
    columns = list(rows[0])
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def static_table(rows: Sequence[Mapping[str, Any]]) -> None:
    """A few rows of text as a plain table (:func:`markdown_table`).

    Instead of ``st.table``, on a page whose other elements do not need it: ``st.table`` has the browser load
    Streamlit's Arrow code (about 1 MB of JavaScript) before it draws, which cost the ViT vs CNN page's first view
    about 0.24 s on this 2-core machine (bench/README.md §16).
    """
    if rows:
        st.markdown(markdown_table(rows))


def bar_max(values) -> float:
    """Upper end for a progress-bar column: the largest finite value, or 1 when there is none (NaN weights)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 0.0
    return top if top > 0 else 1.0


def pointer_text(hover: str, touch: str) -> str:
    """Markdown that reads ``hover`` with a mouse and ``touch`` on a touch screen, chosen in the browser by the CSS
    media query ``(hover: none)`` (:func:`responsive_layout`); show it with ``unsafe_allow_html=True``."""
    return f'<span class="vz-hover-only">{hover}</span><span class="vz-touch-only">{touch}</span>'


PATH = ("overview", "how_vit_works", "patches", "attention", "rollout", "position_embeddings", "heads_depth",
        "compare", "vit_vs_cnn")
"""The learner's path through the pages: what a page's "next" link leads to."""
_NEXT = {
    "how_vit_works": N_("How a ViT works: the whole forward pass on your image, one step at a time"),
    "patches": N_("Patches: how the image is cut into patches, and what the patch size changes"),
    "attention": N_("Attention: where each patch looks, in every layer and head"),
    "rollout": N_("Rollout: attention followed through all the layers"),
    "position_embeddings": N_("Position embeddings: how the model knows where each patch sits"),
    "heads_depth": N_("Heads & depth: how far each head looks, and what the tokens carry"),
    "compare": N_("Compare methods: which explanation really tracks what the model uses"),
    "vit_vs_cnn": N_("ViT vs CNN: how far each layer reaches, and how much data each needs"),
}
_ICONS = {"how_vit_works": ":material/school:", "patches": ":material/grid_on:",
          "attention": ":material/center_focus_strong:", "rollout": ":material/layers:",
          "position_embeddings": ":material/apps:", "heads_depth": ":material/insights:",
          "compare": ":material/compare:", "vit_vs_cnn": ":material/difference:"}


def _page_link(name: str) -> None:
    st.page_link(f"pages/{name}.py", label=_(_NEXT[name]), icon=_ICONS[name])


def next_steps(page: str) -> None:
    """The end of a page: a link to the next page of the learner's path (:data:`PATH`)."""
    if page not in PATH or page == PATH[-1]:
        return
    st.divider()
    st.markdown(_("**Next**"))
    _page_link(PATH[PATH.index(page) + 1])


START_KEY = "start_here_hidden"


def start_here() -> None:
    """A first visit's guide on the Overview: How a ViT works, then Patches, then Attention (until hidden)."""
    if st.session_state.get(START_KEY):
        return
    with st.container(border=True, key="start-here"):
        st.markdown(_("**New to Vision Transformers? Start here**, three pages in order:"))
        for name in ("how_vit_works", "patches", "attention"):
            _page_link(name)

        def hide() -> None:
            st.session_state[START_KEY] = True

        st.button(_("Hide this guide"), key="start_here_hide", on_click=hide, type="tertiary")
