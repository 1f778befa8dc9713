"""Colours that do not overstate (issue 22): a colour bar for a magnitude starts at 0, and a tile scaled to its own
maximum says so when that maximum is tiny."""
from __future__ import annotations

import numpy as np

from vitviz.figures import attention_grid_figure, token_norm_figure
from vitviz.layout import TokenLayout

LAYOUT = TokenLayout(prefix_names=("cls",), grid_size=(3, 4), patch_size=(16, 16), input_size=(48, 64),
                     global_pool="token")


def test_token_norms_are_coloured_from_zero_and_their_colour_bar_stays_clear_of_the_bars():
    norms = 31 + 12 * np.random.default_rng(0).random((3, LAYOUT.num_tokens))  # 31…43, as the issue saw
    fig = token_norm_figure(norms, LAYOUT)
    heat, bars = fig.data
    assert heat.zmin == 0 and heat.zmax >= norms[-1, 1:].max() - 1e-4
    # the bars sit below the map: the colour bar (beside the map) spans the map's rows only
    top, bottom = fig.layout.yaxis.domain, fig.layout[bars.yaxis.replace("y", "yaxis")].domain
    assert bottom[1] < top[0]
    bar = (heat.colorbar.y - heat.colorbar.len / 2, heat.colorbar.y + heat.colorbar.len / 2)
    assert top[0] - 1e-9 <= bar[0] and bar[1] <= top[1] + 1e-9


def test_a_tile_scaled_to_its_own_tiny_maximum_says_so():
    maps = np.random.default_rng(1).dirichlet(np.ones(12), size=(2, 3)).reshape(2, 3, 3, 4)  # (L, H, gh, gw)
    maps[1, 2] *= 1e-3  # this head gives the patches almost nothing (its query looks at the class token)
    scaled = attention_grid_figure(maps, normalize=True)
    (note,) = scaled.layout.annotations
    assert note.text == f"max {maps[1, 2].max():.1g}" and (note.x, note.y) == ("head 2, col 2", "layer 1, row 2")
    assert not attention_grid_figure(maps, normalize=False).layout.annotations  # one shared scale: nothing to say
