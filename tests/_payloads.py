"""Pickle payloads that would run code when unpickled: each creates ``marker`` if it ever runs."""
from __future__ import annotations

import os
from pathlib import Path


class Touch:
    """Unpickling this creates ``marker`` through ``os.system`` (a shell command)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


class Exec:
    """Unpickling this runs Python source through ``builtins.exec``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)
