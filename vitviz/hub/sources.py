"""Where a timm model's pretrained weights live on the hub."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WEIGHT_FILES", "WeightsSource", "weights_source"]

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
"""Weight files timm looks for in a hub repository, in its order of preference."""


@dataclass(frozen=True)
class WeightsSource:
    """Where a timm model's pretrained weights live on the hub.

    Attributes:
        repo_id: Hub repository.
        revision: Branch, tag or commit, or None for the default branch.
        filenames: Weight file names to try, in order.
        needs_config: Whether the repository's ``config.json`` is needed too (an ``hf-hub:`` model, whose
            architecture it describes).
    """

    repo_id: str
    revision: str | None
    filenames: tuple[str, ...]
    needs_config: bool = False

    @property
    def files(self) -> tuple[tuple[str, ...], ...]:
        """What to download, in order: each entry is the file names to try for one file."""
        return (("config.json",), self.filenames) if self.needs_config else (self.filenames,)


def weights_source(timm_name: str) -> WeightsSource | None:
    """The hub files holding a timm model's pretrained weights, or None when timm does not take them from
    the hub (e.g. a model with no pretrained weights, or weights behind a plain URL)."""
    if timm_name.startswith(("hf-hub:", "hf_hub:")):
        repo, _at, revision = timm_name.split(":", 1)[1].partition("@")
        return WeightsSource(repo, revision or None, WEIGHT_FILES, needs_config=True)
    # heavy: timm (~6 s), loaded when a timm model's weights are looked up
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(timm_name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    repo, _at, revision = hub_id.partition("@")
    filename = getattr(cfg, "hf_hub_filename", None)
    return WeightsSource(repo, revision or None, (filename,) if filename else WEIGHT_FILES)
