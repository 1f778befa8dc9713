"""How a ViT works: the forward pass on your own image, one step at a time, with the real numbers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

import vitviz_app as ui
from vitviz.analysis import walkthrough as wt
from vitviz.i18n import _, keep_language, ngettext
from vitviz_app import language, links
from vitviz_app.views import figure_view, token_norms_view

ui.entry_point()

ui.page_header(
    _("How a Vision Transformer works"),
    _("The whole forward pass on **your image**, in order. Every number below is recomputed by hand from "
      "the model's weights and checked against what the model really computed. **Click a patch** in step 1 "
      "to follow it through the steps."),
)


def step(number: int, title: str, text: str, formula: str, shapes: str) -> None:
    """A step's heading, its two-line explanation, its formula and the tensor shapes involved."""
    st.header(f"{number} · {title}", divider="gray")
    st.markdown(text)
    st.latex(formula)
    st.markdown(_("**Shapes:** {shapes}").format(shapes=shapes))


def check(error: float, what: str) -> None:
    ok = error < 1e-3
    icon = ":material/check_circle:" if ok else ":material/warning:"
    st.caption(_("{icon} Recomputed by hand: {what} (largest difference {error:.1e}).").format(
        icon=icon, what=what, error=error))


def url_ids(layout, *, row: int, col: int, layer: int, head: str | None, figures: bool) -> dict[str, str | None]:
    """The page's view as URL ids (``{key: id, or None}``), a default left out, as Streamlit writes its bound widgets
    (``how_row``, ``how_col``, ``how_layer``, ``how_figures``) and ``links.publish`` the head. Streamlit may not pass
    a fragment rerun's URL change on: the follower (or, without one, the address-bar keeper) writes these there."""
    gh, gw = layout.grid_size
    return {"how_row": None if row == gh // 2 else str(row), "how_col": None if col == gw // 2 else str(col),
            "how_layer": None if layer == 0 else str(layer), "how_head": head,
            "how_figures": "true" if figures else None}


@dataclass(frozen=True)
class Steps:
    """Where steps 2, 3, 5 and 6 draw the committed patch: views drawn in the browser from the follower's payload
    (the parts in ``browser``) or, for any other step, Plotly figures built by the server."""

    follower: Any  # the follower's PatchStepsPayload
    browser: tuple[str, ...]
    fwd_key: str
    patch: tuple[int, int]
    layer: int
    head: int

    def show(self, box, part: str, text: dict, figure, key: str, filename: str, height: int | None = None) -> None:
        """One step's picture of the committed patch: drawn in the browser (``part`` in the payload) or by Plotly."""
        from vitviz_app.components.patch_follower import patch_step

        with box:
            if part in self.browser:
                patch_step(self.follower, step=part, committed=self.patch, text=text, key=f"how_step_{part}")
            else:  # each figure is built once per forward pass, what it shows and language (views.figure_view)
                ui.show_figure(figure_view((key, self.fwd_key, *self.patch, self.layer, self.head), figure), key=key,
                               filename=filename, height=height)


def tokens_step(model, fwd, layout, dim: int) -> np.ndarray:
    """Step 4: the prefix tokens and the position embeddings; returns the sequence entering block 0."""
    from vitviz.figures import walkthrough as wf

    prefix = list(layout.prefix_names)
    tokens0, tokens_error = wt.first_tokens(model, fwd.x, fwd.capture)
    title4 = _("Add the class token and position embeddings")  # first: the heading introduces both terms
    prefix_text = (ngettext("{count} prefix token ({names}) is put in front: a learned vector that belongs to no "
                            "patch; the class token will collect the answer. ",
                            "{count} prefix tokens ({names}) are put in front: learned vectors that belong to no "
                            "patch; the class token will collect the answer. ", len(prefix)).format(
                       count=len(prefix), names=", ".join(prefix)) if prefix else
                   _("This model has no class token: it will average the patch tokens at the end. "))
    pos_text = (_("A learned **position embedding** is added to every token, since attention itself ignores order.")
                if getattr(model, "pos_embed", None) is not None else
                _("This model adds no learned absolute position embedding."))
    step(4, title4, prefix_text + pos_text,
         r"z_0 = [\,x_\text{class};\ x_p^1 E;\ \dots;\ x_p^N E\,] + E_\text{pos}",
         _("({n}, {dim}) → ({tokens}, {dim}): {layout}").format(n=layout.num_patches, tokens=layout.num_tokens,
                                                                dim=dim, layout=layout.describe()))
    ui.show_figure(figure_view(("how.tokens", fwd.key), lambda: wf.first_tokens_figure(tokens0)), key="how.tokens",
                   filename="step4-tokens")
    check(tokens_error, _("the sequence equals the tokens entering the first block"))
    return tokens0


def classifier_step(ctx, fwd, model, layout, dim: int):
    """Step 7: the head reads the final tokens; returns the hand-recomputed classifier numbers."""
    from vitviz.figures import predictions_figure

    cap = fwd.capture
    has_head = fwd.probabilities is not None
    readout = (_("the class token") if layout.global_pool == "token" else
               _("the tokens pooled by '{pool}'").format(pool=layout.global_pool))
    step(7, _("Classify"),
         _("After a final LayerNorm, {readout} is read by a linear layer, giving one score (logit) per class; the "
           "softmax turns scores into probabilities.").format(readout=readout) if has_head else
         _("This model has no classifier: its output is the feature vector itself, used by other models."),
         r"y = \mathrm{softmax}\big(W_\text{head}\, \mathrm{LN}(z_L^{0}) + b\big)",
         f"({layout.num_tokens}, {dim}) → ({dim},) → ({int(cap.output.shape[-1])},)")
    head_step = wt.classifier_numbers(model, cap)
    if has_head:
        ui.show_figure(figure_view(("how.predictions", fwd.key), lambda: predictions_figure(
            fwd.predictions, title=_("Top-5 probabilities"))), key="how.predictions", filename="step7-predictions",
            height=280)
        ui.shapes_note(ctx.loaded)
    check(head_step.error, _("the head's output equals the model's output"))
    return head_step


@st.fragment
def walk() -> None:
    """Everything below the page's header. A fragment: following a patch (the follower's commit), a control or a
    click on a figure reruns only this, not the sidebar, navigation and header (bench/README.md §15); the follower
    writes the view into the address bar, where a fragment's rerun may not (cf4ae03)."""
    language.choose()  # a fragment's rerun skips app.py, which sets the language of a full run
    ctx = ui.context()
    ctx.require()
    fwd = ctx.forward()
    model, cap, layout = fwd.model, fwd.capture, fwd.layout
    if not wt.supports_walkthrough(model):
        st.info(_("The step-by-step numbers need a standard timm VisionTransformer; {model} uses other blocks. The "
                  "other pages work for it.").format(model=ctx.loaded.name), icon=":material/info:")
        st.stop()  # also ends the full run: no "next" link under this note

    from vitviz.figures import attention_map_figure, map_extent
    from vitviz.figures import walkthrough as wf
    from vitviz.figures.attention import attention_map_titles
    from vitviz.images import input_image

    gh, gw = layout.grid_size
    ph, pw = layout.patch_size
    height, width = layout.input_size
    prefix = list(layout.prefix_names)
    depth = cap.num_layers
    dim = int(cap.hidden_states.shape[-1])
    pixels = input_image(fwd.x, fwd.data_config)  # (H, W, 3) uint8

    # 1 -------------------------------------------------------------------------------- patches
    step(1, _("Cut the image into patches"),
         _("The image is resized and cropped to {height}×{width} px, normalised, and cut into a {gh}×{gw} grid "
           "of {ph}×{pw} px patches. A transformer reads sequences, so the grid becomes a sequence of "
           "N = {n} patches, row by row.").format(height=height, width=width, gh=gh, gw=gw, ph=ph, pw=pw,
                                                  n=layout.num_patches),
         rf"N = \frac{{H \cdot W}}{{P^2}} = \frac{{{height} \cdot {width}}}{{{ph}^2}} = {layout.num_patches}",
         _("image `x` (1, 3, {height}, {width}) → {n} patches of (3, {ph}, {pw})").format(
             height=height, width=width, n=layout.num_patches, ph=ph, pw=pw))
    step1_left, right = st.columns([2, 1], gap="large")
    with right:
        a, b = st.columns(2)
        row = int(a.number_input(_("Patch row"), 0, gh - 1, value=gh // 2, key="how_row", bind="query-params",
                                 persist_state="session"))
        col = int(b.number_input(_("Patch column"), 0, gw - 1, value=gw // 2, key="how_col", bind="query-params",
                                 persist_state="session"))
        token = layout.patch_index(row, col)
        tile = pixels[row * ph:(row + 1) * ph, col * pw:(col + 1) * pw]  # (ph, pw, 3)
        factor = max(1, 192 // max(ph, pw))
        big = np.kron(tile, np.ones((factor, factor, 1), dtype=np.uint8))  # (ph·f, pw·f, 3): crisp pixels
        st.image(big, caption=_("Patch (row {row}, col {col}) = token {token} of the sequence").format(
            row=row, col=col, token=token), width=pw * factor)
    # 2 -------------------------------------------------------------------------------- flatten
    embed = wt.embed_patch(model, fwd.x, layout, row, col)
    step(2, _("Flatten each patch"),
         _("Each patch's {ph}·{pw} pixels × 3 colour channels become one vector of {size} numbers (the normalised "
           "pixel values, channel by channel). Position in the patch is kept only by the order.").format(
             ph=ph, pw=pw, size=embed.pixels.size),
         rf"x_p^{{i}} \in \mathbb{{R}}^{{P^2 \cdot C}}, \quad P^2 \cdot C = {ph} \cdot {pw} \cdot 3 = "
         rf"{embed.pixels.size}",
         _("{n} patches of (3, {ph}, {pw}) → matrix (N, P²·C) = ({n}, {size})").format(
             n=layout.num_patches, ph=ph, pw=pw, size=embed.pixels.size))
    flat_box = st.container()  # steps 2, 3, 5 and 6 are drawn once the follower's payload is made (after step 5)

    # 3 -------------------------------------------------------------------------------- project
    step(3, _("Project each patch to an embedding"),
         _("One learned matrix E maps every flattened patch to a D = {dim} dimensional **token**; the same E for "
           "all patches (timm implements it as a convolution with stride P).").format(dim=dim),
         rf"z^{{i}} = x_p^{{i}} E + b, \quad E \in \mathbb{{R}}^{{{embed.pixels.size} \times {dim}}}",
         f"({layout.num_patches}, {embed.pixels.size}) · ({embed.pixels.size}, {dim}) → "
         f"({layout.num_patches}, {dim})")
    embed_box = st.container()
    check(embed.error, _("x·E + b equals the model's patch-embedding output for this patch"))

    # 4 -------------------------------------------------------------------------------- prefix + positions
    tokens0 = tokens_step(model, fwd, layout, dim)

    # 5 -------------------------------------------------------------------------------- self-attention
    step(5, _("Self-attention"),
         _("Each token makes a query q, a key k and a value v (three learned projections, per head). A query's "
           "weights over all keys are the softmax of the scaled dot products; its output is the weighted mix "
           "of the values. Below: the real numbers for your patch as the query."),
         r"\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d}}\right) V",
         _("tokens ({n}, {dim}) → Q, K, V ({heads} heads, {n}, {head_dim}) → attention ({heads}, {n}, {n})").format(
             n=layout.num_tokens, dim=dim, heads=cap.num_heads, head_dim=dim // cap.num_heads))
    c1, c2 = st.columns(2)
    layer = int(c1.slider(_("Layer"), 0, depth - 1, value=0, key="how_layer", bind="query-params",
                          persist_state="session"))
    links.seed("how_head", 0, links.choice(range(cap.num_heads), ui.head_label))  # the URL holds the head's number
    head = int(c2.selectbox(_("Head"), list(range(cap.num_heads)), format_func=keep_language(ui.head_label),
                            key="how_head", persist_state="session"))
    head_id = links.publish("how_head", head, 0)
    from vitviz_app.components.address_bar import keep_in_address_bar
    from vitviz_app.components.patch_follower import follower_payload, patch_follower

    def _follow(r: int, c: int) -> None:
        st.session_state["how_row"], st.session_state["how_col"] = r, c

    # the steps' numbers of every patch, in the browser: pointing at a patch redraws them with no rerun
    follower = follower_payload(fwd, pixels, layer=layer, head=head)
    figures = False
    with step1_left:  # filled now that step 5 has its layer and head
        shown = st.container()  # the follower, mounted below once the figures toggle (part of its URL) is read
        if follower.tier == "none":
            grid_fig = ui.add_cell_targets(wf.chosen_patch_figure(pixels, layout, row, col),
                                           map_extent(None, (height, width), layout))
            ui.show_figure(grid_fig, key="how.grid", filename="step1-patches", height=460,
                           on_select=ui.click_to_state("how.grid", "how_row", "how_col"))
            st.caption(_("This model's patches are too many to send their numbers to the browser: click a patch."))
        else:
            missing = [name for name in ("embeddings", "attention") if name not in follower.holds]
            st.caption(ui.pointer_text(
                _("What the model sees: {height}×{width} px, {gh}×{gw} patches. **Point at** a patch: its pixels, "
                  "flattened vector, token, attention and length are redrawn beside the image, in your browser. "
                  "**Click** it to follow it through every step below."),
                _("What the model sees: {height}×{width} px, {gh}×{gw} patches. **Tap** a patch: its pixels, "
                  "flattened vector, token, attention and length are redrawn beside the image, and every step below "
                  "follows it."),
            ).format(height=height, width=width, gh=gh, gw=gw), unsafe_allow_html=True)
            if missing:
                st.caption({("embeddings", "attention"): _("Too many patches to send every step's numbers: click a "
                                                           "patch for its token and its attention."),
                            ("attention",): _("Too many patches to send every step's numbers: click a patch for its "
                                              "attention.")}[tuple(missing)])
            figures = st.toggle(
                _("Draw the steps below as Plotly figures"), value=False, key="how_figures", bind="query-params",
                persist_state="session",
                help=_("Zoom, exact values on hover and a PNG download. Each change is drawn by the server, so these "
                       "follow a click more slowly than the drawings made in your browser."))
        url = url_ids(layout, row=row, col=col, layer=layer, head=head_id, figures=figures)
        with shown:
            if follower.tier == "none":
                keep_in_address_bar(url, key="how_url")
            else:
                patch_follower(
                    follower, grid=layout.grid_size, committed=(row, col), key="how_follow", on_commit=_follow,
                    url=url,
                    text={"tip": _("row {row}, column {col} = token {token} · click to follow it through the steps"),
                          "title": _("Patch (row {row}, col {col}) = token {token}"),
                          "pixels": _("2 · flattened: {n} numbers"), "embedding": _("3 · its token: {n} dimensions"),
                          "attention": _("5 · where it looks: layer {layer}, head {head}"),
                          "norms": _("6 · its length ‖z‖ per block (dotted: mean of all patches)"),
                          "missing": _("(too large to send: click the patch to see this step)")})
    # what the browser draws from the follower's payload: a commit then sends the patch and a few texts, no figure
    steps = Steps(follower, () if follower.tier == "none" or figures else follower.holds, fwd.key, (row, col),
                  layer, head)
    steps.show(flat_box, "pixels", {
        "title": wf.flattened_patch_title(embed.pixels, row, col), "x_axis": _("index in the vector"),
        "y_axis": _("normalised value"), "series": [_(name) for name, _colour in wf.CHANNELS],
        "tip": _("{name} · index {x}: {value}")},
        lambda: wf.flattened_patch_figure(embed.pixels, layout.patch_size, row, col), "how.flat",
        "step2-flattened-patch")
    steps.show(embed_box, "embeddings", {
        "title": wf.patch_embedding_title(embed.embedding, row, col), "x_axis": _("embedding dimension"),
        "y_axis": _("value"), "series": [_("embedding")], "tip": _("{name} · dimension {x}: {value}")},
        lambda: wf.patch_embedding_figure(embed.embedding, row, col), "how.embed", "step3-patch-embedding")

    att = wt.attention_numbers(model, cap, layer, head, token)
    keys = wt.shown_keys(att.weights, layout, token)

    def key_name(k: int, mark_query: bool = True) -> str:
        if k < len(prefix):
            return prefix[k]
        r, c = layout.patch_position(k)
        name = _("patch ({row}, {col})").format(row=r, col=c)
        return _("{patch} = the query").format(patch=name) if mark_query and k == token else name

    sqrt_d = float(np.sqrt(att.head_dim))
    first = keys[0]
    st.latex(rf"\frac{{q \cdot k_\text{{{key_name(first, mark_query=False)}}}}}{{\sqrt{{{att.head_dim}}}}} = "
             rf"\frac{{{att.dots[first]:.3f}}}{{{sqrt_d:.3f}}} = {att.scaled[first]:.3f}, \qquad "
             rf"\mathrm{{softmax}} = \frac{{e^{{{att.scaled[first]:.3f}}}}}{{\sum_{{j=1}}^{{{layout.num_tokens}}} "
             rf"e^{{s_j}}}} = {att.weights[first]:.4f}")
    left, right = st.columns([1.1, 1], gap="large")
    with left:
        weight_column = _("softmax weight")
        ui.top_table({_("key"): [key_name(k) for k in keys], "q·k": [float(att.dots[k]) for k in keys],
                      "q·k/√d": [float(att.scaled[k]) for k in keys]}, weight_column,
                     [float(att.weights[k]) for k in keys], upper=ui.bar_max(att.weights), value_format="{:.4f}",
                     formats={"q·k": "{:.3f}", "q·k/√d": "{:.3f}"})
        rest = 1.0 - float(att.weights[keys].sum())
        st.caption(_("These {shown} keys take {share:.1%} of the attention; the other {others} share the remaining "
                     "{rest:.1%}. All weights sum to {total:.4f}.").format(
            shown=len(keys), share=1 - rest, others=layout.num_tokens - len(keys), rest=rest,
            total=att.weights.sum()))
        check(att.error, _("the softmax row equals the attention the model computed"))
    map_title, map_subtitle = attention_map_titles(att.weights, layout, query=token, layer=layer, head=head)
    steps.show(right, "attention", {"title": map_title, "subtitle": map_subtitle, "value": _("attention"),
                                    "tip": _("row {row}, column {col}: {value}")},
               lambda: attention_map_figure(att.weights, pixels, None, layout, query=token, layer=layer, head=head),
               "how.attention", f"step5-attention-layer{layer}-head{head}", height=420)

    # 6 -------------------------------------------------------------------------------- blocks
    step(6, _("Repeat: transformer blocks"),
         _("Attention and a small MLP, each with a LayerNorm before it and a residual connection around it, form "
           "one block; the model stacks {depth}, numbered 0 to {last} as on every page. The token count and width "
           "never change, so every block refines the same sequence: $z_\\ell$ is the sequence entering block ℓ, "
           "so $z_0$ is the sequence of step 4 and $z_{{{depth}}}$ leaves the last block, {last}.").format(
             depth=depth, last=depth - 1),
         r"z'_\ell = \mathrm{MSA}_\ell(\mathrm{LN}(z_\ell)) + z_\ell, \qquad "
         r"z_{\ell+1} = \mathrm{MLP}_\ell(\mathrm{LN}(z'_\ell)) + z'_\ell, \qquad \ell = 0 \dots " + str(depth - 1),
         _("({n}, {dim}) → … → ({n}, {dim}), {depth} times").format(n=layout.num_tokens, dim=dim, depth=depth))
    norms = token_norms_view(fwd.key, fwd).astype(np.float32)  # (L+1, N), float32 as the capture's tokens
    steps.show(st.container(), "norms", {
        "title": _("Token length ‖z‖ after each block"),
        "x_axis": _("hidden state: the embeddings z₀, then the output of each block"), "y_axis": "‖z‖",
        "series": wf.token_lengths_names(layout, token), "ticks": wf.token_lengths_ticks(depth),
        "tip": _("{name} · {x}: {value}")},
        lambda: wf.token_lengths_figure(norms, layout, token), "how.blocks", "step6-token-norms")

    # 7 -------------------------------------------------------------------------------- classifier
    head_step = classifier_step(ctx, fwd, model, layout, dim)

    ui.download_arrays(
        {"patch_pixels": embed.pixels, "patch_embedding": embed.embedding, "tokens_block0": tokens0,
         "attention_dots": att.dots, "attention_scaled": att.scaled, "attention_weights": att.weights,
         "token_norms": norms, "logits": head_step.logits},
        ctx.settings(view="how_vit_works", patch=[row, col], query_token=token, layer=layer, head=head),
        filename="how-a-vit-works", key="how.download",
    )


walk()
ui.next_steps("how_vit_works")
