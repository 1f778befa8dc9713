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

ROOT = Path(__file__).resolve().parent.parent


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


def test_row_store_resumes_and_drops_a_torn_line(tmp_path):
    store = RowStore(tmp_path, rank=0)
    store.append([{"id": "a", "method": "m", "v": 1.5}, {"id": "a", "method": "n", "v": float("nan")}])
    with open(tmp_path / "rows-r0.jsonl", "a") as fh:
        fh.write('{"id": "b", "method": "m", "v"')  # a crash in the middle of a write
    (tmp_path / "rows-r1.jsonl").write_text(json.dumps({"id": "c", "method": "m", "v": 3}) + "\n")
    again = RowStore(tmp_path, rank=0)
    assert again.done("a", "m") and again.done("c", "m") and not again.done("b", "m")
    assert math.isnan(again.rows["a", "n"]["v"])
    again.append([{"id": "b", "method": "m", "v": 2}])
    lines = (tmp_path / "rows-r0.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "a", "b"]  # the torn line is gone
    assert [r["v"] for r in RowStore(tmp_path).select(["c", "b"], ["m"])] == [3, 2]


def test_run_record_refuses_other_settings(tmp_path):
    check_run_record(tmp_path, {"model": "a", "patch_size": (12, 12)}, write=True)
    check_run_record(tmp_path, {"model": "a", "patch_size": [12, 12]}, write=False)  # same, read back
    with pytest.raises(RunMismatch, match="patch_size"):
        check_run_record(tmp_path, {"model": "a", "patch_size": [8, 8]}, write=True)


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
    text = render_markdown(s)
    assert "| Good | **20.00 ± 5.77** |" in text
    assert "**Good** (20.00) beats Bad (40.00) by 20.00 points" in text
    page = "intro\n<!-- evaluation:start -->\nold\n<!-- evaluation:end -->\nafter\n"
    assert insert_between_markers(page, text) == f"intro\n<!-- evaluation:start -->\n{text}<!-- evaluation:end -->\nafter\n"
    with pytest.raises(ValueError, match="block"):
        insert_between_markers("no markers", text)
