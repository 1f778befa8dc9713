"""A Components v2 component registered in the Streamlit runtime that is running now.

Streamlit keeps Components v2 definitions in the registry of the ``Runtime`` instance. Up to at least
Streamlit 1.59 a definition made at import time lives only in the runtime that existed then, so a second
runtime in the same process (``AppTest`` starts one per test) would not know it. Registering on first use in
each runtime works on every supported version.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import streamlit as st

__all__ = ["RuntimeComponent"]


class RuntimeComponent:
    """Callable like the mount function of ``st.components.v2.component(name, **definition)``.

    Args:
        name: The component's registry name.
        **definition: ``js``, ``css``, ``html`` as for ``st.components.v2.component``.
    """

    def __init__(self, name: str, **definition: Any) -> None:
        self.name = name
        self.definition = definition
        self._lock = threading.Lock()
        self._runtime: Any = None
        self._mount: Callable[..., Any] | None = None

    def _current_mount(self) -> Callable[..., Any]:
        from streamlit.runtime import Runtime

        runtime = Runtime.instance() if Runtime.exists() else None
        with self._lock:
            if self._mount is None or self._runtime is not runtime:
                self._mount = st.components.v2.component(self.name, **self.definition)
                self._runtime = runtime
            return self._mount

    def __call__(self, **kwargs: Any) -> Any:
        return self._current_mount()(**kwargs)
