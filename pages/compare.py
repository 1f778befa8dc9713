"""Compare methods: every attribution map on one image, how faithful each is, whether it passes the sanity check,
and one verdict in plain words.

Each map and each curve is drawn as soon as it is computed (a progress bar says how far the page is), and each is
cached per (image, method, class, protocol), so a rerun or another session pays nothing twice. The page's choices
are in the URL with language-neutral values (``vitviz_app.evaluation_views``).
"""
from __future__ import annotations

import streamlit as st

import vitviz_app as ui
from vitviz.i18n import N_, _, keep_language, sentences
from vitviz_app import evaluation_views as views

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
from vitviz.evaluation import REMOVALS, Faithfulness  # noqa: E402
from vitviz.evaluation.sanity import METRICS, cascade  # noqa: E402
from vitviz.evaluation.verdict import read_curves, verdict, verdict_sentences, winners  # noqa: E402
from vitviz.figures import (  # noqa: E402
    conservation_figure,
    logit_parts,
    perturbation_figure,
    relevance_maps_figure,
    sanity_figure,
)
from vitviz.figures.attribution import ORDER_TITLES, SANITY_METRICS, method_colors  # noqa: E402

has_classes = bool(fwd.predictions)
usable = [key for key, m in METHODS.items() if has_classes or not m.class_specific]
fast = [key for key in usable if "step" not in METHODS[key].passes]  # Integrated Gradients: many steps
labels = ctx.loaded.labels
REMOVAL_LABELS = {"tokens": N_("Drop tokens"), "pixels": N_("Zero pixels")}
STANDING = {"better": N_("clearly better than random"), "inside": N_("inside the random band"),
            "worse": N_("worse than random")}
SEEDS = tuple(range(5))
st.html("""<style>
.st-key-cmp-maps { display: grid !important; gap: 0.5rem 1rem;
  grid-template-columns: repeat(auto-fill, minmax(min(300px, 100%), 1fr)); }
.st-key-cmp-maps > div { width: auto !important; min-width: 0; }
</style>""")


def title(key: str) -> str:
    """A method's display name in the current language."""
    return _(METHODS[key].title)


def class_label(index: int) -> str:
    return f"{labels[index] if labels else _('class')} (#{index}, {fwd.probabilities[index]:.1%})"


# ------------------------------------------------------------------------------------------ controls

num_classes = len(fwd.probabilities) if has_classes else 0
views.restore_from_url(methods=usable, removals=REMOVALS, metrics=METRICS, num_classes=num_classes)
chosen = st.pills(
    _("Methods"), usable, default=None if "cmp_methods" in st.session_state else fast, key="cmp_methods",
    selection_mode="multi", format_func=keep_language(title),
    help=_("Each method's cost: {costs}.").format(costs=_("; ").join(f"{title(k)}: {_(METHODS[k].passes)}"
                                                                     for k in usable)),
)
chosen = [k for k in usable if k in (chosen or [])]  # registry order: the cheap attention maps first
c1, c2 = st.columns([1.0, 1.4])
removal = c1.segmented_control(
    _("Removal"), list(REMOVALS), default=None if "cmp_removal" in st.session_state else "tokens", key="cmp_removal",
    required=True,
    format_func=keep_language(lambda r: _(REMOVAL_LABELS[r])),
    help=_("Drop tokens: removed patches are not fed to the model at all (Jain et al. 2022). Zero pixels: "
           "Chefer et al.'s protocol, the removed pixels are set to black."),
)
target = None
top_class = fwd.predictions[0].index if has_classes else None
views.reset_class_on_new_image(fwd.key, top_class)
if has_classes:
    ranked = [p.index for p in fwd.predictions] + [i for i in range(num_classes)
                                                     if i not in {p.index for p in fwd.predictions}]
    target = int(c2.selectbox(_("Explain the class"), ranked, key="cmp_class", format_func=keep_language(class_label),
                              help=_("The top-5 predictions come first; type to find any other class.")))
else:
    c2.info(_("No classifier head: only maps that need no class are shown, and the faithfulness test (which "
              "follows a class's probability) is skipped."), icon=":material/info:")
metric = st.session_state.get("cmp_metric", "spearman")
views.write_url({"cmp_methods": chosen, "cmp_removal": removal, "cmp_class": target, "cmp_metric": metric},
                {"cmp_methods": fast, "cmp_removal": "tokens", "cmp_class": top_class, "cmp_metric": "spearman"})
if not chosen:
    st.info(_("Choose at least one method above."), icon=":material/checklist:")
    st.stop()

class_name = (labels[target] if labels else _("class {index}").format(index=target)) if target is not None else ""
settings = dict(view="compare", methods=chosen, removal=removal, target=target)
arrays: dict = {}

# ---------------------------------------------------- maps and curves, each drawn as soon as it is ready

st.subheader(_("The maps"))
maps_box = st.container(key="cmp-maps")
conservation_slot = st.empty()
maps_caption = st.empty()
verdict_box = st.container()
if has_classes:
    st.subheader(_("Faithfulness: removing patches from “{class_name}”").format(class_name=class_name))
    curves_box = st.container(key="cmp-curves")
    curve_slots = {order: curves_box.empty() for order in ("most", "least")}
    table_slot, winner_slot = st.empty(), st.empty()
progress = st.progress(0.0, text=_("Computing the maps…"))
work = len(chosen) * (3 if has_classes else 1) + (2 if has_classes else 0)
done = 0


def step(text: str) -> None:
    global done
    done += 1
    progress.progress(min(done / work, 1.0), text=text)


titles = {k: title(k) for k in chosen}
colors = method_colors(list(titles.values()))
relevance, failed, decompositions = {}, {}, {}
curves: dict[str, dict] = {"most": {}, "least": {}}


def draw_curves(order: str, final: bool, band=None) -> None:
    fig = perturbation_figure({titles[k]: c for k, c in curves[order].items()}, band, order=order, removal=removal,
                              class_name=f"“{class_name}”", colors=colors)
    key = f"cmp.curves.{order}" if final else f"cmp.curves.{order}.{len(curves[order])}"
    with curve_slots[order].container():
        st.markdown(f"**{_(ORDER_TITLES[order])}**")
        ui.show_figure(fig, key=key, filename=f"faithfulness-{removal}-{order}-class{target}")


for key in chosen:
    method = METHODS[key]
    method_target = target if method.class_specific else None
    try:
        relevance[key] = views.relevance_view(fwd.key, key, method_target, fwd)
    except (ValueError, RuntimeError) as exc:
        failed[key] = str(exc)
        done += 3 if has_classes else 1
        continue
    name = titles[key]
    if method.conserves:
        decompositions[key] = views.decomposition_view(fwd.key, key, method_target, fwd)
        name = _("{method} ({share:.0%} of the logit)").format(
            method=titles[key], share=logit_parts(decompositions[key])["patches"])
    with maps_box:
        ui.show_figure(relevance_maps_figure({name: relevance[key].patches}, ctx.image, fwd.geometry, fwd.layout,
                                             columns=1, colorbar=False), key=f"cmp.map.{key}",
                       filename=f"attribution-map-{key}")
    arrays[f"map_{key}"] = relevance[key].patches
    step(_("{method}: map ready").format(method=titles[key]))
    if not has_classes:
        continue
    for order in ("most", "least"):
        curves[order][key] = views.curve_view(fwd.key, key, relevance[key].target, target, removal, order, fwd,
                                              relevance[key])
        draw_curves(order, final=False)
        step(_("{method}: curve ready").format(method=titles[key]))

for key, why in failed.items():
    st.warning(_("{method} could not run on this model: {reason}").format(method=title(key), reason=why),
               icon=":material/warning:")
if not relevance:
    progress.empty()
    st.stop()
maps_caption.caption(sentences(
    _("Each map is scaled to 0–1 by its own minimum and maximum (bright: most relevant): only the ranking of the "
      "patches is compared."), *(f"**{title(k)}**: {METHODS[k].paper}." for k in relevance)))
if decompositions:
    with conservation_slot.container():
        st.markdown(_("**Where an LRP map's logit went.** An LRP map shares out the explained logit, but not all "
                      "of it reaches the pixels: the prefix tokens, the position embedding and every bias keep a "
                      "share, and AttnLRP's softmax rule another; the parts sum to the logit."))
        ui.show_figure(conservation_figure({titles[k]: d for k, d in decompositions.items()}), key="cmp.conservation",
                       filename="lrp-logit-shares")

# --------------------------------------------------------------------------------------- faithfulness

readings = {}
if has_classes and any(curves["most"].values()):
    bands = {}
    for order in ("most", "least"):
        bands[order] = views.band_view(fwd.key, target, removal, order, SEEDS, fwd)
        step(_("random orders ready"))
        draw_curves(order, final=True, band=bands[order])
    results = {k: Faithfulness(curves["most"][k], curves["least"][k], removal, k) for k in curves["most"]}
    readings = read_curves(results, bands)
    won = winners(readings, {o: b.noise for o, b in bands.items()})
    stars = {o: w.best for o, w in won.items() if w.clear}
    method_col, most_col, least_col = _("method"), _("most relevant first ↓"), _("least relevant first ↑")
    vs_col = _("against random")
    rows = []
    for k in results:
        star = {o: " ★" if stars.get(o) == k else "" for o in ("most", "least")}
        rows.append({method_col: titles[k],
                     most_col: f"{results[k].positive_auc:.3f}{star['most']}",
                     f"{vs_col} ↓": _(STANDING[readings[k, 'most'].standing]),
                     least_col: f"{results[k].negative_auc:.3f}{star['least']}",
                     f"{vs_col} ↑": _(STANDING[readings[k, 'least'].standing])})
    rows.append({method_col: _("random orders (mean ± std of {count})").format(count=len(SEEDS)),
                 most_col: f"{bands['most'].auc_mean:.3f} ± {bands['most'].noise:.3f}", f"{vs_col} ↓": "",
                 least_col: f"{bands['least'].auc_mean:.3f} ± {bands['least'].noise:.3f}", f"{vs_col} ↑": ""})
    with table_slot:
        st.table(rows)
    lines = []
    for order, words in (("most", _("Most relevant first")), ("least", _("Least relevant first"))):
        w = won.get(order)
        if w is None:
            continue
        if w.clear:
            lines.append(_("{order}: ★ **{method}** wins clearly (by {margin:.3f}; noise {noise:.3f}).").format(
                order=words, method=titles[w.best], margin=w.margin, noise=w.noise))
        elif not w.beats_random:
            lines.append(_("{order}: no clear winner on this image ({method} is best, but not clearly better than a "
                           "random order).").format(order=words, method=titles[w.best]))
        else:
            lines.append(_("{order}: no clear winner on this image ({method} is best by {margin:.3f}, less than "
                           "twice the noise {noise:.3f}).").format(order=words, method=titles[w.best],
                                                                    margin=w.margin, noise=w.noise))
    how = (_("the removed patch tokens are left out of the sequence") if removal == "tokens" else
           _("the removed pixels are set to 0 in [0, 1] space; patch maps are upsampled bilinearly, per-pixel maps "
             "(LRP, gradients) are ranked per pixel"))
    with winner_slot.container():
        st.markdown("  \n".join(lines))
        st.caption(_(
            "Steps of 10 %, from 0 % to 90 %; {how}; ties in a map are broken at random, averaged over 4 orders. "
            "AUC: area under the probability curve (at most 0.9). A curve is clearly better or worse than random "
            "when its AUC is more than twice the noise away from the random orders' mean; the noise is their "
            "standard deviation, combined with the spread over tie orders. A star goes only to a winner that beats "
            "both the runner-up and the random orders by more than twice their noise. One image decides little: "
            "docs/evaluation.md scores every method over 300 images.").format(how=how))
    for k, r in results.items():
        arrays[f"positive_{k}"], arrays[f"negative_{k}"] = r.positive.probabilities, r.negative.probabilities
    arrays["fractions"] = next(iter(results.values())).fractions
    arrays["random_positive"], arrays["random_negative"] = bands["most"].probabilities, bands["least"].probabilities
    if {"gradcam", "gradcam_attn"} & set(results):
        with st.expander(_("Why can Grad-CAM do worse than a random order on a ViT?")):
            st.markdown(_(
                "Grad-CAM (Selvaraju et al. 2017) was made for a CNN's last convolution: a grid of features, each "
                "tied to one place, that the classifier averages. A ViT's class token reads its answer through "
                "attention instead. By the last block every patch token has mixed with every other one, so its "
                "features say little about its own patch (Abnar & Zuidema 2020), and the gradient reaches the "
                "patch tokens only through the class token's last attention, not through an average of them. "
                "In Chefer et al. 2021 (Table 1, ViT-B on ImageNet) Grad-CAM on the last block's attention is among "
                "the weakest methods. On the bundled shapes model, docs/evaluation.md measures Grad-CAM on tokens "
                "worse than a random order in some perturbation tests: there, what it ranks first matters less to "
                "the model than a random pick. That is what was measured, on that model; it need not hold for "
                "every ViT."))

# --------------------------------------------------------------------------------------------- sanity

st.subheader(_("Sanity check: cascading model randomisation"))
total_steps = len(cascade(fwd.model))
run_sanity = st.toggle(_("Run the sanity check"), value=True, key="cmp_sanity",
                       help=_("Costs one map per step and method, on a copy of the model: up to {steps} "
                              "steps.").format(steps=total_steps))
checks = {}
if run_sanity:
    layers = fwd.capture.num_layers
    default_steps = total_steps if layers <= 6 else 4  # deep models: head + top 3 blocks first (cost)
    steps = st.slider(_("Randomise from the top down to"), 1, total_steps, value=default_steps, key="cmp_steps",
                      format=_("%d steps"), help=_("Step 1 re-initialises the classifier head, step 2 also the top "
                                                   "block, and so on down to block 0; the last two steps the final "
                                                   "norm and the embeddings: a fully random model."))
    metric = st.segmented_control(_("Similarity"), list(METRICS), key="cmp_metric", required=True,
                                  default=None if "cmp_metric" in st.session_state else "spearman",
                                  format_func=keep_language(lambda m: _(SANITY_METRICS[m])))
    for key, rel in relevance.items():
        progress.progress(min(done / work, 1.0), text=_("{method}: randomising a copy of the model…").format(
            method=titles[key]))
        checks[key] = views.sanity_view(fwd.key, key, rel.target, int(steps), fwd, rel)
    ui.show_figure(sanity_figure({titles[k]: c for k, c in checks.items()}, metric=metric), key="cmp.sanity",
                   filename=f"sanity-check-{metric}")
    blind = [titles[k] for k, c in checks.items() if not c.reads_head]
    flagged = [titles[k] for k, c in checks.items() if c.flagged]
    notes = [_("Similarity of each map with the original as the classifier head, then one more block from the top, "
               "then the final norm and the embeddings are re-initialised (timm's init, seed 0): Spearman rank "
               "correlation of the maps and of their absolute values, and SSIM, as Adebayo et al. report.")]
    if blind:
        notes.append(_("{methods} never read the classifier head: randomising it cannot change their maps, so "
                       "their correlation stays at 1 at the first step.").format(methods=_(", ").join(blind)))
    notes.append(_("Flagged (ρ > {threshold:g} once the head and the top block are random): {methods}.").format(
        threshold=next(iter(checks.values())).threshold, methods=_(", ").join(flagged) if flagged else _("none")))
    st.caption(sentences(*notes))
    for k, c in checks.items():
        arrays[f"sanity_{k}"], arrays[f"sanity_abs_{k}"], arrays[f"sanity_ssim_{k}"] = (
            c.correlations, c.abs_correlations, c.ssim)
progress.empty()

# -------------------------------------------------------------------------------------------- verdict

with verdict_box:
    verdicts = verdict(readings, checks if run_sanity else None,
                       {k: METHODS[k].class_specific for k in relevance})
    said = verdict_sentences(verdicts, titles, sanity_run=run_sanity) if verdicts else []
    if said:
        st.success(sentences(*said), icon=":material/fact_check:")

ui.download_arrays(arrays, ctx.settings(**settings), filename="compare-methods", key="cmp.download")

ui.next_steps("compare")
