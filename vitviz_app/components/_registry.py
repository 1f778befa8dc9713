"""Components v2 components built from this folder's scripts, registered in the Streamlit runtime running now.

Each component is one inline ES module (nothing is fetched: the app works offline): the shared browser library
``lib.js`` followed by the component's own ``<name>.js``; its style sheet is ``lib.css`` followed by its own
``<name>.css``. In front of both stands the test
flag ``VV_TEST_HOOKS``: true only when the server runs with ``VITVIZ_TEST_HOOKS=1`` (browser tests, benchmarks),
when each view exposes what it drew as ``window.__vitviz<Name>``.

Streamlit keeps Components v2 definitions in the registry of the ``Runtime`` instance. Up to at least
Streamlit 1.59 a definition made at import time lives only in the runtime that existed then, so a second
runtime in the same process (``AppTest`` starts one per test) would not know it. Registering on first use in
each runtime works on every supported version.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

__all__ = ["LIB_CSS", "LIB_JS", "TEST_HOOKS_ENV", "RuntimeComponent", "component", "script", "test_hooks"]

_HERE = Path(__file__).parent
LIB_JS = (_HERE / "lib.js").read_text()
LIB_CSS = (_HERE / "lib.css").read_text()
TEST_HOOKS_ENV = "VITVIZ_TEST_HOOKS"
"""Environment variable that turns the browser components' test hooks on (``1``); never set in production."""


def test_hooks() -> bool:
    """Whether the components expose what they draw to tests (:data:`TEST_HOOKS_ENV` is ``1``)."""
    return os.environ.get(TEST_HOOKS_ENV, "") == "1"


def script(own: str) -> str:
    """A component's whole script: the test flag, ``lib.js``, then ``own`` (which ends in ``export default``)."""
    return f"const VV_TEST_HOOKS = {'true' if test_hooks() else 'false'};\n{LIB_JS}\n{own}"


class RuntimeComponent:
    """Callable like the mount function of ``st.components.v2.component(name, **definition)``.

    Args:
        name: The component's registry name.
        js: The component's own script (``lib.js`` and the test flag are put in front of it on registration).
        css: Its style sheet (``lib.css`` is put in front of it), or None for a component that shows nothing.
    """

    def __init__(self, name: str, js: str, css: str | None = None) -> None:
        self.name = name
        self.js = js
        self.css = css
        self._lock = threading.Lock()
        self._runtime: Any = None
        self._mount: Callable[..., Any] | None = None

    def _current_mount(self) -> Callable[..., Any]:
        from streamlit.runtime import Runtime

        runtime = Runtime.instance() if Runtime.exists() else None
        with self._lock:
            if self._mount is None or self._runtime is not runtime:
                css = {} if self.css is None else {"css": f"{LIB_CSS}\n{self.css}"}
                self._mount = st.components.v2.component(self.name, js=script(self.js), **css)
                self._runtime = runtime
            return self._mount

    def __call__(self, **kwargs: Any) -> Any:
        return self._current_mount()(**kwargs)


def component(name: str) -> RuntimeComponent:
    """The component ``vitviz.<name>`` made of ``<name>.js`` (and ``<name>.css`` when there is one) in this folder."""
    css = _HERE / f"{name}.css"
    return RuntimeComponent(f"vitviz.{name}", (_HERE / f"{name}.js").read_text(),
                            css.read_text() if css.is_file() else None)
