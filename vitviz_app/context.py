"""What the sidebar chose, for the page to show: the :class:`AppContext` of this run.

``vitviz_app.sidebar`` draws the widgets and builds the context once per run (:func:`remember`); pages read it
with ``vitviz_app.context()``, which draws the sidebar first when a page runs without ``app.py``. The context
owns the run's model, image and their cache keys; everything a page shows derives from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from vitviz.i18n import _

from . import loaders, trace, waiting

__all__ = ["AppContext", "Prompt", "current_context", "describe_image", "remember", "seen_note"]

_CONTEXT = "_vitviz_context"


class Prompt(str):
    """A message for an empty state (nothing uploaded or typed yet): shown as a neutral prompt, not an error."""


@dataclass(frozen=True, eq=False)
class AppContext:
    """What the sidebar chose, for the page to show.

    Attributes:
        loaded: ``vitviz.models.LoadedModel``, or None when no model could be loaded.
        model_key: Cache key of the model (name and weights digest).
        image: The decoded, upright RGB image (PIL), or None.
        image_key: Digest of the image bytes (cache key), or None.
        image_label: Where the image came from, e.g. ``'sample: cat'`` or ``'upload: holiday.jpg'``.
        problems: Messages for the user when the model or image is missing or bad.
        fit: How a photo is fitted to the model's input (``vitviz.images.FITS``): ``'crop'`` (the model's
            own), ``'letterbox'`` or ``'squash'``; part of every forward pass's cache key.
    """

    loaded: Any
    model_key: str
    image: Any
    image_key: str | None
    image_label: str
    problems: tuple[str, ...] = field(default=())
    fit: str = "crop"

    @property
    def image_title(self) -> str:
        """Where the image came from, in the user's language (``image_label`` stays English: it is data)."""
        return describe_image(self.image_label)

    @property
    def ready(self) -> bool:
        return self.loaded is not None and self.image is not None

    def require(self) -> None:
        """Stop the page with a clear message unless both a model and an image are ready."""
        if self.ready:
            return
        for problem in self.problems:
            if isinstance(problem, Prompt):
                st.info(problem, icon=":material/arrow_back:")
            else:
                st.error(problem, icon=":material/error:")
        if not self.problems:
            st.info(_("Choose an image in the sidebar: a sample, your own upload, the camera, or a drawing."),
                    icon=":material/image:")
        st.stop()

    def forward(self, patch_size: int | None = None, target: int | None = None) -> loaders.Forward:
        """The captured forward pass for this image and model (cached; runs the model only on a miss, showing the
        place in line while the pass waits behind other sessions').

        The page's own pass (no other patch size, no gradient target) also says, above the page's views, what
        the model sees of a photo that is not square (:func:`seen_note`).
        """
        from vitviz.capture import CaptureError

        self.require()
        doing = _spinner_text(self.loaded, patch_size, target)
        try:  # a pass not cached waits in line with other sessions' passes, and this page shows its place
            fwd = loaders.pass_for(self.model_key, self.image_key, patch_size, target, self.loaded, self.image,
                                   fit=self.fit, wait=lambda ticket: waiting.wait_for(ticket, doing))
        except (CaptureError, ValueError) as exc:
            st.error(_("The model could not be run on this image: {reason}").format(reason=exc),
                     icon=":material/error:")
            st.stop()
        trace.mark("pass", key=self.image_key)
        if patch_size is None and target is None:
            seen_note(fwd.geometry, self.fit)
        if not fwd.finite:
            st.warning(_("The model's outputs contain NaN or infinite values (are the weights broken?): the "
                         "maps below cannot mean anything."), icon=":material/warning:")
        return fwd

    def settings(self, **view: Any) -> dict[str, Any]:
        """Settings saved next to downloaded arrays: model, weights, image, plus the view's own."""
        loaded = self.loaded
        return {
            "model": getattr(loaded, "name", None),
            "model_requested": getattr(loaded, "requested", None),
            "weights": getattr(loaded, "source", None),
            "image": self.image_label,
            "image_size_hw": None if self.image is None else [self.image.height, self.image.width],
            **view,
        }


def seen_note(geometry, fit: str) -> None:
    """Say what the model sees of a photo that is not square (nothing for a square one): the centre it crops,
    or the whole photo padded or squashed; the sidebar's switch chooses."""
    from vitviz.images import sees_whole_image

    height, width = geometry.original_size
    if height == width:  # a square photo loses at most a thin border (the config's crop_pct), dimmed on the maps
        return
    if not sees_whole_image(geometry):
        _top, _left, box_h, box_w = geometry.crop_box
        text = _("The model sees only the centre {seen_w}×{seen_h} px of this {width}×{height} px image; the rest "
                 "is dimmed on the maps. To show it the whole image, choose “Whole, padded” in the sidebar.").format(
            seen_w=round(min(box_w, width)), seen_h=round(min(box_h, height)), width=width, height=height)
    elif fit == "squash":
        text = _("The model sees the whole {width}×{height} px image squashed to a square, so shapes look "
                 "stretched to it.").format(width=width, height=height)
    else:
        text = _("The model sees the whole {width}×{height} px image, shrunk to fit its square input and padded "
                 "with grey.").format(width=width, height=height)
    st.info(text, icon=":material/crop:")


def _spinner_text(loaded, patch_size, target) -> str:
    if patch_size is None:
        text = _("Running {model} on your image…") if target is None else \
            _("Running {model} with gradients on your image…")
    else:
        text = _("Running {model} at patch size {patch} on your image…") if target is None else \
            _("Running {model} at patch size {patch} with gradients on your image…")
    return text.format(model=loaded.display_name, patch=patch_size)


def describe_image(label: str) -> str:
    """An image label (``'sample: cat'``, ``'upload: a.jpg'``, ``'camera photo'``) in the user's language (the
    sample's name stays: it is the selector's option and the URL's value)."""
    kind, _sep, name = label.partition(": ")
    if kind == "sample" and name:
        return _("sample: {name}").format(name=name)
    if kind == "upload" and name:
        return _("upload: {file}").format(file=name)
    return {"camera photo": _("camera photo"), "drawing": _("drawing")}.get(label, label)


def remember(ctx: AppContext) -> AppContext:
    """Keep ``ctx`` as this run's context (the sidebar calls it once per run); returns it."""
    st.session_state[_CONTEXT] = ctx
    return ctx


def current_context() -> AppContext | None:
    """The sidebar's result if it was drawn in this run (None before), without drawing it."""
    return st.session_state.get(_CONTEXT)
