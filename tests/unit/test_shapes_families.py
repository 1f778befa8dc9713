"""Style families of the shapes generator: deterministic, exact masks, and each family really draws differently.

The held-out families come from :mod:`vitviz.shapes.painter`, which must stay independent of the training
generator: its areas are checked against closed-form geometry here, and its imports are checked too.
"""
from __future__ import annotations

import ast
import inspect
import math

import numpy as np
import pytest

from vitviz.shapes import CLASSES
from vitviz.shapes.families import (
    FAMILIES,
    HELD_OUT_FAMILIES,
    ROTATION,
    TRAIN_FAMILIES,
    TRAIN_MIX,
    contours,
    generate_family,
    generate_mix,
    silhouette,
)
from vitviz.shapes.generator import UPRIGHT, sample_rng, shape_mask

SEED = 31_337


def _draw(family: str, count: int = 20, split: int = 5) -> list:
    return [generate_family(sample_rng(SEED, i, split), family, label=i % len(CLASSES)) for i in range(count)]


@pytest.fixture(scope="module")
def drawn():
    return {family: _draw(family) for family in FAMILIES}


def test_families_are_listed_once_and_held_out_ones_are_not_trained_on():
    assert set(TRAIN_FAMILIES) | set(HELD_OUT_FAMILIES) == set(FAMILIES)
    assert not set(TRAIN_FAMILIES) & set(HELD_OUT_FAMILIES) and len(HELD_OUT_FAMILIES) >= 2
    assert {family for family, weight in TRAIN_MIX if weight > 0} == set(TRAIN_FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_same_stream_same_image_other_streams_differ(family):
    a = generate_family(sample_rng(4, 9, 1), family)
    b = generate_family(sample_rng(4, 9, 1), family)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) and a.label == b.label
    assert a.family == family and a.image.dtype == np.uint8 and a.image.shape == (96, 96, 3)
    assert a.mask.shape == (96, 96) and a.mask.dtype == bool
    for other in (sample_rng(4, 10, 1), sample_rng(5, 9, 1), sample_rng(4, 9, 2)):
        assert not np.array_equal(a.image, generate_family(other, family).image)


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown style family"):
        generate_family(0, "watercolour")


def test_mix_picks_families_by_weight_and_balances_classes():
    samples = [generate_mix(sample_rng(SEED, i, 7), TRAIN_MIX) for i in range(600)]
    families = [s.family for s in samples]
    weights = dict(TRAIN_MIX)
    total = sum(weights.values())
    for family, weight in weights.items():
        share = families.count(family) / len(samples)
        assert abs(share - weight / total) < 4 * math.sqrt(weight / total / len(samples)), family
    counts = np.bincount([s.label for s in samples], minlength=len(CLASSES))
    assert counts.min() >= 35  # 60 expected per class


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_mask_is_one_sizeable_object_inside_its_circle(family, drawn):
    for s in drawn[family]:
        area = s.mask.sum()
        assert area >= 0.2 * s.radius ** 2, (family, s.class_name)
        if family == "photo":  # the camera moved the drawing: only its size is comparable
            continue
        ys, xs = np.nonzero(s.mask)
        cy, cx = s.center
        assert np.hypot(ys + 0.5 - cy, xs + 0.5 - cx).max() <= s.radius * 1.1 + 4, (family, s.class_name)


def test_rotation_follows_what_each_class_allows():
    for family in ("flat", "mixed", "outline", "sketch"):
        for i in range(40):
            s = generate_family(sample_rng(SEED, i, 8), family)
            assert abs(s.angle - UPRIGHT[s.class_name]) <= math.radians(ROTATION[s.class_name]) + 1e-9
    assert ROTATION["heart"] < 90 <= ROTATION["arrow"]


def test_contours_enclose_the_generators_own_masks():
    for label, name in enumerate(CLASSES):
        for angle in (0.3, 2.0):
            ours = silhouette(contours(label, 48, 48, 40, angle), 96)
            ref = shape_mask(label, 96, 48, 48, 40, angle)
            iou = (ours & ref).sum() / (ours | ref).sum()
            assert iou > 0.93, (name, iou)  # PIL fills ellipses and polygons a little differently


def test_flat_shapes_are_one_solid_colour_exactly_on_the_mask(drawn):
    for s in drawn["flat"]:
        assert s.texture == "solid"
        assert (s.image[s.mask] == np.array(s.colors[0])).all()
        outside = s.image[~s.mask]
        assert (outside == np.array(s.colors[0])).all(1).mean() < 0.01


def test_outline_shapes_show_the_background_inside(drawn):
    for s in drawn["outline"]:
        ink = (s.image == np.array(s.colors[0])).all(-1)
        assert ink[s.mask].mean() < 0.9 and (ink & ~s.mask).sum() == 0  # ink only on the figure, not all of it
        inner = s.mask & ~ink
        assert inner.sum() > 0  # the inside of the outline is background, still counted as the figure


def test_sketches_are_pen_on_paper_and_photos_are_the_same_sketch_photographed(drawn):
    for sketch, photo in zip(drawn["sketch"], drawn["photo"]):
        paper = sketch.image[~sketch.mask].astype(float)
        assert np.median(paper.mean(1)) > 190  # light paper
        pen = (sketch.image == np.array(sketch.colors[0], dtype=np.uint8).clip(0, 255)).all(-1)
        assert pen.sum() > 0 and (pen & ~sketch.mask).sum() == 0
        assert sketch.label == photo.label and sketch.center == photo.center  # one drawing ...
        diff = np.abs(sketch.image.astype(float) - photo.image.astype(float)).mean()
        assert diff > 8  # ... seen through a camera: warped, lit, blurred
        assert abs(int(photo.mask.sum()) - int(sketch.mask.sum())) < 0.6 * sketch.mask.sum()


def test_families_differ_in_their_statistics(drawn):
    def colours_in_mask(s) -> int:
        return len(np.unique(s.image[s.mask].reshape(-1, 3), axis=0))

    def paperness(s) -> float:
        return float(np.median(s.image[~s.mask].astype(float).mean(1)))

    flat = np.median([colours_in_mask(s) for s in drawn["flat"]])
    paint = np.median([colours_in_mask(s) for s in drawn["paint_solid"]])
    mixed = np.median([colours_in_mask(s) for s in drawn["mixed"]])
    assert flat == 1 and paint > 1 and mixed >= 2  # anti-aliased edges; textures and outlines
    assert np.median([paperness(s) for s in drawn["sketch"]]) > 190 > np.median(
        [paperness(s) for s in drawn["classic"]])
    for a in FAMILIES:
        for b in FAMILIES:
            if a < b:
                assert any(not np.array_equal(x.image, y.image) for x, y in zip(drawn[a], drawn[b]))


# -------------------------------------------------------------------------------------- the held-out painter

def test_painter_is_independent_of_the_training_generator():
    from vitviz.shapes import painter

    tree = ast.parse(inspect.getsource(painter))
    imported = {(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    local = {name for module, name in imported if module and module.startswith("generator")}
    assert local == {"CLASSES", "Sample"}  # the class list and the result type, no drawing code
    assert not any(module and module.startswith("families") for module, _ in imported)
    modules = {module for module, _ in imported} | {alias.name for node in ast.walk(tree)
                                                      if isinstance(node, ast.Import) for alias in node.names}
    assert not any(module and module.startswith("PIL") for module in modules)  # its own rasteriser


@pytest.mark.parametrize("name,params,area", [
    ("circle", {}, math.pi),
    ("square", {}, 2.0),
    ("hexagon", {}, 3 * math.sqrt(3) / 2),
    ("triangle", {}, 3 * math.sqrt(3) / 4),
    ("ring", {"hole": 0.5}, math.pi * 0.75),
    ("cross", {"arm": 0.3}, (8 * 0.3 - 4 * 0.09) / (1 + 0.09)),
    ("star", {"inner": 0.5}, 10 * 0.5 * 0.5 * math.sin(math.pi / 5)),
])
def test_painter_areas_match_geometry(name, params, area):
    from vitviz.shapes.painter import inside

    grid = (np.arange(800) + 0.5) / 400 - 1  # 800 x 800 samples over [-1, 1]^2
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    measured = inside(name, xx, yy, params).mean() * 4
    assert measured == pytest.approx(area, rel=0.01)


@pytest.mark.parametrize("outline", [False, True])
def test_painted_mask_is_the_half_covered_region(outline):
    from vitviz.shapes.painter import paint

    for label in range(len(CLASSES)):
        s = paint(sample_rng(SEED, label, 9), 96, label, outline=outline)
        ink = np.array(s.colors[0], float)
        near_ink = np.linalg.norm(s.image.astype(float) - ink, axis=-1) < 1.0
        assert (near_ink & ~s.mask).sum() <= 2, CLASSES[label]  # fully inked pixels are on the figure
        if not outline:
            assert near_ink[s.mask].mean() > 0.6  # solid: most of the figure is pure ink
        else:
            assert near_ink[s.mask].mean() < 0.9  # outline: the inside shows the background
