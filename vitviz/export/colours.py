"""The colour scales of the server's figures, as stops a browser component interpolates.

A component redraws a map in the browser beside (or instead of) a Plotly figure drawn on the server; both
must give a value the same colour. So the component never names a colour scale of its own: the page passes
it :func:`colour_stops` of the scale the figure builders use (``vitviz.figures.MAP_SCALE`` for attention and
rollout maps, ``SIMILARITY_SCALE`` for position similarity), and the browser interpolates linearly between
the stops in RGB, as Plotly does.
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from vitviz.figures.traces import ColourScale


__all__ = ["colour_stops", "colour_at"]


def _rgb(colour: str) -> list[int]:
    if colour.startswith("#"):
        return [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    inside = colour[colour.index("(") + 1:colour.index(")")]
    return [int(round(float(v))) for v in inside.split(",")[:3]]


@lru_cache(maxsize=32)
def _named_stops(name: str) -> tuple[tuple[float, ...], ...]:
    """The stops of Plotly's scale ``name``, read once: Plotly looks a name up among all its scales (~1.6 ms), and
    every mount of a browser component (five per commit on How a ViT works) asks for them."""
    from plotly.colors import get_colorscale  # plotly: heavy, and vitviz.export stays numpy-only otherwise

    return tuple((float(t), *_rgb(str(c))) for t, c in get_colorscale(name))


def colour_stops(scale: ColourScale) -> list[list[float]]:
    """``[[t, r, g, b], ...]`` (t in 0..1 ascending, channels 0..255) of a Plotly colour scale.

    Args:
        scale: A Plotly scale name (``'Inferno'``, ``'RdBu_r'``) or a list of ``[t, colour]`` pairs.
    """
    if isinstance(scale, str):
        return [list(stop) for stop in _named_stops(scale)]
    return [[float(t), *_rgb(str(c))] for t, c in scale]


def colour_at(stops: list[list[float]], t: ArrayLike) -> np.ndarray:
    """RGB (..., 3) float of positions ``t`` in 0..1 on ``stops``, interpolated as the browser does."""
    table = np.asarray(stops, dtype=np.float64)  # (S, 4)
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    return np.stack([np.interp(t, table[:, 0], table[:, c]) for c in (1, 2, 3)], axis=-1)
