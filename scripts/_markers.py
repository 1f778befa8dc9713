"""Generated blocks in a document: the text between two HTML comment markers, which a script rewrites."""
from __future__ import annotations

__all__ = ["replace_between"]


def replace_between(text: str, start: str, end: str, content: str) -> str:
    """``text`` with what stands between the markers ``start`` and ``end`` replaced by ``content`` (the markers
    stay; the first block counts).

    Raises:
        ValueError: ``text`` lacks one of the markers.
    """
    if start not in text or end not in text:
        raise ValueError(f"no {start} ... {end} block")
    head, rest = text.split(start, 1)
    return f"{head}{start}{content}{end}{rest.split(end, 1)[1]}"
