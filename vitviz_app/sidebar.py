"""The sidebar every page shares: its widgets for the image, the model and the weights.

``app.py`` draws it once per run, before the page (so its widgets keep their state on every page); what they
chose becomes the run's :class:`~vitviz_app.context.AppContext`, which pages get with :func:`context`. Each
widget has an explicit key, keeps its value for the whole session (``persist_state="session"``) and is in the URL
as a language-neutral id (``vitviz_app.links``, or ``bind="query-params"`` for file names):
``?model=...&image=cat&fit=letterbox`` opens the same view on another machine.
"""
from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from vitviz.i18n import N_, _, keep_language

from . import language, links, loaders, trace
from .context import AppContext, Prompt, current_context, remember
from .samples import default_sample, list_samples, read_sample, sample_title

__all__ = ["sidebar", "context", "FIT_LABELS", "SOURCES", "OTHER_MODEL", "IMAGE_TYPES", "WEIGHT_TYPES"]

SOURCES = ("Sample", "Upload", "Camera", "Draw")
OTHER_MODEL = N_("Other timm model…")
"""The model picker's last option (its URL value stays English; only its display is translated)."""
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "heic", "heif", "avif", "svg"]
WEIGHT_TYPES = ["safetensors", "pth", "pt", "bin"]
_LOG = logging.getLogger(__name__)
_SOURCE_ICONS = {
    "hub": ":material/cloud_done:",
    "hub-cache": ":material/cloud_off:",
    "local": ":material/folder_open:",
    "bundled": ":material/inventory_2:",
    "random": ":material/casino:",
}
_SOURCE_TEXT = {
    "hub": N_("pretrained, from the Hugging Face hub"),
    "hub-cache": N_("pretrained, from the local hub cache"),
    "local": N_("from your local file"),
    "bundled": N_("vitviz-shapes, shipped with vitviz (offline)"),
    "random": N_("random (untrained)"),
}
_SOURCE_LABELS = {"Sample": N_("Sample"), "Upload": N_("Upload"), "Camera": N_("Camera"), "Draw": N_("Draw")}
"""What the image-source switch shows for each of its (English, URL) values."""
FIT_LABELS = {"crop": N_("Centre crop"), "letterbox": N_("Whole, padded"), "squash": N_("Whole, squashed")}
"""What the fit switch shows for each ``vitviz.images.FITS`` value (the URL holds the value)."""


def context() -> AppContext:
    """The sidebar's result for this run (drawn by ``app.py`` before the page; drawn here when a page runs alone)."""
    ctx = current_context()
    return sidebar() if ctx is None else ctx


def _image_section(offline: bool) -> tuple[bytes | None, str, list[str]]:
    st.markdown(_("**Image**"))
    def label(value: str) -> str:
        return _(_SOURCE_LABELS.get(value, value))

    links.seed("source", "Sample", links.choice(SOURCES, label))
    source = st.segmented_control(
        _("Image source"), SOURCES, required=True, key="source", format_func=keep_language(label),
        persist_state="session", label_visibility="collapsed",
    ) or "Sample"
    links.publish("source", source, "Sample")
    problems: list[str] = []
    if source == "Upload":
        upload = st.file_uploader(
            _("Upload a photo"), type=IMAGE_TYPES, key="upload",
            help=_("JPEG, PNG, WebP, BMP, GIF or TIFF. The photo stays on this server only while you use it."),
        )
        if upload is None:
            return None, "", [Prompt(_("Upload a photo in the sidebar (or pick a sample) to begin."))]
        return upload.getvalue(), f"upload: {upload.name}", problems
    if source == "Camera":
        shot = st.camera_input(_("Take a photo"), key="camera")
        if shot is None:
            return None, "", [Prompt(_("Take a photo with the camera in the sidebar (or pick a sample) to begin."))]
        return shot.getvalue(), "camera photo", problems
    if source == "Draw":
        return _drawing()
    samples = list_samples()
    if not samples:
        return None, "", [_("No sample images were found in {folder}.").format(folder="vitviz/assets/samples")]
    names = [s.name for s in samples]
    default = default_sample(offline_model=offline) or names[0]
    # options are the file names, which is also what the URL holds (?image=cat)
    name = st.selectbox(_("Sample image"), names, index=names.index(default), key="image", bind="query-params",
                        persist_state="session")
    data = read_sample(name)
    st.image(data, caption=sample_title(name), width="stretch")
    return data, f"sample: {name}", problems


def _fit_section() -> str:
    """How a photo that is not square is fitted to the model's input (``vitviz.images.FITS``), in the URL as
    ``?fit=letterbox``; the default is the model's own centre crop."""
    from vitviz.images import FITS

    def label(value: str) -> str:
        return _(FIT_LABELS[value])

    links.seed("fit", "crop", links.choice(FITS, label))
    fit = st.segmented_control(
        _("What the model sees of a photo that is not square"), list(FITS), required=True, key="fit",
        format_func=keep_language(label), persist_state="session",
        help=_("Centre crop: the model's own preprocessing, which cuts off the sides of a wide photo. Whole, "
               "padded: the whole photo, shrunk to fit and padded with grey. Whole, squashed: the whole photo, "
               "stretched to a square."),
    ) or "crop"
    links.publish("fit", fit, "crop")
    return fit


def _drawing() -> tuple[bytes | None, str, list[str]]:
    """The drawing pad: its sketch (PNG bytes) once something is drawn, else a prompt. What the pad sends is
    checked by its handler; a sketch that does not decode is ignored too (a log line, never an error box)."""
    from vitviz.images import ImageError

    from .components.drawing_canvas import drawing_canvas

    data = drawing_canvas(key="drawing", text={
        "pen": _("Pen"), "width": _("Thickness"), "background": _("Background"), "undo": _("Undo"), "clear": _("Clear"),
        "canvas": _("Drawing pad: draw a shape with the mouse, a pen or a finger"),
    })
    if data is not None:
        try:
            loaders.decode(loaders.digest(data), data)  # cached: the sidebar's own decode finds it
        except ImageError as exc:
            _LOG.warning("drawing pad: ignored a sketch that does not decode (%s)", exc)
            data = None
    if data is None:
        return None, "", [Prompt(_("Draw a shape on the pad in the sidebar (or pick a sample) to begin."))]
    return data, "drawing", []


def _model_section(default_model: str) -> tuple[str, bytes | None, str | None, Any]:
    """The model picker; also returns a placeholder where the model really running is described."""
    from vitviz.models import CATALOGUE

    st.markdown(_("**Model**"))
    options = list(CATALOGUE) + [OTHER_MODEL]

    def label(value: str) -> str:
        return _(value) if value == OTHER_MODEL else value

    # options are the catalogue keys, which the URL holds (?model=ViT-S/16 (AugReg))
    links.seed("model", default_model, links.choice(options, label))
    choice = st.selectbox(_("Model"), options, key="model", format_func=keep_language(label), persist_state="session",
                          label_visibility="collapsed")
    links.publish("model", choice, default_model)
    name = choice
    if choice == OTHER_MODEL:
        name = st.text_input(
            _("timm model name"), key="timm", bind="query-params", persist_state="session",
            placeholder=_("e.g. {example}").format(example="deit_tiny_patch16_224.fb_in1k"),
            help=_("Any ViT-family model timm knows (vit_*, deit*, eva*, flexivit*), optionally with a "
                   "pretrained tag after a dot."),
        ).strip()
    description = st.empty()  # filled once the model is loaded: the offline fallback may run another one
    with st.expander(_("Local weights file"), icon=":material/upload_file:"):
        weights = st.file_uploader(
            _("Weights for the model above"), type=WEIGHT_TYPES, key="weights",
            help=_("A .safetensors file, or a .pth/.pt/.bin state dict of plain tensors, saved from the same "
                   "architecture. Nothing is executed from the file."),
        )
    if weights is None:
        return name, None, None, description
    data = weights.getvalue()
    return name, data, loaders.digest(data), description


def _describe(description, name: str, loaded) -> None:
    """Describe the model that really runs: after an offline fallback, the bundled one, not the one picked."""
    from vitviz.models import BUNDLED_MODEL, CATALOGUE

    spec = CATALOGUE[BUNDLED_MODEL] if loaded is not None and loaded.fallback else CATALOGUE.get(name)
    if spec is None:
        description.empty()
        return
    with description.container():
        if loaded is not None and loaded.fallback:
            st.caption(_("Running instead: **{model}** ({title}). {description}").format(
                model=spec.key, title=_(spec.title), description=_(spec.description)))
        else:
            st.caption(_("{title}. {description}").format(title=_(spec.title), description=_(spec.description)))


def _weights_line(loaded) -> None:
    icon = _SOURCE_ICONS.get(loaded.source, ":material/info:")
    text = _(_SOURCE_TEXT[loaded.source]) if loaded.source in _SOURCE_TEXT else loaded.source
    st.markdown(_("{icon} **Weights:** {source}").format(icon=icon, source=text))
    if loaded.fallback:
        st.warning(_("The hub is unreachable, so {model} could not be loaded: vitviz-shapes runs instead (the "
                     "page says what to do).").format(model=loaded.requested), icon=":material/wifi_off:")
    else:
        st.caption(loaded.notice)
    model = loaded.model
    depth, heads = len(model.blocks), model.blocks[0].attn.num_heads
    height, width = (int(v) for v in model.patch_embed.img_size)
    patch = int(model.patch_embed.patch_size[0])
    st.caption(_("`{model}` · {depth} layers × {heads} heads · {height}×{width} input · {patch} px "
                 "patches").format(model=loaded.name, depth=depth, heads=heads, height=height, width=width,
                                   patch=patch))


def _load(name: str, weights: bytes | None, weights_key: str | None, problems: list[str]):
    """The cached model, or None with the reason added to ``problems`` and shown in the sidebar."""
    from vitviz.models import ModelError

    try:
        loaders.download_weights(name, weights)  # a progress bar per file while hub weights download
        with st.spinner(_("Loading {model}…").format(model=name)):
            return loaders.load(name, weights_key, weights)
    except ModelError as exc:
        message = str(exc)
    except Exception as exc:  # a UI boundary: say it in words; details (paths, traceback) go to the server log
        _LOG.exception("loading model %r failed", name)
        message = _("The model '{model}' could not be loaded ({error}). If this is the bundled vitviz-shapes "
                    "model, its files may be missing from this installation; the server log has the "
                    "details.").format(model=name, error=type(exc).__name__)
    problems.append(message)
    st.error(message, icon=":material/error:")
    return None


def _default_model() -> str:
    from vitviz.models import BUNDLED_MODEL, CATALOGUE, hub_reachable

    if hub_reachable() or BUNDLED_MODEL not in CATALOGUE:
        return next(iter(CATALOGUE))
    return BUNDLED_MODEL


def sidebar() -> AppContext:
    """Draw the shared sidebar and load what it selects; the result is also kept for :func:`context`."""
    from vitviz.images import ImageError
    from vitviz.models import BUNDLED_MODEL

    default_model = _default_model()
    problems: list[str] = []
    loaded = image = image_key = None
    with st.sidebar:
        language.switch()
        data, image_label, image_problems = _image_section(offline=default_model == BUNDLED_MODEL)
        problems += image_problems
        fit = _fit_section()
        if data is not None:
            image_key = loaders.digest(data)
            trace.mark("image", key=image_key)
            try:
                image = loaders.decode(image_key, data)
            except ImageError as exc:
                problems.append(_("That image cannot be used: {reason}").format(reason=exc))
                st.error(str(exc), icon=":material/broken_image:")
        st.divider()
        name, weights, weights_key, description = _model_section(default_model)
        if weights is not None and name == BUNDLED_MODEL:
            st.warning(_("vitviz-shapes always uses its shipped weights. To load your file, pick the "
                         "architecture it was saved from above (or type its timm name)."), icon=":material/info:")
            weights = weights_key = None
        model_key = f"{name}|{weights_key or 'default'}"
        if not name:
            problems.append(Prompt(_("Type a timm model name in the sidebar, e.g. {example}.").format(
                example="deit_tiny_patch16_224.fb_in1k")))
        else:
            loaded = _load(name, weights, weights_key, problems)
            if loaded is not None:
                _weights_line(loaded)
        _describe(description, name, loaded)
    return remember(AppContext(loaded, model_key, image, image_key if image is not None else None, image_label,
                               tuple(problems), fit=fit))
