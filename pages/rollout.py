"""Rollout: attention followed through all layers, plain and class-specific."""
from __future__ import annotations

import numpy as np
import streamlit as st

import vitviz_app as ui
from vitviz.i18n import N_, _
from vitviz_app.language import url_format
from vitviz_app.views import figure_view, gradient_rollout_view, rollout_view

ui.entry_point()

ui.page_header(
    _("Attention rollout"),
    _("One layer's attention only says where a token looks *in that layer*. **Rollout** (Abnar & Zuidema "
      "2020) follows attention through the network: each layer is taken as ½·attention + ½·identity (the "
      "residual connection), and the layers are multiplied from the first up. The **class-specific** version "
      "(Chefer et al. 2021) weights each head's attention by the gradient of the chosen class's score and "
      "keeps the positive part, so it shows the evidence *for that class*. Use the slider under each map to "
      "scrub through the layers."),
)
ctx = ui.context()
ctx.require()
fwd = ctx.forward()
cap = fwd.capture

FUSION_LABELS = {"mean": N_("Mean"), "max": N_("Max"), "min": N_("Min")}
c1, c2, c3 = st.columns(3)
fusion = c1.selectbox(_("Head fusion"), list(ui.HEAD_FUSIONS), key="ro_fusion", bind="query-params",
                      persist_state="session",
                      format_func=url_format("ro_fusion", list(ui.HEAD_FUSIONS), lambda f: _(FUSION_LABELS[f])),
                      help=_("How the heads of a layer are combined before rolling out. Max fusion with a "
                             "high discard ratio gives sharper maps (Gildenblat's variant)."))
discard = c2.slider(_("Discard ratio"), 0.0, 0.95, value=0.0, step=0.05, key="ro_discard", bind="query-params",
                    persist_state="session",
                    help=_("Fraction of each row's weakest attention links set to zero before rolling out; a "
                           "token's link to itself and to the class token are never discarded."))
start = c3.slider(_("Start layer"), 0, cap.num_layers - 1, value=0, key="ro_start", bind="query-params",
                  persist_state="session", help=_("Roll out from this layer on; earlier layers are skipped."))

from vitviz.figures import rollout_figure

view = rollout_view(fwd.key, fusion, float(discard), int(start), fwd)
readout = _("class token") if view.readout == "cls" else _("mean over patch queries (the model has no class token)")
left, right = st.columns(2, gap="large")
with left:
    st.subheader(_("Attention rollout"))
    fig = figure_view(("ro.plain", fwd.key, fusion, float(discard), int(start)),
                      lambda: rollout_figure(view.maps, ctx.image, fwd.geometry, fwd.layout, start_layer=int(start),
                                             query=view.figure_query,
                                             head_fusion=fusion, discard_ratio=float(discard)))
    ui.show_figure(fig, key="ro.plain", filename=f"rollout-{fusion}-discard{discard:.2f}-start{start}",
                   height=560)
    if view.prefix.shape[1]:
        names = ", ".join(f"{n}: {v:.1%}" for n, v in zip(fwd.layout.prefix_names, view.prefix[-1]))
        st.caption(_("Read-out: {readout}. Rolled-out share of the prefix tokens: {names}.").format(
            readout=readout, names=names))
    else:
        st.caption(_("Read-out: {readout}.").format(readout=readout))

grad_view = None
with right:
    st.subheader(_("Class-specific rollout"))
    if not fwd.predictions:
        ui.no_classifier_note()
    else:
        labels = ctx.loaded.labels
        num_classes = len(fwd.probabilities)
        best = fwd.predictions[0].index
        target = st.selectbox(
            _("Explain the class"), list(range(num_classes)), index=best, key="ro_class", bind="query-params",
            persist_state="session",
            format_func=url_format("ro_class", range(num_classes),
                                   lambda i: f"{labels[i] if labels else _('class')} (#{i})"),
            help=_("Defaults to the top prediction. Type to search."),
        )
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

st.subheader(_("Scrub through the layers in your browser"))
from vitviz.figures.rollout import rollout_title
from vitviz_app.components import rollout_explorer

views = {f: rollout_view(fwd.key, f, float(discard), int(start), fwd) for f in ui.HEAD_FUSIONS}
token_labels = {"cls": _("class token"), "dist": _("distillation token")}
explorer = rollout_explorer(
    fwd, ctx.image, views, fusion=fusion, discard_ratio=float(discard), start_layer=int(start),
    titles={f: [rollout_title("rollout", v.layers[0], layer, v.figure_query, f, float(discard)) for layer in v.layers]
            for f, v in views.items()},
    text={"layer": _("Through layer"), "fusion": _("Head fusion:"), "tip": _("row {row}, column {col}: {value}"),
          "prefix": _("Rolled-out share of the prefix tokens: {shares}")},
    fusion_names={"mean": _("Mean"), "max": _("Max"), "min": _("Min")},
    prefix_labels={n: token_labels.get(n, n) for n in fwd.layout.prefix_names}, key="ro_explorer",
)
if explorer.tier == "maps":
    st.caption(_("Drag the layer slider or switch the head fusion: the map is redrawn in your browser, with no "
                 "round trip to the server. The discard ratio and the start layer above need new rollouts, so they "
                 "reload it ({size:.0f} KB for this image and these settings).").format(size=explorer.nbytes / 1e3))
else:
    st.caption(_("This model's rollout maps are too large to send to the browser: use the slider under the map "
                 "above and the head-fusion control."))

arrays = {"rollout_maps": view.maps, "rollout_prefix": view.prefix, "layers": np.asarray(view.layers)}
settings = dict(view="rollout", head_fusion=fusion, discard_ratio=float(discard), start_layer=int(start),
                readout=view.readout)
if grad_view is not None:
    arrays.update(gradient_rollout_maps=grad_view.maps, gradient_rollout_prefix=grad_view.prefix)
    settings.update(gradient_target=int(target))
ui.download_arrays(arrays, ctx.settings(**settings), filename="rollout", key="ro.download")
