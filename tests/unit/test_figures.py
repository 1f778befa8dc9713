"""Tests for vitviz.figures: every builder on every token layout, checked against the arrays it was given.

Hover text is checked by rendering each trace's ``hovertemplate`` for one cell with the trace's own data
(``customdata``, ``z``, axis categories), the way Plotly fills it in the browser.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

import vitviz.figures as F
from tests._imagefactory import decode_data_uri
from vitviz.figures import mosaics, traces
from vitviz.figures import tiles as tiled
from vitviz.figures.features import hidden_state_name
from vitviz.figures.patches import rect_difference
from vitviz.figures.placement import UNSEEN_FILL
from vitviz.images import InputGeometry as Geometry
from vitviz.images import as_rgb_array, encode
from vitviz.layout import TokenLayout

# ------------------------------------------------------------------------------------------- fixtures

LAYOUTS = {
    "cls": TokenLayout(("cls",), (3, 3), (16, 16), (48, 48)),
    "registers": TokenLayout(("cls", "reg0", "reg1", "reg2", "reg3"), (4, 4), (8, 8), (32, 32)),
    "no_cls": TokenLayout((), (3, 3), (16, 16), (48, 48), global_pool="avg"),
    "non_square": TokenLayout(("cls", "dist"), (3, 5), (16, 16), (48, 80)),
}
ORIGINAL = (90, 120)  # (height, width) of the test photo


def centre_crop(original: tuple[int, int], input_size: tuple[int, int]) -> Geometry:
    """Resize so the input is covered, then centre-crop: the crop box in original pixels."""
    scale = max(input_size[0] / original[0], input_size[1] / original[1])
    box_h, box_w = input_size[0] / scale, input_size[1] / scale
    top, left = (original[0] - box_h) / 2, (original[1] - box_w) / 2
    return Geometry(original, input_size, (top, left, box_h, box_w))


@pytest.fixture(params=list(LAYOUTS))
def layout(request) -> TokenLayout:
    return LAYOUTS[request.param]


@pytest.fixture
def photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (*ORIGINAL, 3), dtype=np.uint8)


def rng_map(shape, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).random(shape)


# ------------------------------------------------------------------------------------------- helpers

_FIELD = re.compile(r"%\{([^}:]+)(?::([^}]*))?\}")


def _axis_value(values, start, step, index):
    return values[index] if values is not None else start + index * step


def hover(trace, *index: int) -> str:
    """Fill ``trace.hovertemplate`` for one point (``i`` for scatter/bar, ``i, j`` for 2-D traces)."""

    def field(match: re.Match) -> str:
        key, fmt = match.group(1), match.group(2) or ""
        if key.startswith("customdata["):
            value = np.asarray(trace.customdata)[index][int(key[len("customdata["):-1])]
        elif key == "customdata":
            value = np.asarray(trace.customdata, dtype=object)[index]
        elif key == "z":
            value = np.asarray(trace.z)[index]
        elif key == "text":
            value = np.asarray(trace.text, dtype=object)[index]
        elif key in ("x", "y") and len(index) == 2:
            i, j = index
            if key == "x":
                value = _axis_value(trace.x, trace.x0, trace.dx, j)
            else:
                value = _axis_value(trace.y, trace.y0, trace.dy, i)
        elif key in ("x", "y"):
            value = np.asarray(getattr(trace, key))[index]
        else:
            raise KeyError(key)
        return format(value, fmt)

    return _FIELD.sub(field, trace.hovertemplate)


def check_image_axes(fig: go.Figure, extent=None, xaxis="xaxis", yaxis="yaxis") -> None:
    """x spans the image width, y the height (reversed), widened only by a map reaching past the image."""
    height, width = ORIGINAL
    x_lo, x_hi, y_lo, y_hi = 0, width, 0, height
    if extent is not None:
        x_lo, x_hi = min(0, extent.left), max(width, extent.right)
        y_lo, y_hi = min(0, extent.top), max(height, extent.bottom)
    assert list(fig.layout[xaxis].range) == pytest.approx([x_lo, x_hi])
    assert list(fig.layout[yaxis].range) == pytest.approx([y_hi, y_lo])
    assert fig.layout[yaxis].scaleanchor == fig.layout[xaxis].plotly_name.replace("axis", "")


def check_cells_on_extent(trace: go.Heatmap, extent) -> None:
    """The heatmap's cells sit exactly on the patch grid, in original pixels."""
    gh, gw = extent.grid_size
    assert trace.x0 - trace.dx / 2 == pytest.approx(extent.left)
    assert trace.x0 + (gw - 0.5) * trace.dx == pytest.approx(extent.right)
    assert trace.y0 - trace.dy / 2 == pytest.approx(extent.top)
    assert trace.y0 + (gh - 0.5) * trace.dy == pytest.approx(extent.bottom)


# ------------------------------------------------------------------------------------- base helpers


def test_map_extent_centre_crop_hand_checked():
    # 300x400 photo, shortest side resized to 224 and centre-cropped: the model sees x in [50, 350].
    geometry = Geometry((300, 400), (224, 224), (0.0, 50.0, 300.0, 300.0))
    extent = F.map_extent(geometry, (300, 400), TokenLayout(("cls",), (14, 14), (16, 16), (224, 224)))
    assert (extent.left, extent.top) == (50.0, 0.0)
    assert extent.cell_width == pytest.approx(16 * 300 / 224)
    assert (extent.right, extent.bottom) == (pytest.approx(350.0), pytest.approx(300.0))
    assert extent.cell_box(1, 2) == pytest.approx((50 + 2 * 300 / 14, 300 / 14, 50 + 3 * 300 / 14, 2 * 300 / 14))


def test_map_extent_uses_patch_size_when_grid_does_not_fill_input():
    # 230 px input, 16 px patches: 14 patches cover 224 px, the last 6 input px are dropped.
    geometry = Geometry((230, 230), (230, 230), (0.0, 0.0, 230.0, 230.0))
    extent = F.map_extent(geometry, (230, 230), TokenLayout(("cls",), (14, 14), (16, 16), (230, 230)))
    assert extent.right == pytest.approx(224.0) and extent.bottom == pytest.approx(224.0)
    # Without a patch size the grid can only be spread over the crop box.
    assert F.map_extent(geometry, (230, 230), (14, 14)).right == pytest.approx(230.0)


def test_map_extent_squashed_input_has_non_square_cells():
    # crop_mode='squash': the whole 90x120 photo resized to 48x48, so a 16 px patch is 30 px tall, 40 px wide.
    geometry = Geometry((90, 120), (48, 48), (0.0, 0.0, 90.0, 120.0))
    extent = F.map_extent(geometry, (90, 120), LAYOUTS["cls"])
    assert (extent.cell_height, extent.cell_width) == pytest.approx((30.0, 40.0))
    assert (extent.bottom, extent.right) == pytest.approx((90.0, 120.0))


def test_map_extent_without_geometry_covers_whole_image():
    extent = F.map_extent(None, (90, 120), (3, 4))
    assert (extent.top, extent.left, extent.bottom, extent.right) == (0, 0, 90, 120)


def test_tile_array_hand_checked():
    tiles = np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2)
    big = tiled.tile_array(tiles)
    assert big.shape == (2 * 3 - 1, 3 * 3 - 1) and big.dtype == np.float32
    np.testing.assert_array_equal(big[3:5, 6:8], tiles[1, 2])
    np.testing.assert_array_equal(big[0:2, 3:5], tiles[0, 1])
    assert np.isnan(big[2]).all() and np.isnan(big[:, 2]).all() and np.isnan(big[:, 5]).all()
    assert np.isfinite(big).sum() == tiles.size


def test_tile_labels_unique_and_ticks_on_tile_centres():
    labels, ticks, text = tiled.tile_labels([0, 2, 4], 3, "row {t}, cell {k}", "{t}")
    assert len(labels) == 3 * 4 - 1 and len(set(labels)) == len(labels)
    assert labels[4] == "row 2, cell 0" and ticks == ["row 0, cell 1", "row 2, cell 1", "row 4, cell 1"]
    assert text == ["0", "2", "4"]


def test_as_rgb_array_converts_modes():
    gray = Image.fromarray(np.full((5, 7), 200, dtype=np.uint8), mode="L")
    assert as_rgb_array(gray).shape == (5, 7, 3)
    floats = np.full((2, 3, 3), 0.5)
    assert (as_rgb_array(floats) == 128).all()
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    assert as_rgb_array(rgba).shape == (2, 2, 3)


def test_photo_is_downscaled_jpeg_spanning_the_image():
    big = np.zeros((1000, 1500, 3), dtype=np.uint8)
    big[:, :750] = 255
    trace = traces.photo_trace(big)
    assert trace.source.startswith("data:image/jpeg;base64,")
    decoded = decode_data_uri(trace.source)
    assert max(decoded.shape[:2]) <= 512
    assert decoded.shape[1] / decoded.shape[0] == pytest.approx(1.5, rel=0.01)
    small_h, small_w = decoded.shape[:2]
    assert trace.x0 - trace.dx / 2 == 0 and trace.x0 + (small_w - 0.5) * trace.dx == pytest.approx(1500)
    assert trace.y0 - trace.dy / 2 == 0 and trace.y0 + (small_h - 0.5) * trace.dy == pytest.approx(1000)
    assert decoded[:, : small_w // 2 - 3].mean() > 240 and decoded[:, small_w // 2 + 3 :].mean() < 15


def test_photo_is_encoded_once_per_image(monkeypatch):
    calls = []
    encode_uri = encode.image_data_uri
    monkeypatch.setattr(encode, "image_data_uri", lambda image, **kw: calls.append(1) or encode_uri(image, **kw))
    ramp = np.linspace(0, 255, 90, dtype=np.float32)[None, :, None] * np.ones((60, 1, 3), np.float32)
    photo = Image.fromarray(ramp.astype(np.uint8))  # a smooth ramp, so JPEG keeps it close
    first, again = traces.photo_trace(photo), traces.photo_trace(photo)
    assert first.source == again.source and len(calls) == 1  # the same PIL image: encoded once
    assert traces.photo_trace(np.asarray(photo)).source == first.source and len(calls) == 2  # an array: by content
    assert traces.photo_trace(np.asarray(photo).copy()).source == first.source and len(calls) == 2
    changed = np.asarray(photo).copy()
    changed[:, :45] = 0
    assert traces.photo_trace(changed).source != first.source and len(calls) == 3  # other pixels: encoded anew
    other = photo.copy()  # equal pixels, another object: encoded again, never mixed up with a dead one
    assert traces.photo_trace(other).source == first.source and len(calls) == 4
    assert np.abs(decode_data_uri(first.source).astype(int) - np.asarray(photo)).mean() < 8  # the photo


def test_rect_difference_hand_checked():
    assert rect_difference((0, 0, 10, 10), (2, 0, 8, 10)) == [(0, 0, 2, 10), (8, 0, 10, 10)]
    assert rect_difference((0, 0, 10, 10), (0, 0, 10, 10)) == []
    assert rect_difference((0, 0, 10, 10), (20, 20, 30, 30)) == [(0, 0, 10, 10)]


def test_rect_difference_parts_are_disjoint_and_fill_the_rest():
    rng = np.random.default_rng(3)
    def area(r):
        return max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])

    for _ in range(200):
        a = np.sort(rng.uniform(0, 10, (2, 2)), axis=0)
        b = np.sort(rng.uniform(-2, 12, (2, 2)), axis=0)
        outer, inner = (a[0, 0], a[0, 1], a[1, 0], a[1, 1]), (b[0, 0], b[0, 1], b[1, 0], b[1, 1])
        parts = rect_difference(outer, inner)
        overlap = (max(outer[0], inner[0]), max(outer[1], inner[1]), min(outer[2], inner[2]), min(outer[3], inner[3]))
        assert sum(map(area, parts)) == pytest.approx(area(outer) - area(overlap))
        for p in parts:  # inside outer, outside inner
            assert outer[0] <= p[0] and p[2] <= outer[2] and outer[1] <= p[1] and p[3] <= outer[3]
            assert area((max(p[0], inner[0]), max(p[1], inner[1]), min(p[2], inner[2]), min(p[3], inner[3]))) == 0


# ------------------------------------------------------------------------------------------ overlay


def test_overlay_on_every_layout(layout, photo):
    geometry = centre_crop(ORIGINAL, layout.input_size)
    values = rng_map(layout.grid_size)
    fig = F.overlay_figure(values, photo, geometry, layout, value_label="attention")
    assert [type(t).__name__ for t in fig.data] == ["Image", "Heatmap", "Scatter"]
    heat = fig.data[1]
    assert np.asarray(heat.z).shape == layout.grid_size
    np.testing.assert_allclose(heat.z, values, rtol=1e-6)
    extent = F.map_extent(geometry, ORIGINAL, layout)
    check_cells_on_extent(heat, extent)
    check_image_axes(fig, extent)
    r, c = layout.grid_size[0] - 1, 1
    assert hover(heat, r, c).startswith(f"row {r}, col {c}: {values[r, c]:.3g}")


def test_overlay_grid_lines_follow_the_patch_grid(photo):
    layout = LAYOUTS["non_square"]
    geometry = centre_crop(ORIGINAL, layout.input_size)
    extent = F.map_extent(geometry, ORIGINAL, layout)
    lines = F.overlay_figure(rng_map((3, 5)), photo, geometry, layout).data[2]
    segments = np.array([p for p in zip(lines.x, lines.y) if p[0] is not None]).reshape(-1, 2, 2)  # (S, 2, (x, y))
    vertical = segments[segments[:, 0, 0] == segments[:, 1, 0]]
    horizontal = segments[segments[:, 0, 1] == segments[:, 1, 1]]
    np.testing.assert_allclose(np.sort(vertical[:, 0, 0]), extent.left + np.arange(6) * extent.cell_width)
    np.testing.assert_allclose(np.sort(horizontal[:, 0, 1]), extent.top + np.arange(4) * extent.cell_height)
    np.testing.assert_allclose(vertical[:, :, 1].min(), extent.top)
    np.testing.assert_allclose(horizontal[:, :, 0].max(), extent.right)


def test_overlay_on_padded_input_widens_axes(photo):
    # The input shows more than the photo (letterboxed): the crop box reaches 15 px above and below.
    geometry = Geometry(ORIGINAL, (48, 48), (-15.0, 0.0, 120.0, 120.0))
    fig = F.overlay_figure(rng_map((3, 3)), photo, geometry, LAYOUTS["cls"])
    assert list(fig.layout.yaxis.range) == pytest.approx([105.0, -15.0])
    assert list(fig.layout.xaxis.range) == pytest.approx([0.0, 120.0])


def test_overlay_without_geometry_or_layout_spreads_map_over_image(photo):
    fig = F.overlay_figure(rng_map((2, 4)), Image.fromarray(photo), None)
    check_cells_on_extent(fig.data[1], F.map_extent(None, ORIGINAL, (2, 4)))
    check_image_axes(fig)


def test_overlay_rejects_map_of_wrong_shape(photo):
    with pytest.raises(ValueError, match="does not match"):
        F.overlay_figure(rng_map((3, 4)), photo, None, LAYOUTS["cls"])


# ------------------------------------------------------------------------------------------ patches


def test_patch_grid_hover_gives_token_index(layout, photo):
    geometry = centre_crop(ORIGINAL, layout.input_size)
    fig = F.patch_grid_figure(photo, geometry, layout)
    assert [type(t).__name__ for t in fig.data] == ["Image", "Heatmap", "Scatter"]
    cells = fig.data[1]
    gh, gw = layout.grid_size
    assert np.asarray(cells.z).shape == (gh, gw)
    r, c = gh - 1, gw - 2
    assert hover(cells, r, c) == f"row {r}, col {c}: token {layout.patch_index(r, c)}<extra></extra>"
    check_cells_on_extent(cells, F.map_extent(geometry, ORIGINAL, layout))
    check_image_axes(fig, F.map_extent(geometry, ORIGINAL, layout))


def _shaded_area(fig, fill):
    return sum((s.x1 - s.x0) * (s.y1 - s.y0) for s in fig.layout.shapes if s.fillcolor == fill)


def test_patch_grid_shades_what_the_model_does_not_see(photo):
    from vitviz.figures.patches import CROPPED_FILL, PADDED_FILL

    layout = LAYOUTS["cls"]  # square input on a 90x120 photo: 15 px cut left and right
    fig = F.patch_grid_figure(photo, centre_crop(ORIGINAL, layout.input_size), layout)
    assert _shaded_area(fig, CROPPED_FILL) == pytest.approx(2 * 15 * 90)
    assert _shaded_area(fig, PADDED_FILL) == 0
    assert "3×3 = 9 patches of 16×16 px" in fig.layout.title.text


def test_patch_grid_marks_padding(photo):
    padded = Geometry(ORIGINAL, (48, 48), (-15.0, 0.0, 120.0, 120.0))
    from vitviz.figures.patches import CROPPED_FILL, PADDED_FILL

    fig = F.patch_grid_figure(photo, padded, LAYOUTS["cls"])
    assert _shaded_area(fig, PADDED_FILL) == pytest.approx(2 * 15 * 120)
    assert _shaded_area(fig, CROPPED_FILL) == 0


def test_patch_grid_on_a_padded_patch_grid(photo):
    # Stand-in for vitviz.analysis.patch_grid((90, 120), 16, "pad"): 6x8 patches cover 96x128 px.
    grid = SimpleNamespace(image_size=(90, 120), patch_size=(16, 16), grid_size=(6, 8))
    from vitviz.figures.patches import PADDED_FILL

    fig = F.patch_grid_figure(photo, None, grid)
    extent = F.map_extent(None, ORIGINAL, grid)
    assert (extent.cell_height, extent.cell_width, extent.bottom, extent.right) == (16, 16, 96, 128)
    assert _shaded_area(fig, PADDED_FILL) == pytest.approx(96 * 128 - 90 * 120)
    assert list(fig.layout.xaxis.range) == [0, 128] and list(fig.layout.yaxis.range) == [96, 0]


def test_patch_grid_accepts_a_plain_grid(photo):
    fig = F.patch_grid_figure(photo, None, (2, 3))
    assert hover(fig.data[1], 1, 2).startswith("row 1, col 2: token 5")
    assert "patches of" not in fig.layout.title.text  # no patch size known


def test_mosaic_places_tiles_row_by_row():
    tiles = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((5, 2, 3, 3), dtype=np.uint8)
    out = mosaics.mosaic(tiles, columns=3, gap=1)
    assert out.shape == (2 * 3 - 1, 3 * 4 - 1, 3)
    assert (out[0:2, 4:7] == 1).all() and (out[3:5, 4:7] == 4).all()
    assert (out[2] == 255).all() and (out[3:5, 8:11] == 255).all()  # gap row, empty last slot


def test_patch_sequence_prefix_first_then_patches_in_order(layout):
    gh, gw = layout.grid_size
    ph, pw = layout.patch_size
    n, prefix = gh * gw, len(layout.prefix_names)
    colours = np.stack([np.arange(n) * 13 % 256, 255 - np.arange(n) * 13 % 256, np.full(n, 90)], 1)
    patches = np.broadcast_to(colours[:, None, None, :], (n, ph, pw, 3)).astype(np.uint8)
    columns = 5
    fig = F.patch_sequence_figure(patches, layout, columns=columns)
    image, cells, *last_row = fig.data  # a short last row is an image of its own tiles (no JPEG ghost beside them)
    rows = -(-(prefix + n) // columns)
    mosaic = np.full((rows * (ph + 1) - 1, columns * (pw + 1) - 1, 3), 255, np.uint8)
    for part in (image, *last_row):
        tiles = decode_data_uri(part.source)
        top = int(part.y0 - 0.5)
        mosaic[top:top + tiles.shape[0], :tiles.shape[1]] = tiles
    assert len(last_row) == (1 if (prefix + n) % columns else 0)
    for k in (0, n // 2, n - 1):  # JPEG: compare the tile's interior colour
        slot = prefix + k
        y, x = (slot // columns) * (ph + 1), (slot % columns) * (pw + 1)
        inner = mosaic[y + 3 : y + ph - 3, x + 3 : x + pw - 3].reshape(-1, 3).mean(0)
        np.testing.assert_allclose(inner, colours[k], atol=12)
    assert np.asarray(cells.z).shape == (rows, columns)
    last = prefix + n - 1
    assert hover(cells, last // columns, last % columns).startswith(f"token {last}: patch row {gh - 1}, col {gw - 1}")
    assert [a.text for a in fig.layout.annotations] == list(layout.prefix_names)
    if prefix:
        assert hover(cells, 0, 0).startswith(f"token 0: {layout.prefix_names[0]}")
    assert f"{prefix} prefix + {n} patch tokens" in fig.layout.title.text


def test_patch_sequence_rejects_wrong_patch_count():
    with pytest.raises(ValueError, match="patches"):
        F.patch_sequence_figure(np.zeros((8, 16, 16, 3), np.uint8), LAYOUTS["cls"])


# ------------------------------------------------------------------------------- position embeddings


def test_position_similarity_tiles_match_sim(layout):
    gh, gw = layout.grid_size
    sim = np.random.default_rng(4).uniform(-1, 1, (gh, gw, gh, gw))
    fig = F.position_similarity_figure(sim)
    (heat,) = fig.data
    z = np.asarray(heat.z)
    assert z.shape == (gh * (gh + 1) - 1, gw * (gw + 1) - 1)
    i, j, r, c = gh - 1, gw // 2, 1, gw - 1
    cell = (i * (gh + 1) + r, j * (gw + 1) + c)
    assert z[cell] == pytest.approx(sim[i, j, r, c], abs=1e-6)
    text = hover(heat, *cell)
    assert f"row {i} ↔ row {r}" in text and f"col {j} ↔ col {c}" in text and f"cosine {sim[i, j, r, c]:.3f}" in text
    assert (heat.zmin, heat.zmax) == (-1, 1)
    assert np.isnan(z[gh, :]).all()  # gap after the first row of tiles
    assert list(fig.layout.xaxis.ticktext) == [str(t) for t in range(gw)]
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.autorange == "reversed"


def test_position_similarity_data_range_and_stride():
    sim = np.random.default_rng(5).uniform(-0.2, 0.9, (24, 24, 24, 24))
    fig = F.position_similarity_figure(sim, data_range=True, max_tiles=12)
    heat = fig.data[0]
    assert (heat.zmin, heat.zmax) == pytest.approx((sim.min(), sim.max()))
    z = np.asarray(heat.z)
    assert z.shape == (12 * 25 - 1, 12 * 25 - 1)
    np.testing.assert_allclose(z[25 * 3 : 25 * 3 + 24, 25 * 5 : 25 * 5 + 24], sim[6, 10], atol=1e-6)
    assert list(fig.layout.yaxis.ticktext)[:3] == ["0", "2", "4"]
    expected = "position ↔ other position<br>row 6 ↔ row 7<br>col 10 ↔ col 2"
    assert hover(heat, 25 * 3 + 7, 25 * 5 + 2).startswith(expected)
    assert len(fig.to_json()) < 1_000_000


def test_position_tile_figure_enlarges_one_tile(layout):
    gh, gw = layout.grid_size
    sim = np.random.default_rng(6).uniform(-1, 1, (gh, gw, gh, gw))
    row, col = gh - 1, gw - 1
    fig = F.position_tile_figure(sim, row, col)
    heat = fig.data[0]
    np.testing.assert_allclose(heat.z, sim[row, col], atol=1e-6)
    assert hover(heat, 0, 1).startswith(f"row 0, col 1: {sim[row, col, 0, 1]:.3f}")
    (outline,) = fig.layout.shapes
    assert (outline.x0, outline.x1, outline.y0, outline.y1) == (col - 0.5, col + 0.5, row - 0.5, row + 0.5)
    assert list(fig.layout.xaxis.range) == [-0.5, gw - 0.5] and list(fig.layout.yaxis.range) == [gh - 0.5, -0.5]
    # the enlarged tile sits in a narrow column: a title that long was cut to "…to all position"
    assert fig.layout.title.text == f"Position (row {row}, col {col})"
    assert fig.layout.title.subtitle.text == "cosine similarity to every position"
    assert max(len(fig.layout.title.text), len(fig.layout.title.subtitle.text)) <= 36


def test_position_similarity_rejects_bad_shape():
    with pytest.raises(ValueError, match="gh, gw, gh, gw"):
        F.position_similarity_figure(np.zeros((3, 3, 3, 4)))


def test_embedding_filters_tiles_and_variance():
    rng = np.random.default_rng(7)
    tiles = rng.random((10, 4, 4, 3))  # floats in 0..1, as vitviz.analysis.embedding_filters gives
    tiles[0] = 0.5  # a zero component must stay mid-grey
    ratio = np.sort(rng.random(10))[::-1] / 20
    fig = F.embedding_filters_figure(tiles, ratio, columns=4)
    assert [type(t).__name__ for t in fig.data] == ["Image", "Heatmap", "Bar", "Scatter"]
    mosaic = decode_data_uri(fig.data[0].source)  # PNG: exact
    assert mosaic.shape[:2] == (3 * 5 - 1, 4 * 5 - 1)
    np.testing.assert_array_equal(mosaic[5:9, 5:9], np.round(tiles[5] * 255).astype(np.uint8))
    assert (mosaic[0:4, 0:4] == 128).all()
    np.testing.assert_allclose(fig.data[2].y, ratio)
    np.testing.assert_allclose(fig.data[3].y, np.cumsum(ratio))
    assert hover(fig.data[1], 1, 1) == f"component 5: {ratio[5]:.1%} of variance<extra></extra>"
    assert f"first 10 principal components ({ratio.sum():.0%} of variance)" in fig.layout.title.text


def test_embedding_filters_rescales_out_of_range_floats_per_tile():
    tiles = np.stack([np.linspace(-3, 5, 27).reshape(3, 3, 3), np.linspace(0, 0.1, 27).reshape(3, 3, 3)])
    fig = F.embedding_filters_figure(tiles, [0.6, 0.3])
    mosaic = decode_data_uri(fig.data[0].source)
    assert mosaic[0:3, 0:3].min() == 0 and mosaic[0:3, 0:3].max() == 255
    assert mosaic[0:3, 4:7].max() == 255  # the second tile is stretched on its own


def test_embedding_filters_rejects_mismatch():
    with pytest.raises(ValueError, match="explained-variance"):
        F.embedding_filters_figure(np.zeros((3, 4, 4, 3)), [0.5, 0.2])


# ----------------------------------------------------------------------------------------- attention


def test_attention_map_shares_of_a_max_fused_row_stay_shares(layout, photo):
    rows = np.random.default_rng(9).dirichlet(np.ones(layout.num_tokens), size=4)  # (heads, N)
    fused = rows.max(axis=0)  # sums above 1
    fig = F.attention_map_figure(fused, photo, None, layout, query=layout.num_prefix_tokens, head="max")
    subtitle = fig.layout.title.subtitle.text
    assert "total" in subtitle
    share = fused[layout.patch_slice].sum() / fused.sum()
    assert f"all patches: {share:.3g}" in subtitle and share <= 1


def test_attention_map_patch_query(layout, photo):
    geometry = centre_crop(ORIGINAL, layout.input_size)
    gh, gw = layout.grid_size
    row = np.random.default_rng(8).dirichlet(np.ones(layout.num_tokens))
    query = layout.patch_index(gh - 1, 1)
    fig = F.attention_map_figure(row, photo, geometry, layout, query=query, layer=4, head=2)
    heat = fig.data[1]
    patch_map = row[layout.patch_slice].reshape(gh, gw)
    np.testing.assert_allclose(heat.z, patch_map, rtol=1e-6)
    assert heat.zmin == 0 and heat.zmax == pytest.approx(patch_map.max())
    assert hover(heat, 0, gw - 1).startswith(f"row 0, col {gw - 1}: {patch_map[0, gw - 1]:.3g}")
    assert fig.layout.title.text == f"Layer 4, head 2: attention of patch (row {gh - 1}, col 1)"
    subtitle = fig.layout.title.subtitle.text
    for name, value in zip(layout.prefix_names, row):
        assert f"{name}: {value:.3g}" in subtitle
    assert f"all patches: {patch_map.sum():.3g}" in subtitle
    (outline,) = [s for s in fig.layout.shapes if s.fillcolor != UNSEEN_FILL]  # the photo's unseen sides are dimmed
    box = F.map_extent(geometry, ORIGINAL, layout).cell_box(gh - 1, 1)
    assert (outline.x0, outline.y0, outline.x1, outline.y1) == pytest.approx(box)
    check_image_axes(fig, F.map_extent(geometry, ORIGINAL, layout))


def test_attention_map_prefix_query_has_no_outline(photo):
    layout = LAYOUTS["registers"]
    row = np.full(layout.num_tokens, 1 / layout.num_tokens)
    fig = F.attention_map_figure(row, photo, None, layout, query=2, head="max")
    assert not [s for s in fig.layout.shapes if s.fillcolor != UNSEEN_FILL]
    assert fig.layout.title.text == "max over heads: attention of reg1"
    with pytest.raises(ValueError, match="prefix"):
        F.attention_map_figure(row[:-1], photo, None, layout, query=0)


def test_attention_grid_tiles_and_hover(layout):
    gh, gw = layout.grid_size
    maps = np.random.default_rng(9).random((3, 4, gh, gw))
    fig = F.attention_grid_figure(maps)
    heat = fig.data[0]
    z = np.asarray(heat.z)
    assert z.shape == (3 * (gh + 1) - 1, 4 * (gw + 1) - 1)
    layer, h, r, c = 2, 3, gh - 1, 0
    cell = (layer * (gh + 1) + r, h * (gw + 1) + c)
    assert z[cell] == pytest.approx(maps[layer, h, r, c], abs=1e-6)
    value = maps[layer, h, r, c]
    assert hover(heat, *cell) == f"layer {layer}, row {r}<br>head {h}, col {c}<br>attention {value:.3g}<extra></extra>"
    assert list(fig.layout.yaxis.ticktext) == ["0", "1", "2"]
    assert list(fig.layout.xaxis.ticktext) == ["0", "1", "2", "3"]


def test_attention_grid_normalize_and_labels():
    maps = np.random.default_rng(10).random((2, 2, 3, 3)) * np.array([1, 0.01])[None, :, None, None]
    fig = F.attention_grid_figure(maps, layers=[5, 7], normalize=True)
    z = np.asarray(fig.data[0].z)
    for layer in range(2):
        for h in range(2):
            assert np.nanmax(z[layer * 4 : layer * 4 + 3, h * 4 : h * 4 + 3]) == pytest.approx(1.0)
    assert list(fig.layout.yaxis.ticktext) == ["5", "7"]
    assert hover(fig.data[0], 4, 0).startswith("layer 7, row 0<br>head 0, col 0<br>fraction of max")


def test_attention_distance_one_trace_per_head():
    dist = np.random.default_rng(11).random((6, 4)) * 100
    fig = F.attention_distance_figure(dist)
    assert len(fig.data) == 4 and all(isinstance(t, go.Scatter) for t in fig.data)
    for h, trace in enumerate(fig.data):
        np.testing.assert_array_equal(trace.x, np.arange(6))
        np.testing.assert_allclose(trace.y, dist[:, h])
    assert hover(fig.data[2], 3) == f"layer 3, head 2: {dist[3, 2]:.1f} px<extra></extra>"
    assert fig.layout.xaxis.title.text == "network depth (layer)"


# ------------------------------------------------------------------------------------------- rollout


@pytest.mark.parametrize("query, words", [("cls", "class-token row"), ("mean", "mean over patch queries")])
def test_rollout_frames_per_layer(layout, photo, query, words):
    geometry = centre_crop(ORIGINAL, layout.input_size)
    maps = np.random.default_rng(12).random((5, *layout.grid_size)) * np.arange(1, 6)[:, None, None]
    fig = F.rollout_figure(maps, photo, geometry, layout, start_layer=2, query=query)
    assert len(fig.frames) == 5
    assert [f.name for f in fig.frames] == ["2", "3", "4", "5", "6"]
    np.testing.assert_allclose(fig.data[1].z, maps[-1], rtol=1e-6)  # opens on the last layer
    for frame, m in zip(fig.frames, maps):
        assert frame.traces == (1,)
        np.testing.assert_allclose(frame.data[0].z, m, rtol=1e-6)
        assert frame.data[0].zmax == pytest.approx(m.max())
    (slider,) = fig.layout.sliders
    assert slider.active == 4 and [s.label for s in slider.steps] == ["2", "3", "4", "5", "6"]
    assert list(slider.steps[1].args[0]) == ["3"]
    assert fig.layout.title.text == f"Attention rollout, layers 2–6 ({words})"
    check_image_axes(fig, F.map_extent(geometry, ORIGINAL, layout))
    assert hover(fig.data[1], 0, 0).startswith(f"row 0, col 0: {maps[-1, 0, 0]:.3g}")


def test_rollout_title_can_be_left_out_or_name_the_method(photo):
    maps = rng_map((2, 3, 3))
    assert F.rollout_figure(maps, photo, None, title="").layout.title.text == ""
    fig = F.rollout_figure(maps, photo, None, query="mean_patches", method="gradient_rollout")
    assert fig.layout.title.text == "Gradient rollout, layers 0–1 (mean over patch queries)"


def test_rollout_title_follows_the_slider_and_names_the_settings(photo):
    maps = rng_map((4, 3, 3))
    fig = F.rollout_figure(maps, photo, None, head_fusion="max", discard_ratio=0.5)
    assert fig.layout.title.text == "Attention rollout, layers 0–3 (class-token row; max fusion, discard 0.50)"
    frame_titles = [frame.layout.title.text for frame in fig.frames]
    assert frame_titles[0] == "Attention rollout, layer 0 (class-token row; max fusion, discard 0.50)"
    assert frame_titles[2].startswith("Attention rollout, layers 0–2 ")
    assert frame_titles[-1] == fig.layout.title.text, "the figure opens on the last frame"
    single = F.rollout_figure(maps[-1:], photo, None, start_layer=3, head_fusion="mean", discard_ratio=0.0)
    assert single.layout.title.text == "Attention rollout, layer 3 (class-token row; mean fusion)"
    fixed = F.rollout_figure(maps, photo, None, title="Gradient rollout for “cat”")
    assert {frame.layout.title.text for frame in fixed.frames} == {"Gradient rollout for “cat”"}


# ------------------------------------------------------------------------------------------ features


def test_hidden_state_names():
    assert hidden_state_name(0, 13) == "embeddings (before block 0)"
    assert hidden_state_name(5, 13) == "output of block 4"
    assert hidden_state_name(-1, 13) == "output of block 11"


def test_token_norms_split_prefix_and_patches(layout):
    norms = np.random.default_rng(13).random((4, layout.num_tokens)) * 10
    fig = F.token_norm_figure(norms, layout, layer=2)
    heat, bars = fig.data
    patch = norms[2, layout.patch_slice].reshape(layout.grid_size)
    np.testing.assert_allclose(heat.z, patch, rtol=1e-6)
    assert list(bars.y) == [*layout.prefix_names, "patch mean", "patch max"] and bars.orientation == "h"
    np.testing.assert_allclose(bars.x, [*norms[2, : layout.num_prefix_tokens], patch.mean(), patch.max()])
    assert hover(heat, 1, 2).startswith(f"row 1, col 2: {patch[1, 2]:.3g}")
    assert fig.layout.title.text == "Token norms, output of block 1"
    assert F.token_norm_figure(norms, layout).layout.title.text == "Token norms, output of block 2"


def test_feature_pca_side_by_side(layout, photo):
    geometry = centre_crop(ORIGINAL, layout.input_size)
    rgb = np.random.default_rng(14).random((*layout.grid_size, 3))
    fig = F.feature_pca_figure(rgb, photo, geometry, layout)
    assert [type(t).__name__ for t in fig.data] == ["Image", "Image"]
    pca = fig.data[1]
    np.testing.assert_array_equal(np.asarray(pca.z), np.round(rgb * 255).astype(np.uint8))
    extent = F.map_extent(geometry, ORIGINAL, layout)
    check_cells_on_extent(pca, extent)
    assert np.asarray(pca.text, dtype=object)[1, 2] == "row 1, col 2"
    check_image_axes(fig, extent, "xaxis", "yaxis")
    check_image_axes(fig, extent, "xaxis2", "yaxis2")
    with pytest.raises(ValueError, match="does not match"):
        F.feature_pca_figure(rgb[:, :-1], photo, geometry, layout)


# ----------------------------------------------------------------------------------------- predictions


def test_predictions_bars_keep_rank_and_duplicates():
    preds = [SimpleNamespace(label="tabby", probability=0.6, index=281), ("crane", 0.2), ("crane", 0.1)]
    fig = F.predictions_figure(preds)
    (bar,) = fig.data
    assert bar.orientation == "h"
    assert list(bar.x) == [0.6, 0.2, 0.1] and list(bar.y) == [0, 1, 2]
    assert list(fig.layout.yaxis.ticktext) == ["tabby", "crane", "crane"]
    assert fig.layout.yaxis.autorange == "reversed"  # most probable on top
    assert list(bar.text) == ["60.0%", "20.0%", "10.0%"]
    assert hover(bar, 1) == "crane: 20.00%<extra></extra>"


# ----------------------------------------------------------------------------------------------- size


def test_vit_b16_sized_figures_stay_under_one_megabyte():
    """ViT-B/16 at 224: 14x14 patches, 12 layers x 12 heads, a 640x480 photo of pure noise (JPEG's
    worst case)."""
    rng = np.random.default_rng(15)
    layout = TokenLayout(("cls",), (14, 14), (16, 16), (224, 224))
    photo = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    geometry = centre_crop((480, 640), (224, 224))
    figs = {
        "overlay": F.overlay_figure(rng.random((14, 14)), photo, geometry, layout),
        "patch_grid": F.patch_grid_figure(photo, geometry, layout),
        "sequence": F.patch_sequence_figure(rng.integers(0, 256, (196, 16, 16, 3), dtype=np.uint8), layout),
        "similarity": F.position_similarity_figure(rng.uniform(-1, 1, (14, 14, 14, 14))),
        "tile": F.position_tile_figure(rng.uniform(-1, 1, (14, 14, 14, 14)), 3, 4),
        "filters": F.embedding_filters_figure(rng.random((28, 16, 16, 3)), rng.random(28) / 28),
        "attention": F.attention_map_figure(rng.dirichlet(np.ones(197)), photo, geometry, layout, query=0),
        "grid": F.attention_grid_figure(rng.random((12, 12, 14, 14))),
        "distance": F.attention_distance_figure(rng.random((12, 12)) * 100),
        "rollout": F.rollout_figure(rng.random((12, 14, 14)), photo, geometry, layout),
        "norms": F.token_norm_figure(rng.random((13, 197)), layout),
        "pca": F.feature_pca_figure(rng.random((14, 14, 3)), photo, geometry, layout),
        "predictions": F.predictions_figure([(f"class {i}", 0.1) for i in range(5)]),
    }
    sizes = {name: len(fig.to_json()) for name, fig in figs.items()}
    assert max(sizes.values()) < 1_000_000, sizes


def test_old_base_names_still_resolve_with_a_deprecation_warning():
    from vitviz.figures import _base

    with pytest.warns(DeprecationWarning, match="vitviz.figures.tiles"):
        assert _base.tile_array is tiled.tile_array
    with pytest.warns(DeprecationWarning, match="vitviz.images"):
        assert _base.as_rgb_array is as_rgb_array
    with pytest.raises(AttributeError):
        _base.no_such_name  # noqa: B018
