"""cms_plugin's modules import one way: settings and models at the bottom, the engine, stored
bytes, scoring, queueing and intake above them, tasks, views and the admin at the top.

Every import between the app's modules counts, also one inside a function (a deferred
import still ties the two modules together); `if TYPE_CHECKING:` imports do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "cms_plugin"

# Modules from the bottom up; each may import only modules listed before it.
LAYERS = [
    "conf",
    "presentation",  # wording of verdicts, no models
    "sources",  # describing a watched object, no models
    "models",
    "engine",
    "storage",
    "images",
    "scoring",
    "queueing",
    "uploads",
    "reviews",
    "tasks",
    "signals",
    "services",
]


def _module_of(path: Path) -> str:
    """cms_plugin/api/views.py -> 'api' (a sub-package counts as one node)."""
    parts = path.relative_to(APP).with_suffix("").parts
    return parts[0]


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path) -> set[str]:
    """The app's top-level modules that `path` imports, at module level or deferred."""
    tree = ast.parse(path.read_text(), str(path))
    package = path.relative_to(APP.parent).with_suffix("").parts[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = [*base, *(node.module.split(".") if node.module else [])]
            else:
                target = (node.module or "").split(".")
            if target[:1] == ["cms_plugin"]:
                if len(target) > 1:
                    found.add(target[1])
                else:  # from cms_plugin import x, y
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "cms_plugin" and len(parts) > 1:
                    found.add(parts[1])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found - {_module_of(path)}


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in APP.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        graph.setdefault(_module_of(path), set()).update(_imports(path))
    return graph


def test_the_layered_modules_import_only_those_below_them():
    graph = _graph()
    upward = []
    for index, name in enumerate(LAYERS):
        assert name in graph, f"cms_plugin/{name}.py is gone: update LAYERS"
        below = set(LAYERS[:index])
        for target in sorted(graph[name] & set(LAYERS) - below):
            upward.append(f"{name} imports {target}")
    assert upward == []


def test_no_module_of_the_app_is_part_of_an_import_circle():
    graph = _graph()
    circles = []
    for start in sorted(graph):
        seen: set[str] = set()
        stack = list(graph[start])
        while stack:
            node = stack.pop()
            if node == start:
                circles.append(start)
                break
            if node in seen or node not in graph:
                continue
            seen.add(node)
            stack.extend(graph[node])
    assert circles == []


def test_nothing_in_the_app_imports_the_services_facade():
    graph = _graph()
    assert sorted(name for name in LAYERS[:-1] if "services" in graph[name]) == []
