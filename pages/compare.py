"""Compare methods: every attribution map on one image, how faithful each is, and whether it passes the
sanity check."""
from __future__ import annotations

import numpy as np
import streamlit as st

import vitviz_app as ui
from vitviz_app.evaluation_views import faithfulness_view, random_band_view, relevance_view, sanity_view

ui.entry_point()

ui.page_header(
    "Compare methods",
    "Which map can you trust? Attention is not explanation (Chefer, Gur & Wolf 2021): here every "
    "attribution method explains the same image, and two tests judge them. **Faithfulness**: remove the "
    "patches in the order a map ranks them and watch the class's probability; a faithful map makes it "
    "fall fast when the most relevant patches go first, and keeps it up when the least relevant go first. "
    "**Sanity** (Adebayo et al. 2018): randomise the model from the top down; a map that does not change "
    "cannot be explaining what the model learned.",
)
ctx = ui.context()
ctx.require()
fwd = ctx.forward()

from vitviz.attribution import METHODS  # noqa: E402
from vitviz.evaluation import REMOVALS  # noqa: E402
from vitviz.figures import faithfulness_figure, relevance_maps_figure, sanity_figure  # noqa: E402

has_classes = bool(fwd.predictions)
usable = [key for key, m in METHODS.items() if has_classes or not m.class_specific]
fast = [key for key in usable if "step" not in METHODS[key].passes]  # Integrated Gradients: many steps
labels = ctx.loaded.labels

# ------------------------------------------------------------------------------------------ controls

c1, c2, c3 = st.columns([2.0, 1.3, 1.5])
chosen = c1.multiselect(
    "Methods", usable, default=fast, key="cmp_methods", format_func=lambda k: METHODS[k].title,
    help="Each method's cost: " + "; ".join(f"{METHODS[k].title}: {METHODS[k].passes}" for k in usable) + ".",
)
removal = c2.segmented_control(
    "Removal", list(REMOVALS), default="tokens", key="cmp_removal", required=True,
    format_func=lambda r: {"tokens": "Drop tokens", "pixels": "Zero pixels"}[r],
    help="Drop tokens: removed patches are not fed to the model at all (Jain et al. 2022). Zero pixels: "
    "Chefer et al.'s protocol, the removed pixels are set to black.",
)
target = None
if has_classes:
    ranked = [p.index for p in fwd.predictions] + [i for i in range(len(fwd.probabilities))
                                                     if i not in {p.index for p in fwd.predictions}]
    target = int(c3.selectbox(
        "Explain the class", ranked, index=0, key="cmp_class",
        format_func=lambda i: f"{labels[i] if labels else 'class'} (#{i}, {fwd.probabilities[i]:.1%})",
        help="The top-5 predictions come first; type to find any other class.",
    ))
else:
    c3.info("No classifier head: only maps that need no class are shown, and the faithfulness test (which "
            "follows a class's probability) is skipped.", icon=":material/info:")
if not chosen:
    st.info("Choose at least one method above.", icon=":material/checklist:")
    st.stop()

class_name = (labels[target] if labels else f"class {target}") if target is not None else ""

# ----------------------------------------------------------------------------------------------- maps

relevance, failed = {}, {}
with st.spinner("Computing the maps…"):
    for key in chosen:
        method_target = target if METHODS[key].class_specific else None
        try:
            relevance[key] = relevance_view(fwd.key, key, method_target, fwd)
        except (ValueError, RuntimeError) as exc:
            failed[key] = str(exc)
for key, why in failed.items():
    st.warning(f"{METHODS[key].title} could not run on this model: {why}", icon=":material/warning:")
if not relevance:
    st.stop()

st.subheader("The maps")
maps = {METHODS[k].title: r.patches for k, r in relevance.items()}
ui.show_figure(relevance_maps_figure(maps, ctx.image, fwd.geometry, fwd.layout, columns=4),
               key="cmp.maps", filename="attribution-maps")
st.caption("Each map is scaled to 0–1 by its own minimum and maximum: only the ranking of the patches is "
           "compared. " + " ".join(
               f"**{METHODS[k].title}**: {METHODS[k].paper}." for k in relevance))

arrays = {f"map_{k}": r.patches for k, r in relevance.items()}
settings = dict(view="compare", methods=list(relevance), removal=removal, target=target)

# --------------------------------------------------------------------------------------- faithfulness

if has_classes:
    st.subheader(f"Faithfulness: removing patches from “{class_name}”")
    results = {}
    with st.spinner("Running the perturbed inputs…"):
        for key, rel in relevance.items():
            results[key] = faithfulness_view(fwd.key, key, rel.target, target, removal, fwd, rel)
        bands = random_band_view(fwd.key, target, removal, tuple(range(5)), fwd)
    titled = {METHODS[k].title: r for k, r in results.items()}
    ui.show_figure(faithfulness_figure(titled, bands, class_name=f"“{class_name}”"), key="cmp.curves",
                   filename=f"faithfulness-{removal}-class{target}")
    best_positive = min(results, key=lambda k: results[k].positive_auc)
    best_negative = max(results, key=lambda k: results[k].negative_auc)
    rows = [{
        "method": METHODS[k].title,
        "positive perturbation AUC ↓": r.positive_auc,
        "negative perturbation AUC ↑": r.negative_auc,
        "best": " · ".join(name for name, win in (("★ positive", k == best_positive),
                                                  ("★ negative", k == best_negative)) if win),
    } for k, r in results.items()]
    rows.append({
        "method": f"random orders (mean ± std of {len(bands['most'].seeds)})",
        "positive perturbation AUC ↓": bands["most"].auc_mean,
        "negative perturbation AUC ↑": bands["least"].auc_mean,
        "best": f"± {bands['most'].auc_std:.3f} / {bands['least'].auc_std:.3f}",
    })
    st.dataframe(rows, key="cmp_table", hide_index=True, width="stretch", column_config={
        "positive perturbation AUC ↓": st.column_config.NumberColumn(format="%.3f"),
        "negative perturbation AUC ↑": st.column_config.NumberColumn(format="%.3f"),
    })
    how = ("the removed patch tokens are left out of the sequence" if removal == "tokens" else
           "the removed pixels are set to 0 in [0, 1] space, ranked on the bilinearly upsampled map")
    st.caption(
        f"Steps of 10 % from 0 % to 90 %; {how}. AUC: area under the probability curve over the fraction "
        "removed (at most 0.9; ×100 for the scale of Chefer et al.'s table, which averages top-1 accuracy "
        "over ImageNet instead of one image's probability). Positive perturbation removes the most relevant "
        "patches first (lower is better), negative the least relevant first (higher is better). "
        f"Best here: **{METHODS[best_positive].title}** (positive), **{METHODS[best_negative].title}** "
        "(negative). One image decides little: read it beside the random band."
    )
    for k, r in results.items():
        arrays[f"positive_{k}"] = r.positive.probabilities
        arrays[f"negative_{k}"] = r.negative.probabilities
    arrays["fractions"] = next(iter(results.values())).fractions
    arrays["random_positive"] = bands["most"].probabilities
    arrays["random_negative"] = bands["least"].probabilities

# --------------------------------------------------------------------------------------------- sanity

st.subheader("Sanity check: cascading model randomisation")
layers = fwd.capture.num_layers
run_sanity = st.toggle("Run the sanity check", value=True, key="cmp_sanity",
                       help=f"Costs one map per step and method, on a copy of the model: up to {layers + 1} "
                       "steps.")
if run_sanity:
    steps = st.slider("Randomise from the top down to", 1, layers + 1, value=layers + 1, key="cmp_steps",
                      format="%d steps", help="Step 1 re-initialises the classifier head, step 2 also the top "
                      "block, and so on down to block 0.")
    checks = {}
    with st.spinner("Randomising copies of the model…"):
        for key, rel in relevance.items():
            checks[key] = sanity_view(fwd.key, key, rel.target, int(steps), fwd, rel)
    ui.show_figure(sanity_figure({METHODS[k].title: c for k, c in checks.items()}), key="cmp.sanity",
                   filename="sanity-check")
    blind = [METHODS[k].title for k, c in checks.items() if not c.reads_head]
    flagged = [METHODS[k].title for k, c in checks.items() if c.flagged]
    notes = ["Spearman rank correlation of each map with the original as the classifier head, then one "
             "more block from the top, is re-initialised (timm's init, seed 0)."]
    if blind:
        notes.append(f"{', '.join(blind)} never read the classifier head: randomising it cannot change "
                     "their maps, so their correlation stays at 1 at the first step.")
    notes.append(f"Flagged (ρ > {next(iter(checks.values())).threshold:g} once the head and the top block are "
                 f"random): {', '.join(flagged) if flagged else 'none'}.")
    st.caption(" ".join(notes))
    for k, c in checks.items():
        arrays[f"sanity_{k}"] = c.correlations

ui.download_arrays(arrays, ctx.settings(**settings), filename="compare-methods", key="cmp.download")
