"""The app's pages, read from its navigation (``app.pages()``), never written by hand.

``app.py`` is not imported (importing it would draw the app): its function definitions are run in a namespace
of their own, where ``_`` is ``vitviz.i18n._`` and ``st.Page`` a recorder, then ``pages()`` is called. The URL
path of each page is worked out as Streamlit works it out (``st.Page``: the file's name, or the function's,
or ``url_path=``; the default page is ``""``); ``tests/app/test_app_pages.py`` checks it against the pages
Streamlit registers.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

__all__ = ["APP", "ROOT", "AppPage", "app_pages"]

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"


@dataclass(frozen=True)
class AppPage:
    """One page of the navigation.

    Attributes:
        name: the page's own name (its file's or function's): ``overview``, ``patches`` … (test ids).
        url_path: the path a browser opens (``""`` for the default page).
        file: the page script relative to the repository (``pages/patches.py``), or ``None`` for a page that
            ``app.py`` draws itself; what ``open_app(...)`` and ``AppTest.switch_page`` take.
        title: the title in the navigation, in the language asked for.
        default: whether it is the page ``/`` opens.
    """

    name: str
    url_path: str
    file: str | None
    title: str
    default: bool

    def url(self, server: str, **query: str) -> str:
        """The page's address on ``server`` (``http://127.0.0.1:port``), with an optional query."""
        from urllib.parse import urlencode

        return f"{server}/{self.url_path}" + (f"?{urlencode(query)}" if query else "")


class _Recorder:
    """Stands in for ``st.Page``: keeps what the navigation passes."""

    def __init__(self, page: Any, *, title: str | None = None, url_path: str | None = None, default: bool = False,
                 **_: Any) -> None:
        from streamlit.source_util import page_icon_and_name

        if isinstance(page, (str, Path)):
            self.file = Path(page).as_posix()
            name = page_icon_and_name(ROOT / page)[1]
        else:
            self.file, name = None, page.__name__
        name = url_path.strip("/") if url_path is not None else name
        self.page = AppPage(name=name, url_path="" if default else name, file=self.file,
                            title=title or name.replace("_", " "), default=default)


@cache
def _navigation() -> Any:
    """``app.py``'s ``pages`` function, defined without running the rest of the script."""
    tree = ast.parse(APP.read_text(encoding="utf-8"), str(APP))
    from vitviz.i18n import _

    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    namespace: dict[str, Any] = {"__name__": "vitviz_app_navigation", "_": _, "st": SimpleNamespace(Page=_Recorder)}
    exec(compile(ast.Module(body=functions, type_ignores=[]), str(APP), "exec"), namespace)
    return namespace["pages"]


@cache
def app_pages(lang: str = "en") -> tuple[AppPage, ...]:
    """Every page of the navigation, in its order, with titles in ``lang``."""
    from vitviz.i18n import language

    with language(lang):
        sections = _navigation()()
    pages = tuple(recorded.page for section in sections.values() for recorded in section)
    assert pages and sum(p.default for p in pages) == 1, "app.pages() has one default page"
    return pages
