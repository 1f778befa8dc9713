"""Where one download stands, in numbers and as one line of text for a progress bar."""
from __future__ import annotations

from dataclasses import dataclass

from vitviz.i18n import _

__all__ = ["Progress"]

WAITING_SHOWN_AFTER_S = 1.0
"""Seconds without a byte after which the line says it is waiting for data."""


@dataclass(frozen=True)
class Progress:
    """Where one download stands.

    Attributes:
        repo_id: Hub repository.
        filename: File being fetched (the last one tried when several names are possible).
        done: Bytes of the file on disk so far (a resumed download starts above 0).
        total: Size of the file in bytes, or None until the hub has said.
        elapsed_s: Seconds spent receiving the file (since the hub answered; 0 before).
        received: Bytes received in that time (``done`` less what a resumed file started from).
        finished: Whether the download has ended, successfully or not.
        waiting_s: Seconds since the last byte arrived (since the hub was asked, before it answered).
    """

    repo_id: str
    filename: str
    done: int = 0
    total: int | None = None
    elapsed_s: float = 0.0
    received: int = 0
    finished: bool = False
    waiting_s: float = 0.0

    @property
    def fraction(self) -> float | None:
        """Share of the file done, in [0, 1], or None while the size is unknown."""
        if not self.total:
            return None
        return min(max(self.done / self.total, 0.0), 1.0)

    @property
    def speed(self) -> float | None:
        """Average bytes per second received so far, or None before the first bytes."""
        if self.received <= 0 or self.elapsed_s <= 0:
            return None
        return self.received / self.elapsed_s

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the average speed, or None when unknown."""
        speed = self.speed
        if speed is None or not self.total:
            return None
        return max(self.total - self.done, 0) / speed

    @property
    def waiting(self) -> bool:
        """Whether no byte has come for a while (:data:`WAITING_SHOWN_AFTER_S`) in a download still running."""
        return not self.finished and self.waiting_s >= WAITING_SHOWN_AFTER_S

    def describe(self) -> str:
        """One line for a progress bar, e.g. ``'model.safetensors: 12.3 MB of 22.9 MB · 4.1 MB/s · 3 s left ·
        3 s elapsed'``. While a download runs the line changes at least every second, even when no byte
        arrives: it counts the seconds elapsed, and those spent waiting for data."""
        if self.total is None and self.done == 0:
            if self.waiting:
                return _("{file}: asking the hub… {duration}").format(file=self.filename,
                                                                     duration=_duration(self.waiting_s))
            return _("{file}: asking the hub…").format(file=self.filename)
        if self.total:
            done = _("{file}: {done} of {total}").format(file=self.filename, done=_size(self.done),
                                                         total=_size(self.total))
        else:
            done = f"{self.filename}: {_size(self.done)}"
        parts = [done]
        if self.waiting:
            parts.append(_("waiting for data {duration}").format(duration=_duration(self.waiting_s)))
        elif self.speed is not None:
            parts.append(f"{_size(self.speed)}/s")
        if not self.finished:
            if self.eta_s is not None:
                parts.append(_("{duration} left").format(duration=_duration(self.eta_s)))
            if self.elapsed_s >= 1:
                parts.append(_("{duration} elapsed").format(duration=_duration(self.elapsed_s)))
        return " · ".join(parts)


def _size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
