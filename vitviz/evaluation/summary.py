"""From per-image rows to one table per data set: means, standard errors, winners, and the Markdown page.

:func:`summarise` turns the rows of :func:`vitviz.evaluation.runner.evaluate_dataset` into a JSON-ready
summary; :func:`render_markdown` writes it as the tables of ``docs/evaluation.md`` (in the columns of
Chefer, Gur & Wolf 2021, Table 1), and :func:`insert_between_markers` puts them into a page between
``<!-- evaluation:start -->`` and ``<!-- evaluation:end -->``, so that no number is ever typed by hand.

Scales follow Chefer's table: AUCs and scores in percent. With the fractions 0.0, 0.1, …, 0.9 an AUC is at
most 90 (a curve that stays at 100 %).

Winner of a column: the best mean over the methods (lowest for a positive-perturbation AUC, highest for
everything else), the random baseline left out (it is the level a method must beat, shown beside). Its
margins over the runner-up and over the random baseline are given with the standard errors of the paired
per-image differences (both methods scored the same images). A winner is **clear** (bold in the tables) only
when it beats both by more than two paired standard errors; otherwise the column says "no clear winner".

Per-pixel maps (CP-LRP, AttnLRP, the input gradient, integrated gradients) are scored in Chefer's pixel protocol
twice: as the method gives them (ranked per pixel, marked † in the tables) and pooled to patches (the columns
"maps at patch resolution", where every method is ranked like an upsampled patch map).
"""
from __future__ import annotations

# The Markdown tables and sentences written here are a report for docs/ (``python -m vitviz.evaluate``): they stay
# English and are not translated. The app's own texts about the evaluation live in the pages and in
# vitviz.figures.attribution.
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .localisation import SEGMENTATION_COUNTS, segmentation_miou

__all__ = ["CHEFER_2021", "COLUMNS", "Column", "insert_between_markers", "render_markdown", "summarise"]

START, END = "<!-- evaluation:start -->", "<!-- evaluation:end -->"


@dataclass(frozen=True)
class Column:
    """A summary column.

    Attributes:
        key: Row field (per image) the column averages.
        title: Header in the Markdown table.
        lower_is_better: True for positive-perturbation AUCs.
        needs_mask: Only defined where the images have object masks.
    """

    key: str
    title: str
    lower_is_better: bool = False
    needs_mask: bool = False

    @property
    def arrow(self) -> str:
        return "↓" if self.lower_is_better else "↑"


COLUMNS: tuple[Column, ...] = (
    Column("pos_top1_pixels", "positive perturbation AUC, pixels (Chefer)", lower_is_better=True),
    Column("neg_top1_pixels", "negative perturbation AUC, pixels (Chefer)"),
    Column("pos_top1_pixels_patches", "positive perturbation AUC, pixels, maps at patch resolution",
           lower_is_better=True),
    Column("neg_top1_pixels_patches", "negative perturbation AUC, pixels, maps at patch resolution"),
    Column("pos_top1_tokens", "positive perturbation AUC, token dropping", lower_is_better=True),
    Column("neg_top1_tokens", "negative perturbation AUC, token dropping"),
    Column("seg_miou", "segmentation mIoU (Chefer)", needs_mask=True),
    Column("mask_iou", "top-region IoU", needs_mask=True),
    Column("pointing", "pointing game", needs_mask=True),
    Column("pos_auc_pixels", "positive AUC of p(target), pixels", lower_is_better=True),
    Column("neg_auc_pixels", "negative AUC of p(target), pixels"),
    Column("pos_auc_pixels_patches", "positive AUC of p(target), pixels, maps at patch resolution",
           lower_is_better=True),
    Column("neg_auc_pixels_patches", "negative AUC of p(target), pixels, maps at patch resolution"),
    Column("pos_auc_tokens", "positive AUC of p(target), tokens", lower_is_better=True),
    Column("neg_auc_tokens", "negative AUC of p(target), tokens"),
)
CHEFER_COLUMNS = ("pos_top1_pixels", "neg_top1_pixels", "seg_miou")

@dataclass(frozen=True)
class PaperRow:
    """One row of Chefer et al. 2021, Table 1 (ViT-B/16 on ImageNet).

    Attributes:
        name: The row's name in the paper.
        method: Our registry key of the very method the row names (None where vitviz has no such method).
        code: What the authors' script runs for the row (``baselines/ViT/generate_visualizations.py``).
        scores: Positive perturbation AUC, negative perturbation AUC (top-1 accuracy, pixels set to 0),
            ImageNet-segmentation mIoU, in percent.
    """

    name: str
    method: str | None
    code: str
    scores: tuple[float, float, float]


CHEFER_2021: tuple[PaperRow, ...] = (
    # As reprinted by the ReScience C 2022 reproduction. Rollout and the authors' method run with start_layer=1,
    # which `python -m vitviz.evaluate --start-layer 1` (the default) reproduces.
    PaperRow("raw attention", "attention", "generate_LRP(method='last_layer_attn')", (23.99, 45.55, 46.37)),
    PaperRow("rollout", "rollout", "generate_rollout(start_layer=1)", (20.05, 53.10, 55.42)),
    PaperRow("GradCAM", "gradcam_attn", "generate_cam_attn", (34.06, 41.52, 40.82)),
    PaperRow("LRP", None, "generate_LRP(method='full')", (41.94, 43.49, 32.89)),  # LRP to the pixels (their rules)
    PaperRow("partial LRP", None, "generate_LRP(method='last_layer')", (19.64, 50.49, 57.94)),
    PaperRow("ours", "chefer2021", "generate_LRP(method='transformer_attribution', start_layer=1)",
             (17.03, 54.16, 61.95)),
)


def _stats(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    sem = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")
    return {"mean": float(v.mean()), "sem": sem, "n": int(v.size)}


def _column_values(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """Per-image values of ``key`` (booleans as 0/1; rows without it left out)."""
    return np.asarray([float(r[key]) for r in rows if r.get(key) is not None], dtype=np.float64)


def summarise(rows: Sequence[Mapping[str, Any]], methods: Sequence[str], *,
              titles: Mapping[str, str] | None = None, info: Mapping[str, Any] | None = None,
              baselines: Sequence[str] = ("random",),
              skipped: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Per-method means and standard errors of every column, the winners, and the mean curves.

    Args:
        rows: One per (image, method), as :func:`~vitviz.evaluation.runner.evaluate_dataset` returns.
        methods: Registry keys, in table order.
        titles: Method key -> human name.
        info: What was evaluated (model, data, target rule, ...), copied into the summary.
        baselines: Methods that are chance levels, not contenders: never a column's winner.
        skipped: The images that could not be evaluated (``{'id', 'index', 'reason'}``), listed as they are.

    Returns:
        A JSON-ready dict: ``methods``, ``titles``, ``images``, ``columns`` (key -> title, direction),
        ``metrics`` (method -> column -> mean/sem/n, in the rows' own scale: AUCs up to 0.9, scores in
        [0, 1]), ``winners`` (column -> best, runner-up, paired difference), ``curves`` (method -> mean
        target probability per fraction, per order and removal), ``chance_pointing``, ``skipped`` and
        ``info``.
    """
    by_method = {m: [r for r in rows if r["method"] == m] for m in methods}
    images = sorted({r["id"] for r in rows})
    has_mask = any(r.get("pointing") is not None for r in rows)
    columns = [c for c in COLUMNS if has_mask or not c.needs_mask]
    per_pixel = [m for m in methods if any(r.get("per_pixel") for r in by_method[m])]
    metrics: dict[str, dict[str, Any]] = {}
    for m, mrows in by_method.items():
        values = {c.key: _column_values(mrows, c.key) for c in columns}
        metrics[m] = {k: _stats(v) for k, v in values.items() if v.size}
        if has_mask and "seg_miou" in metrics[m]:
            counts = np.asarray([[r[k] for k in SEGMENTATION_COUNTS] for r in mrows
                                 if r.get("seg_fg_union") is not None])  # (n, 4)
            metrics[m]["seg_miou"]["mean"] = segmentation_miou(counts)  # Chefer: counts summed, then IoU
        metrics[m]["attribute_ms_median"] = float(np.median([r["attribute_ms"] for r in mrows])) if mrows else None
    return {
        "info": dict(info or {}),
        "methods": list(methods),
        "titles": {m: (titles or {}).get(m, m) for m in methods},
        "images": len(images),
        "columns": {c.key: {"title": c.title, "lower_is_better": c.lower_is_better} for c in columns},
        "metrics": metrics,
        "baselines": [m for m in methods if m in baselines],
        "per_pixel": per_pixel,
        "winners": {c.key: _winner(by_method, {m: v for m, v in metrics.items() if m not in baselines}, c,
                                   next((b for b in methods if b in baselines), None))
                    for c in columns},
        "curves": _mean_curves(by_method),
        "chance_pointing": (float(np.mean([r["chance_pointing"] for r in rows if r.get("chance_pointing") is not None]))
                            if has_mask else None),
        "skipped": [dict(s) for s in skipped],
    }


def _paired(by_method: Mapping[str, Sequence[Mapping[str, Any]]], key: str, first: str, second: str
            ) -> tuple[float, float]:
    """Mean and standard error of the per-image differences ``first − second`` of column ``key``."""
    a = {r["id"]: r[key] for r in by_method.get(first, ()) if r.get(key) is not None}
    b = {r["id"]: r[key] for r in by_method.get(second, ()) if r.get(key) is not None}
    diff = np.asarray([float(a[i]) - float(b[i]) for i in a if i in b], dtype=np.float64)
    if not diff.size:
        return float("nan"), float("nan")
    sem = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else float("nan")
    return float(diff.mean()), sem


def _clear(difference: float, sem: float) -> bool:
    return bool(math.isfinite(sem) and abs(difference) > 2 * sem)


def _winner(by_method: Mapping[str, Sequence[Mapping[str, Any]]], metrics: Mapping[str, Any],
            column: Column, baseline: str | None = None) -> dict[str, Any] | None:
    means = {m: v[column.key]["mean"] for m, v in metrics.items() if column.key in v}
    if len(means) < 2:
        return None
    ranked = sorted(means, key=lambda m: means[m], reverse=not column.lower_is_better)
    best, second = ranked[0], ranked[1]
    _mean, sem = _paired(by_method, column.key, best, second)
    won = {"ranking": ranked, "best": best, "runner_up": second,
           "difference": float(means[best] - means[second]), "paired_sem": sem,
           "clear_vs_runner_up": _clear(means[best] - means[second], sem)}
    chance = by_method.get(baseline or "", ())
    if chance and any(r.get(column.key) is not None for r in chance):
        gap, gap_sem = _paired(by_method, column.key, best, baseline)
        better = gap < 0 if column.lower_is_better else gap > 0
        won.update(baseline=baseline, random_difference=gap, random_sem=gap_sem,
                   clear_vs_random=bool(better and _clear(gap, gap_sem)))
    won["clear"] = bool(won["clear_vs_runner_up"] and won.get("clear_vs_random", True))
    return won


def _mean_curves(by_method: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for m, mrows in by_method.items():
        curves = [r["curves"] for r in mrows if r.get("curves")]
        if not curves:
            continue
        out[m] = {k: np.mean([c[k] for c in curves], axis=0).tolist() for k in curves[0]}
    return out


# ------------------------------------------------------------------------------------------- Markdown


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


PIXEL_KEYS = ("pos_top1_pixels", "neg_top1_pixels", "pos_auc_pixels", "neg_auc_pixels")


def _title(summary: Mapping[str, Any], method: str, key: str | None = None) -> str:
    """A method's title; marked † in a pixel column where its map is ranked per pixel."""
    per_pixel = method in summary.get("per_pixel", ()) and (key is None or key in PIXEL_KEYS)
    return summary["titles"][method] + (" †" if per_pixel else "")


def _table(summary: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    cols = summary["columns"]
    keys = [k for k in keys if k in cols]
    head = "| method | " + " | ".join(f"{cols[k]['title']} {'↓' if cols[k]['lower_is_better'] else '↑'}"
                                       for k in keys) + " |"
    lines = [head, "|---|" + "---|" * len(keys)]
    marked = any(k in PIXEL_KEYS for k in keys)
    for m in summary["methods"]:
        cells = []
        for k in keys:
            stat = summary["metrics"][m].get(k)
            if stat is None:
                cells.append("–")
                continue
            text = f"{_pct(stat['mean'])} ± {_pct(stat['sem'])}" if k != "seg_miou" else _pct(stat["mean"])
            win = summary["winners"].get(k) or {}
            cells.append(f"**{text}**" if win.get("best") == m and win.get("clear") else text)
        title = _title(summary, m) if marked else summary["titles"][m]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines


def _margin(value: float, sem: float) -> str:
    clear = _clear(value, sem)
    return (f"{_pct(abs(value))} points (paired standard error {_pct(sem)}: "
            f"{'a clear margin' if clear else 'within two standard errors'})")


def _winner_lines(summary: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    lines = []
    for k in keys:
        win = summary["winners"].get(k)
        if not win:
            continue
        m = summary["metrics"]
        best, second = (f"{_title(summary, w, k)} ({_pct(m[w][k]['mean'])})" for w in (win["best"], win["runner_up"]))
        head = f"- {summary['columns'][k]['title']}: " + (f"**{best}**" if win.get("clear") else best)
        if win["difference"] == 0:
            parts = [f"{head} ties with {second}"]
        else:
            parts = [f"{head} beats {second} by {_margin(win['difference'], win['paired_sem'])}"]
        if win.get("baseline"):
            b = win["baseline"]
            word = "beats" if win["clear_vs_random"] or _better(win, summary, k) else "does not beat"
            parts.append(f"{word} {summary['titles'][b]} ({_pct(m[b][k]['mean'])}) by "
                         f"{_margin(win['random_difference'], win['random_sem'])}")
        verdict = "a clear winner" if win.get("clear") else "no clear winner"
        lines.append("; ".join(parts) + f": {verdict}")
    return lines


def _better(win: Mapping[str, Any], summary: Mapping[str, Any], key: str) -> bool:
    gap = win.get("random_difference", float("nan"))
    return gap < 0 if summary["columns"][key]["lower_is_better"] else gap > 0


def _paper_lines(summary: Mapping[str, Any]) -> list[str]:
    rows = [row for row in CHEFER_2021 if row.method in summary["methods"]]
    lines = ["", "Chefer et al. 2021 (Table 1, ViT-B/16 on ImageNet) names these methods; each row is matched to the "
             "method it really names (the authors' code in the second column):", "",
             "| paper row | authors' code | vitviz method |", "|---|---|---|"]
    lines += [f"| {row.name} | `{row.code}` | "
              f"{summary['titles'][row.method] if row.method in summary['methods'] else '–'} |" for row in CHEFER_2021]
    if len(rows) < 2:
        return lines
    lines += ["", f"Ranking against the paper over the {len(rows)} rows both evaluate, best first:", "",
              "| column | ours | paper |", "|---|---|---|"]
    for i, k in enumerate(CHEFER_COLUMNS):
        if k not in summary["columns"]:
            continue
        lower = summary["columns"][k]["lower_is_better"]
        ours = sorted(rows, key=lambda r: summary["metrics"][r.method][k]["mean"], reverse=not lower)
        paper = sorted(rows, key=lambda r: r.scores[i], reverse=not lower)
        same = " (same order)" if ours == paper else ""
        lines.append(f"| {summary['columns'][k]['title']} | {' > '.join(r.name for r in ours)}{same} | "
                     f"{' > '.join(r.name for r in paper)} |")
    return lines


def render_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown: Chefer's columns, the pixel test at patch resolution, the probability AUCs,
    winners, and the paper's rows against ours."""
    info = summary.get("info", {})
    chefer = ["pos_top1_pixels", "neg_top1_pixels", "pos_top1_tokens", "neg_top1_tokens", "seg_miou", "mask_iou",
              "pointing"]
    pooled = ["pos_top1_pixels_patches", "neg_top1_pixels_patches", "pos_auc_pixels_patches",
              "neg_auc_pixels_patches"]
    prob = ["pos_auc_pixels", "neg_auc_pixels", "pos_auc_tokens", "neg_auc_tokens"]
    options = info.get("options") or {}
    lines = [f"Generated by `python -m vitviz.evaluate --markdown` from `{info.get('summary_path', 'summary.json')}`: "
             f"model **{info.get('model', '?')}**"
             + (f" at patch size {info['patch_size']}" if info.get("patch_size") else "")
             + f", {summary['images']} images ({info.get('data', '?')}), class explained: "
             f"{info.get('target', 'predicted')}"
             + "".join(f", `{m}` with start_layer={o['start_layer']}"
                       for m, o in options.items() if isinstance(o, dict) and "start_layer" in o)
             + (f", ties broken at random over {info['tie_orders']} orders where they change a step"
                if info.get("tie_orders") else "")
             + ". Mean ± standard error over images, in percent; bold marks a column's winner only where it is "
             "clear (see the winner lines).", ""]
    lines += _table(summary, chefer)
    if summary.get("per_pixel"):
        lines += ["", "† ranked per pixel in the pixel columns (the method's own per-pixel map); every other map is "
                  "a patch map upsampled bilinearly. The same test with every map at patch resolution:", ""]
        lines += _table(summary, pooled)
    if summary.get("skipped"):
        lines += ["", f"{len(summary['skipped'])} images could not be evaluated and were skipped (listed with the "
                  "reason in summary.json)."]
    if summary.get("chance_pointing") is not None:
        lines += ["", f"Chance level of the pointing game (a uniformly random patch): "
                  f"{_pct(summary['chance_pointing'])}."]
    lines += ["", "Area under the target class's softmax probability instead of top-1 accuracy:", ""]
    lines += _table(summary, prob)
    lines += ["", "Winners (each column's best against its runner-up and the random baseline; clear means more "
              "than two paired standard errors from both):", ""]
    lines += _winner_lines(summary, chefer + (pooled if summary.get("per_pixel") else []) + prob)
    lines += _paper_lines(summary)
    cost = {m: summary["metrics"][m].get("attribute_ms_median") for m in summary["methods"]}
    lines += ["", "Median time of one method call per image (ms, wall clock on "
              f"{info.get('device', 'cpu')} with torch threads: {info.get('threads', '?')}; a shared machine): "
              + ", ".join(f"{summary['titles'][m]} {v:.1f}" for m, v in cost.items() if v is not None) + "."]
    return "\n".join(lines) + "\n"


def insert_between_markers(page: str, block: str) -> str:
    """``page`` with the text between the evaluation markers replaced by ``block``.

    Raises:
        ValueError: the page lacks the markers.
    """
    if START not in page or END not in page or page.index(START) > page.index(END):
        raise ValueError(f"the page has no {START} … {END} block to fill")
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}{END}{tail}"
