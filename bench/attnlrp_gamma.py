"""Token-removal faithfulness of AttnLRP over lxt's γ grid on the shapes model, beside CP-LRP.

lxt's ViT examples grid-search γ (patch embedding {0.1, 0.25, 100}, linear layers {0, 0.01, 0.05, 0.1, 1}) by
looking at heatmaps; this measures instead: mean AUC of the target probability while the most relevant
patches are dropped first (lower is better) and the least relevant first (higher is better), with standard
errors, over held-out shapes images. Run: ``python bench/attnlrp_gamma.py [--images 40]``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    args = parser.parse_args(argv)

    import numpy as np
    import timm

    from vitviz.attribution.conservation import decompose_logit
    from vitviz.evaluation.datasets import ShapesEvalSet
    from vitviz.evaluation.faithfulness import perturbation_curves
    from vitviz.shapes import load_shapes_model

    model, config = load_shapes_model()
    data = timm.data.resolve_model_data_config(model)
    images = ShapesEvalSet(seed=1234, count=args.images, image_size=data["input_size"][-1], mean=data["mean"],
                           std=data["std"], labels=config.get("classes"))
    settings = {"cp_lrp": ("cp_lrp", 0.0, 0.0)}
    settings.update({f"γ=({conv}, {linear})": ("attnlrp", conv, linear)
                     for conv in (0.0, 0.25, 100.0) for linear in (0.0, 0.01, 0.05, 0.1, 1.0)})
    aucs: dict[str, list[tuple[float, float]]] = {name: [] for name in settings}
    for index in range(len(images)):
        item = images[index]
        maps = {name: decompose_logit(model, item.x, item.label, method=method, conv_gamma=conv,
                                      linear_gamma=linear).relevance
                for name, (method, conv, linear) in settings.items()}
        curves = perturbation_curves(model, item.x, maps, item.label, removal="tokens")
        for name in settings:
            aucs[name].append((curves[(name, "most")].auc, curves[(name, "least")].auc))
    print(f"{'setting':18s} most relevant first (lower better)  least relevant first (higher better)  n={len(images)}")
    for name, values in aucs.items():
        a = np.asarray(values)
        se = a.std(0, ddof=1) / np.sqrt(len(a))
        print(f"{name:18s} {a[:, 0].mean():.3f} ± {se[0]:.3f}{'':24s}{a[:, 1].mean():.3f} ± {se[1]:.3f}")


if __name__ == "__main__":
    main()
