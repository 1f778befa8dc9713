"""The data-set CLI's protocol options (issue 23, items 1 and 3): the renamed key is announced, the start layer is
given to the methods Chefer et al. run from a start layer and recorded, a folder of another protocol is refused,
per-pixel maps get their pooled columns."""
from __future__ import annotations

import csv
import json
import os

import pytest
import torch

from vitviz.evaluate import main


def _run(out, *args: str) -> int:
    os.environ.setdefault("VITVIZ_OFFLINE", "1")
    threads = torch.get_num_threads()
    try:
        return main(["--shapes", "2", "--seed", "11", "--threads", "1", "--no-progress", "--out", str(out), *args])
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_start_layer_pooled_columns_and_the_renamed_key_note(tmp_path, capsys):
    assert _run(tmp_path, "--methods", "rollout,attnlrp,attention") == 0
    err = capsys.readouterr().err
    assert "'attnlrp' now names AttnLRP (Achtibat et al. 2024)" in err and "'cp_lrp'" in err
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["options"] == {"rollout": {"start_layer": 1}} and run["tie_orders"] == 4 and run["protocol"] == 2
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["titles"]["rollout"] == "Attention rollout (start layer 1)"
    assert summary["per_pixel"] == ["attnlrp"]
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        assert row["pos_auc_pixels_patches"] != ""
        if row["method"] == "attention":  # a patch map: the pooled column is its pixel column
            assert row["pos_auc_pixels_patches"] == row["pos_auc_pixels"]
    # the same folder with another start layer is another run: refused, nothing overwritten
    assert _run(tmp_path, "--methods", "rollout,attnlrp,attention", "--start-layer", "0") == 2
    assert "start_layer" in capsys.readouterr().err


def test_a_start_layer_beyond_the_model_and_an_old_protocol_folder_are_refused(tmp_path, capsys):
    assert _run(tmp_path / "a", "--methods", "rollout", "--start-layer", "4") == 2
    assert "has 4 blocks" in capsys.readouterr().err
    old = tmp_path / "old"
    old.mkdir()
    (old / "run.json").write_text(json.dumps({"model": "vitviz-shapes", "patch_size": [12, 12], "target": "predicted",
                                              "data": {"kind": "shapes", "seed": 11, "split": 1, "image_size": 96},
                                              "fractions": None}))
    (old / "vitviz-manifest.json").write_text(json.dumps({"tool": "vitviz.evaluate", "files": ["run.json"]}))
    assert _run(old, "--methods", "rollout") == 2
    assert "protocol" in capsys.readouterr().err
