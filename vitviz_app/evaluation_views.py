"""Cached attribution maps and their evaluation for the Compare methods page.

Each result is cached with ``st.cache_data`` under the forward pass's key (model × image × patch size) plus
the method, the target class and the protocol, so moving back to an earlier choice is instant and a method
already computed is never run again when another one is added. The arguments starting with ``_`` are the
objects those keys stand for and are not hashed.
"""
from __future__ import annotations

import streamlit as st

__all__ = ["faithfulness_view", "random_band_view", "relevance_view", "sanity_view"]


def _input(fwd):
    import torch

    return fwd.x.to(next(fwd.model.parameters()).device) if isinstance(fwd.x, torch.Tensor) else fwd.x


@st.cache_data(max_entries=64, show_spinner=False)
def relevance_view(fwd_key: str, method: str, target: int | None, _fwd):
    """``vitviz.attribution`` map of ``method`` for ``target`` (a ``Relevance``; the capture is reused)."""
    from vitviz.attribution import get_method

    return get_method(method).attribute(_fwd.model, _input(_fwd), target, capture=_fwd.capture)


@st.cache_data(max_entries=64, show_spinner=False)
def faithfulness_view(fwd_key: str, method: str, relevance_target: int | None, target: int, removal: str,
                      _fwd, _relevance):
    """Both perturbation curves of one map (``vitviz.evaluation.faithfulness``) for class ``target``."""
    from vitviz.evaluation import faithfulness

    config = _fwd.data_config
    return faithfulness(_fwd.model, _input(_fwd), _relevance, target, removal, mean=config.get("mean"),
                        std=config.get("std"))


@st.cache_data(max_entries=16, show_spinner=False)
def random_band_view(fwd_key: str, target: int, removal: str, seeds: tuple[int, ...], _fwd) -> dict:
    """``'most'`` / ``'least'`` -> random-order band (``vitviz.evaluation.random_baseline``)."""
    from vitviz.evaluation import random_baseline

    config = _fwd.data_config
    return {order: random_baseline(_fwd.model, _input(_fwd), target, removal=removal, order=order, seeds=seeds,
                                   mean=config.get("mean"), std=config.get("std"))
            for order in ("most", "least")}


@st.cache_data(max_entries=64, show_spinner=False)
def sanity_view(fwd_key: str, method: str, target: int | None, steps: int, _fwd, _relevance):
    """Cascading randomisation of ``method`` (``vitviz.evaluation.sanity_check``), ``steps`` steps."""
    from vitviz.evaluation import sanity_check

    return sanity_check(_fwd.model, _input(_fwd), method, target, steps=steps, original=_relevance)
