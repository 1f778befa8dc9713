"""Many users at once: sessions sharing one cached model each see exactly their own maps.

Streamlit keeps one model object per server (``st.cache_resource``) and runs every browser session in its
own thread, so eight people exploring at once means eight threads capturing attention on one model while
others re-patch it or run it plainly. Each thread's results must equal what it gets alone (computed
sequentially first), nothing may deadlock (every join has a deadline), and the shared model must come out
exactly as it went in.

Here, threads calling ``vitviz.capture.capture`` and the analyses on one model; eight browser sessions on one
server are in ``tests/browser/test_browser_sessions.py``.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests import _imagefactory as factory
from vitviz.analysis import attention_grid, attention_map, mean_attention_distance, rollout, with_patch_size
from vitviz.capture import capture
from vitviz.images import load_image, prepare_input
from vitviz.models import load_model

SESSIONS = 8
DEADLINE_S = 180.0  # per join: far beyond the seconds this takes; only a deadlock reaches it


def run_together(work: Callable[[int], Any], n: int = SESSIONS) -> list[Any]:
    """Run ``work(i)`` for i < n in n threads released at once; re-raise the first error; fail on a hang."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=DEADLINE_S)
            results[i] = work(i)
        except BaseException as exc:  # reported below, with the thread's index
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,), daemon=True, name=f"session-{i}") for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE_S)
    assert not any(t.is_alive() for t in threads), "a session never finished: deadlock"
    if errors:
        raise errors[0]
    return results


# ------------------------------------------------------------------------------------------ library


@pytest.fixture(scope="module")
def shared():
    """One model for every thread, as the app's st.cache_resource gives it (test_vit, random weights)."""
    torch.manual_seed(0)
    return load_model("test_vit", pretrained=False)


def _session_image(i: int) -> Image.Image:
    """A different photo per session: a marker at a different place on a different background."""
    picture = factory.make_marker_image((120 + 8 * i, 160), markers=((10 + 9 * i, 12 + 15 * i),), marker_size=24,
                                        background=(20 * i, 90, 200 - 20 * i))
    return load_image(factory.encode(picture, "PNG"))


def _session_settings(i: int) -> dict[str, Any]:
    """Different settings per session: storage, gradient target, layer, head, query, fusion, discard."""
    return dict(
        storage=("full", "qk", "auto")[i % 3],
        target=7 * i if i % 4 == 3 else None,
        layer=i % 6,
        head=(0, 1, "mean", "max")[i % 4],
        query=("cls", (i % 10, (3 * i) % 10))[i % 2],
        fusion=("mean", "max", "min")[i % 3],
        discard=(0.0, 0.5)[i % 2],
    )


def _session(loaded, i: int) -> dict[str, np.ndarray]:
    """What one app session computes: its input, capture and every view, as arrays."""
    s = _session_settings(i)
    x, _ = prepare_input(_session_image(i), loaded.data_config)
    storage = "full" if s["target"] is not None else s["storage"]
    cap = capture(loaded.model, x, target=s["target"], storage=storage)
    out = {
        "output": cap.output.numpy(),
        "map": attention_map(cap, s["layer"], s["head"], s["query"]).patches,
        "grid": attention_grid(cap, s["query"]),
        "rollout": rollout(cap, head_fusion=s["fusion"], discard_ratio=s["discard"]).maps,
        "distance": mean_attention_distance(cap),
    }
    if s["target"] is not None:
        out["grad"] = cap.attention_grad(-1).numpy()
    return out


def _assert_same(together: dict, alone: dict) -> None:
    assert together.keys() == alone.keys()
    for key in alone:
        np.testing.assert_allclose(together[key], alone[key], rtol=1e-4, atol=1e-6, err_msg=key)


def _flags_and_hooks(model: torch.nn.Module) -> tuple[list[bool], int, bool]:
    flags = [bool(block.attn.fused_attn) for block in model.blocks]
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    return flags, hooks, model.training


def test_eight_threads_on_one_model_each_get_their_own_maps(shared):
    before = _flags_and_hooks(shared.model)
    alone = [_session(shared, i) for i in range(SESSIONS)]
    for _ in range(2):  # two rounds: the second starts with every thread's caches warm
        together = run_together(lambda i: _session(shared, i))
        for i in range(SESSIONS):
            _assert_same(together[i], alone[i])
    # the sessions really differ, so a swapped result could not pass the comparison above
    outputs = np.stack([a["output"][0] for a in alone])  # (8, C)
    gaps = np.abs(outputs[:, None] - outputs[None]).max(-1)  # (8, 8)
    assert (gaps + np.eye(SESSIONS) * 1e9).min() > 1e-3
    assert _flags_and_hooks(shared.model) == before


def test_plain_forwards_and_captures_interleave_correctly(shared):
    """Half the threads run the model plainly (as a notebook might), half capture: both stay correct."""
    inputs = [prepare_input(_session_image(i), shared.data_config)[0] for i in range(SESSIONS)]
    with torch.no_grad():
        plain = [shared.model(x) for x in inputs]
    alone = [capture(shared.model, x).attention(-1) for x in inputs]

    def work(i: int):
        if i % 2:
            with torch.no_grad():
                return shared.model(inputs[i])
        return capture(shared.model, inputs[i]).attention(-1)

    together = run_together(work)
    for i in range(SESSIONS):
        expected = plain[i] if i % 2 else alone[i]
        torch.testing.assert_close(together[i], expected, rtol=1e-4, atol=1e-5)


def test_repatching_the_shared_model_during_a_capture_copies_no_hooks(shared):
    """The app's 'repatched' copies the shared model (deepcopy) while other sessions may be capturing on it.

    The copy is cached and shared too, so it must not carry a recorder's hooks (which keep that capture's
    tensors alive) nor the temporarily switched-off fused attention.
    """
    model = shared.model
    expected_flags = [bool(b.attn.fused_attn) for b in model.blocks]
    inside, release = threading.Event(), threading.Event()

    def hold(_module, _args):  # blocks the capture thread in the middle of its forward pass
        if threading.current_thread().name == "capturing":
            inside.set()
            release.wait(timeout=DEADLINE_S)

    handle = model.blocks[3].register_forward_pre_hook(hold)
    x = prepare_input(_session_image(0), shared.data_config)[0]
    worker = threading.Thread(target=lambda: capture(model, x, storage="full"), name="capturing", daemon=True)
    try:
        worker.start()
        assert inside.wait(timeout=DEADLINE_S)
        threading.Timer(1.0, release.set).start()  # with_patch_size waits for the capture's lock meanwhile
        copy = with_patch_size(model, 8)
    finally:
        release.set()
        worker.join(timeout=DEADLINE_S)
        handle.remove()
    assert not worker.is_alive()
    leftover = [name for name, m in copy.named_modules()
                for hook in [*m._forward_hooks.values(), *m._forward_pre_hooks.values()] if hook is not hold]
    assert leftover == [], "the copy carries a recorder's hooks"
    assert [bool(b.attn.fused_attn) for b in copy.blocks] == expected_flags
