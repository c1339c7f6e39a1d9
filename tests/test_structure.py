"""The core's shape: every module imports, no import cycle, no module too long to find one's way in.

- The import graph is read with ``ast`` from every module under ``lmserver/``: each ``import`` /
  ``from ... import`` of an ``lmserver`` module, at module level **and inside functions** (an import
  moved into a function to dodge a cycle is still a cycle), but not under ``if TYPE_CHECKING:`` (those
  never run). ``from . import x`` counts as an edge to ``lmserver.x`` when ``x`` is a module. A C
  extension module (its ``.c`` source under ``lmserver/``, built by setup.py) is a module that imports
  no lmserver module: importing it is an edge to it, never to its package.
- A module may hold at most :data:`MAX_LINES` lines: past that, split it by concept.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "lmserver"
MAX_LINES = 500
#: modules still being split (each split removes its name here)
LONG_FOR_NOW: set[str] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
#: C extension modules (lmserver/media/_sendloop.c -> lmserver.media._sendloop): leaves of the graph
EXTENSIONS = {module_name(p) for p in sorted(ROOT.rglob("*.c"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: anywhere in the module except under ``if TYPE_CHECKING:``."""
    out: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    walk_stmt(sub)
                continue
            walk_stmt(child)

    def walk_stmt(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        walk(node)

    walk(tree)
    return out


def _resolve(name: str) -> str | None:
    """The lmserver module ``name`` refers to (a module, or the package/module defining a name)."""
    while name:
        if name in MODULES or name in EXTENSIONS:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(name: str) -> set[str]:
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    deps: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from pkg import sub`` names the submodule when there is one, else a name defined in pkg
            targets = [f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in MODULES or f"{mod}.{alias.name}" in EXTENSIONS
                       else mod for alias in node.names]
        for target in targets:
            resolved = _resolve(target) if target.startswith("lmserver") else None
            if resolved is not None and resolved != name:
                deps.add(resolved)
    return deps


def import_graph() -> dict[str, set[str]]:
    return {name: imports_of(name) for name in MODULES} | {name: set() for name in EXTENSIONS}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def _edges_within(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    members = set(comp)
    return [f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in members]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.endswith("__main__")))  # __main__ runs the CLI
def test_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_graph_reader_sees_cycles() -> None:
    """The reader is not blind: a made-up cycle, and a function-local import, are both found."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import lmserver.db\n"
                     "def f():\n    from lmserver import bus\n")
    assert [ast.unparse(n) for n in _runtime_imports(tree)] == ["from typing import TYPE_CHECKING", "from lmserver import bus"]


def test_a_c_extension_is_a_leaf_not_its_package() -> None:
    assert "lmserver.media._sendloop" in EXTENSIONS
    deps = imports_of("lmserver.media.rtpwire")
    assert "lmserver.media._sendloop" in deps and "lmserver.media" not in deps


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert graph["lmserver.app"], "the graph reader found no imports at all"
    cycles = find_cycles(graph)
    assert not cycles, "import cycles (split the shared part into its own module):\n" + "\n".join(
        ", ".join(_edges_within(graph, comp)) for comp in cycles)


def test_no_module_too_long() -> None:
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES and name not in LONG_FOR_NOW}
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"


def test_only_the_app_factory_registers_route_tables() -> None:
    """Each route lives beside its service in that module's ``routes`` table; the app factory adds the
    tables. No service module adds another's (the console once added the viewer's, comments' and orders')."""
    offenders = []
    for name, path in MODULES.items():
        if name == "lmserver.app":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_routes":
                offenders.append(f"{name}:{node.lineno}")
    assert not offenders, f"route tables added outside lmserver.app: {offenders}"


def test_the_media_core_gets_its_dependencies_passed_in() -> None:
    """The media server is given the live state, bus and database by ``media_ctx``; no media module but
    the HTTP face (``lmserver.media.app``) reaches into the app for them."""
    graph = import_graph()
    reaching = sorted(name for name, deps in graph.items()
                      if name.startswith("lmserver.media") and name != "lmserver.media.app" and "lmserver.appkeys" in deps)
    assert not reaching, f"media modules that read the app's keys: {reaching}"
