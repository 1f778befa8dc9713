"""What goes wrong when choosing or loading a model, said for the user."""
from __future__ import annotations

__all__ = ["FallbackWarning", "ModelError"]

class ModelError(ValueError):
    """A model or weights problem, with a message meant for the user."""


class FallbackWarning(UserWarning):
    """``load_model`` gave the bundled ``vitviz-shapes`` model instead of the one asked for (hub out of reach).

    Turn it into an error with ``warnings.simplefilter("error", FallbackWarning)``, or pass
    ``allow_fallback=False`` to ``load_model`` to get a :class:`ModelError` instead.
    """
