"""The rollout payload for the browser (every layer, every head fusion) decodes, as the browser decodes it, to
the rollout's maps within half a quantisation step, for every token layout; and the colour stops are the
figures' own scales."""
from __future__ import annotations

import numpy as np
import pytest

from tests._layouts import LAYOUT_IDS, LAYOUTS, capture_layout
from vitviz.analysis import rollout
from vitviz.export import FUSIONS, colour_at, colour_stops, read_rollout, rollout_payload, rollout_payload_bytes


@pytest.mark.parametrize("name, kwargs, prefix", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("discard, start", [(0.0, 0), (0.5, 1)])
def test_rollout_payload_decodes_to_the_rollout_for_every_layout(name, kwargs, prefix, discard, start):
    cap = capture_layout(name, **kwargs)
    layout = cap.layout
    results = {f: rollout(cap, head_fusion=f, discard_ratio=discard, start_layer=start) for f in FUSIONS}
    payload = rollout_payload(results, prefix_names=layout.prefix_names, image_jpeg=b"jpeg",
                              image_size=layout.input_size)
    assert payload.tier == "maps"
    decoded = read_rollout(payload.blob)
    assert list(decoded) == list(FUSIONS)
    for fusion in FUSIONS:
        # reference: the joint-matrix path (R formed layer by layer), not the read-out-row path the page uses
        ref = rollout(cap, head_fusion=fusion, discard_ratio=discard, start_layer=start, keep_joint=True)
        maps, prefix_values = decoded[fusion]
        assert maps.shape == (cap.num_layers - start, *layout.grid_size)
        assert prefix_values.shape == (cap.num_layers - start, len(prefix))
        half = (ref.maps.max((1, 2)) - ref.maps.min((1, 2))) / 255 / 2  # (L',) each map's own step
        assert np.all(np.abs(maps - ref.maps) <= half[:, None, None] + 1e-6), fusion
        np.testing.assert_allclose(prefix_values, ref.prefix, atol=1e-6)
    assert not np.allclose(decoded["max"][0], decoded["min"][0])  # the fusions really differ
    maps = decoded["mean"][0]
    assert len(maps) == 1 or not np.allclose(maps[0], maps[-1])  # and so do the layers


def test_rollout_payload_falls_back_when_the_maps_do_not_fit():
    cap = capture_layout("test_vit")
    results = {f: rollout(cap, head_fusion=f) for f in FUSIONS}
    need = rollout_payload_bytes(3, cap.num_layers, cap.layout.num_patches, 1)
    assert rollout_payload(results, prefix_names=("cls",), budget=need + 4096).tier == "maps"
    small = rollout_payload(results, prefix_names=("cls",), image_jpeg=b"x" * 100, image_size=(32, 32),
                            budget=need + 4000)
    assert small.tier == "none" and read_rollout(small.blob) is None and small.nbytes < 1000
    # DINOv2 at 518 (1,369 patches, 5 prefix tokens): every layer and fusion is 50 KB
    assert rollout_payload_bytes(3, 12, 1369, 5) < 60_000


def test_rollout_payload_needs_matching_layers():
    cap = capture_layout("test_vit")
    with pytest.raises(ValueError, match="same layers"):
        rollout_payload({"mean": rollout(cap), "max": rollout(cap, head_fusion="max", start_layer=1)})
    with pytest.raises(ValueError, match="no rollout"):
        rollout_payload({})


def test_colour_stops_are_the_figures_scales():
    from plotly.colors import get_colorscale, hex_to_rgb

    from vitviz.figures import MAP_SCALE, SIMILARITY_SCALE

    assert MAP_SCALE == "Inferno"
    stops = colour_stops(MAP_SCALE)
    assert [s[0] for s in stops] == [t for t, _ in get_colorscale("Inferno")]
    assert stops[0][1:] == [0, 0, 4] and stops[-1][1:] == list(hex_to_rgb("#fcffa4"))
    mid = colour_at(stops, (stops[3][0] + stops[4][0]) / 2)
    np.testing.assert_allclose(mid, (np.asarray(stops[3][1:]) + stops[4][1:]) / 2)
    red_blue = colour_stops(SIMILARITY_SCALE)
    assert red_blue[0][1:] == [5, 48, 97] and red_blue[-1][1:] == [103, 0, 31]  # RdBu reversed: blue … red


def test_a_named_scale_is_read_once_and_each_caller_gets_its_own_stops():
    """Plotly's scales are looked up once per name (every component mount asks for them); a caller that changes
    its stops changes nobody else's."""
    from vitviz.export import colours

    colours._named_stops.cache_clear()
    first = colour_stops("Inferno")
    first[0][1] = 255
    first.append([2.0, 0, 0, 0])
    again = colour_stops("Inferno")
    assert again[0][1:] == [0, 0, 4] and again[-1][0] == 1.0
    assert colours._named_stops.cache_info().misses == 1
    assert colour_stops([[0, "rgb(1, 2, 3)"], [1, "#ffffff"]]) == [[0.0, 1, 2, 3], [1.0, 255, 255, 255]]
