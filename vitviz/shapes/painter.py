"""A second, independent drawing routine for the held-out families: shapes "made in a paint program".

Nothing here is shared with the training generator (:mod:`.generator`, :mod:`.families`): no PIL
polygons, no shared outlines or proportions. Each class is an inside test on continuous coordinates
(half-planes, discs, an algebraic curve), sampled 4 x 4 times per pixel for anti-aliased edges, and every
class has its own proportions drawn at random (a cross's arm width, a star's inner radius, an arrow's head,
a ring's hole, a crescent's bite). The image is one plain colour (sometimes a faint gradient) with the
shape either filled with one solid colour (``paint_solid``: the "plainly drawn shape" of the model card) or
outlined only (``paint_outline``), as a person would draw it in a paint program.

The mask is the set of pixels at least half covered by the figure's region (for an outline, the region
it encloses, its stroke included).
"""
from __future__ import annotations

import math

import numpy as np

from .generator import CLASSES, Sample

__all__ = ['SUPERSAMPLE', 'inside', 'paint']

SUPERSAMPLE = 4
# how far each class may turn from its usual pose (degrees either way); the heart stays nearly upright
_TURN = {name: 180.0 for name in CLASSES} | {'heart': 30.0}


def _convex(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Inside a convex polygon (vertices in either order): on the same side of every edge."""
    pos = np.ones(x.shape, bool)
    neg = np.ones(x.shape, bool)
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        side = (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)
        pos &= side >= 0
        neg &= side <= 0
    return pos | neg


def _regular(n: int, radius: float, phase: float) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)  # (n, 2) counter-clockwise


def inside(name: str, x: np.ndarray, y: np.ndarray, params: dict[str, float]) -> np.ndarray:
    """Whether points ``(x, y)`` (y up, unit circumscribed radius, upright pose) lie in class ``name``.

    Args:
        name: a class from :data:`~vitviz.shapes.generator.CLASSES`.
        x: abscissae.
        y: ordinates, same shape.
        params: the class's proportions (see :func:`_proportions`).
    """
    rho = np.hypot(x, y)
    if name == 'circle':
        return rho <= 1
    if name == 'ring':
        return (rho <= 1) & (rho >= params['hole'])
    if name == 'crescent':
        return (rho <= 1) & (np.hypot(x - params['offset'], y) > params['bite'])
    if name == 'square':
        h = 1 / math.sqrt(2)
        return (np.abs(x) <= h) & (np.abs(y) <= h)
    if name == 'triangle':
        return _convex(x, y, _regular(3, 1.0, math.pi / 2))
    if name == 'hexagon':
        return _convex(x, y, _regular(6, 1.0, 0.0))
    if name == 'star':  # five tips: the inner pentagon plus one triangle per tip
        tips = _regular(5, 1.0, math.pi / 2)
        inner = _regular(5, params['inner'], math.pi / 2 + math.pi / 5)
        out = _convex(x, y, inner)
        for k in range(5):
            out |= _convex(x, y, np.array([inner[k - 1], tips[k], inner[k]]))
        return out
    if name == 'cross':  # two bars, arm half-width w, arm length s along the axes
        w, s = params['arm'], 1 / math.sqrt(1 + params['arm'] ** 2)
        return ((np.abs(x) <= w * s) & (np.abs(y) <= s)) | ((np.abs(y) <= w * s) & (np.abs(x) <= s))
    if name == 'arrow':  # a shaft from the left, a triangular head pointing right
        shaft, head, neck = params['shaft'], params['head'], params['neck']
        body = (x >= -1) & (x <= neck) & (np.abs(y) <= shaft)
        tip = _convex(x, y, np.array([[neck, -head], [1.0, 0.0], [neck, head]]))
        return (body | tip) & (rho <= 1)
    if name == 'heart':  # the algebraic heart (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, scaled into the unit disc
        u, v = x * 1.32, y * 1.32 + 0.15
        return (u * u + v * v - 1) ** 3 - u * u * v ** 3 <= 0
    raise ValueError(f'unknown class {name!r}')


def _proportions(rng: np.random.Generator, name: str) -> dict[str, float]:
    """Random proportions of one drawing (independent of the training generator's fixed ones)."""
    if name == 'ring':
        return {'hole': rng.uniform(0.4, 0.72)}
    if name == 'crescent':
        return {'offset': rng.uniform(0.3, 0.55), 'bite': rng.uniform(0.78, 0.92)}
    if name == 'star':
        return {'inner': rng.uniform(0.36, 0.55)}
    if name == 'cross':
        return {'arm': rng.uniform(0.2, 0.42)}
    if name == 'arrow':
        shaft = rng.uniform(0.12, 0.28)
        return {'shaft': shaft, 'head': rng.uniform(max(0.4, 2 * shaft + 0.1), 0.7), 'neck': rng.uniform(-0.1, 0.35)}
    return {}


def _coverage(name: str, params: dict[str, float], size: int, cx: float, cy: float, r: float,
              angle: float) -> np.ndarray:
    """Fraction of each pixel inside the figure, ``(size, size)`` float in [0, 1]."""
    k = SUPERSAMPLE
    offsets = (np.arange(k) + 0.5) / k
    py = (np.arange(size)[:, None] + offsets[None]).reshape(-1)  # (size*k,) sub-pixel rows
    px = py
    yy, xx = np.meshgrid(py, px, indexing='ij')  # (size*k, size*k)
    dx, dy = (xx - cx) / r, (cy - yy) / r  # y up, unit radius
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy  # undo the turn
    hit = inside(name, u, v, params).astype(np.float32)
    return hit.reshape(size, k, size, k).mean(axis=(1, 3))  # (size, size)


def _erode_hi(region: np.ndarray, steps: int) -> np.ndarray:
    """Erode a bool image by ``steps`` pixels with a 3 x 3 square (outside counts as background)."""
    out = region
    for _ in range(steps):
        padded = np.pad(out, 1)
        acc = np.ones_like(out)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                acc &= padded[dy:dy + out.shape[0], dx:dx + out.shape[1]]
        out = acc
    return out


def _colour(rng: np.random.Generator, away_from: np.ndarray) -> np.ndarray:
    """A vivid or dark colour clearly different from ``away_from`` (RGB distance at least 120)."""
    for _ in range(50):
        c = rng.integers(0, 256, size=3).astype(np.float32)
        if np.linalg.norm(c - away_from) >= 120:
            return c
    return 255 - away_from


def paint(rng: np.random.Generator, size: int, label: int, outline: bool = False) -> Sample:
    """One held-out image: a solid or outlined shape on a (nearly) plain background.

    Args:
        rng: random stream.
        size: image side in pixels.
        label: class index.
        outline: draw only the outline (``paint_outline``) instead of a solid fill (``paint_solid``).
    """
    name = CLASSES[label]
    params = _proportions(rng, name)
    r = rng.uniform(0.15, 0.45) * size
    cx, cy = rng.uniform(r + 1, size - r - 1), rng.uniform(r + 1, size - r - 1)
    angle = math.radians(_TURN[name]) * rng.uniform(-1, 1)
    paper = (np.full(3, rng.uniform(225, 255), np.float32) if rng.random() < 0.5
             else rng.integers(0, 256, size=3).astype(np.float32))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    tilt = rng.uniform(-25, 25, size=3).astype(np.float32) if rng.random() < 0.3 else np.zeros(3, np.float32)
    bg = paper + tilt * (xx[..., None] - 0.5)  # (size, size, 3)
    ink = _colour(rng, paper)
    if outline:
        k = SUPERSAMPLE
        width = float(rng.uniform(1, 6))
        offsets = (np.arange(k) + 0.5) / k
        sub = (np.arange(size)[:, None] + offsets[None]).reshape(-1)
        yy_hi, xx_hi = np.meshgrid(sub, sub, indexing='ij')
        dx, dy = (xx_hi - cx) / r, (cy - yy_hi) / r
        c, s = math.cos(angle), math.sin(angle)
        region_hi = inside(name, c * dx + s * dy, -s * dx + c * dy, params)  # (size*k, size*k)
        ring_hi = region_hi & ~_erode_hi(region_hi, max(1, int(round(width * k))))
        region = region_hi.reshape(size, k, size, k).mean(axis=(1, 3))
        cover = ring_hi.reshape(size, k, size, k).mean(axis=(1, 3))
    else:
        region = cover = _coverage(name, params, size, cx, cy, r, angle)
    image = bg * (1 - cover[..., None]) + ink * cover[..., None]
    return Sample(image=np.clip(np.rint(image), 0, 255).astype(np.uint8), mask=region >= 0.5, label=label,
                  texture='outline' if outline else 'solid', colors=(tuple(int(v) for v in ink),) * 2,
                  center=(float(cy), float(cx)), radius=float(r), angle=float(angle),
                  family='paint_outline' if outline else 'paint_solid')
