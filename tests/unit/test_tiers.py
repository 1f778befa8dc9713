"""The test suite keeps its own house rules: each tier drives only what it says, no test module imports another,
browser tests carry their marker, and no list of the app's pages is written by hand (``tests/_pages.py`` reads
them from ``app.pages()``). Read from the sources, so it costs nothing to run."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests._pages import ROOT

TESTS = ROOT / "tests"
BROWSER_FIXTURES = {"server", "chromium", "window", "page"}
APP_FIXTURES = {"open_app", "swap_bundled", "figure", "app_model"}


def _modules(tier: str) -> list[Path]:
    return sorted((TESTS / tier).glob("test_*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imported(tree: ast.AST) -> set[str]:
    """Every module a file imports, at module level or inside a function."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _tests(tree: ast.Module) -> list[ast.FunctionDef]:
    return [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]


def _marks(node: ast.AST) -> set[str]:
    """The ``pytest.mark.<name>`` marks in a decorator list or a ``pytestmark`` value."""
    return {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute)
            and n.value.attr == "mark"}


def test_every_test_module_is_in_a_tier():
    assert sorted(p.name for p in TESTS.glob("test_*.py")) == []
    assert all(_modules(tier) for tier in ("unit", "app", "browser"))


@pytest.mark.parametrize("path", _modules("unit"), ids=lambda p: p.stem)
def test_unit_tests_drive_the_library_without_streamlit(path):
    tree = _tree(path)
    app = sorted(m for m in _imported(tree) if m.split(".")[0] in ("streamlit", "vitviz_app", "playwright"))
    assert app == [], f"{path.name} imports the app: it belongs in tests/app or tests/browser"
    fixtures = {arg.arg for test in _tests(tree) for arg in test.args.args}
    assert not fixtures & (APP_FIXTURES | BROWSER_FIXTURES), fixtures & (APP_FIXTURES | BROWSER_FIXTURES)


@pytest.mark.parametrize("path", _modules("app"), ids=lambda p: p.stem)
def test_app_tests_use_no_browser(path):
    tree = _tree(path)
    assert not [m for m in _imported(tree) if m.startswith(("playwright", "tests._browser"))]
    assert not {arg.arg for test in _tests(tree) for arg in test.args.args} & (BROWSER_FIXTURES - {"page"})


@pytest.mark.parametrize("path", _modules("browser"), ids=lambda p: p.stem)
def test_every_browser_test_carries_the_browser_mark(path):
    tree = _tree(path)
    module_marks = set().union(*(_marks(node.value) for node in tree.body if isinstance(node, ast.Assign)
                                 and any(getattr(t, "id", "") == "pytestmark" for t in node.targets)))
    for test in _tests(tree):
        drives = {arg.arg for arg in test.args.args} & BROWSER_FIXTURES or "streamlit_server" in ast.dump(test)
        if drives:
            assert "browser" in module_marks | _marks(ast.Module(body=test.decorator_list, type_ignores=[])), \
                f"{path.name}::{test.name} drives a browser or a server without @pytest.mark.browser"


def test_no_test_module_imports_another():
    """Shared fixtures live in tests/conftest.py and shared helpers in tests/_*.py, never in a test module."""
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        found = [m for m in _imported(_tree(path)) if m.split(".")[-1].startswith(("test_", "conftest"))
                 or m.startswith(("tests.unit", "tests.app", "tests.browser", "tests.conftest"))]
        if found:
            offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}


def test_no_list_of_the_apps_pages_is_written_by_hand():
    """A list of most of the app's pages goes stale when a page is added (the Compare page was missing from one):
    read them from app.pages(). A few pages picked for a behaviour of theirs are a choice, not a page list."""
    files = {f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py")}
    pages = files | {p.stem for p in (ROOT / "pages").glob("*.py")} | {"overview", None}
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.List, ast.Tuple, ast.Set)) and node.elts:
                items = [e.value if isinstance(e, ast.Constant) else e for e in node.elts]
                if all(item in pages for item in items) and len(items) > (len(files) + 1) / 2:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
