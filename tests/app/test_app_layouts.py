"""Every page works for token layouts that broke well-known tools: registers without a class token, attention
pooling, no classifier head. The bundled model is swapped for timm's tiny test models for these runs."""
from __future__ import annotations

import pytest

PAGES = ["pages/patches.py", "pages/position_embeddings.py", "pages/attention.py",
         "pages/rollout.py", "pages/heads_depth.py", "pages/how_vit_works.py", "pages/compare.py"]


@pytest.mark.parametrize(
    "name, model_args, prefix",
    [
        ("test_vit2", {"num_classes": 10}, ("reg0",)),  # one register, no class token, average pooling
        ("test_vit3", {"num_classes": 10}, ("reg0",)),  # attention pooling ('map')
        ("test_vit", {"num_classes": 0}, ("cls",)),  # no classifier head: features only
    ],
    ids=["registers-avg-pool", "attention-pool", "no-head"],
)
def test_pages_handle_other_token_layouts(open_app, swap_bundled, name, model_args, prefix):
    swap_bundled(name, **model_args)
    at = open_app()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    if not model_args.get("num_classes"):
        assert any("no classifier head" in i.value for i in at.info)
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
    at.switch_page("pages/attention.py").run()
    query = at.segmented_control(key="attn_query")
    assert list(query.options)[: len(prefix)] == [
        "Register 0" if p == "reg0" else "Class token" for p in prefix
    ], "the query choices are the model's own prefix tokens"
    at.switch_page("pages/rollout.py").run()
    readout = " ".join(c.value for c in at.caption)
    if "cls" in prefix:
        assert "Read-out: class token" in readout
    else:
        assert "mean over patch queries" in readout, "without a class token rollout says what it read out"
