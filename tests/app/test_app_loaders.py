"""The app's loaders, shared by every browser session of one server: a repatched copy of the shared model is
made under its capture lock, so another session's capture in flight never leaks into it (the library's own
threads on one model: ``tests/unit/test_concurrency.py``)."""
from __future__ import annotations

import threading

import pytest
import torch

from tests import _imagefactory as factory
from vitviz.capture import capture
from vitviz.images import load_image, prepare_input
from vitviz.models import load_model

DEADLINE_S = 180.0  # per join: far beyond the seconds this takes; only a deadlock reaches it


@pytest.fixture(scope="module")
def shared():
    """One model for every session, as the app's st.cache_resource gives it (test_vit, random weights)."""
    torch.manual_seed(0)
    return load_model("test_vit", pretrained=False)


def test_the_apps_repatched_copy_waits_for_a_capture_in_flight(shared):
    """``vitviz_app.loaders.repatched`` (the Patches page's slider) copies the shared model under its capture
    lock: made while another session captures, the copy still has no hooks and the model's own flags."""
    import uuid

    from vitviz_app import loaders

    model = shared.model
    expected_flags = [bool(b.attn.fused_attn) for b in model.blocks]
    inside, release = threading.Event(), threading.Event()

    def hold(_module, _args):
        if threading.current_thread().name == "capturing":
            inside.set()
            release.wait(timeout=DEADLINE_S)

    handle = model.blocks[3].register_forward_pre_hook(hold)
    photo = factory.make_marker_image((120, 160), markers=((10, 12),), marker_size=24, background=(0, 90, 200))
    x = prepare_input(load_image(factory.encode(photo, "PNG")), shared.data_config)[0]
    worker = threading.Thread(target=lambda: capture(model, x, storage="full"), name="capturing", daemon=True)
    copies: list = []
    copier = threading.Thread(target=lambda: copies.append(loaders.repatched(uuid.uuid4().hex, 8, shared)),
                              daemon=True)
    try:
        worker.start()
        assert inside.wait(timeout=DEADLINE_S)
        copier.start()
        copier.join(timeout=1.0)  # it waits for the lock (or would fail at once without it)
    finally:
        release.set()
        worker.join(timeout=DEADLINE_S)
        copier.join(timeout=DEADLINE_S)
        handle.remove()
    assert not worker.is_alive() and not copier.is_alive()
    assert len(copies) == 1, "the copy failed (see the thread's exception above)"
    copy = copies[0]
    hooks = [name for name, m in copy.named_modules()
             for hook in [*m._forward_hooks.values(), *m._forward_pre_hooks.values()] if hook is not hold]
    assert hooks == []
    assert [bool(b.attn.fused_attn) for b in copy.blocks] == expected_flags
    assert tuple(copy.patch_embed.patch_size) == (8, 8)
