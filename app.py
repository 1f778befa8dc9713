"""vitviz — see how a Vision Transformer sees an image.

Run with ``streamlit run app.py``. This file is the entry point and the Overview page: it draws the shared
sidebar (image and model), registers the pages with ``st.navigation`` and, on the Overview, shows what a
beginner can read first (the image cut into patches, the prediction), then where attention flows (rollout).
"""
from __future__ import annotations

import streamlit as st

import vitviz_app as ui
from vitviz.i18n import _
from vitviz_app import language, trace, warmup
from vitviz_app.views import overview_figures


def overview() -> None:
    """The Overview page: the image cut into patches, what the model predicts, then where its attention flows."""
    ui.page_header(
        _("How a Vision Transformer sees your image"),
        ui.pointer_text(_("Pick an image and a model in the sidebar."),
                        _("Open the sidebar (the arrow at the top left) to pick an image and a model."))
        + " " + _("The model cuts the image into square **patches**, reads them as a sequence of **tokens**, lets "
                  "every patch look at every other one for several layers (**attention**), and reads its answer from "
                  "the **class token**."),
    )
    ui.start_here()
    ctx = ui.context()
    ctx.require()
    fwd = ctx.forward()
    view, fig, bars, patches = overview_figures(fwd, ctx.image)
    layout = fwd.layout

    left, right = st.columns([1.2, 1.0], gap="large")
    with left:
        st.subheader(_("Your image, in patches"))
        ui.show_figure(patches, key="overview.patches", filename="patches")
        st.caption(_("{image} · {width}×{height} px. The model reads it as {count} patches of {size}×{size} px, "
                     "one token each.").format(image=ctx.image_title, width=ctx.image.width, height=ctx.image.height,
                                              count=layout.num_patches, size=layout.patch_size[0]))
    with right:
        st.subheader(_("What the model predicts"))
        if bars is not None:
            ui.show_figure(bars, key="overview.predictions", filename="top5-predictions", height=250)
            best = fwd.predictions[0]
            st.caption(_("Most likely: **{label}** ({probability:.1%}).").format(label=best.label,
                                                                                 probability=best.probability))
            ui.shapes_note(ctx.loaded)
        else:
            ui.no_classifier_note()

    st.subheader(_("Where its attention flows"))
    st.markdown(_("In every layer each patch mixes in information from the others, weighted by its **attention**. "
                  "**Attention rollout** (Abnar & Zuidema 2020) follows that mixing through all the layers to the "
                  "token that gives the answer: bright patches feed the answer the most. The slider under the map "
                  "shows it build up layer by layer; the Rollout page tunes it."))
    ui.show_figure(fig, key="overview.rollout", filename="attention-rollout")
    st.divider()
    ui.model_facts(fwd)
    ui.download_arrays(
        {"rollout_maps": view.maps, "rollout_prefix": view.prefix,
         "probabilities": fwd.probabilities if fwd.probabilities is not None else []},
        ctx.settings(view="overview", head_fusion="mean", discard_ratio=0.0, start_layer=0,
                     readout=view.readout, layers=list(view.layers)),
        filename="overview", key="overview.download",
    )
    ui.next_steps("overview")


# Every page script in pages/ starts with ui.entry_point(), which looks for ui.mark_entry_point() below:
# Streamlit runs a folder named pages/ next to the entry point as a classic (v1) multipage app until
# st.navigation first runs, so a fresh server's first visitors on deep links (/attention) would otherwise
# get their page without this file and its sidebar.
def pages() -> dict[str, list]:
    """The navigation in this run's language (each page's URL comes from its file or function name, so it
    stays the same in every language). "Learn" comes first: the Overview, then the walk-through a beginner
    starts with; "Explore" holds the views in the order of the learner's path (``vitviz_app.ui.PATH``)."""
    return {
        _("Learn"): [
            st.Page(overview, title=_("Overview"), icon=":material/visibility:", default=True),
            st.Page("pages/how_vit_works.py", title=_("How a ViT works"), icon=":material/school:"),
        ],
        _("Explore"): [
            st.Page("pages/patches.py", title=_("Patches"), icon=":material/grid_on:"),
            st.Page("pages/attention.py", title=_("Attention"), icon=":material/center_focus_strong:"),
            st.Page("pages/rollout.py", title=_("Rollout"), icon=":material/layers:"),
            st.Page("pages/position_embeddings.py", title=_("Position embeddings"), icon=":material/apps:"),
            st.Page("pages/heads_depth.py", title=_("Heads & depth"), icon=":material/insights:"),
            st.Page("pages/compare.py", title=_("Compare methods"), icon=":material/compare:"),
            st.Page("pages/vit_vs_cnn.py", title=_("ViT vs CNN"), icon=":material/difference:"),
        ],
    }


ui.mark_entry_point()
trace.mark("run")  # VITVIZ_TRACE=1: this session's run starts (vitviz_app.trace)
language.choose()  # first: every text below, the library's figures included, is made in this language
# "auto": Streamlit collapses the sidebar on narrow screens; the pages' columns stack on their own (ui.py)
st.set_page_config(page_title="vitviz", page_icon=":material/visibility:", layout="wide",
                   initial_sidebar_state="auto")
ui.responsive_layout()
page = st.navigation(pages())
warmup.start()  # once per server: heavy imports, default model and its first pass, in the background
warmup.show_progress(page=page.title)  # the first visitor sees the steps (and the page they open), not a blank page
ui.sidebar()
page.run()
