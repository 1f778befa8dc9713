"""The attention payload for the browser: container and quantisation round trip, tiers, and the decoded values
(read exactly as the browser component reads them) against the Capture, for every token layout."""
from __future__ import annotations

import numpy as np
import pytest

from tests._layouts import FLOAT32_SLACK, LAYOUT_IDS, LAYOUTS, capture_layout
from vitviz.export import (
    DEFAULT_BUDGET,
    FUSIONS,
    PayloadReader,
    attention_payload,
    pack,
    payload_tier,
    quantise_rows,
    query_rows_payload,
    unpack,
)
from vitviz.export._codec import prefixed_row_bytes


def test_pack_unpack_round_trip_keeps_arrays_bytes_and_alignment():
    rng = np.random.default_rng(0)
    sections = {"codes": rng.integers(0, 256, (3, 5, 7), dtype=np.uint8),
                "scale": rng.random((3, 5)).astype(np.float32), "image": b"\xff\xd8jpeg"}
    blob = pack({"kind": "x", "note": "é"}, sections)
    header, out = unpack(blob)
    assert header["kind"] == "x" and header["note"] == "é"
    np.testing.assert_array_equal(out["codes"], sections["codes"])
    np.testing.assert_array_equal(out["scale"], sections["scale"])
    assert out["image"] == sections["image"]
    start = (8 + int.from_bytes(blob[4:8], "little") + 3) // 4 * 4
    assert all((start + s["offset"]) % 4 == 0 for s in header["sections"].values())  # Float32Array views
    with pytest.raises(ValueError):
        unpack(b"nope" + blob[4:])


def test_quantised_rows_are_within_half_a_step_and_keep_extremes():
    rng = np.random.default_rng(1)
    values = rng.dirichlet(np.ones(50) * 0.3, size=(4, 6))  # (4, 6, 50) attention-like rows
    values[0, 0] = 0.02  # a constant row
    rows = quantise_rows(values)
    decoded = rows.decode()
    assert rows.codes.dtype == np.uint8 and rows.codes.shape == values.shape
    assert np.all(np.abs(decoded - values) <= rows.step[..., None] / 2 + FLOAT32_SLACK)
    assert np.allclose(decoded[0, 0], 0.02) and rows.step[0, 0] == 0
    assert (rows.codes.max(-1)[1:] == 255).all() and (rows.codes.min(-1) == 0)[1:].all()
    assert (rows.step > 0)[1:].all() and np.allclose(rows.step[1:], (values.max(-1) - values.min(-1))[1:] / 255)


def _steps(rows: np.ndarray) -> np.ndarray:
    return (rows.max(-1) - rows.min(-1)) / 255  # the codec's per-row step


def _check_against_capture(cap, reader: PayloadReader, queries, heads: bool, fused: bool) -> int:
    """Every decoded row of ``queries`` is within half a quantisation step of the Capture's; returns rows checked."""
    checked = 0
    for layer in range(cap.num_layers):
        attn = cap.attention(layer)[0].double().numpy()  # (H, N, N)
        for q in queries:
            rows = attn[:, q, :]  # (H, N)
            if heads:
                for h in range(cap.num_heads):
                    got = reader.row(q, layer, h)
                    assert np.all(np.abs(got - rows[h]) <= _steps(rows[h]) / 2 + FLOAT32_SLACK), (layer, q, h)
                    checked += 1
            for fusion in FUSIONS:
                ref = getattr(rows, fusion)(axis=0)
                # fused in the payload: one step of its own; fused in the browser from heads: the heads' steps
                bound = _steps(ref) / 2 if fused else _steps(rows).max() / 2
                got = reader.row(q, layer, fusion)
                assert np.all(np.abs(got - ref) <= bound + 4 * FLOAT32_SLACK), (layer, q, fusion)
                checked += 1
    return checked


@pytest.mark.parametrize("name, kwargs, prefix", LAYOUTS, ids=LAYOUT_IDS)
def test_every_tier_decodes_to_the_captures_attention_for_every_layout(name, kwargs, prefix):
    cap = capture_layout(name, **kwargs)
    layout = cap.layout
    assert layout.prefix_names == prefix
    L, H, N, P = cap.num_layers, cap.num_heads, cap.num_tokens, layout.num_prefix_tokens

    full = attention_payload(cap, image_jpeg=b"jpeg")
    assert full.tier == "heads"
    reader = PayloadReader(full.blob)
    assert reader.head_queries == list(range(N)) and reader.header["grid"] == list(layout.grid_size)
    assert reader.header["prefix_names"] == list(prefix)
    _check_against_capture(cap, reader, range(N), heads=True, fused=False)

    # a budget too small for every head but enough for the fused rows: fused maps of every query
    row = prefixed_row_bytes(N, P)  # patch codes, their lo and step, float32 prefix entries
    fused_size = N * L * 3 * row + P * L * H * row
    if H <= 3:  # three fused rows cost as much as the heads: every head is sent instead
        assert attention_payload(cap, budget=fused_size + 4096).tier == "heads"
    else:
        fused = attention_payload(cap, budget=fused_size + 4096)
        assert fused.tier == "fused" and fused.nbytes <= fused_size + 4096
        reader = PayloadReader(fused.blob)
        assert reader.head_queries == list(range(P)) and reader.fused_queries == list(range(N))
        _check_against_capture(cap, reader, range(N), heads=False, fused=True)
        _check_against_capture(cap, reader, range(P), heads=True, fused=True)
        assert reader.row(N - 1, 0, 0) is None  # a patch's single head is not in the browser

    # too small for that too: prefix rows only, and a clicked patch's rows come separately
    small = attention_payload(cap, budget=P * L * H * row + 4096 + 10)
    assert small.tier == "prefix"
    patch = N - 1
    reader = PayloadReader(small.blob, query_rows_payload(cap, [patch]))
    assert reader.head_queries == list(range(P)) + [patch]
    assert PayloadReader(small.blob).row(patch, 0, "mean") is None
    _check_against_capture(cap, reader, list(range(P)) + [patch], heads=True, fused=False)

    assert attention_payload(cap, budget=100).tier == "none"


def test_payload_id_follows_the_content():
    cap = capture_layout("test_vit")
    a, b = attention_payload(cap), attention_payload(cap)
    assert a.id == b.id and a.blob == b.blob
    assert attention_payload(cap, image_jpeg=b"other").id != a.id


def test_tiers_for_the_models_people_use_fit_the_budget():
    image = 40_000  # a 224² JPEG of the input view
    # ViT-B/16 at 224: every head of every query is 5.6 MB; the fused maps fit in 2 MB
    assert payload_tier(12, 12, 197, 1, DEFAULT_BUDGET, image) == "fused"
    assert 197 * 12 * 3 * prefixed_row_bytes(197, 1) + 12 * 12 * prefixed_row_bytes(197, 1) + image < DEFAULT_BUDGET
    # ViT-Ti/16 (3 heads) at 224: everything fits
    assert payload_tier(12, 3, 197, 1, DEFAULT_BUDGET, image) == "heads"
    # DINOv2-S/14 with registers at 518: 1,370 tokens; prefix rows only
    assert payload_tier(12, 6, 1375, 5, DEFAULT_BUDGET, image) == "prefix"
    # no prefix token and too many patches: nothing but clicks
    assert payload_tier(12, 6, 1370, 0, DEFAULT_BUDGET, image) == "prefix"  # empty rows; clicked rows only
    assert payload_tier(12, 6, 1370, 0, 1000, 0) == "none"


def test_input_view_is_the_crop_the_model_saw():
    from PIL import Image

    from vitviz.export import input_view_jpeg
    from vitviz.images import InputGeometry

    photo = Image.new("RGB", (200, 100), (0, 0, 255))
    photo.paste((255, 0, 0), (100, 0, 200, 100))  # right half red
    geometry = InputGeometry(original_size=(100, 200), input_size=(32, 32), crop_box=(0.0, 100.0, 100.0, 100.0))
    import io

    view = Image.open(io.BytesIO(input_view_jpeg(photo, geometry)))
    assert view.size == (32, 32)
    r, g, b = np.asarray(view, dtype=float).reshape(-1, 3).mean(0)
    assert r > 200 and b < 50  # the crop shows the red half only


def test_maps_payload_round_trip_and_fallback():
    from vitviz.export import maps_payload, read_maps

    maps = np.random.default_rng(3).uniform(-1, 1, (12, 3, 4))  # one map per position of a 3 × 4 grid
    payload = maps_payload(maps, value_range=(-1.0, 1.0))
    assert payload.tier == "maps"
    decoded = read_maps(payload.blob)
    steps = (maps.max((1, 2)) - maps.min((1, 2))) / 255
    assert decoded.shape == maps.shape
    assert np.all(np.abs(decoded - maps) <= steps[:, None, None] / 2 + FLOAT32_SLACK)
    small = maps_payload(maps, budget=500)
    assert small.tier == "none" and read_maps(small.blob) is None and small.nbytes < 500
