"""The public surface of zepix_store: what `import zepix_store` exports, and the layout rules of the package."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sqlite3
from pathlib import Path

import pytest

import zepix_store
from zepix_store.errors import EXIT_CODES, EXIT_INTERRUPTED, translate_sqlite_error

from .helpers import REPO

PACKAGE = REPO / "zepix_store"
EXPORTED = [
    "ConfigError",
    "CorruptDatabaseError",
    "IsolationError",
    "PluginConfig",
    "PluginStore",
    "RowError",
    "SCHEMA_VERSION",
    "SchemaError",
    "Store",
    "StoreBusyError",
    "StoreConfig",
    "StoreError",
    "StoreFullError",
    "StoreIOError",
    "StoreUnavailableError",
    "Trade",
    "UnknownPluginError",
    "VerifyError",
    "load_config",
]
# Being rewritten on other branches; each gains its __all__ there.
PENDING_ALL: set[str] = set()
# Over ~400 lines and being split on other branches.
PENDING_SIZE: set[str] = set()


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(zepix_store.__path__, "zepix_store."))


def _short(name: str) -> str:
    return name.removeprefix("zepix_store.")


def test_the_package_exports_exactly_its_api_sorted_and_a_version() -> None:
    assert zepix_store.__all__ == EXPORTED
    assert sorted(zepix_store.__all__) == zepix_store.__all__
    assert all(hasattr(zepix_store, name) for name in zepix_store.__all__)
    assert isinstance(zepix_store.__version__, str) and zepix_store.__version__


def test_every_public_module_declares_all_and_every_name_in_it_exists() -> None:
    missing = []
    for name in _modules():
        if _short(name) in PENDING_ALL or name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        if not hasattr(module, "__all__"):
            missing.append(name)
            continue
        assert [n for n in module.__all__ if not hasattr(module, n)] == [], name
    assert missing == []


def test_every_error_carries_path_plugin_and_table() -> None:
    err = zepix_store.ConfigError("data/x.db: bad", path=Path("data/x.db"), plugin="p", table="trades")
    assert (str(err), err.path, err.plugin, err.table) == ("data/x.db: bad", "data/x.db", "p", "trades")
    bare = zepix_store.StoreBusyError("locked")
    assert (bare.path, bare.plugin, bare.table, bare.exit_code) == (None, None, None, 4)


def _top_level_imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """zepix_store modules `module` imports when it is imported (imports inside functions are left out).

    `from . import x` needs the submodule x, not the whole package: the package counts only for a name it
    defines itself (`from . import __version__`).
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join([*base, *([node.module] if node.module else [])])
        elif (node.module or "").startswith("zepix_store"):
            target = str(node.module)
        else:
            continue
        submodules = {f"{target}.{a.name}" for a in node.names} & modules
        found |= submodules or {target}
    return found


def _graph() -> dict[str, set[str]]:
    paths = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {m: (_top_level_imports(p, m, set(paths)) & set(paths)) - {m} for m, p in paths.items()}


def test_no_import_cycle() -> None:
    graph, done, cycles = _graph(), set(), []

    def visit(module: str, stack: list[str]) -> None:
        for dep in sorted(graph[module]):
            if dep in stack:
                cycles.append([*stack[stack.index(dep):], dep])
            elif dep not in done:
                visit(dep, [*stack, dep])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert cycles == []


def test_no_product_module_imports_the_benchmark_or_the_samples() -> None:
    # Allowed: the bench command, the demo (it generates sample history), the old legacy_data import path.
    allowed = {"zepix_store.bench", "zepix_store.demo", "zepix_store.legacy_data"}
    offenders = {m: sorted(d for d in deps if d.startswith(("zepix_store._bench", "zepix_store._sample")))
                 for m, deps in _graph().items()
                 if not m.startswith(("zepix_store._bench", "zepix_store._sample")) and m not in allowed}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_modules_stay_under_about_400_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 420 and p.stem not in PENDING_SIZE}
    assert long == {}


@pytest.mark.parametrize(("error", "typed", "says"), [
    (sqlite3.OperationalError("database or disk is full"), zepix_store.StoreFullError, "disk full"),
    (sqlite3.OperationalError("database is locked"), zepix_store.StoreBusyError, "locked by another process"),
    (sqlite3.DatabaseError("file is not a database"), zepix_store.CorruptDatabaseError, "not a database or corrupt"),
    (sqlite3.OperationalError("attempt to write a readonly database"), zepix_store.StoreIOError, "read-only"),
    (sqlite3.OperationalError("disk I/O error"), zepix_store.StoreIOError, "I/O error"),
], ids=["full", "busy", "corrupt", "read-only", "io"])
def test_sqlite_errors_become_typed_errors_naming_the_file(error: sqlite3.Error, typed: type[Exception],
                                                          says: str, tmp_path: Path) -> None:
    path = tmp_path / "x.db"  # on a writable file system: not the read-only-mount message
    got = translate_sqlite_error(error, path)
    assert type(got) is typed and got is not None
    assert (str(got), got.path) == (f"{path}: {says} ({error})", str(path))


def test_an_unknown_sqlite_error_stays_untyped() -> None:
    assert translate_sqlite_error(sqlite3.OperationalError("no such table: x"), "x.db") is None


def test_one_exit_code_table() -> None:
    assert EXIT_CODES[EXIT_INTERRUPTED] == "interrupted" and EXIT_INTERRUPTED == 130
    assert sorted(EXIT_CODES) == [0, 1, 2, 3, 4, 5, 7, 130]
