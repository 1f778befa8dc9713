"""Parity of ``vitviz.attribution.chefer2021`` with the authors' own implementation.

The authors' code (github.com/hila-chefer/Transformer-Explainability, ``baselines/ViT/ViT_LRP.py``) is a
re-written ViT whose modules carry ``relprop`` methods. Its parameter names are timm's, so a timm model's
state dict loads into it. This script builds random timm ViTs (biases and LayerNorm parameters perturbed so
that no rule sees a trivial case), loads them into the authors' model, runs their ``relprop(...,
method="transformer_attribution", alpha=1)`` exactly as their ``LRP.generate_LRP`` does (without its
``.cuda()`` calls), and compares the class-token map with vitviz's, in float64.

It needs a checkout of that repository and ``einops``; neither is a vitviz dependency and no line of it is
copied into vitviz. Run:
``python bench/chefer_parity.py --repo /path/to/Transformer-Explainability [--seeds 5]``
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="checkout of hila-chefer/Transformer-Explainability")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--img-size", type=int, default=64)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.repo))

    import numpy as np
    import timm
    import torch
    from baselines.ViT.ViT_LRP import VisionTransformer as AuthorsViT  # the authors' model (external)

    from vitviz.attribution import get_method

    worst = 0.0
    print("seed target  max|authors - vitviz|  max|authors|  relative")
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=args.img_size,
                                  depth=args.depth, num_classes=10).eval().double()
        with torch.no_grad():
            for param in model.parameters():
                if param.ndim == 1:
                    param.add_(0.1 * torch.randn_like(param))
        authors = AuthorsViT(img_size=args.img_size, patch_size=16, embed_dim=192, depth=args.depth,
                             num_heads=3, mlp_ratio=4, qkv_bias=True, num_classes=10).double()
        authors.load_state_dict(model.state_dict())
        authors.norm.eps = model.norm.eps  # their final LayerNorm defaults to 1e-5, timm's ViT uses 1e-6
        authors.eval()
        x = torch.randn(1, 3, args.img_size, args.img_size, dtype=torch.float64)
        for target in (0, 7):
            output = authors(x)
            assert torch.allclose(output, model(x), atol=1e-9), "the two models disagree on the logits"
            one_hot = torch.zeros(1, 10, dtype=torch.float64)
            one_hot[0, target] = 1.0
            authors.zero_grad()
            (one_hot * output).sum().backward(retain_graph=True)
            theirs = authors.relprop(one_hot, method="transformer_attribution", alpha=1)[0].detach().numpy()
            ours = get_method("chefer2021").attribute(model, x, target=target).patches.ravel()
            diff, scale = float(np.abs(theirs - ours).max()), float(np.abs(theirs).max())
            worst = max(worst, diff / scale)
            print(f"{seed:4d} {target:6d}  {diff:20.3e}  {scale:12.3e}  {diff / scale:8.1e}")
    print(f"worst relative difference: {worst:.1e}")


if __name__ == "__main__":
    main()
