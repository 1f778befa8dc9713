"""Metrics that judge an attribution map: per-image faithfulness (perturbation curves) and sanity checks.

Metrics call attribution methods (``vitviz.attribution``); methods never call metrics. Each metric states
its protocol (what is removed, in what order, with what baseline value) and the paper it follows.
"""
from .faithfulness import (
    DEFAULT_FRACTIONS,
    DEFAULT_TIE_ORDERS,
    ORDERS,
    REMOVALS,
    Faithfulness,
    PerturbationBand,
    PerturbationCurve,
    area_under_curve,
    embed_tokens,
    faithfulness,
    forward_kept_tokens,
    perturbation_curve,
    perturbation_curves,
    pixel_ranking,
    random_baseline,
    removal_order,
    removed_count,
)
from .sanity import FLAG_THRESHOLD, SanityCheck, sanity_check, spearman

__all__ = [
    "FLAG_THRESHOLD",
    "SanityCheck",
    "DEFAULT_FRACTIONS",
    "DEFAULT_TIE_ORDERS",
    "ORDERS",
    "REMOVALS",
    "Faithfulness",
    "PerturbationBand",
    "PerturbationCurve",
    "area_under_curve",
    "embed_tokens",
    "faithfulness",
    "forward_kept_tokens",
    "perturbation_curve",
    "perturbation_curves",
    "pixel_ranking",
    "random_baseline",
    "removal_order",
    "removed_count",
    "sanity_check",
    "spearman",
]
