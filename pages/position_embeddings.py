"""Position embeddings: what the model learned about where each patch sits (ViT paper, Fig. 7)."""
from __future__ import annotations

import numpy as np
import streamlit as st

import vitviz_app as ui
from vitviz.i18n import _
from vitviz_app import links
from vitviz_app.views import figure_view, filters_view, position_similarity_view

ui.entry_point()

ui.page_header(
    _("Position embeddings"),
    _("Patches carry no position of their own: the model adds a learned **position embedding** to each. "
      "Each tile below shows how similar one position's embedding is to all others (cosine similarity; "
      "ViT paper, Fig. 7 centre). In ImageNet-trained ViTs, nearby positions, and positions in the same row or "
      "column, are similar: those models learn the 2-D layout of the image. Whether this model did is said "
      "below the title. ")
    + ui.pointer_text(_("**Point at a tile** to see it large, **click** it to keep it."),
                      _("**Tap a tile** to see it large.")),
)
ctx = ui.context()
ctx.require()
fwd = ctx.forward()
layout = fwd.layout
gh, gw = layout.grid_size

from vitviz.analysis import PositionEmbeddingUnavailable
from vitviz.figures import embedding_filters_figure, position_similarity_figure, position_tile_figure

try:
    sim = position_similarity_view(fwd.key, fwd)  # (gh, gw, gh, gw)
except PositionEmbeddingUnavailable as exc:
    st.info(_("No position-similarity view for this model: {reason}").format(reason=exc), icon=":material/info:")
    sim = None


def locality_sentence(sim) -> str:
    """What this model's position embeddings show, in one sentence computed from ``sim``."""
    from vitviz.analysis import position_locality

    loc = position_locality(sim)
    numbers = _("a position's mean similarity to its 4 neighbours is **{neighbours:.2f}**, and the correlation "
                "of similarity with distance is **{correlation:.2f}**").format(
        neighbours=loc.neighbours, correlation=loc.distance_correlation)
    if not np.isfinite(loc.distance_correlation):
        return _("**This model:** its position embeddings are too uniform to say how they encode the layout.")
    if loc.distance_correlation < -0.5:
        return _("**This model:** {numbers}: similarity falls with distance, as in ImageNet ViTs.").format(
            numbers=numbers)
    if loc.border_correlation < -0.5:
        return _("**This model:** {numbers}: beyond the nearest neighbours, distant positions can be as alike as "
                 "near ones, unlike in ImageNet ViTs. It encodes mostly how far a patch is from the border "
                 "(correlation with the difference in distance to the border: **{border:.2f}**).").format(
            numbers=numbers, border=loc.border_correlation)
    return _("**This model:** {numbers}: beyond the nearest neighbours, distant positions can be as alike as "
             "near ones, unlike in ImageNet ViTs.").format(numbers=numbers)


row = col = None
if sim is not None:
    st.markdown(locality_sentence(sim))
    data_range = st.toggle(_("Colour by the data's range instead of −1…1"), key="pos_range",
                           bind="query-params", persist_state="session",
                           help=_("Learned embeddings are often all positively correlated; the data range "
                                  "shows their structure better."))
    # the committed position: the explorer's click (or the figure's, or the inputs below) sets it
    row = int(links.seed("pos_row", gh // 2, links.index(gh)))
    col = int(links.seed("pos_col", gw // 2, links.index(gw)))
    from vitviz.export import maps_payload
    from vitviz_app.components import explorer_budget, tile_explorer

    lo, hi = (float(sim.min()), float(sim.max())) if data_range else (-1.0, 1.0)
    tiles_payload = maps_payload(sim.reshape(gh * gw, gh, gw), value_range=(lo, hi), budget=explorer_budget(),
                                 kind="position_similarity")  # (gh*gw, gh, gw): one map per position
    if tiles_payload.tier == "maps":  # one grid and one enlarged view, both drawn in the browser

        def _pick(r: int, c: int) -> None:
            st.session_state["pos_row"], st.session_state["pos_col"] = r, c

        tile_explorer(tiles_payload, committed=(row, col), grid=(gh, gw), key="pos_explorer",
                      caption=_("Hover a tile: its map is shown large at once (drawn in your browser). Click to "
                                "keep it."),
                      caption_touch=_("Tap a tile: its map is shown large (drawn in your browser)."),
                      on_commit=_pick, url={"pos_row": links.publish("pos_row", row, gh // 2),
                                            "pos_col": links.publish("pos_col", col, gw // 2)})
    else:  # too many positions for the browser: the server's grid, clicked
        st.caption(_("This grid's {n} positions are too many to send their {n}² similarities to the browser: "
                     "click a tile to enlarge it.").format(n=gh * gw))
        left, right = st.columns([3, 2], gap="large")
        with left:
            tiles_fig = figure_view(("pos.tiles", fwd.key, data_range),
                                    lambda: ui.add_tile_targets(position_similarity_figure(sim, data_range=data_range)))
            ui.show_figure(tiles_fig, key="pos.tiles", filename="position-similarity", height=640,
                           on_select=ui.click_to_state("pos.tiles", "pos_row", "pos_col"))
        with right:
            a, b = st.columns(2)
            row = int(a.number_input(_("Position row"), 0, gh - 1, key="pos_row", persist_state="session"))
            col = int(b.number_input(_("Position column"), 0, gw - 1, key="pos_col", persist_state="session"))
            tile = figure_view(("pos.tile", fwd.key, row, col, data_range),
                               lambda: position_tile_figure(sim, row, col, data_range=data_range))
            ui.show_figure(tile, key="pos.tile", filename=f"position-{row}-{col}", height=480)
    near = [sim[row, col, r, c] for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1))
            if 0 <= r < gh and 0 <= c < gw]
    st.caption(_("Position ({row}, {col}): mean similarity to its 4 neighbours **{neighbours:.3f}**; to all "
                 "positions {everywhere:.3f}.").format(row=row, col=col, neighbours=sum(near) / max(len(near), 1),
                                                       everywhere=sim[row, col].mean()))
    links.publish("pos_row", row, gh // 2)
    links.publish("pos_col", col, gw // 2)

st.subheader(_("Patch-embedding filters"))
st.markdown(_("The first layer projects each flattened patch with a learned matrix. Its principal components "
              "(ViT paper, Fig. 7 left) look like the basis functions of a low-resolution image code: "
              "colour blobs, edges and gratings."))
n_filters = st.slider(_("Components"), 7, 42, value=28, step=7, key="pos_filters", bind="query-params",
                      persist_state="session")
filters = filters_view(fwd.key, n_filters, fwd)
ui.show_figure(figure_view(("pos.filters", fwd.key, n_filters),
                           lambda: embedding_filters_figure(filters.tiles, filters.explained_variance_ratio)),
               key="pos.filters", filename="embedding-filters", height=720)

arrays = {"filter_tiles": filters.tiles, "filter_explained_variance": filters.explained_variance_ratio}
settings = dict(view="position_embeddings", grid_size=[gh, gw], filter_components=n_filters)
if sim is not None:
    arrays["position_similarity"] = sim
    settings.update(selected_position=[row, col], color_range="data" if data_range else "-1..1")
ui.download_arrays(arrays, ctx.settings(**settings), filename="position-embeddings", key="pos.download")
ui.next_steps("position_embeddings")
