"""The data-set evaluation: data sets, resumable logs, summary tables, and ``python -m vitviz.evaluate`` end to end
(resume after an interruption equals one uninterrupted run; 2 processes under torchrun equal 1)."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitviz.evaluation.datasets import ImageFolderSet, ShapesEvalSet, class_indices
from vitviz.evaluation.records import RowStore, RunMismatch, check_run_record
from vitviz.evaluation.summary import insert_between_markers, render_markdown, summarise

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------ data sets


def test_shapes_set_is_the_generator_output_with_labels_only_for_a_model_that_knows_the_classes():
    from vitviz.shapes.dataset import EVAL_SPLIT
    from vitviz.shapes.generator import CLASSES, generate, sample_rng

    data = ShapesEvalSet(5, 3, 48, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), labels=list(reversed(CLASSES)))
    item = data[2]
    sample = generate(sample_rng(5, 2, EVAL_SPLIT), 48)
    assert item.id == data.image_id(2) == f"shapes:5:{EVAL_SPLIT}:2"
    np.testing.assert_array_equal(item.mask, sample.mask)
    np.testing.assert_allclose(item.x[0].permute(1, 2, 0).numpy(), (sample.image / 255.0 - 0.5) / 0.25, atol=1e-6)
    assert item.label == len(CLASSES) - 1 - sample.label  # by name, in the model's own order
    assert ShapesEvalSet(5, 3, 48, (0.5,) * 3, (0.5,) * 3, labels=["tench", "goldfish"])[2].label is None
    with pytest.raises(IndexError):
        data[3]


def test_class_indices_by_name_number_or_order():
    imagenet = ["tench, Tinca tinca", "goldfish, Carassius auratus", "great white shark"]
    assert class_indices(["goldfish", "Tench"], imagenet) == {0: 1, 1: 0}
    assert class_indices(["great_white_shark"], imagenet) == {0: 2}
    assert class_indices(["2", "0"], None, num_classes=3) == {0: 2, 1: 0}
    assert class_indices(["n01", "n02", "n03"], imagenet, 3) == {0: 0, 1: 1, 2: 2}  # sorted synset folders
    with pytest.raises(ValueError, match="--target predicted"):
        class_indices(["cat", "dog"], imagenet, 3)


def _png(path: Path, colour: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 30, 3), colour, dtype=np.uint8)).save(path)


def test_image_folder_with_class_folders_and_flat(tmp_path):
    config = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear",
              "crop_pct": 1.0, "crop_mode": "center"}
    _png(tmp_path / "labelled" / "goldfish" / "b.png", 10)
    _png(tmp_path / "labelled" / "goldfish" / "a.png", 20)
    _png(tmp_path / "labelled" / "tench" / "c.jpg", 30)
    (tmp_path / "labelled" / "tench" / "notes.txt").write_text("not an image")
    data = ImageFolderSet(tmp_path / "labelled", config, ["tench", "goldfish"], 2)
    assert [data.image_id(i) for i in range(len(data))] == ["goldfish/a.png", "goldfish/b.png", "tench/c.jpg"]
    assert [data[i].label for i in range(3)] == [1, 1, 0]
    assert data[0].x.shape == (1, 3, 32, 32) and data[0].mask is None
    assert float(data[0].x[0, 0, 0, 0]) == pytest.approx((20 / 255 - 0.5) / 0.5, abs=1e-6)

    _png(tmp_path / "flat" / "x.png", 0)
    flat = ImageFolderSet(tmp_path / "flat", config)
    assert len(flat) == 1 and flat[0].label is None and flat.class_names == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        ImageFolderSet(tmp_path / "empty", config)


# -------------------------------------------------------------------------------------------------- records


def test_row_store_resumes_and_moves_a_torn_line_aside(tmp_path):
    store = RowStore(tmp_path, rank=0)
    store.append([{"id": "a", "index": 0, "method": "m", "v": 1.5},
                  {"id": "a", "index": 0, "method": "n", "v": float("nan")}])
    with open(tmp_path / "rows-r0.jsonl", "a") as fh:
        fh.write('{"id": "b", "index": 1, "method": "m", "v"')  # a crash in the middle of a write
    (tmp_path / "rows-r1.jsonl").write_text(json.dumps({"id": "c", "index": 2, "method": "m", "v": 3}) + "\n")
    again = RowStore(tmp_path, rank=0, world_size=2)
    assert again.done("a", "m") and again.done("c", "m") and not again.done("b", "m")
    assert math.isnan(again.rows["a", "n"]["v"])
    assert again.quarantined == [("rows-r0.jsonl", 1)]
    kept = json.loads((tmp_path / "quarantine-r0.jsonl").read_text())
    assert kept == {"file": "rows-r0.jsonl", "line": 3, "problem": "cut short (no newline at the end)",
                    "text": '{"id": "b", "index": 1, "method": "m", "v"'}
    again.append([{"id": "b", "index": 1, "method": "m", "v": 2}])
    lines = (tmp_path / "rows-r0.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "a", "b"]  # the torn line is gone from the log
    assert [r["v"] for r in RowStore(tmp_path).select(["c", "b"], ["m"])] == [3, 2]


def test_run_record_refuses_other_settings(tmp_path):
    check_run_record(tmp_path, {"model": "a", "patch_size": (12, 12)}, write=True)
    check_run_record(tmp_path, {"model": "a", "patch_size": [12, 12]}, write=False)  # same, read back
    with pytest.raises(RunMismatch, match="patch_size"):
        check_run_record(tmp_path, {"model": "a", "patch_size": [8, 8]}, write=True)


def test_shards_cover_every_image_and_padding_repeats_the_first():
    from vitviz.evaluation.distributed import World, shard_indices

    shards = [list(shard_indices(5, World(rank=r, size=2))) for r in range(2)]
    assert shards == [[0, 2, 4], [1, 3, 0]]  # DistributedSampler(shuffle=False) pads with image 0
    assert list(shard_indices(5, World())) == [0, 1, 2, 3, 4]


# -------------------------------------------------------------------------------------------------- summary


def _row(image: int, method: str, **values) -> dict:
    row = {"id": f"i{image}", "index": image, "method": method, "attribute_ms": 1.0, "curves": {}}
    row.update(values)
    return row


def test_summary_means_paired_margin_and_dataset_miou_by_hand():
    rows = []
    for i, (a, b) in enumerate([(0.1, 0.3), (0.2, 0.3), (0.3, 0.6)]):
        rows.append(_row(i, "good", pos_top1_pixels=a, pointing=True, mask_iou=0.5, chance_pointing=0.25,
                         seg_fg_inter=4, seg_fg_union=8, seg_bg_inter=6, seg_bg_union=8, seg_miou=0.625))
        rows.append(_row(i, "bad", pos_top1_pixels=b, pointing=i == 0, mask_iou=0.25, chance_pointing=0.25,
                         seg_fg_inter=i, seg_fg_union=10, seg_bg_inter=0, seg_bg_union=10, seg_miou=i / 20))
    s = summarise(rows, ["good", "bad"], titles={"good": "Good", "bad": "Bad"})
    assert s["images"] == 3
    good, bad = s["metrics"]["good"], s["metrics"]["bad"]
    assert good["pos_top1_pixels"]["mean"] == pytest.approx(0.2)
    assert good["pos_top1_pixels"]["sem"] == pytest.approx(0.1 / math.sqrt(3))
    assert bad["pointing"]["mean"] == pytest.approx(1 / 3)
    assert bad["seg_miou"]["mean"] == pytest.approx((3 / 30 + 0 / 30) / 2)  # counts summed over images first
    win = s["winners"]["pos_top1_pixels"]  # lower is better for a positive perturbation
    assert (win["best"], win["runner_up"]) == ("good", "bad")
    assert win["difference"] == pytest.approx(-0.2)
    diffs = np.array([-0.2, -0.1, -0.3])
    assert win["paired_sem"] == pytest.approx(diffs.std(ddof=1) / math.sqrt(3))
    assert s["winners"]["mask_iou"]["best"] == "good"
    with_baseline = summarise(rows, ["good", "bad"], baselines=("good",))  # a baseline never wins
    assert with_baseline["winners"]["pos_top1_pixels"] is None and with_baseline["baselines"] == ["good"]
    text = render_markdown(s)
    assert "| Good | **20.00 ± 5.77** |" in text
    assert "**Good (20.00)** beats Bad (40.00) by 20.00 points" in text
    # paired differences (0, 1, 1): mean 0.667, standard error 0.333, so the margin is not above two of them
    pointing = next(line for line in text.splitlines() if line.startswith("- pointing game:"))
    assert pointing.startswith("- pointing game: Good (100.00) beats Bad (33.33)")
    assert pointing.endswith(": no clear winner") and not s["winners"]["pointing"]["clear"]


def test_a_winner_is_clear_only_when_it_also_beats_the_random_baseline_by_two_paired_standard_errors():
    rows = []
    for i, (a, b, r) in enumerate([(0.10, 0.30, 0.12), (0.20, 0.35, 0.19), (0.30, 0.60, 0.31), (0.15, 0.40, 0.16)]):
        rows += [_row(i, "good", pos_top1_pixels=a), _row(i, "bad", pos_top1_pixels=b),
                 _row(i, "random", pos_top1_pixels=r)]
    s = summarise(rows, ["good", "bad", "random"], titles={"good": "Good", "bad": "Bad", "random": "Random"})
    win = s["winners"]["pos_top1_pixels"]
    assert win["best"] == "good" and win["clear_vs_runner_up"] and win["baseline"] == "random"
    gaps = np.array([-0.02, 0.01, -0.01, -0.01])  # good − random per image
    assert win["random_difference"] == pytest.approx(gaps.mean())
    assert win["random_sem"] == pytest.approx(gaps.std(ddof=1) / 2)
    assert not win["clear_vs_random"] and not win["clear"]
    text = render_markdown(s)
    assert "**" not in next(line for line in text.splitlines() if line.startswith("| Good |"))
    line = next(line for line in text.splitlines() if line.startswith("- positive perturbation AUC, pixels (Chefer):"))
    assert "beats Random (19.50) by 0.75 points (paired standard error 0.63: within two standard errors)" in line
    assert line.endswith(": no clear winner")
    page = "intro\n<!-- evaluation:start -->\nold\n<!-- evaluation:end -->\nafter\n"
    filled = f"intro\n<!-- evaluation:start -->\n{text}<!-- evaluation:end -->\nafter\n"
    assert insert_between_markers(page, text) == filled
    with pytest.raises(ValueError, match="block"):
        insert_between_markers("no markers", text)


# --------------------------------------------------------------------------------------------- end to end

METHODS = "attention,random"


def _evaluate(out: Path, *extra: str) -> int:
    import torch

    from vitviz.evaluate import main

    threads = torch.get_num_threads()
    try:
        return main(["--shapes", "3", "--seed", "11", "--methods", METHODS, "--threads", "1", "--no-progress",
                     "--out", str(out), *extra])
    finally:
        torch.set_num_threads(threads)


def _table(out: Path) -> list[dict]:
    """results.csv without its one wall-clock column."""
    with open(out / "results.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k != "attribute_ms"} for row in csv.DictReader(fh)]


def _metrics(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return {m: {k: v for k, v in cols.items() if k != "attribute_ms_median"} for m, cols in summary["metrics"].items()}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """3 shapes images x 2 methods, one uninterrupted process."""
    os.environ.setdefault("VITVIZ_OFFLINE", "1")
    out = tmp_path_factory.mktemp("uninterrupted")
    assert _evaluate(out) == 0
    return out


def test_rows_agree_with_the_shapes_evaluation_and_the_protocol(reference_run):
    import torch

    from vitviz.models import load_model
    from vitviz.shapes.dataset import EVAL_SPLIT, normalize, pregenerate
    from vitviz.shapes.evaluation import patch_coverage, pointing_hits, relevance_maps, top_region_iou

    rows = [json.loads(line) for line in (reference_run / "rows-r0.jsonl").read_text().splitlines()]
    table = _table(reference_run)
    assert [(r["index"], r["method"]) for r in table] == [(str(i), m) for i in range(3) for m in METHODS.split(",")]
    attention = sorted((r for r in rows if r["method"] == "attention"), key=lambda r: r["index"])

    # an independent path to the same maps: the shapes model's own evaluation (vitviz.analysis.attention_map)
    loaded = load_model("vitviz-shapes")
    images, masks, labels = pregenerate(11, 3, split=EVAL_SPLIT, image_size=96)
    x = normalize(images, loaded.data_config["mean"], loaded.data_config["std"])
    with torch.no_grad():
        probs = loaded.model(x).softmax(-1)
    predicted = probs.argmax(-1).tolist()
    maps = relevance_maps(loaded.model, x, predicted, ["attention"])["attention"]
    hits = pointing_hits(maps, patch_coverage(masks, 12))
    iou = top_region_iou(maps, masks, 12)
    for i, row in enumerate(attention):
        assert row["label"] == int(labels[i])  # the shapes model knows the shapes classes
        assert row["predicted"] == row["target"] == predicted[i]  # the top class is explained by default
        assert row["probability"] == pytest.approx(float(probs[i, predicted[i]]), abs=1e-5)
        assert row["pointing"] == bool(hits[i])
        assert row["mask_iou"] == pytest.approx(iou[i], abs=1e-9)
        for key, curve in row["curves"].items():  # step 0 is the unperturbed image
            if key != "fractions":
                assert curve[0] == pytest.approx(row["probability"], abs=1e-5)
    for row in rows:  # the area under a 0/1 hit curve over steps of 0.1 is a multiple of 0.05, at most 0.9
        for key in ("pos_top1_tokens", "neg_top1_tokens", "pos_top1_pixels", "neg_top1_pixels"):
            assert 0 <= row[key] <= 0.9 + 1e-9 and abs(row[key] / 0.05 - round(row[key] / 0.05)) < 1e-6
    # the most relevant tokens first must hurt more than the least relevant first (orders not swapped)
    assert np.mean([r["pos_auc_tokens"] for r in attention]) < np.mean([r["neg_auc_tokens"] for r in attention])
    random_rows = [r for r in rows if r["method"] == "random"]  # each image has its own random order
    assert len({r["pos_auc_tokens"] for r in random_rows}) == 3


def test_resumed_run_equals_one_uninterrupted_run(reference_run, tmp_path):
    out = tmp_path / "resumed"
    assert _evaluate(out, "--limit", "1") == 0  # stops after one image, as an interruption would
    assert len((out / "rows-r0.jsonl").read_text().splitlines()) == 2
    with open(out / "rows-r0.jsonl", "a") as fh:
        fh.write('{"id": "shapes:11:1:1", "method": "attention", "pos_auc')  # killed in the middle of a write
    assert _evaluate(out, "--limit", "1") == 0
    assert _evaluate(out) == 0
    assert len((out / "rows-r0.jsonl").read_text().splitlines()) == 6  # each pair computed exactly once
    assert _table(out) == _table(reference_run)
    assert _metrics(out) == _metrics(reference_run)
    # a run with other settings in the same folder is refused, not mixed in
    assert _evaluate(out, "--target", "label") == 2


def test_a_crash_mid_run_loses_nothing_that_was_written(reference_run, tmp_path):
    from vitviz.evaluation.datasets import ShapesEvalSet
    from vitviz.evaluation.runner import evaluate_dataset
    from vitviz.models import load_model

    class Crash(Exception):
        pass

    def crash_after_two(index: int) -> None:
        if index == 1:
            raise Crash

    loaded = load_model("vitviz-shapes")
    data = ShapesEvalSet(11, 3, 96, loaded.data_config["mean"], loaded.data_config["std"], labels=loaded.labels)
    settings = json.loads((reference_run / "run.json").read_text())
    kwargs = dict(settings=settings, mean=loaded.data_config["mean"], std=loaded.data_config["std"], progress=False)
    with pytest.raises(Crash):
        evaluate_dataset(loaded.model, data, METHODS.split(","), tmp_path, on_image=crash_after_two, **kwargs)
    assert len((tmp_path / "rows-r0.jsonl").read_text().splitlines()) == 4
    run = evaluate_dataset(loaded.model, data, METHODS.split(","), tmp_path, **kwargs)
    assert run.computed == 1 and run.complete


@pytest.mark.slow
def test_two_processes_under_torchrun_give_the_one_process_table(reference_run, tmp_path):
    out = tmp_path / "torchrun"
    env = {**os.environ, "VITVIZ_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "vitviz.evaluate", "--shapes", "3", "--seed", "11", "--methods", METHODS, "--threads", "1",
           "--no-progress", "--device", "cpu", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    # 3 images on 2 ranks: DistributedSampler pads rank 1's shard with image 0, evaluated on both ranks
    assert (out / "rows-r0.jsonl").is_file() and (out / "rows-r1.jsonl").is_file()
    ids = [json.loads(line)["id"] for p in ("rows-r0.jsonl", "rows-r1.jsonl")
           for line in (out / p).read_text().splitlines()]
    assert len(ids) == 8 and len(set(ids)) == 3
    assert _table(out) == _table(reference_run)  # the same numbers, bit for bit
    assert _metrics(out) == _metrics(reference_run)
    assert json.loads((out / "summary.json").read_text())["info"]["world_size"] == 2


def test_markdown_into_pages_is_generated_and_idempotent(reference_run, tmp_path, capsys):
    from vitviz.evaluate import main

    page = tmp_path / "page.md"
    page.write_text("# Results\n\n<!-- evaluation:start -->\nstale\n<!-- evaluation:end -->\n\nDiscussion.\n")
    assert main(["--markdown", str(reference_run), "--into", str(page)]) == 0
    first = page.read_text()
    assert "stale" not in first and first.endswith("<!-- evaluation:end -->\n\nDiscussion.\n")
    summary = json.loads((reference_run / "summary.json").read_text())
    mean = summary["metrics"]["attention"]["pos_top1_pixels"]["mean"]
    assert f"| Raw attention (last layer) | {100 * mean:.2f}" in first.replace("**", "")
    assert main(["--markdown", str(reference_run), "--into", str(page)]) == 0
    assert page.read_text() == first
    assert main(["--markdown", str(reference_run)]) == 0
    assert "| method |" in capsys.readouterr().out
    assert main(["--markdown", str(tmp_path / "nothing")]) == 2


def test_cli_refuses_bad_input_with_a_message(tmp_path, capsys):
    from vitviz.evaluate import main

    assert main(["--out", str(tmp_path)]) == 2
    assert main(["--shapes", "2", "--methods", "attention,nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "give an image folder or --shapes N" in err and "unknown attribution method 'nope'" in err


def test_image_folder_end_to_end_labels_by_class_name(tmp_path):
    from vitviz.evaluate import main
    from vitviz.shapes.generator import CLASSES, generate

    for i, label in enumerate((0, 3)):
        sample = generate(100 + i, 96, label=label)
        path = tmp_path / "data" / CLASSES[label] / f"{i}.png"
        path.parent.mkdir(parents=True)
        Image.fromarray(sample.image).save(path)
    out = tmp_path / "out"
    assert main([str(tmp_path / "data"), "--methods", "rollout", "--threads", "1", "--no-progress",
                 "--out", str(out)]) == 0
    rows = _table(out)
    assert [(r["id"], r["label"]) for r in rows] == [(f"{CLASSES[0]}/0.png", "0"), (f"{CLASSES[3]}/1.png", "3")]
    assert all(r["pointing"] == "" and r["pos_top1_pixels"] != "" for r in rows)  # no masks, AUCs measured
    summary = json.loads((out / "summary.json").read_text())
    assert "pointing" not in summary["columns"] and summary["chance_pointing"] is None


def test_patch_size_re_patchifies_the_model_and_the_mask_scores(tmp_path):
    from vitviz.evaluate import main
    from vitviz.shapes.dataset import EVAL_SPLIT
    from vitviz.shapes.generator import generate, sample_rng

    out = tmp_path / "p16"
    assert main(["--shapes", "1", "--seed", "11", "--methods", "rollout", "--patch-size", "16", "--threads", "1",
                 "--no-progress", "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["patch_size"] == [16, 16]
    row = _table(out)[0]
    mask = generate(sample_rng(11, 0, EVAL_SPLIT), 96).mask
    overlapping = mask.reshape(6, 16, 6, 16).any(axis=(1, 3))  # (6, 6) patches of 16 px touching the object
    assert float(row["chance_pointing"]) == pytest.approx(overlapping.mean())
