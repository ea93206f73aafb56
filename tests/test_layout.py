"""The layout's one rule: the runtime core never reaches the tooling, and the tooling never reaches the printing.

The runtime core is what a running bot imports (Store, PluginStore, the compat facade, the queries they run,
rows, values, timefmt, configs, errors, schema, the backends). It must not import, directly or through another
module, at the top or inside a function, ops/, a command module or the printing helpers: an arrow from the core
to the tooling is a design bug (STYLE.md). The package's __init__.py is the composition root that wires the
tooling in (Store.move_plugin's mover), so it is not followed.
"""

from __future__ import annotations

import ast
from pathlib import Path

from zepix_store.cli import COMMANDS, command_module

from .helpers import REPO

PACKAGE = REPO / "zepix_store"
CORE = {"zepix_store.registry", "zepix_store.plugin_store", "zepix_store.compat", "zepix_store.rows",
        "zepix_store.values", "zepix_store.timefmt", "zepix_store.config", "zepix_store.errors",
        "zepix_store.schema", "zepix_store.queries", "zepix_store.backend"}
PRINTING = {"zepix_store._output", "zepix_store._sync_output", "zepix_store._plot"}
COMMAND_MODULES = {command_module(name) for name in COMMANDS} | {"zepix_store.cli", "zepix_store.__main__"}


def _module_paths() -> dict[str, Path]:
    paths = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return paths


def _imports(module: str, source: str, package: str, modules: set[str]) -> set[str]:
    """Every zepix_store module `module` imports anywhere: at the top, in a function, under TYPE_CHECKING."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found |= ({f"{target}.{a.name}" for a in node.names} & modules) or {target}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return (found & modules) - {module}


def import_graph() -> dict[str, set[str]]:
    paths = _module_paths()
    return {m: _imports(m, p.read_text(), m if p.name == "__init__.py" else m.rpartition(".")[0], set(paths))
            for m, p in paths.items()}


def _within(module: str, roots: set[str]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


def forbidden_reach(graph: dict[str, set[str]], roots: set[str], forbidden: set[str]) -> dict[str, list[str]]:
    """For each forbidden module some root reaches: the import chain that reaches it."""
    start = [m for m in graph if _within(m, roots)]
    chain: dict[str, list[str]] = {m: [m] for m in start}
    todo, found = list(start), {}
    while todo:
        module = todo.pop()
        for dep in sorted(graph[module]):
            if dep in chain or dep == "zepix_store":  # the package itself: the composition root, not followed
                continue
            chain[dep] = [*chain[module], dep]
            if _within(dep, forbidden):
                found[dep] = chain[dep]
            else:
                todo.append(dep)
    return {m: [c.removeprefix("zepix_store.") for c in path] for m, path in sorted(found.items())}


def test_the_runtime_core_reaches_no_tooling_command_or_printing() -> None:
    forbidden = {"zepix_store.ops", "zepix_store._bench", "zepix_store._sample", *COMMAND_MODULES, *PRINTING}
    assert forbidden_reach(import_graph(), CORE, forbidden) == {}


def test_the_tooling_reaches_no_command_or_printing() -> None:
    assert forbidden_reach(import_graph(), {"zepix_store.ops"}, {*COMMAND_MODULES, *PRINTING}) == {}


def test_the_layout_guard_can_fail() -> None:
    # the arrows this layout removed: registry.move_plugin importing ops.flip, prepare_file the backup command,
    # ops/ the printing helpers for show_value
    graph = import_graph()
    graph["zepix_store.backend.sqlite"] = {*graph["zepix_store.backend.sqlite"], "zepix_store.backup"}
    graph["zepix_store.registry"] = {*graph["zepix_store.registry"], "zepix_store.ops.flip"}
    graph["zepix_store.ops.sync.plan"] = {*graph["zepix_store.ops.sync.plan"], "zepix_store._output"}
    reached = forbidden_reach(graph, CORE, {"zepix_store.ops", *COMMAND_MODULES, *PRINTING})
    assert reached["zepix_store.ops.flip"] == ["registry", "ops.flip"]
    assert reached["zepix_store.backup"][-2:] == ["backend.sqlite", "backup"]
    assert forbidden_reach(graph, {"zepix_store.ops"}, PRINTING) == {
        "zepix_store._output": ["ops.sync.plan", "_output"]}
    # a lazy import inside a function counts
    source = "def move():\n    from .ops.flip import flip\n"
    assert _imports("zepix_store.registry", source, "zepix_store", set(graph)) == {"zepix_store.ops.flip"}


# The core above the backend: it reaches the database through backend/base.py only, so a second backend needs no
# change here. (errors.py still translates sqlite3 errors for the SQLite backend and the CLI.)
DRIVER_NEUTRAL = {"zepix_store.registry", "zepix_store.plugin_store", "zepix_store.compat", "zepix_store._routing",
                  "zepix_store.queries", "zepix_store.backend.base"}
DRIVERS = {"sqlite3", "aiosqlite"}


def drivers_named(sources: dict[str, str]) -> dict[str, list[str]]:
    """The database drivers each module imports by name."""
    named = {}
    for module, source in sources.items():
        found = {a.name.split(".")[0] for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import)
                 for a in n.names} | {(n.module or "").split(".")[0] for n in ast.walk(ast.parse(source))
                                      if isinstance(n, ast.ImportFrom) and not n.level}
        if found & DRIVERS:
            named[module] = sorted(found & DRIVERS)
    return named


def test_the_core_above_the_backend_imports_no_driver() -> None:
    sources = {m: p.read_text() for m, p in _module_paths().items() if _within(m, DRIVER_NEUTRAL)}
    assert len(sources) >= 10
    assert drivers_named(sources) == {}
    assert drivers_named({"x": "import sqlite3\n", "y": "from aiosqlite import Connection\n"}) == {
        "x": ["sqlite3"], "y": ["aiosqlite"]}
