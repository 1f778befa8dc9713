"""Rollout: attention followed through all layers, plain and class-specific."""
from __future__ import annotations

import numpy as np
import streamlit as st

import vitviz_app as ui
from vitviz.i18n import N_, _, keep_language
from vitviz_app import links
from vitviz_app.views import figure_view, gradient_rollout_view, rollout_view

ui.entry_point()

ui.page_header(
    _("Attention rollout"),
    _("One layer's attention only says where a token looks *in that layer*. **Rollout** (Abnar & Zuidema "
      "2020) follows attention through the network: each layer is taken as ½·attention + ½·identity (the "
      "residual connection), and the layers are multiplied from the first up. The **class-specific** version "
      "(Chefer et al. 2021) weights each head's attention by the gradient of the chosen class's score and "
      "keeps the positive part, so it shows the evidence *for that class*. Scrub through the layers and switch "
      "the head fusion on the left map, in your browser."),
)
ctx = ui.context()
ctx.require()
fwd = ctx.forward()
cap = fwd.capture

FUSION_LABELS = {"mean": N_("Mean"), "max": N_("Max"), "min": N_("Min")}


def fusion_label(fusion: str) -> str:
    return _(FUSION_LABELS[fusion])


c1, c2 = st.columns(2)
discard = c1.slider(_("Discard ratio"), 0.0, 0.95, value=0.0, step=0.05, key="ro_discard", bind="query-params",
                    persist_state="session",
                    help=_("Fraction of each row's weakest attention links set to zero before rolling out; a "
                           "token's link to itself and to the class token are never discarded."))
start = c2.slider(_("Start layer"), 0, cap.num_layers - 1, value=0, key="ro_start", bind="query-params",
                  persist_state="session", help=_("Roll out from this layer on; earlier layers are skipped."))
# the committed view of the plain rollout: its head fusion and the layer it is shown after (the explorer owns them)
fusion = links.seed("ro_fusion", "mean", links.choice(ui.HEAD_FUSIONS, fusion_label))
shown = links.seed("ro_layer", cap.num_layers - 1, links.index(cap.num_layers),
                   valid=lambda value: int(start) <= int(value) < cap.num_layers)

from vitviz.figures import rollout_figure
from vitviz.figures.rollout import rollout_title
from vitviz_app.components import rollout_explorer

views = {f: rollout_view(fwd.key, f, float(discard), int(start), fwd) for f in ui.HEAD_FUSIONS}
view = views[fusion]
readout = _("class token") if view.readout == "cls" else _("mean over patch queries (the model has no class token)")
left, right = st.columns(2, gap="large")
with left:
    st.subheader(_("Plain rollout"))

    def _commit(value: dict) -> None:
        st.session_state["ro_fusion"], st.session_state["ro_layer"] = value["fusion"], value["layer"]

    token_labels = {"cls": _("class token"), "dist": _("distillation token")}
    explorer = rollout_explorer(
        fwd, ctx.image, views, fusion=fusion, layer=int(shown), discard_ratio=float(discard), start_layer=int(start),
        titles={f: [rollout_title("rollout", v.layers[0], layer, v.figure_query, f, float(discard))
                    for layer in v.layers] for f, v in views.items()},
        text={"layer": _("Through layer"), "fusion": _("Head fusion:"), "tip": _("row {row}, column {col}: {value}"),
              "prefix": _("Rolled-out share of the prefix tokens: {shares}")},
        fusion_names={f: fusion_label(f) for f in ui.HEAD_FUSIONS},
        prefix_labels={n: token_labels.get(n, n) for n in fwd.layout.prefix_names}, key="ro_explorer",
        on_commit=_commit, url={"ro_fusion": links.publish("ro_fusion", fusion, "mean"),
                                "ro_layer": links.publish("ro_layer", int(shown), cap.num_layers - 1)},
    )
    if explorer.tier == "maps":
        st.caption(_("Drag the layer slider or switch the head fusion: the map is redrawn in your browser, with no "
                     "round trip to the server. The discard ratio and the start layer above need new rollouts, so "
                     "they reload it ({size:.0f} KB for this image and these settings).").format(
            size=explorer.nbytes / 1e3))
    else:  # too large for the browser: the server draws it, and the fusion is a control of the page
        fusion = st.segmented_control(_("Head fusion"), list(ui.HEAD_FUSIONS), key="ro_fusion", required=True,
                                      format_func=keep_language(fusion_label), persist_state="session") or fusion
        view = views[fusion]
        fig = figure_view(("ro.plain", fwd.key, fusion, float(discard), int(start)),
                          lambda: rollout_figure(view.maps, ctx.image, fwd.geometry, fwd.layout,
                                                 start_layer=int(start), query=view.figure_query, head_fusion=fusion,
                                                 discard_ratio=float(discard)))
        ui.show_figure(fig, key="ro.plain", filename=f"rollout-{fusion}-discard{discard:.2f}-start{start}",
                       height=560)
        st.caption(_("This model's rollout maps are too large to send to the browser: use the slider under the "
                     "map."))
    # the prefix tokens' shares are said once, under the map (they follow the scrubber there)
    st.caption(_("Committed view: {fusion} fusion, through layer {layer}. Read-out: {readout}.").format(
        fusion=fusion_label(fusion), layer=int(shown), readout=readout))

grad_view = None
with right:
    st.subheader(_("Class-specific rollout"))
    st.caption(_("What it adds to the plain rollout: the evidence for one class, not just where attention flows."))
    if not fwd.predictions:
        ui.no_classifier_note()
    else:
        labels = ctx.loaded.labels
        num_classes = len(fwd.probabilities)
        best = fwd.predictions[0].index

        def class_label(i: int) -> str:
            return f"{labels[i] if labels else _('class')} (#{i})"

        # a class chosen for another image or model is not kept: it resets to this image's top prediction
        links.seed("ro_class", best, links.choice(range(num_classes), class_label), scope=fwd.key)
        target = st.selectbox(_("Explain the class"), list(range(num_classes)), key="ro_class",
                              persist_state="session", format_func=keep_language(class_label),
                              help=_("Defaults to the top prediction. Type to search."))
        links.publish("ro_class", target, best)
        st.caption(_("The model gives this class {probability:.1%}.").format(probability=fwd.probabilities[target]))
        ui.shapes_note(ctx.loaded)
        grad_fwd = ctx.forward(target=int(target))
        grad_view = gradient_rollout_view(grad_fwd.key, int(start), grad_fwd)
        gtitle = _("Gradient rollout for “{label}”").format(label=labels[target] if labels else target)
        gfig = figure_view(("ro.gradient", grad_fwd.key, int(start), gtitle),
                           lambda: rollout_figure(grad_view.maps, ctx.image, fwd.geometry, fwd.layout,
                                                  start_layer=int(start), query=grad_view.figure_query, title=gtitle))
        ui.show_figure(gfig, key="ro.gradient", filename=f"gradient-rollout-class{target}", height=560)
        st.caption(_("Gradient × attention, positive part, mean over heads, accumulated as R ← R + Ā·R."))

arrays = {"rollout_maps": view.maps, "rollout_prefix": view.prefix, "layers": np.asarray(view.layers)}
settings = dict(view="rollout", head_fusion=fusion, discard_ratio=float(discard), start_layer=int(start),
                shown_layer=int(shown), readout=view.readout)
if grad_view is not None:
    arrays.update(gradient_rollout_maps=grad_view.maps, gradient_rollout_prefix=grad_view.prefix)
    settings.update(gradient_target=int(target))
ui.download_arrays(arrays, ctx.settings(**settings), filename="rollout", key="ro.download")
links.publish("ro_fusion", fusion, "mean")  # the fallback's own control may have changed it
ui.next_steps("rollout")
