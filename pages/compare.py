"""Compare methods: every attribution map on one image, how faithful each is, and whether it passes the
sanity check."""
from __future__ import annotations

import streamlit as st

import vitviz_app as ui
from vitviz.i18n import N_, _, keep_language
from vitviz_app.evaluation_views import faithfulness_view, random_band_view, relevance_view, sanity_view

ui.entry_point()

ui.page_header(
    _("Compare methods"),
    _("Which map can you trust? Attention is not explanation (Chefer, Gur & Wolf 2021): here every "
      "attribution method explains the same image, and two tests judge them. **Faithfulness**: remove the "
      "patches in the order a map ranks them and watch the class's probability; a faithful map makes it "
      "fall fast when the most relevant patches go first, and keeps it up when the least relevant go first. "
      "**Sanity** (Adebayo et al. 2018): randomise the model from the top down; a map that does not change "
      "cannot be explaining what the model learned."),
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
REMOVAL_LABELS = {"tokens": N_("Drop tokens"), "pixels": N_("Zero pixels")}


def title(key: str) -> str:
    """A method's display name in the current language."""
    return _(METHODS[key].title)


# ------------------------------------------------------------------------------------------ controls

c1, c2, c3 = st.columns([2.0, 1.3, 1.5])
chosen = c1.multiselect(
    _("Methods"), usable, default=fast, key="cmp_methods", format_func=keep_language(title),
    help=_("Each method's cost: {costs}.").format(costs=_("; ").join(f"{title(k)}: {_(METHODS[k].passes)}"
                                                                     for k in usable)),
)
removal = c2.segmented_control(
    _("Removal"), list(REMOVALS), default="tokens", key="cmp_removal", required=True,
    format_func=keep_language(lambda r: _(REMOVAL_LABELS[r])),
    help=_("Drop tokens: removed patches are not fed to the model at all (Jain et al. 2022). Zero pixels: "
           "Chefer et al.'s protocol, the removed pixels are set to black."),
)
target = None
if has_classes:
    ranked = [p.index for p in fwd.predictions] + [i for i in range(len(fwd.probabilities))
                                                     if i not in {p.index for p in fwd.predictions}]
    target = int(c3.selectbox(
        _("Explain the class"), ranked, index=0, key="cmp_class",
        format_func=keep_language(
            lambda i: f"{labels[i] if labels else _('class')} (#{i}, {fwd.probabilities[i]:.1%})"),
        help=_("The top-5 predictions come first; type to find any other class."),
    ))
else:
    c3.info(_("No classifier head: only maps that need no class are shown, and the faithfulness test (which "
              "follows a class's probability) is skipped."), icon=":material/info:")
if not chosen:
    st.info(_("Choose at least one method above."), icon=":material/checklist:")
    st.stop()

class_name = (labels[target] if labels else _("class {index}").format(index=target)) if target is not None else ""

# ----------------------------------------------------------------------------------------------- maps

relevance, failed = {}, {}
with st.spinner(_("Computing the maps…")):
    for key in chosen:
        method_target = target if METHODS[key].class_specific else None
        try:
            relevance[key] = relevance_view(fwd.key, key, method_target, fwd)
        except (ValueError, RuntimeError) as exc:
            failed[key] = str(exc)
for key, why in failed.items():
    st.warning(_("{method} could not run on this model: {reason}").format(method=title(key), reason=why),
               icon=":material/warning:")
if not relevance:
    st.stop()

st.subheader(_("The maps"))
maps = {title(k): r.patches for k, r in relevance.items()}
ui.show_figure(relevance_maps_figure(maps, ctx.image, fwd.geometry, fwd.layout, columns=4),
               key="cmp.maps", filename="attribution-maps")
st.caption(_("Each map is scaled to 0–1 by its own minimum and maximum: only the ranking of the patches is "
             "compared.") + " " + " ".join(
               f"**{title(k)}**: {METHODS[k].paper}." for k in relevance))

arrays = {f"map_{k}": r.patches for k, r in relevance.items()}
settings = dict(view="compare", methods=list(relevance), removal=removal, target=target)

# --------------------------------------------------------------------------------------- faithfulness

if has_classes:
    st.subheader(_("Faithfulness: removing patches from “{class_name}”").format(class_name=class_name))
    results = {}
    with st.spinner(_("Running the perturbed inputs…")):
        for key, rel in relevance.items():
            results[key] = faithfulness_view(fwd.key, key, rel.target, target, removal, fwd, rel)
        bands = random_band_view(fwd.key, target, removal, tuple(range(5)), fwd)
    titled = {title(k): r for k, r in results.items()}
    ui.show_figure(faithfulness_figure(titled, bands, class_name=f"“{class_name}”"), key="cmp.curves",
                   filename=f"faithfulness-{removal}-class{target}")
    best_positive = min(results, key=lambda k: results[k].positive_auc)
    best_negative = max(results, key=lambda k: results[k].negative_auc)
    method_col, positive_col, negative_col, best_col = (
        _("method"), _("positive perturbation AUC ↓"), _("negative perturbation AUC ↑"), _("best"))
    rows = [{
        method_col: title(k),
        positive_col: r.positive_auc,
        negative_col: r.negative_auc,
        best_col: " · ".join(name for name, win in ((_("★ positive"), k == best_positive),
                                                    (_("★ negative"), k == best_negative)) if win),
    } for k, r in results.items()]
    rows.append({
        method_col: _("random orders (mean ± std of {count})").format(count=len(bands["most"].seeds)),
        positive_col: bands["most"].auc_mean,
        negative_col: bands["least"].auc_mean,
        best_col: f"± {bands['most'].auc_std:.3f} / {bands['least'].auc_std:.3f}",
    })
    st.dataframe(rows, key="cmp_table", hide_index=True, width="stretch", column_config={
        positive_col: st.column_config.NumberColumn(format="%.3f"),
        negative_col: st.column_config.NumberColumn(format="%.3f"),
    })
    how = (_("the removed patch tokens are left out of the sequence") if removal == "tokens" else
           _("the removed pixels are set to 0 in [0, 1] space, ranked on the bilinearly upsampled map"))
    st.caption(_(
        "Steps of 10 %, from 0 % to 90 %; {how}. AUC: area under the probability curve over the fraction "
        "removed (at most 0.9; ×100 for the scale of Chefer et al.'s table, which averages top-1 accuracy "
        "over ImageNet instead of one image's probability). Positive perturbation removes the most relevant "
        "patches first (lower is better), negative the least relevant first (higher is better). "
        "Best here: **{best_positive}** (positive), **{best_negative}** (negative). One image decides little: "
        "read it beside the random band.").format(how=how, best_positive=title(best_positive),
                                                   best_negative=title(best_negative)))
    for k, r in results.items():
        arrays[f"positive_{k}"] = r.positive.probabilities
        arrays[f"negative_{k}"] = r.negative.probabilities
    arrays["fractions"] = next(iter(results.values())).fractions
    arrays["random_positive"] = bands["most"].probabilities
    arrays["random_negative"] = bands["least"].probabilities

# --------------------------------------------------------------------------------------------- sanity

st.subheader(_("Sanity check: cascading model randomisation"))
layers = fwd.capture.num_layers
run_sanity = st.toggle(_("Run the sanity check"), value=True, key="cmp_sanity",
                       help=_("Costs one map per step and method, on a copy of the model: up to {steps} "
                              "steps.").format(steps=layers + 1))
if run_sanity:
    default_steps = layers + 1 if layers <= 6 else 4  # deep models: head + top 3 blocks first (cost)
    steps = st.slider(_("Randomise from the top down to"), 1, layers + 1, value=default_steps, key="cmp_steps",
                      format=_("%d steps"), help=_("Step 1 re-initialises the classifier head, step 2 also the top "
                                                   "block, and so on down to block 0."))
    checks = {}
    with st.spinner(_("Randomising copies of the model…")):
        for key, rel in relevance.items():
            checks[key] = sanity_view(fwd.key, key, rel.target, int(steps), fwd, rel)
    ui.show_figure(sanity_figure({title(k): c for k, c in checks.items()}), key="cmp.sanity",
                   filename="sanity-check")
    blind = [title(k) for k, c in checks.items() if not c.reads_head]
    flagged = [title(k) for k, c in checks.items() if c.flagged]
    notes = [_("Spearman rank correlation of each map with the original as the classifier head, then one "
               "more block from the top, is re-initialised (timm's init, seed 0).")]
    if blind:
        notes.append(_("{methods} never read the classifier head: randomising it cannot change their maps, so "
                       "their correlation stays at 1 at the first step.").format(methods=_(", ").join(blind)))
    notes.append(_("Flagged (ρ > {threshold:g} once the head and the top block are random): {methods}.").format(
        threshold=next(iter(checks.values())).threshold, methods=_(", ").join(flagged) if flagged else _("none")))
    st.caption(" ".join(notes))
    for k, c in checks.items():
        arrays[f"sanity_{k}"] = c.correlations

ui.download_arrays(arrays, ctx.settings(**settings), filename="compare-methods", key="cmp.download")
