"""Every method on every image of a data set: perturbation AUCs, localisation, one row per (image, method).

:func:`evaluate_image` scores the maps of several methods on one image; :func:`evaluate_dataset` runs it
over this process's shard of a data set, appends each image's rows to the output folder as soon as they
are done (so an interrupted run resumes), and gathers every shard's rows on rank 0.

Per (image, method) row (:class:`ImageScore`):

- the class explained (``target``): the model's top class by default, as Chefer et al. do (their
  ``--vis-class top``), or the label with ``target='label'`` where the image has one;
- the four perturbation AUCs of :mod:`vitviz.evaluation.faithfulness` (token dropping and Chefer's pixel
  protocol; positive = most relevant removed first, negative = least relevant first), as the area under the
  target's probability, and as the area under the top-1 hit curve: whether the perturbed input's top class
  is still the label (Chefer's accuracy; for an unlabelled image, still the class explained). A data set's
  mean of the hit AUCs is the AUC of its accuracy curve, the number in Chefer's table. Ties in a map are broken
  at random, seeded by the image's index, and averaged over ``tie_orders`` orders where they change a step
  (:mod:`vitviz.evaluation.ranking`);
- for a method with a per-pixel map (CP-LRP, AttnLRP, the input gradient, integrated gradients), the pixel AUCs
  twice: ranked per pixel as the method gives it (``*_pixels``), and pooled to patches (the per-pixel map
  summed over each patch, then upsampled bilinearly like every patch map: ``*_pixels_patches``; for a patch
  map the two are the same numbers);
- where the image has an object mask: pointing game, top-region IoU and the counts of Chefer's
  segmentation mIoU (:mod:`vitviz.evaluation.localisation`).

Every number is a deterministic function of the model, the image and the method (the random baseline and the
tie-breaking are seeded by the image's index), so a run split over any number of processes, or resumed after
an interruption, gives the same table as one process with the same thread count; only ``attribute_ms`` varies.

An image the data set cannot give (:class:`~vitviz.evaluation.datasets.BadImage`: corrupt, empty, a
decompression bomb, a link, unreadable) is skipped: named in the log, recorded with its reason, and not
tried again by a resumed run unless ``retry_skipped``.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import localisation
from .datasets import BadImage, printable
from .distributed import World, gather_to_root, shard_indices
from .records import OutputFolder, RowStore, check_run_record, output_names, write_csv

__all__ = ["COLUMNS", "DatasetRun", "ImageScore", "evaluate_dataset", "evaluate_image", "method_for_image",
           "write_results"]

AUC_KEYS = tuple(f"{sign}_{kind}_{removal}" for kind in ("auc", "top1") for removal in ("tokens", "pixels")
                 for sign in ("pos", "neg"))
POOLED_KEYS = tuple(f"{sign}_{kind}_pixels_patches" for kind in ("auc", "top1") for sign in ("pos", "neg"))
ORDER_SIGN = {"most": "pos", "least": "neg"}


@dataclass(frozen=True)
class ImageScore:
    """One method's scores on one image.

    Attributes:
        id: Image id (see :class:`~vitviz.evaluation.datasets.EvalImage`).
        index: Image position in the data set.
        method: Registry key of the method.
        label: The image's class, or None.
        predicted: The model's top class on the unperturbed image.
        target: The class explained and followed by the perturbation curves.
        probability: Softmax probability of ``target`` on the unperturbed image.
        pos_auc_tokens: Area under the target probability, most relevant tokens dropped first.
        neg_auc_tokens: The same, least relevant first.
        pos_auc_pixels: Area under the target probability, most relevant pixels set to 0 first (Chefer).
        neg_auc_pixels: The same, least relevant first.
        pos_top1_tokens: Area under the top-1 hit curve (0/1 per step), most relevant tokens first.
        neg_top1_tokens: The same, least relevant first.
        pos_top1_pixels: The same for Chefer's pixel removal, most relevant first.
        neg_top1_pixels: The same, least relevant first.
        per_pixel: Whether the method's own map is per pixel (then ``*_pixels`` rank it per pixel).
        pos_auc_pixels_patches, neg_auc_pixels_patches, pos_top1_pixels_patches, neg_top1_pixels_patches: Pixel
            AUCs, map pooled to patches (equal to ``*_pixels`` for a patch map).
        pointing: Pointing game hit (None without a mask).
        pointing_strict: Hit with the arg-max patch at least half object (None without a mask).
        mask_iou: Top-region IoU with the mask (None without a mask).
        seg_miou: This image's own segmentation mIoU (the data-set figure sums the counts instead).
        seg_fg_inter: Foreground intersection of the thresholded map with the mask, in pixels.
        seg_fg_union: Foreground union.
        seg_bg_inter: Background intersection.
        seg_bg_union: Background union.
        chance_pointing: Share of patches overlapping the object (a random patch's hit rate).
        attribute_ms: Wall time of the method's call, in milliseconds (the one non-deterministic column).
        curves: ``'<pos|neg>_<tokens|pixels>'`` -> target probability per fraction removed, and
            ``'fractions'`` -> those fractions (kept in the JSON log, not in the CSV).
    """

    id: str
    index: int
    method: str
    label: int | None
    predicted: int
    target: int
    probability: float
    pos_auc_tokens: float
    neg_auc_tokens: float
    pos_auc_pixels: float
    neg_auc_pixels: float
    pos_top1_tokens: float
    neg_top1_tokens: float
    pos_top1_pixels: float
    neg_top1_pixels: float
    per_pixel: bool = False
    pos_auc_pixels_patches: float | None = None
    neg_auc_pixels_patches: float | None = None
    pos_top1_pixels_patches: float | None = None
    neg_top1_pixels_patches: float | None = None
    pointing: bool | None = None
    pointing_strict: bool | None = None
    mask_iou: float | None = None
    seg_miou: float | None = None
    seg_fg_inter: int | None = None
    seg_fg_union: int | None = None
    seg_bg_inter: int | None = None
    seg_bg_union: int | None = None
    chance_pointing: float | None = None
    attribute_ms: float = 0.0
    curves: dict[str, list[float]] = field(default_factory=dict)


COLUMNS = tuple(f for f in ImageScore.__dataclass_fields__ if f != "curves")
_NUMBERS = ("probability", "attribute_ms", *AUC_KEYS)
_OPTIONAL_NUMBERS = ("mask_iou", "seg_miou", "chance_pointing", *POOLED_KEYS)
_WHOLE = ("predicted", "target")
_OPTIONAL_WHOLE = ("label", "seg_fg_inter", "seg_fg_union", "seg_bg_inter", "seg_bg_union")


def row_problem(row: dict[str, Any]) -> str | None:
    """What is wrong with a row read back from a log (None when it is a complete :class:`ImageScore`)."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for keys, ok, optional in ((_NUMBERS, number, False), (_OPTIONAL_NUMBERS, number, True),
                               (_WHOLE, whole, False), (_OPTIONAL_WHOLE, whole, True),
                               (("pointing", "pointing_strict", "per_pixel"), lambda v: isinstance(v, bool), True)):
        for key in keys:
            value = row.get(key)
            if not (ok(value) or (optional and value is None)):
                return f"{key!r} is {value!r}, not a {'number' if ok is number else 'value of its kind'}"
    curves = row.get("curves", {})
    if not isinstance(curves, dict) or not all(
            isinstance(c, list) and all(isinstance(v, (int, float)) for v in c) for c in curves.values()):
        return "'curves' is not a set of number lists"
    return None


def method_for_image(name: str, index: int, options: dict[str, Any] | None = None) -> Any:
    """The registered method ``name`` with ``options`` (e.g. ``{'start_layer': 1}``); the random baseline gets its
    own seed per image (its index): each image is perturbed in its own random order, the same in every process."""
    # heavy: torch (through vitviz.attribution), loaded when an image is scored
    from vitviz.attribution import get_method
    from vitviz.attribution.random import RandomMap

    method = get_method(name).configured(**(options or {}))
    return RandomMap(seed=index) if isinstance(method, RandomMap) else method


def evaluate_image(model: Any, image: Any, methods: Sequence[str], *, target: str = "predicted",
                   fractions: Sequence[float] | None = None, batch_size: int = 32,
                   mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                   options: dict[str, dict[str, Any]] | None = None,
                   tie_orders: int | None = None) -> list[ImageScore]:
    """Score each method's map of one image.

    Args:
        model: A timm ViT-family classifier in eval mode.
        image: An :class:`~vitviz.evaluation.datasets.EvalImage`.
        methods: Registry keys (``vitviz.attribution.METHODS``).
        target: ``'predicted'`` explains the top class; ``'label'`` the image's label where it has one.
        fractions: Fractions removed at each perturbation step (default 0.0, 0.1, …, 0.9).
        batch_size: Perturbed inputs per forward pass.
        mean, std: Normalisation of the input (for Chefer's 0-in-[0, 1] pixels); default the model's.
        options: Method key -> its options (``{'rollout': {'start_layer': 1}}``).
        tie_orders: Random tie-breaking orders per map where ties change a step (seeded by the image's index).

    Returns:
        One :class:`ImageScore` per method, in the order of ``methods``.

    Raises:
        ValueError: ``batch_size`` below 1.
    """
    # heavy: torch, loaded when an image is scored
    import torch

    from .faithfulness import REMOVALS, area_under_curve, perturbation_curves
    from .ranking import DEFAULT_TIE_ORDERS

    _check_batch_size(batch_size)

    device = next(model.parameters()).device
    x = image.x.to(device)  # (1, 3, H, W)
    with torch.no_grad():
        clean = model(x)  # (1, C)
        probs = clean.float().softmax(-1)[0]  # (C,)
    predicted = int(probs.argmax())
    explained = image.label if target == "label" and image.label is not None else predicted
    reference = image.label if image.label is not None else explained  # whose top-1 the hit curve checks

    maps, times = {}, {}
    for name in methods:
        start = time.perf_counter()
        maps[name] = method_for_image(name, image.index, (options or {}).get(name)).attribute(model, x, explained)
        times[name] = (time.perf_counter() - start) * 1e3

    per_pixel = {name for name, m in maps.items() if getattr(m, "pixels", None) is not None}
    scores: dict[str, dict[str, Any]] = {name: {"curves": {}, "per_pixel": name in per_pixel} for name in methods}
    settings = dict(fractions=fractions, batch_size=batch_size, mean=mean, std=std, clean=clean, seed=image.index,
                    tie_orders=DEFAULT_TIE_ORDERS if tie_orders is None else tie_orders)
    runs = [(removal, "", maps, False) for removal in REMOVALS]
    if per_pixel:
        runs.append(("pixels", "_patches", {name: maps[name] for name in methods if name in per_pixel}, True))
    for removal, suffix, chosen, pooled in runs:
        curves = perturbation_curves(model, x, chosen, explained, removal=removal, pooled=pooled, **settings)
        for (name, order), curve in curves.items():
            key = f"{ORDER_SIGN[order]}_{removal}"
            hits = curve.hit_rate(reference)  # (S,) over the tie orders
            scores[name][key.replace("_", "_auc_", 1) + suffix] = float(curve.auc)
            scores[name][key.replace("_", "_top1_", 1) + suffix] = area_under_curve(curve.fractions, hits)
            scores[name]["curves"][key + suffix] = [float(p) for p in curve.probabilities]
            scores[name]["curves"]["fractions"] = [float(f) for f in curve.fractions]
    for name in methods:
        if name not in per_pixel:  # a patch map: ranked at patch resolution already
            scores[name].update({key: scores[name][key.removesuffix("_patches")] for key in POOLED_KEYS})
    if image.mask is not None:
        _localise(scores, maps, image.mask)
    return [ImageScore(id=image.id, index=image.index, method=name, label=image.label, predicted=predicted,
                       target=explained, probability=float(probs[explained]), attribute_ms=round(times[name], 3),
                       **scores[name]) for name in methods]


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, not {batch_size!r}")


def _localise(scores: dict[str, dict[str, Any]], maps: dict[str, Any], mask: np.ndarray) -> None:
    """Add the localisation scores of every map against the object ``mask`` (model-input pixels)."""
    names = list(maps)
    patch = maps[names[0]].layout.patch_size
    grids = np.stack([np.asarray(maps[n].patches, dtype=np.float64) for n in names])  # (M, gh, gw)
    masks = np.repeat(np.asarray(mask, dtype=bool)[None], len(names), axis=0)  # (M, H, W)
    cover = localisation.patch_coverage(masks, patch)[:, : grids.shape[1], : grids.shape[2]]  # (M, gh, gw)
    pointing = localisation.pointing_hits(grids, cover)
    strict = localisation.pointing_hits(grids, cover, 0.5)
    iou = localisation.top_region_iou(grids, masks, patch)
    counts = localisation.segmentation_counts(grids, masks, patch)  # (M, 4)
    for i, name in enumerate(names):
        scores[name].update(
            pointing=bool(pointing[i]), pointing_strict=bool(strict[i]), mask_iou=float(iou[i]),
            seg_miou=localisation.segmentation_miou(counts[i]), chance_pointing=float((cover[i] > 0).mean()),
            **dict(zip(localisation.SEGMENTATION_COUNTS, map(int, counts[i]))))


def _progress(total: int, enabled: bool) -> Any:
    """A tqdm bar on stderr when tqdm is installed, else a plain counter every 5 %."""
    try:
        # optional: tqdm draws the progress bar when installed
        from tqdm.auto import tqdm

        return tqdm(total=total, disable=not enabled, unit="img", file=sys.stderr, dynamic_ncols=True)
    except ImportError:
        return _PlainProgress(total, enabled)


class _PlainProgress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.n, self._last = total, enabled, 0, -1

    def update(self, n: int = 1) -> None:
        self.n += n
        step = int(20 * self.n / max(self.total, 1))
        if self.enabled and step != self._last:
            self._last = step
            print(f"{self.n}/{self.total} images", file=sys.stderr, flush=True)

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class DatasetRun:
    """What :func:`evaluate_dataset` did.

    Attributes:
        rows: On rank 0, every (image, method) row of the data set, sorted by image index then method
            order, one per pair whatever the world size; empty on other ranks.
        complete: Whether every pair has a row (False after ``limit`` stopped a rank early).
        computed: Images this rank evaluated in this call (the rest were already in the folder's logs).
        seconds: Wall time of this call on this rank.
        skipped: On rank 0, every image that could not be evaluated, as ``{'id', 'index', 'reason'}``,
            sorted by index; empty on other ranks.
    """

    rows: list[dict[str, Any]]
    complete: bool
    computed: int
    seconds: float
    skipped: list[dict[str, Any]] = field(default_factory=list)


def evaluate_dataset(model: Any, dataset: Any, methods: Sequence[str], out_dir: str | Path, *,
                     settings: dict[str, Any], world: World = World(), target: str = "predicted",
                     fractions: Sequence[float] | None = None, batch_size: int = 32,
                     mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                     options: dict[str, dict[str, Any]] | None = None, tie_orders: int | None = None,
                     limit: int | None = None, progress: bool = True, retry_skipped: bool = False,
                     on_image: Callable[[int], None] | None = None,
                     log: Callable[[str], None] | None = None) -> DatasetRun:
    """Evaluate this rank's shard of ``dataset``, resuming from ``out_dir``; gather every row on rank 0.

    Args:
        model: A timm ViT-family classifier in eval mode on this rank's device.
        dataset: A data set of :class:`~vitviz.evaluation.datasets.EvalImage` (``len``, ``[i]``,
            ``image_id(i)``, ``index_of(id)``); ``[i]`` may raise ``BadImage``.
        methods: Registry keys to evaluate.
        out_dir: Output folder (logs, ``run.json``, manifest); the same folder resumes.
        settings: What decides every number (checked against the folder's ``run.json``).
        world: The process group (:func:`~vitviz.evaluation.distributed.init_world`).
        target, fractions, batch_size, mean, std, options, tie_orders: As for :func:`evaluate_image`.
        limit: Evaluate at most this many new images on this rank, then stop (the rest is left for a
            resumed run).
        progress: Show a progress bar on rank 0.
        retry_skipped: Try again the images an earlier run skipped.
        on_image: Called with each image index this rank finishes (tests use it to simulate a crash).
        log: Called with each line worth telling (a skipped image, lines quarantined); default stderr.

    Returns:
        A :class:`DatasetRun`.

    Raises:
        RunMismatch: the folder holds another run's results, or files this tool did not write.
        ValueError: ``batch_size`` below 1.
    """
    _check_batch_size(batch_size)
    say = log or _stderr
    start = time.perf_counter()
    out_dir = Path(out_dir)
    if world.is_root:
        OutputFolder(out_dir).claim(output_names(world.size))
        check_run_record(out_dir, settings, write=True)
    world.barrier()
    check_run_record(out_dir, settings, write=True)  # another machine may not share rank 0's folder
    store = RowStore(out_dir, world.rank, world.size, check=row_problem)
    for name, count in store.quarantined:
        say(f"warning: {count} unreadable line{'s' * (count != 1)} of {name} moved to {store.quarantine_path.name}")
    for name, count in store.ignored:
        say(f"warning: {count} unreadable line{'s' * (count != 1)} of {name} ignored")
    mine = shard_indices(len(dataset), world)
    bar = _progress(len(mine), progress and world.is_root)
    computed, stopped = 0, False
    for index in mine:
        image_id = dataset.image_id(index)
        pending = [m for m in methods if not store.done(image_id, m)]
        if pending and image_id in store.skipped and not retry_skipped:
            pending = []
        if pending and limit is not None and computed >= limit:
            stopped = True
            break
        if pending:
            try:
                image = dataset[index]
            except BadImage as exc:
                store.skip(image_id, index, exc.reason)
                say(f"skipped {printable(image_id)}: {exc.reason}")
                bar.update(1)
                continue
            scores = evaluate_image(model, image, pending, target=target, fractions=fractions,
                                    batch_size=batch_size, mean=mean, std=std, options=options,
                                    tie_orders=tie_orders)
            store.append(asdict(s) for s in scores)
            computed += 1
            if on_image is not None:
                on_image(index)
        bar.update(1)
    bar.close()
    gathered = gather_to_root(_this_shard(store, dataset, mine, methods), world)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    complete = not stopped
    if gathered is not None:
        rows = _merge([part[0] for part in gathered], methods)
        skipped = _skipped([part[1] for part in gathered], rows, methods)
        per_image: dict[str, int] = {}
        for row in rows:
            per_image[row["id"]] = per_image.get(row["id"], 0) + 1
        finished = sum(count == len(methods) for count in per_image.values())
        complete = finished + len(skipped) == len(dataset)
    world.barrier()
    return DatasetRun(rows=rows, complete=complete, computed=computed, seconds=time.perf_counter() - start,
                      skipped=skipped)


def _stderr(text: str) -> None:
    print(f"vitviz.evaluate: {text}", file=sys.stderr, flush=True)


def _this_shard(store: RowStore, dataset: Any, mine: Any,
                methods: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows and skip records of this rank's images, with each image's index in the data set as it is now
    (found from the records, so a shard of a billion images costs only what was computed)."""
    wanted = set(methods)

    def current(record: dict[str, Any]) -> dict[str, Any] | None:
        index = dataset.index_of(record["id"])
        return None if index is None or index not in mine else {**record, "index": index}

    rows = [r for (_, method), row in store.rows.items() if method in wanted and (r := current(row)) is not None]
    skipped = [r for record in store.skipped.values() if (r := current(record)) is not None]
    return rows, skipped


def _skipped(parts: Sequence[Sequence[dict[str, Any]]], rows: Sequence[dict[str, Any]],
             methods: Sequence[str]) -> list[dict[str, Any]]:
    """The skip records of images that still lack a row for some method, one per image, sorted by index."""
    done: dict[str, int] = {}
    for row in rows:
        done[row["id"]] = done.get(row["id"], 0) + 1
    unique = {r["id"]: r for part in parts for r in part if done.get(r["id"], 0) < len(methods)}
    return sorted(({"id": r["id"], "index": r["index"], "reason": r["reason"]} for r in unique.values()),
                  key=lambda r: r["index"])


def _merge(parts: Sequence[Sequence[dict[str, Any]]], methods: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (image, method) from every rank's rows (the padded duplicates dropped), sorted."""
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for part in parts:
        for row in part:
            unique.setdefault((row["id"], row["method"]), row)
    order = {m: i for i, m in enumerate(methods)}
    return sorted(unique.values(), key=lambda r: (r["index"], order[r["method"]]))


def write_results(out_dir: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """``results.csv`` in ``out_dir`` (rank 0): the rows in :data:`COLUMNS` order."""
    path = Path(out_dir) / "results.csv"
    write_csv(path, rows, COLUMNS)  # written whole, then renamed
    return path
