"""Named style families: the many ways one of the ten shapes can be drawn.

The original generator (:func:`~vitviz.shapes.generator.generate`, family ``'classic'``) draws textured,
dark-outlined objects on cluttered backgrounds; a model trained on it alone learns that style and misses
plainly drawn shapes. Each family here is one way of drawing, so whole families can be kept out of
training and used to measure generalisation (:data:`HELD_OUT_FAMILIES`, drawn by the independent routine in
:mod:`.painter`).

Training families (:data:`TRAIN_FAMILIES`):

``classic``
    the original generator (texture, dark outline, clutter, near upright).
``flat``
    one solid colour, no outline, on a plain or gradient background: a shape made in a paint program.
``mixed``
    everything at random: fills solid / gradient / stripes / dots / checker, outlines of any width and
    colour or none, backgrounds plain / gradient / noise / clutter, sometimes partly occluded.
``outline``
    outline only, of any width and colour, on a plain, gradient or noisy background.
``sketch``
    hand drawn on paper: wobbly pen strokes that overshoot, sometimes hatched or coloured in.
``photo``
    a ``sketch`` sheet photographed: perspective, the table around the sheet, uneven lighting and shadow, a
    colour cast, blur, sensor noise and JPEG compression.

All families share the pose rules: any rotation the class allows (:data:`ROTATION`), a circumscribed radius
from small to nearly filling the frame, strong colour changes. Every image is a pure function of its random
stream, and its mask is exact: the figure's region, i.e. every pixel the drawn figure covers *including the
inside of an outline or a sketch* (what a person pointing at "the shape" would point at), minus anything
occluding it.

Every style family here is a short drawing recipe, with the mix that training draws from; the surfaces they are
drawn on (backgrounds, paper) are in :mod:`.surfaces`.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vitviz.images.encode import encode_jpeg

from .generator import (
    _ARROW,
    _CROSS,
    _HEART,
    CLASSES,
    MIN_CONTRAST,
    UPRIGHT,
    Sample,
    Style,
    _distractor_mask,
    _far_colour,
    _polygon,
    _random_colour,
    _rotate,
    generate,
    sample_rng,
    texture,
)
from .painter import paint
from .surfaces import BACKGROUNDS, gradient, noisy, paper, plain, smooth_noise

__all__ = [
    'FAMILIES',
    'HELD_OUT_FAMILIES',
    'ROTATION',
    'TRAIN_FAMILIES',
    'TRAIN_MIX',
    'contours',
    'family_gallery',
    'generate_family',
    'generate_mix',
    'silhouette',
]

# Largest turn (degrees either way) from the upright pose that still shows the class: all but the heart
# may stand any way up (an arrow pointing left is still an arrow); an upside-down heart is not a heart.
ROTATION: dict[str, float] = {name: 180.0 for name in CLASSES} | {'heart': 35.0}
RADIUS = (0.13, 0.47)  # circumscribed radius as a fraction of the side: small to nearly filling the frame
PENS = ((20, 20, 25), (25, 35, 110), (30, 60, 170), (150, 25, 30), (20, 100, 45), (70, 70, 75), (90, 40, 130))
MIXED_TEXTURES = ('solid', 'gradient', 'stripes', 'dots', 'checker')

Drawer = Callable[[np.random.Generator, int, int], Sample]


# ------------------------------------------------------------------------------------------------ geometry

def _circle(n: int = 64, radius: float = 1.0, x0: float = 0.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([x0 + radius * np.cos(t), radius * np.sin(t)], axis=1)  # (n, 2)


def _crescent() -> np.ndarray:
    """Unit-frame outline of the generator's crescent: unit disc minus the disc of radius 0.8 at (0.5, 0)."""
    x = (1 + 0.25 - 0.64) / (2 * 0.5)  # where the two circles cross
    a_out = math.atan2(math.sqrt(1 - x * x), x)
    a_in = math.atan2(math.sqrt(1 - x * x), x - 0.5)
    outer = np.linspace(a_out, 2 * np.pi - a_out, 40)  # the back of the disc, through angle pi
    inner = np.linspace(2 * np.pi - a_in, a_in, 32)  # the bite, back again through angle pi
    return np.concatenate([np.stack([np.cos(outer), np.sin(outer)], 1),
                           np.stack([0.5 + 0.8 * np.cos(inner), 0.8 * np.sin(inner)], 1)])  # (72, 2)


_UNIT: dict[str, list[np.ndarray]] = {  # outer outline first, then holes; unit circumscribed radius
    'circle': [_circle()],
    'square': [np.array(_polygon(4, 0, 0, 1, 0))],
    'triangle': [np.array(_polygon(3, 0, 0, 1, 0))],
    'hexagon': [np.array(_polygon(6, 0, 0, 1, 0))],
    'star': [np.array(_polygon(10, 0, 0, 1, 0, radii=(1.0, 0.45)))],
    'cross': [_CROSS],
    'arrow': [_ARROW],
    'heart': [_HEART],
    'ring': [_circle(), _circle(48, 0.55)],
    'crescent': [_crescent()],
}


def contours(label: int, cx: float, cy: float, r: float, angle: float) -> list[np.ndarray]:
    """Closed outlines of class ``label`` in pixels, ``(K, 2)`` (x, y) each: the outer one, then holes.

    The same geometry as :func:`~vitviz.shapes.generator.shape_mask` (circles as 64-gons).
    """
    return [np.array(_rotate(poly, cx, cy, r, angle)) for poly in _UNIT[CLASSES[label]]]


def silhouette(polys: Sequence[np.ndarray], size: int) -> np.ndarray:
    """``(size, size)`` bool region inside the first outline and outside the others."""
    img = Image.new('L', (size, size), 0)
    draw = ImageDraw.Draw(img)
    for k, poly in enumerate(polys):
        draw.polygon([tuple(p) for p in poly.tolist()], fill=0 if k else 255)
    return np.asarray(img) > 127


def _stroke(polys: Sequence[np.ndarray], size: int, width: int, closed: bool = True) -> np.ndarray:
    """``(size, size)`` bool pixels a pen of ``width`` covers along each outline."""
    img = Image.new('L', (size, size), 0)
    draw = ImageDraw.Draw(img)
    for poly in polys:
        pts = [tuple(p) for p in poly.tolist()]
        draw.line(pts + pts[:1] if closed else pts, fill=255, width=width, joint='curve')
    return np.asarray(img) > 127


def _pose(rng: np.random.Generator, label: int, size: int,
          radius: tuple[float, float] = RADIUS) -> tuple[float, float, float, float]:
    """Centre ``(cx, cy)``, radius and angle: the whole figure stays inside the frame."""
    name = CLASSES[label]
    r = rng.uniform(*radius) * size
    margin = r + 1.5
    cx, cy = rng.uniform(margin, size - margin), rng.uniform(margin, size - margin)
    angle = UPRIGHT[name] + math.radians(ROTATION[name]) * rng.uniform(-1.0, 1.0)
    return cx, cy, r, angle


def _occlude(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, cx: float, cy: float,
             r: float) -> np.ndarray:
    """Paint an irregular blob over part of the object's edge (in place); the mask without it.

    The blob (a jagged star-convex polygon, never a class shape) is skipped when it would hide more than
    a third of the object.
    """
    size = mask.shape[0]
    a = rng.uniform(0, 2 * np.pi)
    d = rng.uniform(0.6, 1.1) * r
    n = int(rng.integers(7, 12))
    blob = Image.new('L', (size, size), 0)
    ImageDraw.Draw(blob).polygon(
        _polygon(n, cx + d * math.cos(a), cy + d * math.sin(a), rng.uniform(0.35, 0.6) * r,
                 rng.uniform(0, 2 * np.pi), radii=rng.uniform(0.4, 1.0, size=n).tolist()), fill=255)
    occ = np.asarray(blob) > 127
    if (occ & mask).sum() > mask.sum() / 3:
        return mask
    ys, xs = np.nonzero(occ)
    kind = MIXED_TEXTURES[int(rng.integers(len(MIXED_TEXTURES)))]
    img[ys, xs] = texture(rng, ys, xs, kind, _random_colour(rng), _random_colour(rng))
    return mask & ~occ


def _fill(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, kinds: Sequence[str]) -> tuple:
    """Fill ``img[mask]`` with a texture contrasting with what it covers; returns kind and colours."""
    ys, xs = np.nonzero(mask)
    kind = kinds[int(rng.integers(len(kinds)))]
    c1 = _far_colour(rng, img[ys, xs].mean(axis=0), MIN_CONTRAST)
    c2 = _far_colour(rng, c1, 60.0)
    img[ys, xs] = texture(rng, ys, xs, kind, c1, c2)
    return kind, c1, c2


def _sample(img: np.ndarray, mask: np.ndarray, label: int, kind: str, c1, c2, pose, family: str) -> Sample:
    cx, cy, r, angle = pose
    return Sample(image=np.clip(np.rint(img), 0, 255).astype(np.uint8), mask=mask, label=label, texture=kind,
                  colors=(tuple(int(v) for v in c1), tuple(int(v) for v in c2)), center=(float(cy), float(cx)),
                  radius=float(r), angle=float(angle), family=family)


# ---------------------------------------------------------------------------------------- clean families

def _classic(rng: np.random.Generator, size: int, label: int) -> Sample:
    return generate(rng, size, label=label, style=Style())  # Sample.family defaults to 'classic'


def _flat(rng: np.random.Generator, size: int, label: int) -> Sample:
    pose = _pose(rng, label, size)
    img = (plain if rng.random() < 0.6 else gradient)(rng, size)
    mask = silhouette(contours(label, *pose), size)
    kind, c1, c2 = _fill(rng, img, mask, ('solid',))
    return _sample(img, mask, label, kind, c1, c2, pose, 'flat')


def _mixed(rng: np.random.Generator, size: int, label: int) -> Sample:
    pose = _pose(rng, label, size)
    img = BACKGROUNDS[('plain', 'gradient', 'noise', 'clutter')[int(rng.integers(4))]](rng, size)
    polys = contours(label, *pose)
    if rng.random() < 0.4:  # small distractors, clear of the object
        keep_out = pose[2] + 0.09 * size
        for _ in range(int(rng.integers(1, 5))):
            dy, dx = rng.uniform(0, size, size=2)
            if math.hypot(dx - pose[0], dy - pose[1]) > keep_out:
                d = _distractor_mask(rng, size, dx, dy)
                if d.any():
                    _fill(rng, img, d, MIXED_TEXTURES)
    mask = silhouette(polys, size)
    kind, c1, c2 = _fill(rng, img, mask, MIXED_TEXTURES)
    width = int(rng.integers(0, 6)) if rng.random() < 0.6 else 0
    if width:
        stroke = _stroke(polys, size, width)
        img[stroke] = _far_colour(rng, c1, 80.0) if rng.random() < 0.5 else np.float32(rng.integers(0, 50))
        mask = mask | stroke
    if rng.random() < 0.3:
        mask = _occlude(rng, img, mask, pose[0], pose[1], pose[2])
    return _sample(img, mask, label, kind, c1, c2, pose, 'mixed')


def _outline_only(rng: np.random.Generator, size: int, label: int) -> Sample:
    pose = _pose(rng, label, size)
    img = BACKGROUNDS[('plain', 'gradient', 'noise')[int(rng.integers(3))]](rng, size)
    polys = contours(label, *pose)
    stroke = _stroke(polys, size, int(rng.integers(1, 7)))
    c1 = _far_colour(rng, img[stroke].mean(axis=0), MIN_CONTRAST)
    img[stroke] = c1
    return _sample(img, silhouette(polys, size) | stroke, label, 'outline', c1, c1, pose, 'outline')


# ------------------------------------------------------------------------------------------- hand drawn

def _smooth_path(rng: np.random.Generator, n: int, amplitude: float) -> np.ndarray:
    """``(n, 2)`` slowly varying offsets (a few random sinusoids along the path) plus a little jitter."""
    t = np.linspace(0, 1, n)[:, None]  # (n, 1)
    out = np.zeros((n, 2))
    for _ in range(3):
        freq = rng.uniform(1, 5)
        out += rng.uniform(0.3, 1.0, size=2) * np.sin(2 * np.pi * (freq * t + rng.uniform(0, 1, size=2)))
    return out * amplitude / 2 + rng.standard_normal((n, 2)) * amplitude * 0.08


def _resample(poly: np.ndarray, step: float) -> np.ndarray:
    """Points every ``step`` pixels along the closed outline ``poly`` ``(K, 2)``."""
    closed = np.concatenate([poly, poly[:1]])  # (K+1, 2)
    seg = np.hypot(*np.diff(closed, axis=0).T)
    arc = np.concatenate([[0], np.cumsum(seg)])
    s = np.arange(0, arc[-1], step)
    return np.stack([np.interp(s, arc, closed[:, 0]), np.interp(s, arc, closed[:, 1])], axis=1)


def _hand(rng: np.random.Generator, poly: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """A hand-drawn version of a closed outline: the closed wobbly outline and the pen's path.

    The pen starts somewhere on the outline, wobbles by a few percent of the radius, and stops a little
    before or after its starting point (a gap of at most a couple of pixels, or an overshoot).
    """
    pts = _resample(poly, 1.5)
    start = int(rng.integers(len(pts)))
    pts = np.roll(pts, -start, axis=0)
    wobbly = pts + _smooth_path(rng, len(pts), rng.uniform(0.02, 0.07) * r)
    extra = int(rng.uniform(-0.02, 0.1) * len(pts))
    path = np.concatenate([wobbly, wobbly[:max(extra, 0)]]) if extra >= 0 else wobbly[:extra]
    return wobbly, path


def _draw_sketch(rng: np.random.Generator, size: int, label: int) -> tuple:
    """Pen drawing on paper: image, mask, fill kind, pen colour, pose."""
    pose = _pose(rng, label, size)
    img = paper(rng, size)
    polys = contours(label, *pose)
    hands = [_hand(rng, poly, pose[2]) for poly in polys]
    region = silhouette([w for w, _ in hands], size)
    pen = np.clip(np.rint(np.array(PENS[int(rng.integers(len(PENS)))]) + rng.uniform(-15, 15, size=3)), 0, 255)
    pen = pen.astype(np.float32)
    choice = rng.random()
    kind = 'sketch'
    if choice < 0.22:  # hatched inside
        kind = 'hatched'
        a, pitch = rng.uniform(0, np.pi), rng.uniform(3, 6)
        yy, xx = np.mgrid[0:size, 0:size]
        u = xx * math.cos(a) + yy * math.sin(a)
        hatch = region & (np.mod(u + rng.uniform(0, pitch), pitch) < rng.uniform(0.8, 1.6))
        img[hatch] = img[hatch] * 0.35 + pen * 0.65
    elif choice < 0.42:  # coloured in with a marker or crayon, blotchy
        kind = 'coloured'
        colour = _random_colour(rng)
        strength = 0.55 + 0.4 * (smooth_noise(rng, size, 8)[region][:, None] + 1) / 2
        img[region] = img[region] * (1 - strength) + colour * strength
    width = int(rng.integers(1, 5))
    stroke = _stroke([path for _, path in hands], size, width, closed=False)
    if rng.random() < 0.3:  # traced twice, not quite on the same line
        stroke |= _stroke([path + rng.uniform(-1.5, 1.5, size=2) for _, path in hands], size, max(1, width - 1),
                          closed=False)
    img[stroke] = pen
    return img, region | stroke, kind, pen, pose


def _sketch(rng: np.random.Generator, size: int, label: int) -> Sample:
    img, mask, kind, pen, pose = _draw_sketch(rng, size, label)
    return _sample(img, mask, label, kind, pen, pen, pose, 'sketch')


def _perspective_coeffs(src: np.ndarray, dst: np.ndarray) -> tuple[float, ...]:
    """PIL ``PERSPECTIVE`` coefficients mapping output points ``dst`` to input points ``src`` ((4, 2) each)."""
    rows = []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return tuple(np.linalg.solve(np.array(rows, float), src.reshape(8).astype(float)).tolist())


def _photo(rng: np.random.Generator, size: int, label: int) -> Sample:
    img, mask, kind, pen, pose = _draw_sketch(rng, size, label)
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], float)
    quad = corners + rng.uniform(-0.06, 0.16, size=(4, 2)) * size * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    coeffs = _perspective_coeffs(corners, quad)
    sheet = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).transform(
        (size, size), Image.PERSPECTIVE, coeffs, Image.BILINEAR)
    warp_mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).transform(
        (size, size), Image.PERSPECTIVE, coeffs, Image.NEAREST)) > 127
    on_sheet = np.asarray(Image.new('L', (size, size), 255).transform(
        (size, size), Image.PERSPECTIVE, coeffs, Image.NEAREST)) > 127
    table = noisy(rng, size) * rng.uniform(0.3, 0.8)  # a darker surface around the sheet
    out = np.where(on_sheet[..., None], np.asarray(sheet).astype(np.float32), table)

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    a = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0.05, 0.35) * ((xx - 0.5) * math.cos(a) + (yy - 0.5) * math.sin(a))
    light -= rng.uniform(0, 0.35) * (np.hypot(xx - 0.5, yy - 0.5) / 0.71) ** 2  # vignette
    if rng.random() < 0.4:  # a soft shadow (a hand or the phone) across part of the sheet
        b = rng.uniform(0, 2 * np.pi)
        side = (xx - 0.5) * math.cos(b) + (yy - 0.5) * math.sin(b) - rng.uniform(0.1, 0.4)
        light *= 1 - rng.uniform(0.2, 0.45) / (1 + np.exp(-side * size / rng.uniform(3, 10)))
    gains = rng.uniform(0.85, 1.08, size=3).astype(np.float32)  # white balance
    out = out * light[..., None] * gains * rng.uniform(0.8, 1.1)
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(rng.uniform(1, 7))
    photo = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    photo = photo.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.0)))
    if rng.random() < 0.6:
        data = encode_jpeg(photo, quality=int(rng.integers(35, 90)))  # a camera's compression
        photo = Image.open(io.BytesIO(data)).convert('RGB')
    # the pose (centre, radius) is the drawing's on the sheet, before the camera's perspective
    return _sample(np.asarray(photo).astype(np.float32), warp_mask, label, kind, pen, pen, pose, 'photo')


def _held_out(name: str) -> Drawer:
    def draw(rng: np.random.Generator, size: int, label: int) -> Sample:
        return paint(rng, size, label, outline=name == 'paint_outline')

    return draw


FAMILIES: dict[str, Drawer] = {
    'classic': _classic,
    'flat': _flat,
    'mixed': _mixed,
    'outline': _outline_only,
    'sketch': _sketch,
    'photo': _photo,
    'paint_solid': _held_out('paint_solid'),
    'paint_outline': _held_out('paint_outline'),
}
TRAIN_FAMILIES: tuple[str, ...] = ('classic', 'flat', 'mixed', 'outline', 'sketch', 'photo')
HELD_OUT_FAMILIES: tuple[str, ...] = ('paint_solid', 'paint_outline')
TRAIN_MIX: tuple[tuple[str, float], ...] = (
    ('classic', 0.12), ('flat', 0.16), ('mixed', 0.22), ('outline', 0.16), ('sketch', 0.17), ('photo', 0.17))


def generate_family(rng: np.random.Generator | int, family: str, image_size: int = 96,
                    label: int | None = None) -> Sample:
    """One image of style family ``family`` (a key of :data:`FAMILIES`), of a random or given class."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if family not in FAMILIES:
        raise ValueError(f'unknown style family {family!r}; choose from {sorted(FAMILIES)}')
    if label is None:
        label = int(rng.integers(len(CLASSES)))
    return FAMILIES[family](rng, image_size, label)


def generate_mix(rng: np.random.Generator | int, mix: Sequence[tuple[str, float]] | Mapping[str, float],
                 image_size: int = 96, label: int | None = None) -> Sample:
    """One image whose family is drawn from ``mix`` (family -> weight), then drawn in that family."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    items = list(mix.items() if isinstance(mix, Mapping) else mix)
    weights = np.array([w for _, w in items], float)
    family = items[int(rng.choice(len(items), p=weights / weights.sum()))][0]
    return generate_family(rng, family, image_size, label)


def family_samples(family: str, seed: int, count: int, split: int, image_size: int = 96) -> list[Sample]:
    """Items ``0 .. count-1`` of data set ``(seed, split)`` drawn in one family."""
    return [generate_family(sample_rng(seed, i, split), family, image_size) for i in range(count)]


GALLERY_SEED, GALLERY_SPLIT = 7, 2


def family_gallery(pairs: Sequence[tuple[str, str]], image_size: int = 96) -> list[Sample]:
    """One image per ``(class, family)`` pair: the first of that class in the family's gallery set (seed 7,
    split 2) whose figure is at least a quarter of the frame across, so that it reads well as a sample.

    These are the app's sample images ``vitviz/assets/samples/shapes_<class>_<family>.png``.
    """
    out = []
    for name, family in pairs:
        label = CLASSES.index(name)
        index = 0
        while True:
            sample = generate_family(sample_rng(GALLERY_SEED, index, GALLERY_SPLIT), family, image_size, label)
            index += 1
            if sample.radius >= 0.25 * image_size:
                break
        out.append(sample)
    return out
