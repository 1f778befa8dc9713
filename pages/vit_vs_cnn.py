"""ViT vs CNN: the sidebar's image seen by a ViT and by a CNN, measured the same way.

How far each depth reaches (effective receptive fields, Luo et al. 2016), what each costs, whether their layers
see alike (linear CKA, Raghu et al. 2021), where each looks for its answer (Grad-CAM beside the ViT's most faithful
map, with the same pixel-removal curves), and how much data each needs (``scripts/data_curves.py``). Every number
comes from ``vitviz.compare_cnn`` and the library, cached once per (ViT, CNN, image) in ``vitviz_app.cnn_views``.
"""
from __future__ import annotations

import functools

import streamlit as st

import vitviz_app as ui
from vitviz.i18n import _
from vitviz_app import cnn_views
from vitviz_app.views import figure_view

ui.entry_point()

ui.page_header(
    _("ViT vs CNN"),
    _("A convolutional network (CNN) builds its picture from small neighbourhoods that grow layer by layer; a "
      "ViT lets every patch look at every other one from the first layer on. Here the same image goes through "
      "both, and both are measured the same way: how far each layer reaches, what each costs, whether their "
      "layers see alike, where each looks for its answer, and how much training data each needs."),
)
ctx = ui.context()
ctx.require()
fwd = ctx.forward()  # the sidebar's model on the sidebar's image (cached; says what the model sees, warns of NaN)

from vitviz.attribution import METHODS  # noqa: E402
from vitviz.figures import perturbation_figure, relevance_maps_figure  # noqa: E402
from vitviz.figures.attribution import ORDER_TITLES  # noqa: E402
from vitviz.figures.cnn import cka_figure, cost_rows, data_curves_figure, erf_maps_figure, reach_figure  # noqa: E402


def largest_common_size(summary: dict) -> tuple[int, float, float] | None:
    """The largest training-set size both models were trained on, with their mean in-distribution accuracies."""
    vit, cnn = summary.get("vit", {}), summary.get("cnn", {})
    common = [int(n) for n in vit
              if n.isdigit() and n in cnn and "in_distribution" in vit[n] and "in_distribution" in cnn[n]]
    if not common:
        return None
    n = str(max(common))
    return int(n), vit[n]["in_distribution"]["mean"], cnn[n]["in_distribution"]["mean"]


def looks_section(vit_fwd, arrays: dict) -> str:
    """Grad-CAM on the CNN beside the ViT's most faithful map, and both models' pixel-removal curves; returns the
    ViT's method (its arrays go into ``arrays``)."""
    method, relevance, vit_curves = cnn_views.most_faithful(vit_fwd)
    looks = cnn_views.cnn_looks(pair.cnn_key, ctx.image_key, pair.cnn, ctx.image)
    vit_title = _("ViT: {method}").format(method=_(METHODS[method].title))
    cnn_title = _("CNN: Grad-CAM on its last stage")
    cnn_class = looks.gradcam.target
    st.markdown(_("For the CNN, **Grad-CAM** (Selvaraju et al. 2017) on its last stage, where it is usually read. "
                  "For the ViT, the map that is most faithful on this image by the Compare methods page's measure "
                  "(the lowest area when the most relevant pixels go first): **{method}**. Each explains its own "
                  "top class: {vit_class} for the ViT, {cnn_class} for the CNN.").format(
        method=_(METHODS[method].title), vit_class=vit_fwd.predictions[0].label,
        cnn_class=pair.cnn.labels[cnn_class] if pair.cnn.labels else cnn_class))
    left, right = st.columns(2)
    with left:
        ui.show_figure(figure_view(("cnn.vit_map", vit_fwd.key, method), lambda: relevance_maps_figure(
            {vit_title: relevance.patches}, ctx.image, vit_fwd.geometry, vit_fwd.layout, columns=1, colorbar=False)),
                       key="cnn.vit_map", filename="vit-most-faithful-map")
    with right:
        ui.show_figure(figure_view(("cnn.cnn_map", pair.cnn_key, ctx.image_key, ctx.fit), lambda: relevance_maps_figure(
            {cnn_title: looks.gradcam.cells}, ctx.image, looks.geometry, looks.gradcam.cells.shape, columns=1,
            colorbar=False)), key="cnn.cnn_map", filename="cnn-grad-cam")
    st.markdown(_("Both curves remove the same kind of thing, pixels set to black in the order each map ranks them, "
                  "so neither model is favoured. A faithful map makes its model's probability fall fast when the "
                  "most relevant pixels go first, and keeps it up when the least relevant go first."))
    for order in ("most", "least"):  # one figure per order: side by side they do not fit a phone
        st.markdown(f"**{_(ORDER_TITLES[order])}**")
        curves = {vit_title: vit_curves[order], cnn_title: looks.curves[order]}
        ui.show_figure(figure_view(("cnn.curve", order, vit_fwd.key, method, pair.cnn_key, ctx.image_key),
                                   functools.partial(perturbation_figure, curves, order=order, removal="pixels",
                                                     class_name=_("its top class"))),
                       key=f"cnn.curve.{order}", filename=f"vit-vs-cnn-{order}-first")
    for order in ("most", "least"):
        arrays[f"vit_curve_{order}_first"] = vit_curves[order].probabilities
        arrays[f"cnn_curve_{order}_first"] = looks.curves[order].probabilities
    arrays.update(vit_map=relevance.patches, cnn_gradcam=looks.gradcam.cells)
    return method


pair = cnn_views.pair_for(ctx)
if pair.problem:
    st.info(_("{reason} So this page compares the bundled shapes pair, vitviz-shapes and vitviz-shapes-cnn, on "
              "your image.").format(reason=pair.problem), icon=":material/swap_horiz:")
if pair.shapes:
    st.markdown(_("**Compared:** {vit} (a small ViT) and {cnn} (a small ResNet with about as many parameters and "
                  "FLOPs), both trained on the same ten shapes with the same recipe.").format(
        vit=pair.vit.name, cnn=pair.cnn.name))
else:
    st.markdown(_("**Compared:** {vit} (the sidebar's ViT) and {cnn} (ResNet-18, He et al. 2016), both trained "
                  "on ImageNet.").format(vit=pair.vit.name, cnn=pair.cnn.name))
if pair.cnn.source == "random":
    st.warning(_("The bundled CNN's trained weights are not in this checkout, so it runs with random weights: "
                 "its receptive fields, cost and layer similarity show its architecture, but its predictions, "
                 "Grad-CAM and curves mean nothing. Train it with python scripts/train_shapes_cnn.py."),
               icon=":material/warning:")

with st.spinner(_("Measuring both models on your image…")):
    cmp = cnn_views.comparison(pair.vit_key, pair.cnn_key, ctx.image_key, pair.vit, pair.cnn, ctx.image)
keys = (pair.vit_key, pair.cnn_key, ctx.image_key)  # what the comparison's figures show

# ----------------------------------------------------------------------------------------------- reach
st.subheader(_("How far each layer reaches"))
st.markdown(_("The **effective receptive field** (Luo et al. 2016) of the unit at the centre of each layer: how "
              "much each input pixel changes it (the gradient), averaged over {count} images (yours and "
              "generated shapes). Bright means the pixel matters. Depth 0 is the ViT's patch embedding and the "
              "CNN's stem; then come the ViT's blocks and the CNN's stages.").format(count=cmp.vit_erf.images))
ui.show_figure(figure_view(("cnn.erf", *keys), lambda: erf_maps_figure(cmp)), key="cnn.erf",
               filename="effective-receptive-fields")
st.markdown(_("The same maps as one number per layer: the radius around the unit that holds 50 % or 90 % of "
              "the gradient. The CNN's **theoretical** receptive field, fixed by its kernels and strides, bounds "
              "its reach; the ViT's **mean attention distance** says how far its heads look in each block."))
ui.show_figure(figure_view(("cnn.reach", *keys), lambda: reach_figure(cmp)), key="cnn.reach", filename="reach-by-depth")
st.caption(_("At the last layer, half of the gradient lies within {vit:.0f} px for the ViT and {cnn:.0f} px for "
             "the CNN; the input is {side} px wide.").format(
    vit=cmp.vit_erf.radius50[-1], cnn=cmp.cnn_erf.radius50[-1], side=max(cmp.vit_theory.input_size)))

# ------------------------------------------------------------------------------------------------ cost
st.subheader(_("What each costs"))
ui.static_table(cost_rows(cmp.vit_cost, cmp.cnn_cost))
st.caption(_("FLOPs of one image's forward pass, counted by PyTorch (a multiply-add counts 2); time is the median "
             "of {repeats} passes on this machine, measured side by side. Compare the times with each other only."
             ).format(repeats=cmp.vit_cost.repeats))

# ------------------------------------------------------------------------------------------------- CKA
st.subheader(_("Do they see alike?"))
sources = cmp.cka_sources
st.markdown(_("**Linear CKA** (Kornblith et al. 2019) between every ViT layer and every CNN layer, as in Raghu et "
              "al. 2021: 1 means the two layers arrange the images the same way, 0 not at all. Computed over "
              "{count} images: your image, {samples} sample pictures and {shapes} generated shapes.").format(
    count=cmp.cka_images, samples=sources.get("samples", 0), shapes=sources.get("shapes", 0)))
ui.show_figure(figure_view(("cnn.cka", *keys), lambda: cka_figure(cmp.cka, cmp.vit_erf.names, cmp.cnn_erf.names)),
               key="cnn.cka", filename="cka")

# ----------------------------------------------------------------------------------------------- looks
st.subheader(_("Where each looks for its answer"))
vit_fwd = fwd if pair.vit is ctx.loaded else cnn_views.vit_pass(pair, ctx)
arrays = {"vit_erf": cmp.vit_erf.maps, "cnn_erf": cmp.cnn_erf.maps, "vit_erf_radius50": cmp.vit_erf.radius50,
          "vit_erf_radius90": cmp.vit_erf.radius90, "cnn_erf_radius50": cmp.cnn_erf.radius50,
          "cnn_erf_radius90": cmp.cnn_erf.radius90, "cnn_theoretical_rf": cmp.cnn_theory.size,
          "vit_attention_distance": cmp.attention_distance, "cka": cmp.cka}
vit_method = None
if vit_fwd.predictions:
    vit_method = looks_section(vit_fwd, arrays)
else:
    ui.no_classifier_note()

# ------------------------------------------------------------------------------------------------ data
st.subheader(_("How much data does a ViT need?"))
try:
    curves_data = cnn_views.data_curves()
except ValueError as exc:
    st.error(str(exc), icon=":material/error:")
    curves_data = None
if curves_data is not None:
    s = curves_data.get("settings", {})
    st.markdown(_("The small ViT and the small CNN trained from scratch on growing sets of shapes, {steps} steps "
                  "each whatever the size, {seeds} seeds per point (mean ± standard deviation), measured on shapes "
                  "neither saw, in the training styles and in held-out ones.").format(
        steps=s.get("steps", "?"), seeds=len(s.get("seeds", [])) or "?"))
    ui.show_figure(data_curves_figure(curves_data), key="cnn.data", filename="accuracy-vs-data")
    largest = largest_common_size(curves_data["summary"])
    if largest is not None:
        size, vit_acc, cnn_acc = largest
        st.caption(_("On {images:,} training images: the ViT {vit:.0f} %, the CNN {cnn:.0f} % on held-out shapes in "
                     "the training styles (ten shapes, so guessing scores 10 %).").format(
            images=size, vit=100 * vit_acc, cnn=100 * cnn_acc))
else:
    st.info(_("The data curves are not in this checkout. Make them with python scripts/data_curves.py (about an "
              "hour on two CPU cores); this section then plots them."), icon=":material/database:")
st.markdown(_("Dosovitskiy et al. 2021 asked the same question at ImageNet scale: pre-trained on ImageNet's "
              "1.3 million images, ViT-B/16 reaches 77.9 % and ViT-L/16 76.5 % on ImageNet, below a ResNet "
              "(BiT, 81.3 %); on 14 million images (ImageNet-21k) they draw level (85.2 % against 85.4 %); on 300 "
              "million (JFT-300M) ViT-H/14 reaches 88.0 % and overtakes the ResNet's 87.5 %."))

st.subheader(_("Why: inductive bias"))
st.markdown(_("A CNN is built to look at small neighbourhoods (**locality**) and to use the same filter everywhere, "
              "so a shape moved across the image gives the same features, moved (**translation equivariance**): it "
              "does not have to learn these from data. A ViT assumes neither, so it must learn from many examples "
              "which patches belong together, and with enough data that freedom lets it do better."))

ui.download_arrays(arrays, ctx.settings(view="vit_vs_cnn", vit=pair.vit.name, cnn=pair.cnn.name,
                                        cnn_weights=pair.cnn.source, vit_method=vit_method, cka_images=cmp.cka_images,
                                        cka_sources=cmp.cka_sources, erf_images=cmp.vit_erf.images),
                   filename="vit-vs-cnn", key="cnn.download")
