"""The gallery of sample images shipped in ``vitviz/assets/samples``.

Photographs (``cat.jpg``, ...) carry the licences recorded in ``LICENSES.md`` next to them; the
``shapes_*.png`` images are drawn by the project's generator and show what the bundled offline model knows.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["SAMPLES_DIR", "LICENSES_FILE", "Sample", "list_samples", "read_sample", "default_sample"]

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "vitviz" / "assets" / "samples"
LICENSES_FILE = SAMPLES_DIR / "LICENSES.md"
_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_PHOTO_TITLES = {
    "cat": "Cat (Chelsea)",
    "coffee": "Coffee cup",
    "astronaut": "Astronaut",
    "rocket": "Rocket launch",
}


@dataclass(frozen=True)
class Sample:
    """One gallery image.

    Attributes:
        name: Stable identifier used in URLs, the file name without its suffix (``'cat'``, ``'shapes_star'``).
        title: What the gallery shows, e.g. ``'Cat (Chelsea)'`` or ``'Shapes: star'``.
        path: The file.
        kind: ``'photo'`` or ``'shapes'`` (drawn for the bundled offline model).
    """

    name: str
    title: str
    path: Path
    kind: str


# how the drawing styles of ``shapes_<class>_<family>.png`` read in the gallery
_STYLE_TITLES = {
    "flat": "plain solid",
    "mixed": "mixed style",
    "outline": "outline only",
    "sketch": "pen sketch",
    "photo": "photographed drawing",
}


def _title(stem: str) -> str:
    if stem.startswith("shapes_"):
        name, _, style = stem[len("shapes_"):].partition("_")
        return f"Shapes: {name} ({_STYLE_TITLES.get(style, style.replace('_', ' '))})" if style else f"Shapes: {name}"
    return _PHOTO_TITLES.get(stem, stem.replace("_", " ").capitalize())


@lru_cache(maxsize=1)
def _scan(folder: str) -> tuple[Sample, ...]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in _SUFFIXES and p.is_file())
    samples = [
        Sample(p.stem, _title(p.stem), p, "shapes" if p.stem.startswith("shapes_") else "photo") for p in files
    ]
    order = list(_PHOTO_TITLES)
    # photographs first in a fixed order, then the generated shapes in name order
    samples.sort(key=lambda s: (s.kind != "photo", order.index(s.name) if s.name in order else len(order), s.name))
    return tuple(samples)


def list_samples(folder: Path = SAMPLES_DIR) -> tuple[Sample, ...]:
    """Every sample image in ``folder``: photographs first, then the generated shapes."""
    if not folder.is_dir():
        return ()
    return _scan(str(folder))


def read_sample(name: str, folder: Path = SAMPLES_DIR) -> bytes:
    """The file bytes of the sample called ``name``.

    Raises:
        KeyError: When no sample has that name.
    """
    for sample in list_samples(folder):
        if sample.name == name:
            return sample.path.read_bytes()
    raise KeyError(name)


def default_sample(offline_model: bool, folder: Path = SAMPLES_DIR) -> str | None:
    """The sample to show first: a shapes image for the offline model (it knows shapes), else the cat."""
    samples = list_samples(folder)
    if not samples:
        return None
    wanted = "shapes" if offline_model else "photo"
    return next((s.name for s in samples if s.kind == wanted), samples[0].name)
