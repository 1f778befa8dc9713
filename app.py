"""vitviz — see how a Vision Transformer sees an image.

Run with ``streamlit run app.py``. This file is the entry point and the Overview page: it draws the shared
sidebar (image and model), registers the pages with ``st.navigation`` and, on the Overview, shows the image,
the top-5 predictions and the attention rollout at one glance.
"""
from __future__ import annotations

import streamlit as st

import vitviz_app as ui
from vitviz.i18n import _
from vitviz_app import language, warmup
from vitviz_app.views import overview_figures


def overview() -> None:
    """The Overview page: the image, what the model predicts, and where its attention flows."""
    ui.page_header(
        _("How a Vision Transformer sees your image"),
        _("Pick an image and a model in the sidebar. The model cuts the image into patches, lets every patch "
          "attend to every other one for several layers, and reads its answer from the class token. "
          "Below: its top-5 guesses and **attention rollout**, how much each patch feeds the class token "
          "through all layers (Abnar & Zuidema 2020)."),
    )
    ctx = ui.context()
    ctx.require()
    fwd = ctx.forward()
    view, fig, bars = overview_figures(fwd, ctx.image)

    left, right = st.columns([1.0, 1.2], gap="large")
    with left:
        st.subheader(_("Your image"))
        st.image(ctx.image, caption=f"{ctx.image_title} · " + _("{width}×{height} px").format(
                     width=ctx.image.width, height=ctx.image.height),
                 width="stretch")
        st.subheader(_("Top-5 predictions"))
        if bars is not None:
            ui.show_figure(bars, key="overview.predictions", filename="top5-predictions", height=250)
            best = fwd.predictions[0]
            st.caption(_("Most likely: **{label}** ({probability:.1%}).").format(label=best.label,
                                                                                 probability=best.probability))
            ui.shapes_note(ctx.loaded)
        else:
            ui.no_classifier_note()
    with right:
        st.subheader(_("Attention rollout"))
        ui.show_figure(fig, key="overview.rollout", filename="attention-rollout")
        st.caption(_("Bright patches feed the model's read-out the most. Drag the slider to see the rollout "
                     "build up layer by layer; tune it on the Rollout page."))
    st.divider()
    ui.model_facts(fwd)
    ui.download_arrays(
        {"rollout_maps": view.maps, "rollout_prefix": view.prefix,
         "probabilities": fwd.probabilities if fwd.probabilities is not None else []},
        ctx.settings(view="overview", head_fusion="mean", discard_ratio=0.0, start_layer=0,
                     readout=view.readout, layers=list(view.layers)),
        filename="overview", key="overview.download",
    )


# Every page script in pages/ starts with ui.entry_point(), which looks for ui.mark_entry_point() below:
# Streamlit runs a folder named pages/ next to the entry point as a classic (v1) multipage app until
# st.navigation first runs, so a fresh server's first visitors on deep links (/attention) would otherwise
# get their page without this file and its sidebar.
def pages() -> dict[str, list]:
    """The navigation in this run's language (each page's URL comes from its file or function name, so it
    stays the same in every language)."""
    return {
        _("Explore"): [
            st.Page(overview, title=_("Overview"), icon=":material/visibility:", default=True),
            st.Page("pages/patches.py", title=_("Patches"), icon=":material/grid_on:"),
            st.Page("pages/position_embeddings.py", title=_("Position embeddings"), icon=":material/apps:"),
            st.Page("pages/attention.py", title=_("Attention"), icon=":material/center_focus_strong:"),
            st.Page("pages/rollout.py", title=_("Rollout"), icon=":material/layers:"),
            st.Page("pages/heads_depth.py", title=_("Heads & depth"), icon=":material/insights:"),
            st.Page("pages/compare.py", title=_("Compare methods"), icon=":material/compare:"),
        ],
        _("Learn"): [
            st.Page("pages/how_vit_works.py", title=_("How a ViT works"), icon=":material/school:"),
        ],
    }


ui.mark_entry_point()
language.choose()  # first: every text below, the library's figures included, is made in this language
# "auto": Streamlit collapses the sidebar on narrow screens; the pages' columns stack on their own (ui.py)
st.set_page_config(page_title="vitviz", page_icon=":material/visibility:", layout="wide",
                   initial_sidebar_state="auto")
ui.responsive_layout()
page = st.navigation(pages())
warmup.start()  # once per server: heavy imports, default model and its first pass, in the background
warmup.show_progress()  # the first visitor sees the steps instead of a blank page
ui.sidebar()
page.run()
