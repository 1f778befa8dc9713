"""The import graph of a package, read from its source (static AST walk; nothing is imported).

Every ``import`` and ``from … import`` statement counts, at module level or inside a function (a cycle
hidden behind a function-local import is still a cycle), except those under ``if TYPE_CHECKING:`` (never
executed). ``from package import name`` points at ``package.name`` when that is a module. Importing a module
also runs the ``__init__`` of every package above it, so an edge to ``a.b.c`` brings edges to ``a.b`` and
``a`` too, except for the importer's own ancestors (already being imported when it runs).
"""
from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["cycles", "import_graph", "function_local_imports", "package_graph"]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path) -> dict[str, Path]:
    return {_module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[tuple[ast.stmt, bool]]:
    """Every executable import statement with whether it sits inside a function."""
    found: list[tuple[ast.stmt, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other, in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return found


def _targets(statement: ast.stmt, importer: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """The modules of the package that one import statement runs."""
    if isinstance(statement, ast.Import):
        names = [alias.name for alias in statement.names]
    else:
        if statement.level:
            base = importer.split(".") if is_package else importer.split(".")[:-1]
            base = base[: len(base) - statement.level + 1]
            stem = ".".join(base + ([statement.module] if statement.module else []))
        else:
            stem = statement.module or ""
        names = [stem] + [f"{stem}.{alias.name}" for alias in statement.names]
    targets = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # the module and every package above it
            candidate = ".".join(parts[:i])
            if candidate in modules:
                targets.add(candidate)
    ancestors = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 1)}
    return targets - ancestors - {importer}


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module name -> the package's modules it imports (at any level of the source)."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        graph[name] = set()
        for statement, _in_function in _imports(tree):
            graph[name] |= _targets(statement, name, is_package, modules)
    return graph


def function_local_imports(root: Path) -> dict[str, list[tuple[int, str]]]:
    """Module name -> ``(line, source text)`` of every import statement inside a function."""
    found: dict[str, list[tuple[int, str]]] = {}
    for name, path in _modules(root).items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for statement, in_function in _imports(ast.parse(source, str(path))):
            if in_function:
                found.setdefault(name, []).append((statement.lineno, lines[statement.lineno - 1].strip()))
    return found


def package_graph(graph: dict[str, set[str]], root_name: str) -> dict[str, set[str]]:
    """The graph between the top-level rooms of the package (``vitviz.models.loading`` -> ``vitviz.models``);
    the root package itself and edges inside one room are left out."""

    def room(module: str) -> str | None:
        parts = module.split(".")
        return None if len(parts) < 2 else ".".join(parts[:2])

    rooms: dict[str, set[str]] = {}
    for module, targets in graph.items():
        source = room(module)
        if source is None:
            continue
        rooms.setdefault(source, set())
        for target in targets:
            destination = room(target)
            if destination is not None and destination != source:
                rooms[source].add(destination)
    return rooms


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted; [] when acyclic."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strongconnect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                strongconnect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return found
