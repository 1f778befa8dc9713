"""Values drawn are values computed: the browser's attention rows keep the patches' structure when the class
token takes almost all of the attention (issue 22: one 8-bit step of 0.98 / 255 put every patch on one level).

The payload is decoded exactly as the browser decodes it (``PayloadReader``, ``lib.js``'s ``vvRow``) and compared
with the Capture, within the bound ``vitviz.export._codec`` states: half a step of the patches' own range.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from vitviz.export import (
    FUSIONS,
    PayloadReader,
    attention_payload,
    quantise_prefixed,
    quantise_rows,
    query_rows_payload,
)

FLOAT32_SLACK = 1e-6  # relative to the patches' largest value: float32 rounding of lo + code * step


def _class_token_capture(seed: int = 0):
    """A real Capture of ``test_vit`` whose every attention row gives the class token 95–99.5 %."""
    import timm

    from vitviz.capture import capture

    torch.manual_seed(seed)
    model = timm.create_model("test_vit", pretrained=False, num_heads=4).eval()  # 4 heads: a fused tier exists
    cap = capture(model, torch.randn(1, 3, *model.patch_embed.img_size), storage="full")
    rng = np.random.default_rng(seed)
    L, H, N = cap.num_layers, cap.num_heads, cap.num_tokens
    probs = []
    for _layer in range(L):
        share = rng.uniform(0.95, 0.995, (1, H, N, 1))  # the class token's share of each row
        patches = rng.dirichlet(np.full(N - 1, 0.4), size=(1, H, N))  # (1, H, N, N - 1), rows sum to 1
        probs.append(torch.from_numpy(np.concatenate([share, (1 - share) * patches], axis=-1)).float())
    return dataclasses.replace(cap, storage="full", _probs=tuple(probs))


def _within_bound(decoded: np.ndarray, row: np.ndarray, num_prefix: int) -> float:
    """The decode's largest patch error as a fraction of the patches' own range (the stated bound: 1/510)."""
    patches, got = row[num_prefix:], decoded[num_prefix:]
    span = patches.max() - patches.min()
    error = np.abs(got - patches).max() - FLOAT32_SLACK * np.abs(patches).max()
    return float(max(error, 0.0) / span)


def test_quantised_patches_keep_their_own_scale_when_the_class_token_holds_over_95_percent():
    rng = np.random.default_rng(4)
    share = rng.uniform(0.95, 0.99, (8, 1))
    rows = np.concatenate([share, (1 - share) * rng.dirichlet(np.full(196, 0.4), size=8)], axis=-1)  # (8, 197)
    coded = quantise_prefixed(rows, 1)
    decoded = coded.decode()
    assert decoded.shape == rows.shape
    np.testing.assert_array_equal(decoded[:, 0], rows[:, 0].astype(np.float32))  # the class token, as is
    for d, r in zip(decoded, rows):
        assert _within_bound(d, r, 1) <= 1 / 510
        assert len(np.unique(d[1:])) > 50, "the patches' structure survives (one level before the fix)"
    # one 8-bit scale over the whole row (the old payload) puts the patches on a few levels
    old = quantise_rows(rows).decode()
    assert max(len(np.unique(row[1:])) for row in old) <= 2


@pytest.mark.parametrize("budget", [None, "fused", "prefix"])
def test_the_browser_decodes_the_captures_patch_attention_within_the_stated_bound(budget):
    cap = _class_token_capture()
    L, H, N, P = cap.num_layers, cap.num_heads, cap.num_tokens, cap.layout.num_prefix_tokens
    assert float(cap.attention(0)[0, :, :, 0].min()) > 0.95  # every row: the class token holds over 95 %
    full = attention_payload(cap)
    row = N + 8 + 3 * P  # patch codes, their lo and step, the prefix as float32
    sizes = {None: None, "fused": 4096 + N * L * 3 * row + P * L * H * row, "prefix": 4096 + P * L * H * row + 64}
    payload = full if budget is None else attention_payload(cap, budget=sizes[budget])
    assert payload.tier == (budget or "heads")
    extra = [] if payload.tier != "prefix" else [query_rows_payload(cap, [N - 1])]
    reader = PayloadReader(payload.blob, *extra)
    checked = 0
    for layer in range(L):
        attn = cap.attention(layer)[0].double().numpy()  # (H, N, N)
        for query in reader.fused_queries:
            rows = attn[:, query]  # (H, N)
            if query in reader.head_queries:
                for head in range(H):
                    got = reader.row(query, layer, head)
                    assert got[0] == np.float32(rows[head, 0])
                    assert _within_bound(got, rows[head], P) <= 1 / 510, (layer, query, head)
                    checked += 1
            for fusion in FUSIONS:
                reference = getattr(rows, fusion)(axis=0)
                got = reader.row(query, layer, fusion)
                # fused on the server: one patch scale of its own; in the browser from the heads: each head's half
                # step, at most the largest head's patch range / 510
                span = np.ptp(rows[:, P:], axis=-1).max() if query in reader.head_queries and budget != "fused" \
                    else np.ptp(reference[P:])
                error = np.abs(got[P:] - reference[P:]).max() - 4 * FLOAT32_SLACK * np.abs(reference[P:]).max()
                assert error <= span / 510, (layer, query, fusion)
                checked += 1
    assert checked >= L * (len(FUSIONS) + (H if budget != "fused" else 0))


@pytest.mark.skipif(shutil.which("node") is None, reason="no Node.js to run lib.js")
def test_lib_js_decodes_a_prefixed_row_as_the_payload_reader_does():
    """``vvRow`` (what every explorer draws) gives the float32 prefix and the patches on their own scale."""
    from vitviz_app.components._registry import LIB_JS

    cap = _class_token_capture(seed=1)
    payload = attention_payload(cap)
    reader = PayloadReader(payload.blob)
    N, L, H = cap.num_tokens, cap.num_layers, cap.num_heads
    code = f"""globalThis.window = new EventTarget();
const VV_TEST_HOOKS = false;
{LIB_JS}
const p = vvDecode("{base64.b64encode(payload.blob).decode()}");
const rows = [];
for (let k = 0; k < {N * L * H}; k++) rows.push(Array.from(vvRow(p.sections, "heads", k, {N})));
console.log(JSON.stringify(rows));"""
    done = subprocess.run([shutil.which("node"), "-"], input=code, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    decoded = np.asarray(json.loads(done.stdout), dtype=np.float32).reshape(N, L, H, N)  # (query, layer, head, key)
    for query, layer, head in ((0, 0, 0), (N - 1, L - 1, H - 1), (3, 1, 2)):
        expected = reader.row(query, layer, head)
        assert decoded[query, layer, head, 0] == expected[0]  # the class token's float32, as sent
        # JavaScript adds in float64 before storing float32: the same value, up to float32 rounding
        np.testing.assert_allclose(decoded[query, layer, head], expected, rtol=2e-7, atol=1e-12)
