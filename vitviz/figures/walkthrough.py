"""The figures of the walk-through ("How a ViT works"): one patch followed through the forward pass.

Each builder draws the numbers of one step that ``vitviz.analysis.walkthrough`` recomputed by hand: the patch
chosen on the grid, its flattened pixels, its embedding, the token sequence entering block 0, and the length
of the tokens after every block.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from vitviz.figures import map_extent, patch_grid_figure
from vitviz.i18n import N_, _

__all__ = ["CHANNELS", "chosen_patch_figure", "first_tokens_figure", "flattened_patch_figure", "flattened_patch_title",
           "numbers_text", "patch_embedding_figure", "patch_embedding_title", "token_lengths_figure",
           "token_lengths_names", "token_lengths_ticks"]

CHANNELS = ((N_("red"), "#d62728"), (N_("green"), "#2ca02c"), (N_("blue"), "#1f77b4"))
"""Name and line colour of each input channel (the browser's patch follower draws them in the same colours)."""
CHOSEN = "#00e5ff"
"""Outline of the chosen patch (as the patch follower's)."""
_MARGIN = dict(l=10, r=10, t=50, b=10)
_SHOWN_DIMS = 96


def numbers_text(values: Any, n: int = 4) -> str:
    """The first ``n`` values with three decimals, as a vector: ``'[0.125, -1.000, …]'``."""
    shown = ", ".join(f"{v:.3f}" for v in np.asarray(values)[:n])
    return f"[{shown}, …]" if len(values) > n else f"[{shown}]"


def chosen_patch_figure(pixels: np.ndarray, layout: Any, row: int, col: int) -> go.Figure:
    """The model input with its patch grid and patch (row, col) outlined: where the walk-through's patch is.

    Args:
        pixels: (H, W, 3) uint8 model input.
        layout: The model's ``TokenLayout``.
        row, col: The chosen patch.
    """
    height, width = layout.input_size
    gh, gw = layout.grid_size
    fig = patch_grid_figure(pixels, None, layout)
    fig.update_layout(title=dict(
        text=_("What the model sees: {height}×{width} px, {gh}×{gw} patches").format(
            height=height, width=width, gh=gh, gw=gw),
        subtitle=dict(text=_("click a patch to follow it"))))
    x0, y0, x1, y1 = map_extent(None, (height, width), layout).cell_box(row, col)
    fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color=CHOSEN, width=3))
    return fig


def flattened_patch_title(values: np.ndarray, row: int, col: int) -> str:
    """Step 2's title, with the first values of the flattened patch (the page's browser view shows it too)."""
    return _("Patch (row {row}, col {col}) flattened: x = {values}").format(row=row, col=col,
                                                                           values=numbers_text(values))


def patch_embedding_title(embedding: np.ndarray, row: int, col: int) -> str:
    """Step 3's title, with the first values of the patch's token."""
    return _("Token of patch (row {row}, col {col}): z = {values}").format(row=row, col=col,
                                                                          values=numbers_text(embedding))


def token_lengths_names(layout: Any, token: int) -> list[str]:
    """Step 6's lines, in order: each prefix token, the followed patch, the mean of all patches."""
    row, col = layout.patch_position(token)
    return [*layout.prefix_names, _("patch ({row}, {col})").format(row=row, col=col), _("mean of all patches")]


def token_lengths_ticks(depth: int) -> list[str]:
    """Step 6's x labels: the embeddings entering block 0, then the output of each of ``depth`` blocks."""
    return [_("z₀ in")] + [_("block {index}").format(index=i) for i in range(depth)]


def flattened_patch_figure(values: np.ndarray, patch_size: tuple[int, int], row: int, col: int) -> go.Figure:
    """Step 2: a patch's flattened pixels, one line per channel.

    Args:
        values: (C·ph·pw,) the flattened patch, channel by channel (``EmbeddingStep.pixels``).
        patch_size: (ph, pw).
        row, col: The patch, for the title.
    """
    per_channel = patch_size[0] * patch_size[1]
    fig = go.Figure([
        go.Scatter(x=np.arange(c * per_channel, (c + 1) * per_channel),
                   y=values[c * per_channel:(c + 1) * per_channel], mode="lines", name=_(name),
                   line=dict(color=colour, width=1))
        for c, (name, colour) in enumerate(CHANNELS)
    ])
    fig.update_layout(title=dict(text=flattened_patch_title(values, row, col)),
                      xaxis_title=_("index in the vector"), yaxis_title=_("normalised value"), height=280,
                      margin=_MARGIN, legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig


def patch_embedding_figure(embedding: np.ndarray, row: int, col: int) -> go.Figure:
    """Step 3: a patch's token, one bar per embedding dimension.

    Args:
        embedding: (D,) the patch's embedding (``EmbeddingStep.embedding``).
        row, col: The patch, for the title.
    """
    fig = go.Figure(go.Bar(x=np.arange(len(embedding)), y=embedding, marker_color="#3b5bdb", name=_("embedding")))
    fig.update_layout(title=dict(text=patch_embedding_title(embedding, row, col)),
                      xaxis_title=_("embedding dimension"), yaxis_title=_("value"), height=260, margin=_MARGIN)
    return fig


def first_tokens_figure(tokens: np.ndarray, shown: int = _SHOWN_DIMS) -> go.Figure:
    """Step 4: the token sequence entering block 0 as a heat map, one row per token.

    Args:
        tokens: (N, D) the sequence ``z₀``.
        shown: How many of the D dimensions to draw (the first ones).
    """
    dim = tokens.shape[1]
    shown = min(dim, shown)
    fig = go.Figure(go.Heatmap(
        z=tokens[:, :shown].astype(np.float32), colorscale="RdBu_r", zmid=0,
        hovertemplate=_("token %{y}, dim %{x}: %{z:.3f}") + "<extra></extra>",
        colorbar=dict(title=_("value"), thickness=12)))
    fig.update_layout(title=dict(text=_("z₀: one row per token (first {shown} of {dim} dimensions)").format(
                          shown=shown, dim=dim)),
                      xaxis_title=_("dimension"), yaxis_title=_("token"), yaxis_autorange="reversed", height=340,
                      margin=_MARGIN)
    return fig


def token_lengths_figure(norms: np.ndarray, layout: Any, token: int) -> go.Figure:
    """Step 6: the length ‖z‖ of the prefix tokens and of one patch token after every block, with the patches'
    mean.

    Args:
        norms: (L+1, N) every token's length, entering block 0 then leaving each block.
        layout: The model's ``TokenLayout``.
        token: The followed patch token.
    """
    depth = norms.shape[0] - 1
    names = token_lengths_names(layout, token)
    fig = go.Figure()
    for k, name in zip([*range(len(layout.prefix_names)), token], names):
        fig.add_trace(go.Scatter(x=np.arange(depth + 1), y=norms[:, k], mode="lines+markers", name=name))
    fig.add_trace(go.Scatter(x=np.arange(depth + 1), y=norms[:, layout.patch_slice].mean(axis=1),
                             mode="lines", name=names[-1], line=dict(dash="dot", color="gray")))
    fig.update_layout(title=dict(text=_("Token length ‖z‖ after each block")), height=300,
                      xaxis_title=_("hidden state: the embeddings z₀, then the output of each block"),
                      yaxis_title="‖z‖", margin=_MARGIN)
    fig.update_xaxes(tickmode="array", tickvals=list(range(depth + 1)),  # whole states only, no 0.5
                     ticktext=token_lengths_ticks(depth))
    return fig
