"""Procedural "shapes" images: one labelled object on a cluttered background, with its exact mask.

Every image is a pure function of its seed, so a data set is just a seed plus a length (no files), and
a held-out set is a seed that training never used. Drawing uses only numpy and ``PIL.ImageDraw``.

An image is built in layers, back to front:

1. background: a two-colour linear gradient plus pixel noise;
2. clutter: long random lines crossing the frame;
3. distractors: small squiggles, irregular blobs and dashes, textured and outlined like the objects but
   much smaller (radius at most ``MAX_DISTRACTOR_RADIUS``, under half the smallest object's) and
   irregular, so none can pass for a class; they keep clear of the object's circumscribed circle;
4. the object: one of :data:`CLASSES`, at a random position and scale, turned by a random angle of at most
   ``Style.rotation`` from its upright pose (15 degrees by default), filled with a random
   texture (solid, stripes, dots, gradient, checker) whose main colour contrasts with what lies behind,
   and outlined in dark grey. It is drawn last, so its mask is exact: every masked pixel shows the object
   and nothing else.

:class:`Style` sets the difficulty (clutter level, object size, rotation, outline width); its defaults
are what the shipped model was trained and evaluated on.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    'CLASSES',
    'TEXTURES',
    'UPRIGHT',
    'Sample',
    'Style',
    'generate',
    'gallery_samples',
    'generate_batch',
    'sample_rng',
    'shape_mask',
    'texture',
]

CLASSES: tuple[str, ...] = (
    'circle', 'square', 'triangle', 'star', 'cross', 'ring', 'heart', 'arrow', 'crescent', 'hexagon',
)
TEXTURES: tuple[str, ...] = ('solid', 'stripes', 'dots', 'gradient', 'checker')

# Object radius range as a fraction of the image side (radius 17..35 px at 96 px); distractors stay
# below MAX_DISTRACTOR_RADIUS so that size alone separates them from any object.
MIN_RADIUS, MAX_RADIUS = 0.18, 0.36
MAX_DISTRACTOR_RADIUS = 0.085
# Angle (radians, image y axis pointing down) at which each class stands upright: a triangle's and a star's
# tip up, square and cross axis-aligned, a hexagon with flat top and bottom, the arrow pointing right,
# the crescent opening to the right, the heart with its lobes up.
UPRIGHT: dict[str, float] = {
    'circle': 0.0, 'square': math.pi / 4, 'triangle': -math.pi / 2, 'star': -math.pi / 2, 'cross': 0.0,
    'ring': 0.0, 'heart': 0.0, 'arrow': 0.0, 'crescent': 0.0, 'hexagon': 0.0,
}
MIN_CONTRAST = 110.0  # minimum RGB distance between the object's main colour and the background behind it


@dataclass(frozen=True)
class Style:
    """How hard the images are: clutter amount, object size, outlines.

    Attributes:
        clutter: range that each image's clutter level is drawn from; 1 is full clutter (noise, 2-8 lines,
            2-6 distractors), 0 a plain gradient with the object alone; levels scale noise and counts.
        radius: range of the object's circumscribed radius, as a fraction of the image side.
        outline: width in pixels of a dark outline drawn just inside every object's and distractor's edge
            (0: none). Part of the object: the mask covers it.
        textures: fills that objects and distractors draw from.
        rotation: largest turn, in degrees either way, away from the class's upright pose
            (:data:`UPRIGHT`); 180 allows any orientation.
    """

    clutter: tuple[float, float] = (0.5, 1.0)
    radius: tuple[float, float] = (MIN_RADIUS, MAX_RADIUS)
    outline: int = 2
    textures: tuple[str, ...] = TEXTURES
    rotation: float = 15.0


@dataclass(frozen=True)
class Sample:
    """One generated image with its ground truth.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` bool, True exactly where the object is visible.
        label: index into :data:`CLASSES`.
        texture: the object's fill, one of :data:`TEXTURES`.
        colors: the fill's main and second colour, RGB ints (a ``'solid'`` fill shows only the first).
        center: object centre ``(y, x)`` in pixels.
        radius: radius of the object's circumscribed circle in pixels.
        angle: rotation in radians.
        family: the style family that drew it (see :mod:`vitviz.shapes.families`).
    """

    image: np.ndarray
    mask: np.ndarray
    label: int
    texture: str
    colors: tuple[tuple[int, int, int], tuple[int, int, int]]
    center: tuple[float, float]
    radius: float
    angle: float
    family: str = 'classic'

    @property
    def class_name(self) -> str:
        """Name of the object's class."""
        return CLASSES[self.label]


def sample_rng(seed: int, index: int, split: int = 0) -> np.random.Generator:
    """Independent random stream for image ``index`` of data set ``(seed, split)``.

    Streams for different ``(seed, split, index)`` triples never coincide (``numpy.random.SeedSequence``),
    so a held-out set only needs another seed or split.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, split, index]))


def _polygon(n: int, cx: float, cy: float, r: float, angle: float, radii: Sequence[float] = (1.0,)) -> list:
    """Vertices of an n-gon around ``(cx, cy)``; ``radii`` cycles over vertices (stars alternate two)."""
    pts = []
    for k in range(n):
        a = angle + 2 * math.pi * k / n
        rk = r * radii[k % len(radii)]
        pts.append((cx + rk * math.cos(a), cy + rk * math.sin(a)))
    return pts


def _rotate(points: np.ndarray, cx: float, cy: float, r: float, angle: float) -> list:
    """Scale unit-frame ``(K, 2)`` points (x, y) by ``r``, rotate by ``angle``, move to ``(cx, cy)``."""
    c, s = math.cos(angle), math.sin(angle)
    x = points[:, 0] * c - points[:, 1] * s
    y = points[:, 0] * s + points[:, 1] * c
    return list(zip((cx + r * x).tolist(), (cy + r * y).tolist()))


_CROSS = np.array([(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1),
                   (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)], dtype=np.float64) * 0.95
_ARROW = np.array([(-1, -0.22), (0.2, -0.22), (0.2, -0.6), (1, 0), (0.2, 0.6), (0.2, 0.22), (-1, 0.22)],
                  dtype=np.float64)
_ARROW /= np.hypot(_ARROW[:, 0], _ARROW[:, 1]).max()  # (K, 2) inside the unit circle
_T = np.linspace(0, 2 * np.pi, 48, endpoint=False)
_HEART = np.stack([16 * np.sin(_T) ** 3,
                   -(13 * np.cos(_T) - 5 * np.cos(2 * _T) - 2 * np.cos(3 * _T) - np.cos(4 * _T)) - 2.5],
                  axis=1)
_HEART = (_HEART - (_HEART.max(0) + _HEART.min(0)) / 2)  # centre the bounding box
_HEART /= np.hypot(_HEART[:, 0], _HEART[:, 1]).max()  # (48, 2) touching the unit circle


def shape_mask(label: int, size: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Binary ``(size, size)`` mask of class ``label`` centred at ``(cx, cy)``, radius ``r``, rotated.

    Args:
        label: index into :data:`CLASSES`.
        size: image side in pixels.
        cx: centre column.
        cy: centre row.
        r: circumscribed radius in pixels.
        angle: rotation in radians.
    """
    img = Image.new('L', (size, size), 0)
    draw = ImageDraw.Draw(img)
    name = CLASSES[label]
    box = (cx - r, cy - r, cx + r, cy + r)
    if name == 'circle':
        draw.ellipse(box, fill=255)
    elif name == 'square':
        draw.polygon(_polygon(4, cx, cy, r, angle), fill=255)
    elif name == 'triangle':
        draw.polygon(_polygon(3, cx, cy, r, angle), fill=255)
    elif name == 'hexagon':
        draw.polygon(_polygon(6, cx, cy, r, angle), fill=255)
    elif name == 'star':
        draw.polygon(_polygon(10, cx, cy, r, angle, radii=(1.0, 0.45)), fill=255)
    elif name == 'cross':
        draw.polygon(_rotate(_CROSS, cx, cy, r, angle), fill=255)
    elif name == 'arrow':
        draw.polygon(_rotate(_ARROW, cx, cy, r, angle), fill=255)
    elif name == 'heart':
        draw.polygon(_rotate(_HEART, cx, cy, r, angle), fill=255)
    elif name == 'ring':
        draw.ellipse(box, fill=255)
        ri = 0.55 * r
        draw.ellipse((cx - ri, cy - ri, cx + ri, cy + ri), fill=0)
    elif name == 'crescent':
        draw.ellipse(box, fill=255)
        ox, oy = cx + 0.5 * r * math.cos(angle), cy + 0.5 * r * math.sin(angle)
        ri = 0.8 * r
        draw.ellipse((ox - ri, oy - ri, ox + ri, oy + ri), fill=0)
    else:  # pragma: no cover - CLASSES and this switch are kept in step
        raise ValueError(f'unknown class {name!r}')
    return np.asarray(img) > 127


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random RGB colour with integer values, as float32 ``(3,)``."""
    return rng.integers(0, 256, size=3).astype(np.float32)


def _far_colour(rng: np.random.Generator, ref: np.ndarray, min_dist: float) -> np.ndarray:
    """A random colour at least ``min_dist`` (RGB L2) from ``ref``; the farthest of a few tries otherwise."""
    best, best_d = None, -1.0
    for _ in range(20):
        c = _random_colour(rng)
        d = float(np.linalg.norm(c - ref))
        if d >= min_dist:
            return c
        if d > best_d:
            best, best_d = c, d
    return best


def texture(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, kind: str,
            c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """Colours of texture ``kind`` at pixel coordinates ``(yy, xx)``, as uint8 ``(*yy.shape, 3)``.

    Only the pixels that will show the texture are computed (a mask's ``nonzero()`` coordinates), which
    keeps generation cheap. Stripes and dots take exactly ``c1`` or ``c2``; gradients and checkers mix them.

    Args:
        rng: random stream (period, angle, phase).
        yy: row coordinates.
        xx: column coordinates, same shape as ``yy``.
        kind: one of :data:`TEXTURES`.
        c1: main colour, float RGB ``(3,)``.
        c2: second colour, float RGB ``(3,)``.
    """
    yy = yy.astype(np.float32)
    xx = xx.astype(np.float32)
    a = rng.uniform(0, np.pi)
    u = xx * math.cos(a) + yy * math.sin(a)
    if kind == 'solid':
        t = np.zeros_like(u)
    elif kind == 'stripes':
        period = rng.uniform(4, 9)
        t = (np.mod(u + rng.uniform(0, period), period) < period * 0.5).astype(np.float32)
    elif kind == 'dots':
        period = rng.uniform(5, 9)
        dy = np.mod(yy + rng.uniform(0, period), period) - period / 2
        dx = np.mod(xx + rng.uniform(0, period), period) - period / 2
        t = (dx ** 2 + dy ** 2 < (period * 0.28) ** 2).astype(np.float32)
    elif kind == 'gradient':
        lo, hi = (float(u.min()), float(u.max())) if u.size else (0.0, 1.0)
        t = (u - lo) / max(hi - lo, 1e-6) * rng.uniform(0.4, 0.8)  # stay nearer c1: it dominates
    elif kind == 'checker':
        period = rng.uniform(4, 8)
        t = ((np.floor(xx / period) + np.floor(yy / period)) % 2) * np.float32(0.6)
    else:
        raise ValueError(f'unknown texture {kind!r}')
    t = t[..., None]  # (..., 1)
    out = c1.astype(np.float32) * (1 - t) + c2.astype(np.float32) * t  # (..., 3)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _background(rng: np.random.Generator, size: int, clutter: float = 1.0) -> np.ndarray:
    """Gradient + noise + crossing lines, float32 ``(size, size, 3)``; ``clutter`` scales noise and lines."""
    c1, c2 = _random_colour(rng), _random_colour(rng)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)  # (S, S) each
    a = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (xx - 0.5) * math.cos(a) + (yy - 0.5) * math.sin(a), 0, 1)[..., None]  # (S, S, 1)
    bg = c1 * (1 - t) + c2 * t  # (S, S, 3)
    bg += rng.standard_normal(size=(size, size, 3), dtype=np.float32) * np.float32(rng.uniform(6, 22) * clutter)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(round(rng.integers(2, 9) * clutter))):
        p0, p1 = rng.uniform(-0.2, 1.2, size=2) * size, rng.uniform(-0.2, 1.2, size=2) * size
        draw.line([tuple(p0), tuple(p1)], fill=tuple(int(v) for v in _random_colour(rng)),
                  width=int(rng.integers(1, 3)))
    return np.asarray(img).astype(np.float32)


def _distractor_mask(rng: np.random.Generator, size: int, cx: float, cy: float) -> np.ndarray:
    """Mask of one small non-class thing: a squiggle, an irregular blob or a short dash."""
    img = Image.new('L', (size, size), 0)
    draw = ImageDraw.Draw(img)
    rmax = MAX_DISTRACTOR_RADIUS * size
    kind = rng.integers(3)
    if kind == 0:  # squiggle: random walk polyline
        pts = [(cx, cy)]
        for _ in range(int(rng.integers(3, 7))):
            a = rng.uniform(0, 2 * np.pi)
            step = rng.uniform(0.3, 0.6) * rmax
            pts.append((pts[-1][0] + step * math.cos(a), pts[-1][1] + step * math.sin(a)))
        draw.line(pts, fill=255, width=int(rng.integers(1, 4)))
    elif kind == 1:  # blob: star-convex polygon with jagged random radii, never regular
        n = int(rng.integers(7, 12))
        radii = rng.uniform(0.35, 1.0, size=n)
        draw.polygon(_polygon(n, cx, cy, rng.uniform(0.4, 1.0) * rmax, rng.uniform(0, 2 * np.pi),
                              radii=radii.tolist()), fill=255)
    else:  # dash
        a = rng.uniform(0, np.pi)
        h = rng.uniform(0.5, 1.0) * rmax
        draw.line([(cx - h * math.cos(a), cy - h * math.sin(a)), (cx + h * math.cos(a), cy + h * math.sin(a))],
                  fill=255, width=int(rng.integers(2, 5)))
    return np.asarray(img) > 127


def _erode(mask: np.ndarray, width: int) -> np.ndarray:
    """Binary erosion by a ``width``-step 4-neighbourhood (pixels outside the image count as background)."""
    out = mask.copy()
    for _ in range(width):
        inner = out.copy()
        inner[1:] &= out[:-1]
        inner[:-1] &= out[1:]
        inner[:, 1:] &= out[:, :-1]
        inner[:, :-1] &= out[:, 1:]
        inner[0] = inner[-1] = False
        inner[:, 0] = inner[:, -1] = False
        out = inner
    return out


def _outline(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, width: int) -> None:
    """Darken the ``width``-pixel rim just inside ``mask`` (in place)."""
    if width > 0:
        rim = mask & ~_erode(mask, width)
        img[rim] = np.float32(rng.integers(0, 40))


def _paint(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray,
           textures: Sequence[str] = TEXTURES) -> tuple[str, np.ndarray, np.ndarray]:
    """Fill ``img[mask]`` in place with a random texture whose main colour contrasts with what it covers.

    Returns:
        The texture kind and its two colours.
    """
    ys, xs = np.nonzero(mask)
    kind = textures[int(rng.integers(len(textures)))]
    c1 = _far_colour(rng, img[ys, xs].mean(axis=0), MIN_CONTRAST)
    c2 = _far_colour(rng, c1, 60.0)
    img[ys, xs] = texture(rng, ys, xs, kind, c1, c2)
    return kind, c1, c2


def generate(rng: np.random.Generator | int, image_size: int = 96, label: int | None = None,
             style: Style = Style()) -> Sample:
    """Draw one image with one object of a random (or given) class.

    Args:
        rng: random stream, or an int seed for ``numpy.random.default_rng``.
        image_size: side of the square image in pixels.
        label: force this class index instead of drawing one uniformly.
        style: clutter, object size and outline ranges.

    Returns:
        The image, the object's exact mask and its label.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    s = image_size
    if label is None:
        label = int(rng.integers(len(CLASSES)))
    r = rng.uniform(*style.radius) * s
    cx, cy = rng.uniform(r, s - r), rng.uniform(r, s - r)
    angle = UPRIGHT[CLASSES[label]] + math.radians(style.rotation) * rng.uniform(-1.0, 1.0)
    clutter = rng.uniform(*style.clutter)

    img = _background(rng, s, clutter)  # (S, S, 3) float32
    keep_out = r + MAX_DISTRACTOR_RADIUS * s + 2  # distractors never reach the object's circle
    for _ in range(int(round(rng.integers(2, 7) * clutter))):
        dy, dx = rng.uniform(0, s, size=2)
        if math.hypot(dx - cx, dy - cy) > keep_out:
            dmask = _distractor_mask(rng, s, dx, dy)
            if dmask.any():
                _paint(rng, img, dmask, style.textures)
                _outline(rng, img, dmask, style.outline)

    mask = shape_mask(label, s, cx, cy, r, angle)
    kind, c1, c2 = _paint(rng, img, mask, style.textures)
    _outline(rng, img, mask, style.outline)
    return Sample(image=img.astype(np.uint8), mask=mask, label=label, texture=kind,
                  colors=(tuple(int(v) for v in c1), tuple(int(v) for v in c2)),
                  center=(float(cy), float(cx)), radius=float(r), angle=float(angle))


def generate_batch(seed: int, count: int, *, split: int = 0, start: int = 0, image_size: int = 96,
                   style: Style = Style()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images ``start .. start+count-1`` of data set ``(seed, split)``, stacked.

    Returns:
        ``images (count, H, W, 3)`` uint8, ``masks (count, H, W)`` bool and ``labels (count,)`` int64.
    """
    samples = [generate(sample_rng(seed, start + i, split), image_size, style=style) for i in range(count)]
    images = np.stack([smp.image for smp in samples])  # (count, H, W, 3)
    masks = np.stack([smp.mask for smp in samples])  # (count, H, W)
    labels = np.array([smp.label for smp in samples], dtype=np.int64)
    return images, masks, labels


GALLERY_SEED, GALLERY_SPLIT = 7, 2


def gallery_samples(classes: Sequence[str], image_size: int = 96) -> list[Sample]:
    """The first image of each of ``classes`` in the fixed gallery data set (seed 7, split 2), in that order.

    These are the app's sample images ``vitviz/assets/samples/shapes_<class>.png``.
    """
    wanted = {CLASSES.index(name): name for name in classes}
    found: dict[str, Sample] = {}
    index = 0
    while len(found) < len(wanted):
        sample = generate(sample_rng(GALLERY_SEED, index, GALLERY_SPLIT), image_size)
        index += 1
        if sample.label in wanted and wanted[sample.label] not in found:
            found[wanted[sample.label]] = sample
    return [found[name] for name in classes]

