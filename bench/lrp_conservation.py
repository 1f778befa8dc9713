"""Where an LRP map's logit goes: ``decompose_logit`` on the bundled shapes samples and on a random ViT.

For CP-LRP and AttnLRP (γ = 0 and vitviz's γ), each part's share of the explained logit (top class, float64):
the map (patches), prefix tokens, the patch tokens' position embedding, the biases by group, the softmax's
bias term, and the residual (rounding). Run: ``python bench/lrp_conservation.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def line(tag: str, d) -> str:
    shares = {name: 100 * value / d.logit for name, value in d.parts().items()}
    prefix = sum(shares[name] for name in d.prefix)
    biases = " ".join(f"{group}:{100 * value / d.logit:.1f}" for group, value in d.biases.items())
    return (f"{tag:38s} logit {d.logit:7.3f}  patches {shares['patches']:6.1f}%  prefix {prefix:6.1f}%  "
            f"position {shares['position']:6.1f}%  biases {100 * sum(d.biases.values()) / d.logit:6.1f}% ({biases})  "
            f"softmax {shares['softmax']:5.1f}%  residual {d.residual:.0e}")


def main() -> None:
    import timm
    import torch

    from vitviz.attribution._rules import CONV_GAMMA, LINEAR_GAMMA
    from vitviz.attribution.conservation import decompose_logit
    from vitviz.images import load_image, prepare_input
    from vitviz.shapes import load_shapes_model

    settings = [("cp_lrp", 0.0, 0.0), ("attnlrp", 0.0, 0.0), ("attnlrp", CONV_GAMMA, LINEAR_GAMMA)]
    model = load_shapes_model()[0].double()
    config = timm.data.resolve_model_data_config(model)
    for path in sorted((ROOT / "vitviz" / "assets" / "samples").glob("shapes_*.png")):
        x = prepare_input(load_image(path), config)[0].double()
        for method, conv, linear in settings:
            d = decompose_logit(model, x, None, method=method, conv_gamma=conv, linear_gamma=linear)
            print(line(f"{path.stem[7:]} {method} γ=({conv}, {linear})", d))
    torch.manual_seed(0)
    random_vit = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval().double()
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for method, conv, linear in settings:
        d = decompose_logit(random_vit, x, None, method=method, conv_gamma=conv, linear_gamma=linear)
        print(line(f"random vit_tiny {method} γ=({conv}, {linear})", d))


if __name__ == "__main__":
    main()
