"""Attention: where one token looks, in any layer and head."""
from __future__ import annotations

import numpy as np
import streamlit as st

import vitviz_app as ui
from vitviz.i18n import N_, _
from vitviz_app import language
from vitviz_app.language import url_format

ui.entry_point()

ui.page_header(
    _("Attention"),
    _("In every layer each token (the **query**) mixes information from all tokens, weighted by its "
      "attention: softmax(q·k/√d) over the keys. Pick a layer, a head (or fuse all heads) and a query; "
      "**hover** a patch of the map to see where it looks and **click** it to make it the page's query, or "
      "click a tile of the layers × heads grid to open that layer and head. Attention to prefix tokens (class, "
      "distillation, registers) has no place on the image, so it is listed apart."),
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
        fig = attention_map_figure(row_values, ctx.image, fwd.geometry, layout, query=amap.query, layer=layer,
                                   head=head_arg)
        ui.add_cell_targets(fig, map_extent(fwd.geometry, (ctx.image.height, ctx.image.width), layout))
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
            "(attention sinks), and how attention spreads out with depth. **Click a tile** to open that layer "
            "and head above."
        ))
    grid_title = _("Attention of the class token") if query_kind == "cls" else (
        _("Attention of patch ({row}, {col})").format(row=query[0], col=query[1]) if query_kind == "patch" else
        _("Attention of {token}").format(token=_query_label(query_kind).lower()))
    grid_fig = ui.add_tile_targets(attention_grid_figure(maps, normalize=normalize, title=grid_title),
                                   label=ui.TILE_LAYER_HEAD)
    grid_fig.update_layout(title_subtitle_text=_("layers (rows) × heads (columns)"))  # short lines: narrow columns
    with grid_col:
        ui.show_figure(grid_fig, key="attn.grid", filename="attention-layers-heads",
                       height=int(min(1100, max(420, 58 * cap.num_layers + 140))),
                       on_select=ui.click_to_state("attn.grid", "attn_layer", "attn_head", col_as=str))


@st.fragment
def explore() -> None:
    """Everything below the page's header. A fragment: a click, a slider or the explorer's commit reruns only
    this (no sidebar, navigation or header), so the browser redraws fewer elements (bench/README.md §10)."""
    language.choose()  # a fragment's rerun skips app.py, which sets the language of a full run
    ctx = ui.context()
    ctx.require()
    fwd = ctx.forward()
    cap, layout = fwd.capture, fwd.layout
    gh, gw = layout.grid_size
    prefix_names = list(layout.prefix_names)
    query_options = prefix_names + ["patch"]
    head_options = list(ui.HEAD_FUSIONS) + [str(h) for h in range(cap.num_heads)]

    c1, c2, c3 = st.columns([3, 2, 3], vertical_alignment="bottom")
    layer = c1.slider(_("Layer"), 0, cap.num_layers - 1, value=cap.num_layers - 1, key="attn_layer",
                      bind="query-params", persist_state="session",
                      help=_("Block index, 0 = first. Early layers mix locally, late layers globally."))
    head = c2.selectbox(_("Head"), head_options, format_func=url_format("attn_head", head_options, ui.head_label),
                        key="attn_head",
                        bind="query-params", persist_state="session",
                        help=_("One head, or the heads fused by their mean, maximum or minimum (head fusion)."))
    query_kind = c3.segmented_control(
        _("Query token"), query_options, default=query_options[0], required=True,
        format_func=url_format("attn_query", query_options, _query_label),
        key="attn_query", bind="query-params", persist_state="session",
    )

    def _query_a_patch() -> None:
        st.session_state["attn_query"] = "patch"

    # The patch inputs are drawn whatever the query, so that a click on the image (which sets them and the query
    # in one callback) changes widgets that existed in the previous run: only those are written to the URL.
    p1, p2, _spare = st.columns([1, 1, 4])
    row = p1.number_input(_("Patch row"), 0, gh - 1, value=gh // 2, key="attn_row", bind="query-params",
                          persist_state="session", on_change=_query_a_patch,
                          help=_("The query patch; changing it makes a patch the query."))
    col = p2.number_input(_("Patch column"), 0, gw - 1, value=gw // 2, key="attn_col", bind="query-params",
                          persist_state="session", on_change=_query_a_patch)
    query = (int(row), int(col)) if query_kind == "patch" else query_kind

    from vitviz.analysis import attention_grid, attention_map

    head_arg = head if head in ui.HEAD_FUSIONS else int(head)
    amap = attention_map(cap, layer, head_arg, query)

    from vitviz_app.components import attention_explorer, commit_updates

    def _commit(value: dict) -> None:
        """The explorer's click: the page's query (and the layer and head shown) follow it."""
        for key, item in commit_updates(value, "attn").items():
            st.session_state[key] = item

    # The explorer is the page's map: it draws the committed query and follows the pointer in the browser, so a
    # click only has to update the small server-drawn parts below (bench/README.md §10c).
    explorer = attention_explorer(fwd, ctx.image, query_token=amap.query, layer=layer, head=head,
                                  labels={name: _query_label(name) for name in prefix_names},
                                  key="attn_explorer", on_commit=_commit)
    st.caption(
        _("Everything here is redrawn in your browser: **hover** a patch to make it the query, change the layer or "
          "head, **click** a tile of the grid to open it, hold **Shift** to read values; **click** a patch (or a "
          "prefix-token button) to make it the page's query.")
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
        + _("({megabytes:.2f} MB, sent once for this image.)").format(megabytes=explorer.nbytes / 1e6)
    )

    query_name = (_("patch ({row}, {col})").format(row=query[0], col=query[1]) if query_kind == "patch"
                  else _query_label(query_kind))
    st.container(key="attn-query").subheader(_("The page's query: {query} · layer {layer} · {head}").format(
        query=query_name, layer=layer, head=ui.head_label(head)))
    # few, light elements: a fragment rerun makes the browser draw each one again
    top_col, shares_col = st.columns([3, 2], gap="large")
    flat = amap.patches.ravel()
    with top_col:
        top = np.argsort(-flat, kind="stable")[:5]
        st.markdown(_("**Patches it attends to most**"))
        # a plain table: the interactive data grid took ~90 ms of the browser's time on every committed click
        ui.top_table({_("row"): [int(i // gw) for i in top], _("column"): [int(i % gw) for i in top]},
                     _("attention"), [float(flat[i]) for i in top], upper=ui.bar_max(flat))
    with shares_col:
        # of the row's total: a max/min over heads is normalised to 1 (the explorer words it the same way)
        shares = [_("{name} {percent}%").format(name=_query_label(name), percent=f"{100 * value:.1f}")
                  if name in prefix_names else _("all patches {percent}%").format(percent=f"{100 * value:.1f}")
                  for name, value in amap.shares().items()]
        st.markdown(_("Share of this query's attention: {shares}").format(shares=" · ".join(shares)))
        if head in ui.HEAD_FUSIONS and head != "mean":
            st.caption(_("With {fusion} fusion the values no longer sum to 1: each patch shows the {fusion} over "
                         "the {heads} heads; the shares above are of their total.").format(
                fusion=_(FUSION_NAMES[head]), heads=cap.num_heads))

    maps = attention_grid(cap, query)  # (L, H, gh, gw)
    figures = st.toggle(
        _("Draw the page's query as Plotly figures: the map over the photo and every layer and head at once"),
        value=False, key="attn_figures", bind="query-params", persist_state="session",
        help=_("Zoom, exact values on hover and a PNG download; click a patch of the map or a tile of the grid to "
               "open it. Each change is drawn by the server, so these follow a click more slowly than the explorer."))
    if figures:
        _figures(ctx, fwd, amap, maps, layer=layer, head=head, head_arg=head_arg, query=query, query_kind=query_kind)

    ui.download_arrays(
        {"attention_heads": cap.attention_row(layer, amap.query)[0], "attention_map": amap.patches,
         "attention_prefix": np.asarray(list(amap.prefix.values())), "layers_heads_maps": maps},
        ctx.settings(view="attention", layer=layer, head=head, query=list(query) if query_kind == "patch" else query,
                     query_token=amap.query, prefix_tokens=prefix_names, grid_size=[gh, gw]),
        filename=f"attention-layer{layer}-{head}", key="attn.download",
    )


explore()
