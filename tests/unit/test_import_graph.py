"""The house of vitviz: no import cycle, every module importable on its own, function-local imports that say why,
files of one concept each, and a docstring on every package."""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests._import_graph import cycles, function_local_imports, import_graph, package_graph

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "vitviz"

PENDING_EDGES: set[tuple[str, str]] = set()
"""Edges that still close a cycle (none)."""
MAX_LINES = 450


def _without(graph: dict[str, set[str]], edges: set[tuple[str, str]]) -> dict[str, set[str]]:
    rooms = {module: ".".join(module.split(".")[:2]) for module in graph}
    return {module: {t for t in targets if (rooms[module], rooms.get(t, t)) not in edges}
            for module, targets in graph.items()}


def test_the_walker_sees_a_cycle_hidden_behind_a_function_local_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text('"""A package."""\n')
    (package / "sub" / "__init__.py").write_text("from .leaf import value\n")
    (package / "sub" / "leaf.py").write_text("value = 1\n\ndef later():\n    from pkg import top  # hidden\n")
    (package / "top.py").write_text("from typing import TYPE_CHECKING\nfrom pkg.sub import value\n"
                                    "if TYPE_CHECKING:\n    from pkg import other\n")
    (package / "other.py").write_text("import pkg.top\n")
    graph = import_graph(package)
    assert graph["pkg.top"] == {"pkg.sub"}  # the package's __init__, not the TYPE_CHECKING import
    assert cycles(graph) == [["pkg.sub", "pkg.sub.leaf", "pkg.top"]]
    assert cycles(package_graph(graph, "pkg")) == [["pkg.sub", "pkg.top"]]
    assert function_local_imports(package) == {"pkg.sub.leaf": [(4, "from pkg import top  # hidden")]}


def test_vitviz_has_no_import_cycle_between_modules_or_between_its_rooms():
    graph = _without(import_graph(PACKAGE), PENDING_EDGES)
    assert cycles(graph) == []
    assert cycles(package_graph(graph, "vitviz")) == []
    rooms = package_graph(graph, "vitviz")
    assert "vitviz.attribution" not in rooms["vitviz.analysis"]  # the registry lives with the methods
    assert not rooms["vitviz.i18n"] and not rooms["vitviz.hooks"]  # the ground floor imports nothing of vitviz


@pytest.mark.slow
def test_every_module_imports_in_a_fresh_interpreter_without_streamlit_or_deprecated_names():
    script = textwrap.dedent("""
        import importlib, pkgutil, sys, warnings
        import vitviz
        warnings.filterwarnings("error", message="vitviz[.]", category=DeprecationWarning)
        failed = []
        for module in pkgutil.walk_packages(vitviz.__path__, "vitviz."):
            try:
                importlib.import_module(module.name)
            except Exception as exc:
                failed.append(f"{module.name}: {type(exc).__name__}: {exc}")
        print("\\n".join(failed) or "ok")
        print("streamlit" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["ok", "False"], done.stdout


def test_function_local_imports_say_which_heavy_dependency_they_wait_for():
    silent = []
    for module, imports in function_local_imports(PACKAGE).items():
        path = PACKAGE.parent / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, text in imports:
            above = number - 2
            while above >= 0 and (lines[above].strip().startswith(("import ", "from ")) or not lines[above].strip()) \
                    and "#" not in lines[above]:
                above -= 1  # a block of imports (isort's groups, blank lines between) shares its first comment
            said = "#" in text or (above >= 0 and "#" in lines[above])
            if not said:
                silent.append(f"{module}:{number}: {text}")
    assert not silent, "\n".join(silent)


def test_every_file_holds_one_concept_and_every_package_says_what_it_holds():
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(source)) or ""
        name = path.relative_to(ROOT)
        if path.name == "__init__.py":
            assert docstring.strip(), f"{name}: no docstring saying what the package holds"
        if len(source.splitlines()) > MAX_LINES:
            assert "One concept in one file" in docstring, f"{name}: {len(source.splitlines())} lines"


def test_the_modules_the_app_imports_at_start_up_stay_cheap():
    script = ("import sys, vitviz, vitviz.models, vitviz.images, vitviz.pipeline, vitviz.layout, vitviz.hooks\n"
              "print(sorted(m for m in ('torch', 'timm', 'plotly', 'streamlit') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
