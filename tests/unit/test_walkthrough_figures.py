"""The walk-through's library parts, without the app: the keys it lists for a query (hand-checked on a small
grid) and its figures (``vitviz.figures.walkthrough``), which draw exactly the numbers they are given."""
from __future__ import annotations

import numpy as np

from vitviz.analysis.walkthrough import shown_keys
from vitviz.figures import map_extent
from vitviz.figures import walkthrough as wf
from vitviz.layout import TokenLayout

LAYOUT = TokenLayout(prefix_names=("cls", "reg0"), grid_size=(3, 4), patch_size=(2, 2), input_size=(6, 8))


def test_the_listed_keys_are_prefix_query_neighbours_corners_then_the_strongest():
    weights = np.zeros(LAYOUT.num_tokens)
    weights[[5, 4, 13]] = [0.5, 0.3, 0.2]  # the three strongest: patches (0, 3), (0, 2), (2, 3)
    query = LAYOUT.patch_index(1, 3)  # token 9, on the right edge: no right neighbour
    # cls, reg0, the query, below it (13), the first patch (2; the last is 13), then 5, 4 (13 is listed already)
    assert shown_keys(weights, LAYOUT, query) == [0, 1, 9, 13, 2, 5, 4]
    last = LAYOUT.patch_index(2, 3)
    assert shown_keys(np.zeros(LAYOUT.num_tokens), LAYOUT, last, top=0) == [0, 1, 13, 2]


def test_the_flattened_patch_is_drawn_channel_by_channel():
    values = np.arange(12, dtype=np.float32)  # 3 channels × 2×2 pixels
    fig = wf.flattened_patch_figure(values, (2, 2), 1, 3)
    assert [t.name for t in fig.data] == ["red", "green", "blue"]
    assert [list(t.x) for t in fig.data] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert np.array_equal(np.concatenate([t.y for t in fig.data]), values)
    assert fig.layout.title.text == "Patch (row 1, col 3) flattened: x = [0.000, 1.000, 2.000, 3.000, …]"


def test_the_embedding_and_the_first_tokens_show_their_numbers():
    embedding = np.array([0.25, -1.0])
    bars = wf.patch_embedding_figure(embedding, 0, 2)
    assert np.array_equal(bars.data[0].y, embedding) and bars.layout.title.text.endswith("z = [0.250, -1.000]")
    tokens = np.random.default_rng(0).normal(size=(LAYOUT.num_tokens, 100))
    heat = wf.first_tokens_figure(tokens)
    assert np.asarray(heat.data[0].z).shape == (LAYOUT.num_tokens, 96)  # the first 96 of 100 dimensions
    np.testing.assert_allclose(heat.data[0].z, tokens[:, :96], rtol=1e-6)
    assert "(first 96 of 100 dimensions)" in heat.layout.title.text


def test_the_token_lengths_follow_the_prefix_the_patch_and_the_patches_mean():
    norms = np.random.default_rng(1).uniform(1, 5, size=(4, LAYOUT.num_tokens))  # 3 blocks
    token = LAYOUT.patch_index(2, 1)
    fig = wf.token_lengths_figure(norms, LAYOUT, token)
    assert [t.name for t in fig.data] == ["cls", "reg0", "patch (2, 1)", "mean of all patches"]
    assert np.array_equal(fig.data[2].y, norms[:, token])
    np.testing.assert_allclose(fig.data[3].y, norms[:, 2:].mean(axis=1))
    assert list(fig.layout.xaxis.ticktext) == ["z₀ in", "block 0", "block 1", "block 2"]


def test_the_chosen_patch_is_outlined_on_its_cell():
    pixels = np.zeros((6, 8, 3), dtype=np.uint8)
    fig = wf.chosen_patch_figure(pixels, LAYOUT, 2, 1)
    (shape,) = [s for s in fig.layout.shapes if s.line.color == wf.CHOSEN]
    assert (shape.x0, shape.y0, shape.x1, shape.y1) == map_extent(None, (6, 8), LAYOUT).cell_box(2, 1)
    assert "3×4 patches" in fig.layout.title.text
