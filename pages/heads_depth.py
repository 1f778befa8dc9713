"""Heads & depth: how far each head looks, and what the tokens carry through the layers."""
from __future__ import annotations

import numpy as np
import streamlit as st

import vitviz_app as ui
from vitviz.i18n import _
from vitviz_app.views import distance_view, feature_pca_view, figure_view, token_norms_view

ui.entry_point()

ui.page_header(
    _("Heads & depth"),
    _("The ViT paper measured, for every head, the **mean attention distance**: how far (in pixels) a query "
      "patch looks on average, weighting each key patch by its attention (Fig. 7 right, Fig. 11). In ViTs "
      "trained on ImageNet, early layers mix local and global heads and deeper layers look globally. Here it "
      "is for this model and your image."),
)
ctx = ui.context()
ctx.require()
fwd = ctx.forward()
cap, layout = fwd.capture, fwd.layout

from vitviz.analysis import patch_distances
from vitviz.figures import attention_distance_figure, feature_pca_figure, token_norm_figure

dist = distance_view(fwd.key, fwd)  # (L, H) input pixels


def depth_sentence(dist: np.ndarray, uniform: float) -> str:
    """What this model's heads do with depth, in one sentence computed from ``dist`` (L, H) in pixels."""
    first, last = dist[0], dist[-1]
    spread = _("layer 0's heads look {first_min:.0f}–{first_max:.0f} px away on average, layer {last}'s "
               "{last_min:.0f}–{last_max:.0f} px (uniform attention: {uniform:.0f} px)").format(
        first_min=first.min(), first_max=first.max(), last=len(dist) - 1, last_min=last.min(),
        last_max=last.max(), uniform=uniform)
    grows = last.mean() > first.mean() + 0.1 * uniform
    mixed = first.max() - first.min() > 0.25 * uniform
    verdict = (_("attention reaches further with depth") if grows else
               _("attention does not reach further with depth"))
    verdict += (_(", and the first layer mixes local and global heads, as in the ViT paper.") if mixed and grows else
                _(", and the first layer mixes local and global heads.") if mixed else
                _(", and the first layer's heads all look about as far."))
    return _("**This model:** {spread}: {verdict}").format(spread=spread, verdict=verdict)


st.markdown(depth_sentence(dist, float(patch_distances(layout).mean())))
left, right = st.columns([3, 2], gap="large")
with left:
    ui.show_figure(figure_view(("heads.distance", fwd.key), lambda: attention_distance_figure(dist)),
                   key="heads.distance", filename="mean-attention-distance", height=460)
with right:
    st.markdown(_("**Per layer** (input pixels)"))
    headers = (_("min head"), _("mean"), _("max head"))
    st.dataframe(
        {_("layer"): np.arange(cap.num_layers), headers[0]: dist.min(axis=1), headers[1]: dist.mean(axis=1),
         headers[2]: dist.max(axis=1)},
        hide_index=True, width="stretch",
        column_config={k: st.column_config.NumberColumn(format="%.1f") for k in headers},
    )
    uniform = float(patch_distances(layout).mean())
    st.caption(_("For scale: the input is {height}×{width} px; a head attending uniformly to all patches would "
                 "score {uniform:.0f} px, one attending only to its own patch 0.").format(
        height=layout.input_size[0], width=layout.input_size[1], uniform=uniform))

st.subheader(_("Token norms and features through the layers"))
st.markdown(_("Each block adds to the tokens it receives (the residual stream). Some models develop "
              "**high-norm tokens** in low-information background patches, which registers absorb "
              "(Darcet et al. 2024); the PCA colours show which patches the model groups together."))
depth = st.slider(_("Hidden state"), 0, cap.num_layers, value=cap.num_layers, key="heads_state",
                  bind="query-params", persist_state="session",
                  help=_("0 = the embeddings entering block 0; i = the output of block i−1."))
from vitviz.figures.features import hidden_state_name

st.caption(_("Hidden state {index}: the {name}.").format(index=int(depth),
                                                        name=hidden_state_name(int(depth), cap.num_layers + 1)))
norms = token_norms_view(fwd.key, fwd)  # (L+1, N)
ui.show_figure(figure_view(("heads.norms", fwd.key, int(depth)), lambda: token_norm_figure(norms, layout, int(depth))),
               key="heads.norms", filename=f"token-norms-{depth}", height=620)
rgb = feature_pca_view(fwd.key, int(depth), fwd)  # (gh, gw, 3)
ui.show_figure(figure_view(("heads.pca", fwd.key, int(depth)),
                           lambda: feature_pca_figure(rgb, ctx.image, fwd.geometry, layout)), key="heads.pca",
               filename=f"feature-pca-{depth}", height=440)

ui.download_arrays(
    {"mean_attention_distance": dist, "token_norms": norms, "feature_pca": rgb},
    ctx.settings(view="heads_depth", hidden_state=int(depth), distance_unit="input pixels"),
    filename="heads-depth", key="heads.download",
)
ui.next_steps("heads_depth")
