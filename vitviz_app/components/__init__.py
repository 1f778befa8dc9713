"""Browser-side components: one shared library (lib.js) and each component's script beside its Python wrapper.

They receive plain arrays prepared by ``vitviz.export`` (never a model) and redraw in the browser, so a
control that only changes the view costs no server rerun. Every component is mounted with the same data,
``{payload, committed, colours, text}``, and what it sends back is checked by its handler before the page
uses it (``_contract.py``).
"""
from ._contract import Refused
from ._registry import TEST_HOOKS_ENV
from .attention_explorer import attention_explorer, commit_updates, explorer_budget, map_colours, read_commit
from .drawing_canvas import drawing_canvas, drawing_png, read_drawing
from .patch_follower import patch_follower
from .rollout_explorer import rollout_explorer
from .tile_explorer import tile_explorer

__all__ = ["Refused", "TEST_HOOKS_ENV", "attention_explorer", "commit_updates", "drawing_canvas", "drawing_png",
           "explorer_budget", "map_colours", "patch_follower", "read_commit", "read_drawing", "rollout_explorer",
           "tile_explorer"]
