"""Margins reserved before Plotly measures (vitviz_app.margins): a changed figure is drawn once, not twice.

The estimates are checked against what Chromium pushed for these texts (the browser side is checked on real
pages in test_explorer_browser.py: no figure of the Attention page is widened there).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from vitviz_app.margins import COLOURBAR_PX, SLIDER_PX, reserve_margins, text_columns


def _heatmap(colourbar_title: str = "attention", **layout) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=np.zeros((3, 3)), colorbar=dict(title=dict(text=colourbar_title))))
    fig.update_layout(**{"margin": dict(l=10, r=10, t=60, b=10), **layout})
    fig.update_xaxes(title_text="x (px)", range=[0, 96])
    fig.update_yaxes(title_text="y (px)", range=[96, 0])
    return fig


def test_an_overlay_gets_room_for_its_axes_and_colour_bar():
    fig = reserve_margins(_heatmap())
    m = fig.layout.margin
    # Chromium pushed l 51 (ticks "0".."96" + title), b 51, r 103 for "attention": each estimate covers it
    assert 51 <= m.l <= 70 and 51 <= m.b <= 70 and 103 <= m.r <= 120
    assert m.t == 60  # the top (title) is set by the figure itself and left alone


@pytest.mark.parametrize("title,pushed", [("fraction of max", 155), ("占最大值的比例", 146), ("cosine", 84)])
def test_a_longer_colour_bar_title_gets_a_wider_right_margin(title, pushed):
    r = reserve_margins(_heatmap(title)).layout.margin.r
    assert pushed <= r <= pushed + 25 and r >= COLOURBAR_PX


def test_long_category_labels_widen_the_left_margin():
    labels = ["ice lolly, lolly, lollipop, popsicle", "cat"]
    fig = go.Figure(go.Bar(x=[0.5, 0.2], y=labels, orientation="h"))
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), showlegend=False)
    fig.update_xaxes(title_text="probability")
    m = reserve_margins(fig).layout.margin
    assert m.l >= 197 and m.l <= 197 + 60  # Chromium: 197 px for this label
    assert text_columns(labels[0]) == len(labels[0])


def test_margins_are_only_widened_and_legends_and_hidden_axes_are_left_alone():
    wide = reserve_margins(_heatmap(margin=dict(l=300, r=300, t=60, b=300)))
    assert (wide.layout.margin.l, wide.layout.margin.r, wide.layout.margin.b) == (300, 300, 300)
    below = go.Figure([go.Scatter(y=[1, 2], name="a"), go.Scatter(y=[2, 1], name="b")])
    below.update_layout(margin=dict(l=10, r=10, t=60, b=10), legend=dict(orientation="h", y=-0.2))
    below.update_xaxes(visible=False)
    below.update_yaxes(visible=False)
    m = reserve_margins(below).layout.margin  # a legend below: its height depends on how its entries wrap
    assert (m.l, m.r, m.b) == (10, 10, 10)
    bare = go.Figure(go.Image(z=np.zeros((4, 4, 3), dtype=np.uint8)))
    bare.update_layout(margin=dict(l=10, r=10, t=60, b=10))
    bare.update_xaxes(visible=False)
    bare.update_yaxes(visible=False)
    assert (bare.layout.margin.l, bare.layout.margin.r, bare.layout.margin.b) == (10, 10, 10)


def test_a_frame_slider_gets_its_room_below():
    fig = _heatmap(sliders=[dict(steps=[dict(label="0")])])
    assert reserve_margins(fig).layout.margin.b >= SLIDER_PX


def test_every_shown_figure_goes_through_it():
    """show_figure's preparation reserves the margins (and only once per cached figure)."""
    from vitviz_app.plotting import _prepare

    fig = _heatmap()
    _prepare(fig, 400)
    assert fig.layout.margin.r > 10 and fig.layout.height == 400


@pytest.mark.parametrize("names,title,pushed", [([f"head {h}" for h in range(12)], "head", 115),
                                                (["cls", "patch (7, 7)", "mean of all patches"], "", 192),
                                                ([f"注意力头 {h}" for h in range(12)], "注意力头", 131)])
def test_a_legend_beside_the_plot_gets_room_for_its_longest_entry(names, title, pushed):
    """Chromium pushed these right margins for the heads-distance and walk-through norm figures' legends."""
    fig = go.Figure([go.Scatter(y=[0, 1], name=name) for name in names])
    fig.update_layout(margin=dict(l=10, r=10, t=60, b=10), legend=dict(title=dict(text=title)))
    r = reserve_margins(fig).layout.margin.r
    assert pushed <= r <= pushed + 25
