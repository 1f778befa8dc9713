"""The surfaces a shape is drawn on: plain, gradient, noisy and cluttered backgrounds, and a sheet of paper.

Each is a pure function of its random stream, returning an ``(S, S, 3)`` float32 image in [0, 255] before
clipping; :mod:`.families` picks one per style family (:data:`BACKGROUNDS` by name, :func:`paper` for sketches).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image

from .generator import _background, _random_colour

__all__ = ["BACKGROUNDS", "cluttered", "gradient", "noisy", "paper", "plain", "smooth_noise"]


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1], ``(size, size)`` float32 (a bicubic-upsampled random grid)."""
    grid = rng.uniform(0, 255, size=(cells, cells)).astype(np.uint8)
    up = Image.fromarray(grid).resize((size, size), Image.BICUBIC)
    return np.asarray(up).astype(np.float32) / 127.5 - 1.0


def plain(rng: np.random.Generator, size: int) -> np.ndarray:
    """One colour; a third of the time white or light grey (paint programs, whiteboards)."""
    c = np.full(3, rng.uniform(215, 256), np.float32) if rng.random() < 0.33 else _random_colour(rng)
    return np.broadcast_to(c, (size, size, 3)).copy()


def gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """Linear or radial blend of two random colours."""
    c1, c2 = _random_colour(rng), _random_colour(rng)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)  # (S, S) each
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * np.pi)
        t = np.clip(0.5 + (xx - 0.5) * math.cos(a) + (yy - 0.5) * math.sin(a), 0, 1)
    else:
        oy, ox = rng.uniform(0, 1, size=2)
        t = np.clip(np.hypot(yy - oy, xx - ox) / rng.uniform(0.6, 1.4), 0, 1)
    t = t[..., None]  # (S, S, 1)
    return c1 * (1 - t) + c2 * t


def noisy(rng: np.random.Generator, size: int) -> np.ndarray:
    """A colour with blotchy low-frequency variation and pixel noise."""
    base = _random_colour(rng)
    blotch = smooth_noise(rng, size, int(rng.integers(3, 9)))[..., None] * rng.uniform(15, 60)  # (S, S, 1)
    tint = _random_colour(rng) - base
    img = base + blotch + tint * (0.25 * (smooth_noise(rng, size, 4)[..., None] + 1))
    return img + rng.standard_normal((size, size, 3), dtype=np.float32) * np.float32(rng.uniform(4, 20))


def cluttered(rng: np.random.Generator, size: int) -> np.ndarray:
    """The classic generator's background: gradient, noise and crossing lines."""
    return _background(rng, size, rng.uniform(0.3, 1.0))


BACKGROUNDS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    'plain': plain, 'gradient': gradient, 'noise': noisy, 'clutter': cluttered}


def paper(rng: np.random.Generator, size: int) -> np.ndarray:
    """A sheet of paper: off-white, faint grain, sometimes ruled or squared in light blue or grey."""
    tone = rng.uniform(222, 255) + rng.uniform(-8, 4, size=3)
    img = np.broadcast_to(tone.astype(np.float32), (size, size, 3)).copy()
    img += smooth_noise(rng, size, 6)[..., None] * rng.uniform(0, 6)
    img += rng.standard_normal((size, size, 3), dtype=np.float32) * np.float32(rng.uniform(0.5, 3))
    kind = rng.random()
    if kind < 0.35:
        pitch = rng.uniform(6, 14)
        colour = np.array([150, 185, 225] if rng.random() < 0.7 else [175, 175, 175], np.float32)
        phase = rng.uniform(0, pitch)
        lines = np.zeros(size, bool)
        lines[np.floor(np.arange(phase, size, pitch)).astype(int)] = True
        img[lines] = img[lines] * 0.4 + colour * 0.6
        if kind < 0.15:  # squared paper
            img[:, lines] = img[:, lines] * 0.4 + colour * 0.6
    return img
