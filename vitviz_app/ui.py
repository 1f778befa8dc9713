"""Small pieces of page furniture shared by the pages: headers, model facts, value formatting."""
from __future__ import annotations

from typing import Any

import streamlit as st

__all__ = ["page_header", "model_facts", "head_label", "HEAD_FUSIONS", "no_classifier_note"]

HEAD_FUSIONS = ("mean", "max", "min")


def page_header(title: str, intro: str) -> None:
    """The page title and one or two sentences saying what the page shows and how to use it."""
    st.title(title)
    st.markdown(intro)


def head_label(head: str) -> str:
    """Selectbox text for a head option: ``'mean'`` -> ``'Mean over heads'``, ``'3'`` -> ``'Head 3'``."""
    return f"{head.capitalize()} over heads" if head in HEAD_FUSIONS else f"Head {head}"


def model_facts(fwd: Any) -> None:
    """A row of metrics: tokens, layers, heads, patch size, input size."""
    layout, cap = fwd.layout, fwd.capture
    cells = st.columns(5)
    cells[0].metric("Tokens", layout.num_tokens, help=layout.describe())
    cells[1].metric("Layers", cap.num_layers)
    cells[2].metric("Heads per layer", cap.num_heads)
    cells[3].metric("Patch size", f"{layout.patch_size[0]}×{layout.patch_size[1]} px")
    cells[4].metric("Model input", f"{layout.input_size[0]}×{layout.input_size[1]} px")


def no_classifier_note() -> None:
    st.info(
        "This model has no classifier head (self-supervised features), so there are no class predictions. "
        "Attention maps and rollout still show where it looks.",
        icon=":material/info:",
    )
