"""Attention: where one token looks, in any layer and head."""
from __future__ import annotations

import numpy as np
import streamlit as st

import vitviz_app as ui
from vitviz.i18n import N_, _
from vitviz_app import language, links
from vitviz_app.views import figure_view

ui.entry_point()

ui.page_header(
    _("Attention"),
    _("In every layer each token (the **query**) mixes information from all tokens, weighted by its "
      "attention: softmax(q·k/√d) over the keys. The explorer below is the page's one set of controls: pick a "
      "layer and a head (or fuse all heads), then ")
    + ui.pointer_text(_("**hover** a patch to preview where it looks and **click** it to make it the query."),
                      _("**tap** a patch to make it the query."))
    + " " + _("Attention to prefix tokens (class, distillation, registers) has no place on the image, so it is "
              "listed apart."),
)

PREFIX_LABELS = {"cls": N_("Class token"), "dist": N_("Distillation token")}
FUSION_NAMES = {"max": N_("maximum"), "min": N_("minimum")}


def _query_label(option: str) -> str:
    if option == "patch":
        return _("A patch")
    if option.startswith("reg"):
        return _("Register {index}").format(index=option[3:])
    return _(PREFIX_LABELS[option]) if option in PREFIX_LABELS else option


def _figures(ctx, fwd, amap, maps, *, layer: int, head: str, head_arg, query, query_kind: str) -> None:
    """The committed query as Plotly figures: the map over the photo and the layers × heads grid, both clickable."""
    from vitviz.figures import attention_grid_figure, attention_map_figure, map_extent

    cap, layout = fwd.capture, fwd.layout
    row_values = np.concatenate([np.asarray(list(amap.prefix.values()), dtype=np.float64), amap.patches.ravel()])
    # square tiles: a grid of few heads is narrow and goes beside the map; a wide one gets the full width below
    map_col, side_col = st.columns(2, gap="large")
    grid_col = side_col if cap.num_heads <= min(cap.num_layers, 6) else st.container()
    with map_col:
        # built once per view and language (figure_view): toggling the figures on again only sends them
        fig = figure_view(("attn.map", fwd.key, layer, head, amap.query), lambda: ui.add_cell_targets(
            attention_map_figure(row_values, ctx.image, fwd.geometry, layout, query=amap.query, layer=layer,
                                 head=head_arg),
            map_extent(fwd.geometry, (ctx.image.height, ctx.image.width), layout)))
        ui.show_figure(fig, key="attn.map", filename=f"attention-layer{layer}-{head}", height=560,
                       on_select=ui.click_to_state("attn.map", "attn_row", "attn_col", attn_query="patch"))
    with side_col:
        normalize = st.toggle(_("Scale each tile to its own maximum"), value=True, key="attn_norm",
                              bind="query-params", persist_state="session",
                              help=_("Late-layer heads often spread attention thinly; per-tile scaling shows their "
                                     "pattern."))
        st.caption(_(
            "Each tile is one head of one layer, for the same query. Look for heads that attend **locally** "
            "(a bright spot near the query), heads that attend to the **same place whatever the query** "
            "(attention sinks), and how attention spreads out with depth. **Click a tile** to commit that "
            "layer and head."
        ))
    grid_title = _("Attention of the class token") if query_kind == "cls" else (
        _("Attention of patch ({row}, {col})").format(row=query[0], col=query[1]) if query_kind == "patch" else
        _("Attention of {token}").format(token=_query_label(query_kind).lower()))

    def build_grid():
        grid = ui.add_tile_targets(attention_grid_figure(maps, normalize=normalize, title=grid_title),
                                   label=ui.TILE_LAYER_HEAD)
        return grid.update_layout(title_subtitle_text=_("layers (rows) × heads (columns)"))  # short lines

    grid_fig = figure_view(("attn.grid", fwd.key, amap.query, normalize), build_grid)
    with grid_col:
        ui.show_figure(grid_fig, key="attn.grid", filename="attention-layers-heads",
                       height=int(min(1100, max(420, 58 * cap.num_layers + 140))),
                       on_select=ui.click_to_state("attn.grid", "attn_layer", "attn_head", col_as=str))


def _view_state(layout, num_layers: int, num_heads: int) -> tuple[int, str, str, int, int]:
    """The committed view ``(layer, head, query kind, patch row, patch column)``: one value per key in the session
    state, which the explorer's commits and the Plotly figures' clicks set; a link seeds them once (ids)."""
    gh, gw = layout.grid_size
    prefix_names = list(layout.prefix_names)
    query_options = prefix_names + ["patch"]
    head_options = list(ui.HEAD_FUSIONS) + [str(h) for h in range(num_heads)]
    layer = links.seed("attn_layer", num_layers - 1, links.index(num_layers))
    head = links.seed("attn_head", "mean", links.choice(head_options, ui.head_label))
    query_kind = links.seed("attn_query", query_options[0], links.choice(query_options, _query_label))
    row = links.seed("attn_row", gh // 2, links.index(gh))
    col = links.seed("attn_col", gw // 2, links.index(gw))
    return int(layer), str(head), str(query_kind), int(row), int(col)


def _publish(layout, num_layers: int, layer: int, head: str, query_kind: str, row: int, col: int) -> dict:
    """The committed view in the URL, as ids; the patch only while a patch is the query. Returns ``{key: id or
    None}``: the explorer writes them into the address bar too, since a fragment's rerun cannot."""
    gh, gw = layout.grid_size
    prefix_names = list(layout.prefix_names)
    return {"attn_layer": links.publish("attn_layer", layer, num_layers - 1),
            "attn_head": links.publish("attn_head", head, "mean"),
            "attn_query": links.publish("attn_query", query_kind, (prefix_names + ["patch"])[0]),
            "attn_row": links.publish("attn_row", row, gh // 2 if query_kind == "patch" else row),
            "attn_col": links.publish("attn_col", col, gw // 2 if query_kind == "patch" else col)}


@st.fragment
def explore() -> None:
    """Everything below the page's header. A fragment: the explorer's commit (or a click on a Plotly figure) reruns
    only this (no sidebar, navigation or header), so the browser redraws fewer elements (bench/README.md §10)."""
    language.choose()  # a fragment's rerun skips app.py, which sets the language of a full run
    ctx = ui.context()
    ctx.require()
    fwd = ctx.forward()
    cap, layout = fwd.capture, fwd.layout
    gh, gw = layout.grid_size
    prefix_names = list(layout.prefix_names)
    layer, head, query_kind, row, col = _view_state(layout, cap.num_layers, cap.num_heads)
    query = (row, col) if query_kind == "patch" else query_kind

    from vitviz.analysis import attention_grid, attention_map

    head_arg = head if head in ui.HEAD_FUSIONS else int(head)
    amap = attention_map(cap, layer, head_arg, query)

    from vitviz_app.components import attention_explorer, commit_updates

    def _commit(value: dict) -> None:
        """The explorer's commit (a click on a patch, a prefix token or a tile, a new layer or head): the page's
        state follows it."""
        for key, item in commit_updates(value, "attn").items():
            st.session_state[key] = item

    # The explorer is the page's map and its controls: it draws the committed view and previews the patch under
    # the pointer in the browser, so a commit only has to update the small server-drawn parts below.
    explorer = attention_explorer(fwd, ctx.image, query_token=amap.query, layer=layer, head=head,
                                  labels={name: _query_label(name) for name in prefix_names},
                                  key="attn_explorer", on_commit=_commit,
                                  url=_publish(layout, cap.num_layers, layer, head, query_kind, row, col))
    st.caption(
        ui.pointer_text(
            _("Everything here is redrawn in your browser: **hover** a patch to preview it as the query (leaving the "
              "map goes back to the committed one), hold **Shift** to read values; **click** a patch, a prefix-token "
              "button or a tile of the grid, or move the layer or head control, to commit it to the page."),
            _("Everything here is redrawn in your browser: **tap** a patch, a prefix-token button or a tile of the "
              "grid, or move the layer or head control, to commit it to the page."))
        + " "
        + {"heads": _("Every layer, head and query is in the browser."),
           "fused": _("This model's {tokens} tokens × {layers} layers × {heads} heads are too many to send every head "
                      "of every query: the browser holds every query's head-fused maps (mean, max, min) and every head "
                      "of the prefix tokens; **click** a patch to see its single heads."),
           "prefix": _("This model's {tokens} tokens are too many to send every query's attention: the browser holds "
                       "the prefix tokens' rows of every layer and head; **click** a patch to load its maps."),
           "none": _("This model's {tokens} tokens are too many to send attention to the browser: **click** a patch "
                     "to load its maps.")}[explorer.tier].format(tokens=cap.num_tokens, layers=cap.num_layers,
                                                                 heads=cap.num_heads)
        + " "
        + _("({megabytes:.2f} MB, sent once for this image.)").format(megabytes=explorer.nbytes / 1e6),
        unsafe_allow_html=True,
    )

    query_name = (_("patch ({row}, {col})").format(row=query[0], col=query[1]) if query_kind == "patch"
                  else _query_label(query_kind))
    st.container(key="attn-query").subheader(_("Committed view: {query} · layer {layer} · {head}").format(
        query=query_name, layer=layer, head=ui.head_label(head)))
    st.caption(_("The table, the figures and the downloads below show this view. The explorer's map title names "
                 "what it shows while you preview another patch."))
    flat = amap.patches.ravel()
    top = np.argsort(-flat, kind="stable")[:5]
    st.markdown(_("**Patches it attends to most**"))
    # a plain table: the interactive data grid took ~90 ms of the browser's time on every committed click
    ui.top_table({_("row"): [int(i // gw) for i in top], _("column"): [int(i % gw) for i in top]},
                 _("attention"), [float(flat[i]) for i in top], upper=ui.bar_max(flat))
    if head in ui.HEAD_FUSIONS and head != "mean":
        st.caption(_("With {fusion} fusion the values no longer sum to 1: each patch shows the {fusion} over "
                     "the {heads} heads; the explorer's shares are of their total.").format(
            fusion=_(FUSION_NAMES[head]), heads=cap.num_heads))

    maps = attention_grid(cap, query)  # (L, H, gh, gw)
    figures = st.toggle(
        _("Draw the committed view as Plotly figures: the map over the photo and every layer and head at once"),
        value=False, key="attn_figures", bind="query-params", persist_state="session",
        help=_("Zoom, exact values on hover and a PNG download; click a patch of the map or a tile of the grid to "
               "commit it. Each change is drawn by the server, so these follow a commit more slowly than the "
               "explorer."))
    if figures:
        _figures(ctx, fwd, amap, maps, layer=layer, head=head, head_arg=head_arg, query=query, query_kind=query_kind)
    else:
        ui.preload_plotly()  # so that switching the figures on does not wait for the browser's Plotly code

    ui.download_arrays(
        {"attention_heads": cap.attention_row(layer, amap.query)[0], "attention_map": amap.patches,
         "attention_prefix": np.asarray(list(amap.prefix.values())), "layers_heads_maps": maps},
        ctx.settings(view="attention", layer=layer, head=head, query=list(query) if query_kind == "patch" else query,
                     query_token=amap.query, prefix_tokens=prefix_names, grid_size=[gh, gw]),
        filename=f"attention-layer{layer}-{head}", key="attn.download",
    )


explore()
ui.next_steps("attention")
