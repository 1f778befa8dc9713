"""Patches: how the image is cut into patches, and what happens when the patch size changes."""
from __future__ import annotations

import re

import numpy as np
import streamlit as st

import vitviz_app as ui
from vitviz.i18n import _, keep_language
from vitviz_app import links
from vitviz_app.loaders import native_patch_size, one_thread_if_small

ui.entry_point()

CANDIDATE_SIZES = (8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64)
MAX_GRID_SIDE = 32  # at most 32×32 = 1024 patch tokens: the CPU stays responsive


def patch_size_options(loaded, native: int, input_side: int) -> list[int]:
    """Patch sizes worth offering: the bundled model's trained sizes, else sizes giving 3..32 patches a side."""
    trained = (getattr(loaded, "extra", None) or {}).get("config", {}).get("patch_sizes")
    if trained:
        return sorted({int(p) for p in trained} | {native})
    sizes = {p for p in CANDIDATE_SIZES if 3 <= input_side // p and input_side / p <= MAX_GRID_SIDE}
    return sorted(sizes | {native})


ui.page_header(
    _("Patches"),
    _("A ViT reads an image as a sequence of square **patches** (Dosovitskiy et al. 2021: \"an image is worth "
      "16×16 words\"). Change the patch size to re-run the model FlexiViT-style (Beyer et al. 2023): its "
      "patch-embedding weights are resized with the pseudo-inverse resize and its position embeddings "
      "resampled to the new grid, so the *same* weights read coarser or finer patches."),
)
ctx = ui.context()
ctx.require()
native_fwd = ctx.forward()
native = native_patch_size(native_fwd.model)
input_side = min(native_fwd.layout.input_size)
options = patch_size_options(ctx.loaded, native, input_side)



def size_label(p: int) -> str:
    return _("{size} px (native)").format(size=p) if p == native else _("{size} px").format(size=p)


def _read_size(options: list[int]):
    """A parser of a link's ``?patch=``: ``8``, ``8 px`` or an old link's label (``16 px (native)`` in any
    language); None for a size this model does not offer."""
    def parse(text: str) -> int | None:
        match = re.fullmatch(r"\s*(\d+)\s*(px|像素)?\s*(\(.*\)|（.*）)?\s*", text)
        return int(match.group(1)) if match and int(match.group(1)) in options else None

    return parse


def url_problem(options: list[int]) -> str | None:
    """A warning for a link whose ``?patch=`` this model does not offer (read once per session), else None."""
    raw = st.query_params.get("patch")
    if raw is None or "patch" in st.session_state or _read_size(options)(raw) is not None:
        return None
    match = re.fullmatch(r"\s*(\d+)", re.split("px|像素", raw)[0]) if raw else None
    allowed = ", ".join(f"{p}" for p in options)
    asked = f"{int(match.group(1))} px" if match else f"“{raw}”"
    return _("The link asks for patch size {asked}, which this model does not offer; it offers {allowed} px. "
             "Showing {native} px, its native size.").format(asked=asked, allowed=allowed, native=native)


problem = url_problem(options)
if problem:
    st.warning(problem, icon=":material/link_off:")
links.seed("patch", native, _read_size(options), valid=lambda value: value in options)
controls, facts = st.columns([2, 3], vertical_alignment="bottom")
with controls:
    size = st.select_slider(
        _("Patch size (pixels)"), options=options, key="patch", persist_state="session",
        format_func=keep_language(size_label),
        help=_("The model was trained at the native size. Other sizes resample its patch-embedding weights "
               "and position embeddings (timm's set_input_size)."),
    )
links.publish("patch", size, native)
fwd = native_fwd if size == native else ctx.forward(patch_size=size)
layout, geometry = fwd.layout, fwd.geometry
with facts:
    gh, gw = layout.grid_size
    st.markdown(
        _("**{gh}×{gw} = {patches} patches** of {size}×{size} px from a {height}×{width} px input, plus "
          "{prefix} prefix token(s): **{tokens} tokens** in all. Attention costs grow with the square: "
          "{pairs:,} query–key pairs per head.").format(
            gh=gh, gw=gw, patches=layout.num_patches, size=size, height=layout.input_size[0],
            width=layout.input_size[1], prefix=layout.num_prefix_tokens, tokens=layout.num_tokens,
            pairs=layout.num_tokens ** 2)
    )
    if layout.input_size != native_fwd.layout.input_size:
        st.caption(_("{size} px does not divide {side} px, so the input becomes {height}×{width} px, the nearest "
                     "multiple.").format(size=size, side=native_fwd.layout.input_size[0],
                                         height=layout.input_size[0], width=layout.input_size[1]))

from vitviz.analysis import patch_tiles
from vitviz.figures import patch_grid_figure, patch_sequence_figure, predictions_figure
from vitviz.images import input_image

left, right = st.columns([3, 2], gap="large")
with left:
    ui.show_figure(patch_grid_figure(ctx.image, geometry, layout), key="patches.grid",
                   filename=f"patch-grid-{size}px")
with right:
    if fwd.predictions:
        ui.show_figure(predictions_figure(fwd.predictions, title=_("Top-5 at {size} px patches").format(size=size)),
                       key="patches.predictions", filename=f"predictions-{size}px", height=300)
        if size != native:
            ref = native_fwd.predictions[0]
            same = fwd.predictions[0].index == ref.index
            st.caption((_("At the native {native} px the top class is **{label}** ({probability:.1%}): the same "
                          "answer.") if same else
                        _("At the native {native} px the top class is **{label}** ({probability:.1%}): the answer "
                          "changed.")).format(native=native, label=ref.label, probability=ref.probability))
        ui.shapes_note(ctx.loaded)
    else:
        ui.no_classifier_note()

pixels = input_image(fwd.x, fwd.data_config)  # (H, W, 3) uint8, what the model sees
tiles = patch_tiles(pixels, layout.patch_size)  # (N, p, p, 3)
st.subheader(_("The patch sequence"))
st.markdown(_("The model never sees the grid: it receives the patches as one sequence, row by row, after its "
              "prefix tokens. Each patch is flattened to a vector of {size}·{size}·3 = {numbers} numbers and "
              "projected to one token.").format(size=size, numbers=size * size * 3))
ui.show_figure(patch_sequence_figure(tiles, layout), key="patches.sequence", filename=f"patch-sequence-{size}px")


# --------------------------------------------------------------------------------------------- patch size and cost

from vitviz.analysis import patch_costs
from vitviz.figures import patch_cost_figure
from vitviz.models import BUNDLED_MODEL
from vitviz.shapes.model import patch_accuracy

MEASURE_WITHOUT_ASKING = 2e9  # parameters × tokens at the finest patch size (about the multiply-adds): ~1 s on 2 cores


@st.cache_data(max_entries=8, show_spinner=False)
def costs_per_patch_size(model_key: str, sizes: tuple[int, ...], _model) -> list:
    """FLOPs and measured time of the model at every patch size, once per model (``vitviz.analysis.patch_costs``:
    each size on a repatched copy, timed as the median of 5 passes, on one thread for a small model as its passes
    run)."""
    with one_thread_if_small(_model):
        return patch_costs(_model, sizes, repeats=5, warmup=1)


def trained_accuracy(loaded) -> tuple[dict[int, float], int | None]:
    """The bundled model's held-out accuracy per patch size and the number of images it was measured on, from its
    shipped results; nothing for other models."""
    if loaded.name != BUNDLED_MODEL or getattr(loaded, "source", None) != "bundled":
        return {}, None
    config = (getattr(loaded, "extra", None) or {}).get("config") or {}
    return patch_accuracy(config), (config.get("metrics") or {}).get("eval_count")


def flops_text(flops: int) -> str:
    return f"{flops / 1e9:,.2f} G" if flops >= 1e9 else f"{flops / 1e6:,.1f} M"


st.subheader(_("Patch size and cost"))
st.markdown(_("**Larger patches mean fewer tokens, less compute and coarser detail**, not more computation: an "
              "H×W input cut into p×p patches gives N = (H/p)·(W/p) tokens, and attention compares every token "
              "with every other, N² pairs, so doubling p divides N by 4 and the attention pairs by about 16."))
model = ctx.loaded.model
parameters = sum(q.numel() for q in model.parameters())
finest = (input_side // min(options)) ** 2
measure = st.toggle(_("Measure every patch size"), value=parameters * finest <= MEASURE_WITHOUT_ASKING,
                    key="patch_costs", bind="query-params", persist_state="session",
                    help=_("Counts the FLOPs and times one forward pass at each patch size on this machine, once "
                           "per model: a few seconds for a small model, longer for a large one."))
if measure:
    with st.spinner(_("Measuring {count} patch sizes…").format(count=len(options))):
        costs = costs_per_patch_size(ctx.model_key, tuple(options), model)
    accuracy, measured_on = trained_accuracy(ctx.loaded)
    ui.show_figure(patch_cost_figure(costs, native), key="patches.cost", filename="patch-size-cost")
    rows = {_("patch size"): [size_label(c.patch_size) for c in costs],
            _("grid"): [f"{c.grid[0]}×{c.grid[1]}" for c in costs],
            _("tokens N"): [c.tokens for c in costs],
            _("attention pairs"): [f"{c.attention_pairs:,}" for c in costs],
            _("FLOPs"): [flops_text(c.cost.flops) for c in costs],
            _("of which attention"): [f"{c.cost.attention_flops / c.cost.flops:.0%}" for c in costs],
            _("time"): [f"{1000 * c.cost.seconds:.1f} ms" for c in costs]}
    if accuracy:
        rows[_("accuracy")] = [f"{accuracy[c.patch_size]:.1%}" if c.patch_size in accuracy else "—" for c in costs]
    st.table(rows)
    notes = [_("FLOPs for one image, counted by PyTorch's FlopCounterMode (a multiply-add counts 2); attention pairs "
               "include the {prefix} prefix token(s). Time: median of {repeats} forward passes on this machine, on "
               "{threads} torch thread(s); other sessions share it, so compare the rows, not the numbers.").format(
        prefix=layout.num_prefix_tokens, repeats=costs[0].cost.repeats, threads=costs[0].cost.threads)]
    if accuracy:
        notes.append(_("Accuracy: vitviz-shapes on {count} held-out shapes images at each patch size, from its "
                       "model card: coarser patches cost less but see less detail.").format(count=measured_on))
    st.caption(" ".join(notes))

ui.download_arrays(
    {"patches": tiles, "model_input": pixels, "grid_size": np.array(layout.grid_size),
     "probabilities": fwd.probabilities if fwd.probabilities is not None else np.zeros(0)},
    ctx.settings(view="patches", patch_size=size, native_patch_size=native, grid_size=list(layout.grid_size),
                 input_size=list(layout.input_size)),
    filename=f"patches-{size}px", key="patches.download",
)
ui.next_steps("patches")
