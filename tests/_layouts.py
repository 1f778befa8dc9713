"""Token layouts for the payload tests: timm's tiny models with each arrangement of prefix tokens, captured on
random input. Shared by ``tests/unit/test_explorer_payload.py``, ``test_rollout_payload.py`` and
``test_walkthrough_payload.py``."""
from __future__ import annotations

__all__ = ["FLOAT32_SLACK", "LAYOUTS", "LAYOUT_IDS", "capture_layout"]

FLOAT32_SLACK = 2e-7  # lo + code * step in float32, on values below 1

LAYOUTS = [  # (timm model, its arguments, its prefix tokens)
    ("test_vit", {}, ("cls",)),
    ("test_vit2", {}, ("reg0",)),  # a register, no class token, average pooling
    ("test_vit3", {}, ("reg0",)),  # attention pooling
    ("deit_tiny_distilled_patch16_224", {"img_size": (48, 80), "depth": 2, "num_heads": 4}, ("cls", "dist")),  # 3 × 5
    ("vit_tiny_patch16_224", {"img_size": (32, 64), "depth": 2, "num_heads": 6, "class_token": False,
                              "global_pool": "avg"}, ()),
]
LAYOUT_IDS = [case[0] + "-" + "-".join(case[2] or ("none",)) for case in LAYOUTS]


def capture_layout(name: str, **kwargs):
    """The Capture of timm model ``name`` (seeded random weights) on a seeded random input of its size."""
    import timm
    import torch

    from vitviz.capture import capture

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    size = model.patch_embed.img_size
    return capture(model, torch.randn(1, 3, *size))
