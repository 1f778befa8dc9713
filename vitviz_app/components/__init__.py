"""Browser-side components: each one's JavaScript sits beside its Python wrapper.

They receive plain arrays prepared by ``vitviz.export`` (never a model) and redraw in the browser, so a
control that only changes the view costs no server rerun.
"""
from .attention_explorer import attention_explorer, commit_updates, explorer_budget, map_colours
from .patch_follower import patch_follower
from .rollout_explorer import rollout_explorer
from .tile_explorer import tile_explorer

__all__ = ["attention_explorer", "commit_updates", "explorer_budget", "map_colours", "patch_follower", "rollout_explorer",
           "tile_explorer"]
