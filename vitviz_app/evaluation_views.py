"""Cached attribution maps and their evaluation for the Compare methods page, and the page's URL state.

Each result is cached with ``st.cache_data`` under the forward pass's key (model × image × patch size) plus
the method, the target class and the protocol, so moving back to an earlier choice is instant, a method
already computed is never run again when another one is added, and every curve is paid once per (image,
method, class, removal, order) across reruns and sessions. The arguments starting with ``_`` are the objects
those keys stand for and are not hashed. Small models run on one torch thread (``loaders.one_thread_if_small``).

The page's own choices (methods, removal, class, sanity metric) travel in the URL as language-neutral values:
``?cmp_methods=attention,attnlrp&cmp_removal=pixels&cmp_class=7&cmp_metric=ssim``. They are written by
:func:`write_url` after each run and read once per session by :func:`restore_from_url`; a value that is not
one of the page's options is ignored (a renamed method key is read as its new key).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from . import loaders

__all__ = ["CLASS_OWNER", "URL_KEYS", "band_view", "curve_view", "decomposition_view", "relevance_view",
           "reset_class_on_new_image", "restore_from_url", "sanity_view", "write_url"]

URL_KEYS = ("cmp_methods", "cmp_removal", "cmp_class", "cmp_metric")
CLASS_OWNER = "_cmp_class_image"
"""Session key: the forward pass whose classes the "Explain the class" choice belongs to."""
_RESTORED = "_cmp_url_restored"


def _input(fwd):
    import torch

    return fwd.x.to(next(fwd.model.parameters()).device) if isinstance(fwd.x, torch.Tensor) else fwd.x


@st.cache_data(max_entries=64, show_spinner=False)
def relevance_view(fwd_key: str, method: str, target: int | None, _fwd):
    """``vitviz.attribution`` map of ``method`` for ``target`` (a ``Relevance``; the capture is reused; an LRP
    map comes from its logit decomposition, so the two cost one pass)."""
    from vitviz.attribution import get_method

    if get_method(method).conserves:
        return decomposition_view(fwd_key, method, target, _fwd).relevance
    with loaders.one_thread_if_small(_fwd.model):
        return get_method(method).attribute(_fwd.model, _input(_fwd), target, capture=_fwd.capture)


@st.cache_data(max_entries=32, show_spinner=False)
def decomposition_view(fwd_key: str, method: str, target: int | None, _fwd):
    """Where an LRP map's explained logit went (``LogitDecomposition`` of ``vitviz.attribution.conservation``)."""
    from vitviz.attribution import get_method

    with loaders.one_thread_if_small(_fwd.model):
        return get_method(method).decompose(_fwd.model, _input(_fwd), target)


@st.cache_data(max_entries=64, show_spinner=False)  # small arrays: ~3 images' curves of every method
def curve_view(fwd_key: str, method: str, relevance_target: int | None, target: int, removal: str, order: str,
               _fwd, _relevance):
    """One perturbation curve of one map (``vitviz.evaluation.perturbation_curve``) for class ``target``; the
    unperturbed output is the capture's (no forward pass of its own)."""
    from vitviz.evaluation import perturbation_curve

    config = _fwd.data_config
    with loaders.one_thread_if_small(_fwd.model):
        return perturbation_curve(_fwd.model, _input(_fwd), _relevance, target, removal=removal, order=order,
                                  mean=config.get("mean"), std=config.get("std"), clean=_fwd.capture.output)


@st.cache_data(max_entries=32, show_spinner=False)
def band_view(fwd_key: str, target: int, removal: str, order: str, seeds: tuple[int, ...], _fwd):
    """The random-order band of one order (``vitviz.evaluation.random_baseline``)."""
    from vitviz.evaluation import random_baseline

    config = _fwd.data_config
    with loaders.one_thread_if_small(_fwd.model):
        return random_baseline(_fwd.model, _input(_fwd), target, removal=removal, order=order, seeds=seeds,
                               mean=config.get("mean"), std=config.get("std"), clean=_fwd.capture.output)


@st.cache_data(max_entries=64, show_spinner=False)
def sanity_view(fwd_key: str, method: str, target: int | None, steps: int, _fwd, _relevance):
    """Cascading randomisation of ``method`` (``vitviz.evaluation.sanity_check``), ``steps`` steps."""
    from vitviz.evaluation import sanity_check

    with loaders.one_thread_if_small(_fwd.model):
        return sanity_check(_fwd.model, _input(_fwd), method, target, steps=steps, original=_relevance)


# ----------------------------------------------------------------------------------------------- URL state


def _url_value(key: str) -> str | None:
    values = st.query_params.get_all(key)
    return values[-1] if values else None


def restore_from_url(*, methods: Sequence[str], removals: Sequence[str], metrics: Sequence[str],
                     num_classes: int) -> None:
    """Once per session, set the page's widgets from the URL's ``cmp_*`` values where they are valid options (a
    renamed method key, ``vitviz.attribution.RENAMED``, is read as its new key; anything else is ignored)."""
    if st.session_state.get(_RESTORED):
        return
    st.session_state[_RESTORED] = True
    from vitviz.attribution import RENAMED

    text = _url_value("cmp_methods")
    if text is not None:
        keys = [RENAMED.get(k.strip(), k.strip()) for k in text.split(",") if k.strip()]
        st.session_state["cmp_methods"] = list(dict.fromkeys(k for k in keys if k in methods))
    removal = _url_value("cmp_removal")
    if removal in removals:
        st.session_state["cmp_removal"] = removal
    metric = _url_value("cmp_metric")
    if metric in metrics:
        st.session_state["cmp_metric"] = metric
    target = _url_value("cmp_class")
    if target is not None and target.isascii() and target.isdigit() and len(target) < 10 and int(target) < num_classes:
        st.session_state["cmp_class"] = int(target)
        st.session_state["_cmp_class_from_url"] = True


def reset_class_on_new_image(fwd_key: str, top_class: int | None) -> None:
    """Give "Explain the class" back to the new image's top class when the image (or model) changes, so the page
    never labels one image's class while it explains another's; a class read from the URL belongs to the URL's
    image and is kept for it."""
    owner = st.session_state.get(CLASS_OWNER)
    from_url = st.session_state.pop("_cmp_class_from_url", False)
    if (owner is not None and owner != fwd_key) or (owner is None and not from_url):
        if top_class is None:
            st.session_state.pop("cmp_class", None)
        else:
            st.session_state["cmp_class"] = top_class
    st.session_state[CLASS_OWNER] = fwd_key


def write_url(values: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Write the page's choices to the URL (language-neutral values; a default value is left out)."""
    for key, value in values.items():
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else None if value is None else str(value)
        if value == defaults.get(key) or text is None:
            if key in st.query_params:
                del st.query_params[key]
        elif st.query_params.get(key) != text:
            st.query_params[key] = text
