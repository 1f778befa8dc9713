"""``python -m vitviz.evaluate`` against hostile or faulty input: it never loses or invents data.

Each fault has its exact expectation: the files kept, the rows complete, the message naming the file. The
CLI runs in-process (``main(argv)``) on the bundled shapes model with the cheapest method (``random``).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests._imagefactory import make_bomb_png, make_truncated_jpeg
from vitviz.evaluation.datasets import ImageFolderSet
from vitviz.evaluation.records import MANIFEST

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear",
          "crop_pct": 1.0, "crop_mode": "center"}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("VITVIZ_OFFLINE", "1")


def _cli(capsys, *argv: str) -> tuple[int, str]:
    """``main(argv)`` with one torch thread and no progress bar; returns (exit code, stderr)."""
    import torch

    from vitviz.evaluate import main

    threads = torch.get_num_threads()
    capsys.readouterr()
    try:
        code = main([*argv, "--threads", "1", "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _shape_png(path: Path, seed: int) -> None:
    from vitviz.shapes.generator import generate

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(generate(seed, 96).image).save(path)


def _csv(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize("argv, message", [
    (["--shapes", "2", "--batch-size", "-3"], "argument --batch-size: must be a whole number from 1 to 65536, "
                                              "not '-3'"),
    (["--shapes", "2", "--batch-size", "0"], "argument --batch-size: must be a whole number from 1 to 65536, not '0'"),
    (["--shapes", "2", "--threads", "-1"], "argument --threads: must be a whole number from 1 to 1024, not '-1'"),
    (["--shapes", "0"], "argument --shapes: must be a whole number from 1 to 1000000000, not '0'"),
    (["--shapes", "1e9"], "argument --shapes: must be a whole number from 1 to 1000000000, not '1e9'"),
    (["--shapes", "2", "--limit", "-1"], "argument --limit: must be a whole number >= 0, not '-1'"),
    (["--shapes", "2", "--seed", "-5"], "argument --seed: must be a whole number from 0 to"),
    (["--shapes", "2", "--patch-size", "0"], "argument --patch-size: must be a whole number from 1 to 1024, not '0'"),
    (["--shapes", "2", "--device", "gpu"], "argument --device: must be cpu, cuda, cuda:N or mps, not 'gpu'"),
    (["--shapes", "2", "--layout", "tree"], "argument --layout: invalid choice: 'tree'"),
])
def test_every_argument_out_of_range_is_a_one_line_message(capsys, tmp_path, argv, message):
    out = tmp_path / "out"
    code, err = _cli(capsys, *argv, "--out", str(out))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"python -m vitviz.evaluate: error: {message}"), err
    assert not out.exists()


def test_batch_size_is_checked_by_the_library_too():
    """``--batch-size -3`` once perturbed nothing and reported a pixel AUC of 0.82 instead of 0.31."""
    from vitviz.evaluation.runner import evaluate_dataset, evaluate_image

    for bad in (-3, 0, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
            evaluate_image(None, None, ["random"], batch_size=bad)
        with pytest.raises(ValueError, match="batch_size"):
            evaluate_dataset(None, [], ["random"], "/nonexistent", settings={}, batch_size=bad)


def test_an_empty_method_list_is_refused(capsys, tmp_path):
    code, err = _cli(capsys, "--shapes", "1", "--methods", ",", "--out", str(tmp_path / "out"))
    assert code == 2 and "--methods ',' lists no method" in err


# ------------------------------------------------------------------------------------------------ --overwrite


def test_out_may_not_be_the_image_folder_or_inside_it(capsys, tmp_path):
    """``photos --out photos --overwrite`` once deleted the photos, then failed."""
    photos = tmp_path / "photos"
    _shape_png(photos / "a.png", 1)
    before = _tree(photos)
    for out in (photos, photos / "results"):
        code, err = _cli(capsys, str(photos), "--out", str(out), "--overwrite")
        assert code == 2 and "is the image folder" in err and "choose another output folder" in err
    assert _tree(photos) == before and not (photos / "results").exists()


def test_overwrite_deletes_only_the_files_the_cli_wrote(capsys, tmp_path):
    out = tmp_path / "out"
    argv = ("--shapes", "1", "--seed", "3", "--methods", "random", "--out", str(out))
    assert _cli(capsys, *argv)[0] == 0
    written = json.loads((out / MANIFEST).read_text())["files"]
    assert {"run.json", "rows-r0.jsonl", "results.csv", "summary.json"} <= set(written)
    mine = {"notes.txt": b"my notes", "photo.png": b"\x89PNG my photo", "keep/deep.txt": b"deep"}
    for name, data in mine.items():
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_bytes(data)

    code, err = _cli(capsys, *argv, "--overwrite")
    assert code == 0 and "--overwrite removed 4 files this tool wrote" in err
    assert {name: (out / name).read_bytes() for name in mine} == mine  # the user's files, untouched
    assert len(_csv(out)) == 1 and (out / MANIFEST).is_file()

    (out / "results.csv").unlink()  # a user's own results.csv in a folder the manifest does not list it in
    (out / MANIFEST).unlink()
    (out / "results.csv").write_text("mine\n")
    code, err = _cli(capsys, *argv, "--overwrite")
    assert code == 2 and "already holds run.json, rows-r0.jsonl, results.csv, summary.json, which vitviz.evaluate " \
                         "did not write" in err
    assert (out / "results.csv").read_text() == "mine\n"


# ------------------------------------------------------------------------------------------------ bad images


def _bad_folder(root: Path) -> dict[str, str]:
    """Two good images and one of each bad kind; returns bad name -> the reason's expected start."""
    _shape_png(root / "a.png", 1)
    _shape_png(root / "b.png", 2)
    (root / "corrupt.jpg").write_bytes(make_truncated_jpeg())
    (root / "empty.png").write_bytes(b"")
    (root / "bomb.png").write_bytes(make_bomb_png(20_000, 20_000))
    (root / "link.png").symlink_to(root / "a.png")
    (root / "devzero.png").symlink_to("/dev/zero")
    os.mkfifo(root / "fifo.png")
    return {"bomb.png": "This image is too large", "corrupt.jpg": "This JPEG file is incomplete",
            "devzero.png": "a symbolic link (not followed)", "empty.png": "The file is empty (0 bytes)",
            "fifo.png": "not a regular file", "link.png": "a symbolic link (not followed)"}


def test_bad_images_are_skipped_named_and_listed_and_a_resume_does_not_retry_them(capsys, tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    bad = _bad_folder(photos)
    argv = (str(photos), "--methods", "random", "--out", str(out))
    code, err = _cli(capsys, *argv)
    assert code == 0, err
    for name, reason in bad.items():
        assert f"vitviz.evaluate: skipped {name}: {reason}" in err, err
    assert "6 images skipped (listed with the reason in summary.json" in err
    assert [r["id"] for r in _csv(out)] == ["a.png", "b.png"]  # every good image scored
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 2 and summary["info"]["complete"] is True
    assert {s["id"]: s["reason"][: len(bad[s["id"]])] for s in summary["skipped"]} == bad

    code, err = _cli(capsys, *argv)  # resumed: nothing is tried again
    assert code == 0 and "skipped bomb.png" not in err and "6 images skipped" in err
    assert len((out / "skipped-r0.jsonl").read_text().splitlines()) == 6

    (photos / "corrupt.jpg").unlink()  # fixed by the user, then asked for again
    _shape_png(photos / "corrupt.jpg", 3)
    code, err = _cli(capsys, *argv, "--retry-skipped")
    assert code == 0 and "skipped corrupt.jpg" not in err and "5 images skipped" in err
    assert [r["id"] for r in _csv(out)] == ["a.png", "b.png", "corrupt.jpg"]
    assert "corrupt.jpg" not in {s["id"] for s in json.loads((out / "summary.json").read_text())["skipped"]}


def test_an_image_that_cannot_be_read_is_a_bad_image_naming_it(tmp_path, monkeypatch):
    from vitviz.evaluation import datasets

    _shape_png(tmp_path / "locked.png", 1)
    _shape_png(tmp_path / "gone.png", 2)
    data = ImageFolderSet(tmp_path, CONFIG)
    (tmp_path / "gone.png").unlink()  # vanished since the folder was listed
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if str(path).endswith("locked.png"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(datasets.os, "open", refuse)
    for index, reason in ((0, "cannot be read (No such file or directory)"),
                          (1, "cannot be read (Permission denied)")):
        with pytest.raises(datasets.BadImage) as info:
            data[index]
        assert (info.value.image_id, info.value.reason) == (data.image_id(index), reason)


def test_an_image_larger_than_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from vitviz.evaluation import datasets

    (tmp_path / "huge.png").write_bytes(b"\0" * 2048)
    monkeypatch.setattr(datasets, "MAX_IMAGE_BYTES", 1024)
    monkeypatch.setattr(datasets.os, "open", lambda *a, **k: pytest.fail("opened"))
    with pytest.raises(datasets.BadImage, match=r"huge\.png: larger than 0 MB \(2048 bytes\)"):
        ImageFolderSet(tmp_path, CONFIG)[0]


# ------------------------------------------------------------------------------------------------ discovery


def test_loose_images_beside_class_folders_are_refused_not_guessed(tmp_path):
    """The ``sub.png/`` case: a.png and b.png beside a folder named sub.png were once silently dropped."""
    _shape_png(tmp_path / "a.png", 1)
    _shape_png(tmp_path / "b.png", 2)
    _shape_png(tmp_path / "sub.png" / "c.png", 3)
    with pytest.raises(ValueError, match=r"holds both 2 loose images \(a\.png, b\.png\) and 1 class folder "
                                         r"\(sub\.png/\): say which with --layout classes"):
        ImageFolderSet(tmp_path, CONFIG)
    flat = ImageFolderSet(tmp_path, CONFIG, layout="flat")
    assert [flat.image_id(i) for i in range(len(flat))] == ["a.png", "b.png"]
    assert flat.found == "2 images; 1 subfolder with images ignored: sub.png/"
    classes = ImageFolderSet(tmp_path, CONFIG, use_labels=False, layout="classes")
    assert [classes.image_id(i) for i in range(len(classes))] == ["sub.png/c.png"]
    assert classes.found == "1 class folder (1 image); 2 loose images ignored: a.png, b.png"


def test_discovery_says_what_it_found_and_what_it_left_out(tmp_path):
    for i, cls in enumerate(("cat", "dog", "eel")):
        _shape_png(tmp_path / cls / f"{i}.png", i)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("n")
    (tmp_path / ".DS_Store").write_text("x")
    data = ImageFolderSet(tmp_path, CONFIG, use_labels=False)
    assert data.found == "3 class folders (3 images); 3 other entries ignored: .DS_Store, empty/, notes.txt"


def test_the_cli_refuses_an_ambiguous_folder_with_the_message(capsys, tmp_path):
    _shape_png(tmp_path / "data" / "a.png", 1)
    _shape_png(tmp_path / "data" / "sub.png" / "c.png", 3)
    code, err = _cli(capsys, str(tmp_path / "data"), "--methods", "random", "--out", str(tmp_path / "out"))
    assert code == 2 and "holds both 1 loose image (a.png) and 1 class folder (sub.png/)" in err


def test_file_names_that_are_not_utf8_keep_every_row(capsys, tmp_path):
    """A non-UTF-8 name once cut results.csv short and left no summary.json."""
    photos = tmp_path / "photos"
    _shape_png(photos / "b.png", 2)
    data = (photos / "b.png").read_bytes()
    for raw in (b"caf\xe9.png", b"new\nline.png", b"\x1b[31mred.png"):
        with open(os.path.join(os.fsencode(photos), raw), "wb") as fh:
            fh.write(data)
    out = tmp_path / "out"
    code, err = _cli(capsys, str(photos), "--methods", "random", "--out", str(out))
    assert code == 0, err
    ids = [r["id"] for r in _csv(out)]
    assert ids == ["\x1b[31mred.png", "b.png", "caf\\xe9.png", "new\nline.png"]
    assert (out / "results.csv").read_bytes().decode("utf-8")  # valid UTF-8 throughout
    assert json.loads((out / "summary.json").read_text())["images"] == 4
    assert "\x1b" not in err  # a name is never printed raw to the terminal


# ------------------------------------------------------------------------------------------------ results


def _copy_run(reference: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    return out


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """2 shapes images x the random method."""
    import torch

    from vitviz.evaluate import main

    os.environ.setdefault("VITVIZ_OFFLINE", "1")
    out = tmp_path_factory.mktemp("small")
    threads = torch.get_num_threads()
    try:
        assert main(["--shapes", "2", "--seed", "5", "--methods", "random", "--threads", "1", "--no-progress",
                     "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def _scores(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "attribute_ms"} for r in _csv(out)]


def test_a_malformed_results_line_is_quarantined_with_a_warning_and_recomputed(small_run, capsys, tmp_path):
    out = _copy_run(small_run, tmp_path)
    lines = (out / "rows-r0.jsonl").read_text().splitlines()
    damaged = json.loads(lines[1])
    damaged["pos_auc_tokens"] = "abc"
    (out / "rows-r0.jsonl").write_text("\n".join([lines[0], json.dumps(damaged), "not json at all"]) + "\n")
    code, err = _cli(capsys, "--shapes", "2", "--seed", "5", "--methods", "random", "--out", str(out))
    assert code == 0
    assert "vitviz.evaluate: warning: 2 unreadable lines of rows-r0.jsonl moved to quarantine-r0.jsonl" in err
    kept = [json.loads(line) for line in (out / "quarantine-r0.jsonl").read_text().splitlines()]
    assert [(k["line"], k["problem"]) for k in kept] == [(2, "'pos_auc_tokens' is 'abc', not a number"),
                                                        (3, "not JSON (Expecting value: line 1 column 1 (char 0))")]
    assert json.loads(kept[0]["text"]) == damaged  # kept aside as it was
    assert _scores(out) == _scores(small_run)  # the pair was computed again: rows complete, none invented


def test_ctrl_c_ends_with_one_line_and_the_run_resumes(small_run, capsys, tmp_path, monkeypatch):
    from vitviz.evaluation import runner

    out = tmp_path / "out"
    real = runner.evaluate_image
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "evaluate_image", interrupted)
    argv = ("--shapes", "2", "--seed", "5", "--methods", "random", "--out", str(out))
    code, err = _cli(capsys, *argv)
    assert code == 130
    assert err == (f"vitviz.evaluate: interrupted; the results so far are kept in {out}: run the same command again "
                   "to go on\n")
    assert len((out / "rows-r0.jsonl").read_text().splitlines()) == 1  # the first image is kept
    monkeypatch.setattr(runner, "evaluate_image", real)
    assert _cli(capsys, *argv)[0] == 0
    assert _scores(out) == _scores(small_run)


def test_a_damaged_run_record_or_manifest_is_a_message(small_run, capsys, tmp_path):
    out = _copy_run(small_run, tmp_path)
    argv = ("--shapes", "2", "--seed", "5", "--methods", "random", "--out", str(out))
    (out / "run.json").write_text("{broken")
    code, err = _cli(capsys, *argv)
    assert code == 2 and f"{out / 'run.json'} is damaged" in err
    (out / MANIFEST).write_text('{"tool": "something else", "files": ["photos"]}')
    code, err = _cli(capsys, *argv)
    assert code == 2 and "is not a manifest of vitviz.evaluate" in err


@pytest.mark.parametrize("text, problem", [
    ("{not json", "JSONDecodeError"),
    ("[1, 2]", "AttributeError"),
    ('{"methods": ["a"]}', "KeyError"),
    (b"\xff\xfe", "UnicodeDecodeError"),
])
def test_markdown_of_a_damaged_summary_is_a_message(capsys, tmp_path, text, problem):
    path = tmp_path / "summary.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    code, err = _cli(capsys, "--markdown", str(path))
    assert code == 2
    assert err.startswith(f"vitviz.evaluate: {path} is damaged or not a summary of this tool ({problem}")


# ------------------------------------------------------------------------------------------------ scale


def test_a_shard_of_a_billion_images_is_computed_on_demand():
    from torch.utils.data import DistributedSampler

    from vitviz.evaluation.distributed import World, shard_indices

    for length, size in ((5, 2), (7, 3), (2, 5), (1, 1)):
        for rank in range(size):
            reference = list(DistributedSampler(range(length), num_replicas=size, rank=rank, shuffle=False))
            shard = shard_indices(length, World(rank=rank, size=size))
            assert list(shard) == reference and len(shard) == len(reference)
            assert [i for i in range(-1, length + 1) if i in shard] == sorted(set(reference))
    huge = shard_indices(10**9, World(rank=1, size=4))
    assert len(huge) == 250_000_000 and huge[0] == 1 and huge[-1] == 999_999_997 and 999_999_997 in huge


@pytest.mark.slow
def test_a_billion_shapes_with_limit_1_runs_in_bounded_memory(tmp_path):
    """``--shapes 1000000000 --limit 1`` once listed a billion indices first (gigabytes). Run in a process whose
    address space is capped at 6 GB, so that a regression fails here instead of exhausting the machine."""
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))\n"
        "from vitviz.evaluate import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "out"
    env = {**os.environ, "VITVIZ_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, "--shapes", "1000000000", "--limit", "1", "--methods",
                           "random", "--threads", "1", "--no-progress", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stopped by --limit: 1 of 1000000000 images done" in done.stderr
    assert len(_csv(out)) == 1 and np.isfinite(float(_csv(out)[0]["pos_auc_tokens"]))
