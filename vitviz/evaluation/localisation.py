"""The evaluation's localisation scores: pointing game, top-region IoU, segmentation mIoU.

They are pure functions of a map and an object mask, so they live in :mod:`vitviz.analysis.localisation`, where
the shapes model's own evaluation (``vitviz.shapes.evaluation``) reads them too without depending on the
evaluation package; this module gives ``vitviz.evaluation`` its names for them.
"""
from __future__ import annotations

from vitviz.analysis import localisation as _localisation
from vitviz.analysis.localisation import *  # noqa: F403 (the same functions, under the evaluation's name)

__all__ = list(_localisation.__all__)
