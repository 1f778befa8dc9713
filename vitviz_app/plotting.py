"""Showing figures: every Plotly figure of the app goes through :func:`show_figure`.

It draws each figure with the camera button of Plotly's toolbar set to save a PNG with a meaningful file name,
and with the figure's own colours. Streamlit's front end treats ``#000001`` … ``#000040`` in a figure's JSON as
placeholders of its chart theme and replaces them, whatever the theme; Inferno's first colour is ``#000004``,
so every zero was drawn light pink (or purple without the theme). :func:`show_figure` therefore writes colour
scales as ``rgb()`` strings, draws with ``theme=None`` and a concrete template (:data:`APP_TEMPLATE`), wraps a
long title for a phone, and starts the figure with the margins Plotly would grow it to
(``vitviz_app.margins``), so that a changed figure is drawn once.
"""
from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from .downloads import slug
from .margins import reserve_margins, text_columns, wide_char

__all__ = ["APP_TEMPLATE", "PRELOAD_KEY", "TITLE_LINE_CHARS", "apply_template", "browser_safe_colours",
           "plotly_config", "preload_plotly", "show_figure", "wrap_title"]


def _app_template() -> go.layout.Template:
    """Plotly's ``plotly_white`` with the app's text colour: a concrete template, free of the placeholder
    colours (``#000001``...) of the template Streamlit installs as Plotly's default, which only its chart
    theme would replace."""
    import plotly.io as pio

    template = go.layout.Template(pio.templates["plotly_white"])
    template.layout.font = dict(color="#1f2430")
    return template


APP_TEMPLATE = _app_template()
"""The template every figure is shown with (and exported as PNG with)."""


def apply_template(fig: go.Figure) -> go.Figure:
    """Give ``fig`` :data:`APP_TEMPLATE`, without validating the template again.

    ``fig.update_layout(template=APP_TEMPLATE)`` validates and copies every attribute of the template
    (8–15 ms a figure here: a third of the How a ViT works page's rerun). The template was validated when it
    was built, so it is stored as its JSON, the way Plotly itself sets its default template on every new
    figure (``BaseFigure._initialize_layout_template``): under a millisecond. The figure's JSON is the same.
    """
    layout = fig.layout
    validate = getattr(layout, "_validate", True)
    try:
        layout._validate = False
        layout.template = APP_TEMPLATE
    finally:
        layout._validate = validate
    return fig

_PLACEHOLDER = re.compile(r"#0000[0-4][0-9]", re.IGNORECASE)


def _rgb(colour: str) -> str:
    if isinstance(colour, str) and colour.startswith("#") and len(colour) == 7:
        return "rgb({}, {}, {})".format(*(int(colour[i:i + 2], 16) for i in (1, 3, 5)))
    return colour


def browser_safe_colours(fig: go.Figure) -> go.Figure:
    """Write every colour scale of ``fig`` (traces, markers, colour axes) as ``rgb()`` strings, so none of
    its colours matches a placeholder that Streamlit's front end replaces (``#000001`` … ``#000040``)."""
    holders = list(fig.data) + [getattr(t, "marker", None) for t in fig.data]
    holders += [fig.layout[name] for name in fig.layout if name.startswith("coloraxis")]
    for holder in holders:
        scale = getattr(holder, "colorscale", None) if holder is not None else None
        if scale and any(_PLACEHOLDER.fullmatch(str(colour)) for _, colour in scale):
            holder.colorscale = [[position, _rgb(colour)] for position, colour in scale]
    return fig


def plotly_config(filename: str, *, clickable: bool = False) -> dict[str, Any]:
    """Plotly config: PNG export at twice the on-screen resolution, no logo, no tools that do nothing here.

    Args:
        filename: Name of the PNG (without suffix) the camera button saves.
        clickable: The figure selects a patch on click, so box/lasso selection is removed too.
    """
    remove = ["autoScale2d", "toggleSpikelines", "hoverCompareCartesian", "hoverClosestCartesian"]
    if clickable:
        remove += ["select2d", "lasso2d"]
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": slug(filename), "scale": 2},
        "modeBarButtonsToRemove": remove,
    }


AXIS_TITLE_LINE_CHARS = 40
"""Columns of an x-axis title's line: longer ones are broken (14 px text in a phone's ~350 px wide chart)."""
TITLE_LINE_CHARS = 30
"""Characters of a figure title that fit on one line of a phone-wide chart (about 330 px at Plotly's 17 px)."""
_BREAKS = (": ", ", ", " · ", " — ", " – ", "：", "，", "；")
_KEPT = (":", ",", "：", "，", "；")  # punctuation that ends its line when the title breaks there


def _split_title(text: str, limit: int) -> tuple[str, str] | None:
    """``(first line, rest)`` of a title, never inside brackets: at the last separator (``': '``, ``', '``,
    ``' · '``, dashes, Chinese ``'：'``, ``'，'``) within ``limit`` columns, else the last space (or the last
    place between two Chinese characters) within it, else the first separator; None when there is nowhere to
    break."""
    depth, width, cuts, spaces, brackets = 0, 0, [], [], []
    for i, char in enumerate(text):
        depth += char in "（"  # a break before a Chinese bracket is allowed, inside it not
        sep = next((b for b in _BREAKS if text.startswith(b, i)), None)
        if depth == 0 and sep is not None and 0 < i < len(text) - len(sep):
            cuts.append((width, i, sep))
        elif depth <= (char == "（") and 0 < width <= limit and (
                char == " " or (wide_char(char) and wide_char(text[i - 1]))):
            spaces.append((i, " " if char == " " else ""))
            if char == "（" or text[i - 1] == "）":  # between Chinese characters, beside a bracket reads best
                brackets.append(spaces[-1])
        depth += (char in "([") - (char in ")]）")
        width += 2 if wide_char(char) else 1
    within = [(i, sep) for columns, i, sep in cuts if columns <= limit]
    if within:
        i, sep = within[-1]
    elif spaces:
        i, sep = (brackets or spaces)[-1]
    elif cuts:
        i, sep = cuts[0][1:]
    else:
        return None
    keep = sep.strip() if sep.strip() in _KEPT else ""  # a colon or comma ends the line
    return f"{text[:i]}{keep}", text[i + len(sep):]


def wrap_title(text: str, limit: int = TITLE_LINE_CHARS) -> str:
    """Break a title wider than ``limit`` columns (a Chinese character counts two) into lines (``<br>``) that fit a
    phone-wide chart.

    A title that already holds a line break is left as it is.
    """
    if "<br>" in text:
        return text
    lines = []
    while text_columns(text) > limit:
        split = _split_title(text, limit)
        if split is None:
            break
        first, text = split
        lines.append(first)
    return "<br>".join([*lines, text])


_PREPARE_LOCK = threading.Lock()


def _prepare(fig: go.Figure, height: int | None) -> None:
    """What :func:`show_figure` does to a figure before drawing it: height, template, colours, wrapped titles."""
    if height is not None:
        fig.update_layout(height=height)
    apply_template(fig)
    browser_safe_colours(fig)
    title = fig.layout.title.text
    if title and wrap_title(title) != title:  # one more line: hang the title from the top, one line lower
        top = fig.layout.margin.t if fig.layout.margin.t is not None else 80
        wrapped = wrap_title(title)
        # pad 22 px: with less, Chromium cut the top of a three-line title's first line (seen at 390 px)
        fig.update_layout(title=dict(text=wrapped, y=1, yref="container", yanchor="top", pad_t=22),
                          margin_t=top + 12 + 22 * wrapped.count("<br>"))
    for axis in fig.select_xaxes():  # a long axis title too: a phone's chart is ~350 px wide
        text = axis.title.text
        if text and wrap_title(text, AXIS_TITLE_LINE_CHARS) != text:
            axis.title.text = wrap_title(text, AXIS_TITLE_LINE_CHARS)
    reserve_margins(fig)  # drawn once: without it every changed figure is drawn a second time, wider
    for frame in fig.frames or ():  # a slider's frames carry their own titles: wrap them the same way
        if frame.layout and frame.layout.title and frame.layout.title.text:
            frame.layout.title.text = wrap_title(frame.layout.title.text)
    fig._vitviz_shown_at = height  # shown once with this height: a cached figure needs no second pass


def show_figure(
    fig: go.Figure, *, key: str, filename: str, on_select: bool | Callable[[], None] = False,
    height: int | None = None,
):
    """Draw a Plotly figure with PNG export; with ``on_select`` the chart reports clicked points.

    A long title is broken onto two lines (:func:`wrap_title`): Plotly never wraps one, and on a phone it
    would be cut.

    Args:
        fig: The figure (modified: its template becomes :data:`APP_TEMPLATE`, its colour scales
            :func:`browser_safe_colours`, its height ``height`` when given, and a long title's line break).
        key: Widget key (required so clicks survive reruns and tests can find the chart).
        filename: PNG file name for the toolbar's camera button.
        on_select: True reruns the page when the user clicks a point; a callable is called first (it reads
            the click from ``st.session_state[key]``, before the page draws its widgets again).
        height: Figure height in pixels.

    A figure already prepared for the same height (a cached one, ``vitviz_app.views.figure_view``) is drawn
    as it is: the steps above are done once per figure, not on every rerun.

    Returns:
        The selection event (``event.selection.points``) when ``on_select``, else None.
    """
    with _PREPARE_LOCK:  # a cached figure is shared by every session: prepared once, by one of them
        if getattr(fig, "_vitviz_shown_at", False) != height:
            _prepare(fig, height)
    config = plotly_config(filename, clickable=bool(on_select))
    with st.container(key=f"fig-{slug(key)}"):  # a stable CSS class (st-key-fig-...) for browser tests
        if on_select:
            return st.plotly_chart(fig, key=key, on_select="rerun" if on_select is True else on_select,
                                   selection_mode="points", config=config, theme=None)
        st.plotly_chart(fig, key=key, config=config, theme=None)
    return None


PRELOAD_KEY = "plotly-preload"
"""Key of the hidden container :func:`preload_plotly` draws in (the CSS class ``st-key-plotly-preload``)."""

_PRELOAD_JS = """<script>(() => {
  if (window.__vvPlotlyPreload) return;
  window.__vvPlotlyPreload = true;
  const load = () => import(new URL(%s, document.baseURI).href).catch(() => {});
  const idle = window.requestIdleCallback || ((f) => setTimeout(f, 100));
  setTimeout(() => idle(load, {timeout: 4000}), %d);
})();</script>"""


@functools.cache
def _plotly_module() -> str | None:
    """The path, relative to the app's base URL, of the code module Streamlit's front end loads for its first
    Plotly chart (``static/js/PlotlyChart.<hash>.js``, shipped with Streamlit); None if this Streamlit has none."""
    found = sorted((Path(st.__file__).parent / "static" / "static" / "js").glob("PlotlyChart.*.js"))
    return f"./static/js/{found[0].name}" if len(found) == 1 else None


def preload_plotly(delay_ms: int = 1500) -> None:
    """Have the browser load Streamlit's Plotly code ``delay_ms`` after the page is drawn, when it is idle.

    A page whose Plotly figures are optional (a toggle) calls this while they are off. The browser loads that
    code (4.7 MB) on a session's first Plotly chart: 1.1 s of the first toggle on the Attention page on this
    2-core machine (``bench/explorer_latency.py --toggle``). Loading it with the page instead (an empty hidden
    chart) cost the page's first view 0.9 s (``bench/first_view.py --page attention``), so it waits until the
    page has been drawn. The module is the very one Streamlit imports later, so it is loaded and run once.
    Nothing is drawn when this Streamlit has no such module (another version's layout): the toggle is then
    only slower the first time.
    """
    module = _plotly_module()
    if module is None:
        return
    with st.container(key=PRELOAD_KEY):
        st.html(_PRELOAD_JS % (json.dumps(module), int(delay_ms)), unsafe_allow_javascript=True)
