"""E2, E4, E5 and D1 for the library: hostile ids and paths, SQL built from text, file modes, wrong file kinds.

E4 is a static scan of the package source: every piece of SQL text built by f-string, `%` or `.format`, and
every non-literal statement handed to execute/executemany/executescript, may interpolate only values traced
(inside the package) to constants: schema.py's tables and columns, UPPER_CASE module constants, literals,
numbers, placeholders, helpers whose every return is so traced, or the names listed in ALLOW with the reason
they are safe. Parameters are traced through every call site in the package (a private helper's through its
own module's); a public entry point's callers outside the package are not seen, so such a function must check
identifiers it is given against schema.py itself. On PostgreSQL, psycopg's composition counts as quoting:
`sql.Identifier(x)`, `sql.Literal(x)` and `sql.Placeholder()` are approved whatever x is (psycopg quotes x, so it
can name an object but never become SQL), while `sql.SQL(x)` is SQL text and x is traced like any other.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sqlite3
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import REPO, Project, byte_checksum, listing, query, run_python, schema_checksum
from zepix_store import (
    ConfigError,
    CorruptDatabaseError,
    StoreIOError,
    Trade,
    UnknownPluginError,
)
from zepix_store.config import (
    PLUGIN_ID_PATTERN,
    StoreConfig,
    load_config,
    validate_plugin_id,
)
from zepix_store.registry import Store
from zepix_store.schema import SCHEMA_VERSION, TABLES

PACKAGE = REPO / "zepix_store"
REAL = "v6-logic-01-1min"
KNOWN_IDS = sorted(p.name for p in (REPO / "configs" / "plugins").iterdir())

# --- E2: hostile plugin ids ------------------------------------------------------------------------------------

HOSTILE_IDS = [
    "../x", "a/b", "", " ", ".", "..", "\x00", f"{REAL}\x00", "a" * 300, REAL.upper(), REAL.replace("-", "\u2010"),
    "%", "_", "' OR 1=1 --", "x; DROP TABLE trades", "legacy", f"{REAL}\n", f" {REAL}", f"{REAL}/../{REAL}",
    "../../etc/passwd", "*", f"{REAL}%",
]


def _store_state(project: Project) -> tuple[dict[str, tuple[int, int]], str]:
    return listing(project.root), schema_checksum(project.isolated_db(REAL))


async def test_hostile_ids_are_unknown_plugins_and_touch_nothing(project: Project, figures) -> None:
    async with Store.open(project.configs) as store:
        await store.for_plugin(REAL).save_trade(Trade(trade_id="t1"))
        before = _store_state(project)
        threads = threading.active_count()
        rejected = 0
        for plugin_id in [*HOSTILE_IDS, None, 1, b"x", ["x"]]:
            with pytest.raises(UnknownPluginError) as caught:
                store.for_plugin(plugin_id)  # type: ignore[arg-type]
            message = str(caught.value)
            assert "\n" not in message and "\x00" not in message and len(message) < 1000
            assert caught.value.exit_code == 2
            rejected += 1
        assert threading.active_count() == threads  # no connection (worker thread) was opened for them
        assert _store_state(project) == before
    figures("E2 hostile ids (library)", f"hostile ids {rejected}/{rejected} rejected by for_plugin; files created 0; "
            "sqlite_master unchanged")


def _write_plugin(project: Project, folder: str, plugin_id: object) -> Path:
    path = project.configs / "plugins" / folder / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"plugin_id": plugin_id, "database": {
        "use_shared": True, "shared_db": "data/trading_bot.db"}}))
    return path


def _folder_ok(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\x00" not in name \
        and len(name.encode()) < 255 and not name.startswith((".", "_"))  # those folders are skipped, not plugins


def test_hostile_ids_in_config_files_are_refused_before_any_file(project: Project, figures) -> None:
    cases = 0
    for plugin_id in HOSTILE_IDS:
        for folder in {REAL, plugin_id} if _folder_ok(plugin_id) else {REAL}:
            config = _write_plugin(project, folder, plugin_id)
            before = listing(project.root)
            with pytest.raises(ConfigError) as caught:
                load_config(project.configs)
            message = str(caught.value)
            assert "\n" not in message and str(project.configs / "plugins") in message, message
            assert listing(project.root) == before
            if folder != REAL:
                config.unlink()
                config.parent.rmdir()
            cases += 1
        _write_plugin(project, REAL, REAL)
        store_yaml = project.configs / "store.yaml"
        original = store_yaml.read_text()
        store_yaml.write_text(original + f"  LOGIC9: {json.dumps(plugin_id)}\n")
        with pytest.raises(ConfigError, match="mapping"):
            load_config(project.configs)
        cases += 1
        store_yaml.write_text(original)
    assert not (project.data / "trading_bot.db").exists()
    figures("E2 hostile ids (config files)", f"hostile configs {cases}, accepted 0, files created 0")


@pytest.fixture(scope="module")
def fuzz_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[StoreConfig, Path]:
    project = Project(tmp_path_factory.mktemp("fuzz") / "proj")
    return load_config(project.configs), project.root


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(plugin_id=st.one_of(
    st.text(),
    st.from_regex(PLUGIN_ID_PATTERN, fullmatch=True),
    st.sampled_from(HOSTILE_IDS),
    st.sampled_from(KNOWN_IDS),
    st.builds(lambda known, extra: known + extra, st.sampled_from(KNOWN_IDS), st.text(max_size=2)),
))
def test_fuzzed_ids_map_to_one_known_plugin_or_are_refused(fuzz_project: tuple[StoreConfig, Path],
                                                           plugin_id: str) -> None:
    config, root = fuzz_project
    before = listing(root)
    store = Store(config)
    try:
        handle = store.for_plugin(plugin_id)
    except UnknownPluginError as exc:
        assert plugin_id not in config.plugins
        assert "\n" not in str(exc) and "\x00" not in str(exc)
    else:
        assert handle.plugin_id == plugin_id and config.plugins[plugin_id].db_path.parent == config.data_dir
    # A valid-looking id is one safe path component: as a file name it can never leave data/.
    try:
        valid = validate_plugin_id(plugin_id, "fuzz")
    except ConfigError:
        pass
    else:
        assert os.path.dirname(os.path.normpath(config.data_dir / f"{valid}.db")) == str(config.data_dir)
    assert listing(root) == before


# --- E4: static scan of dynamic SQL ------------------------------------------------------------------------------

SQL_WORDS = re.compile(r"\b(SELECT|INSERT INTO|INSERT OR|UPDATE|DELETE FROM|CREATE|DROP|ALTER TABLE|PRAGMA|ATTACH|"
                       r"DETACH|BEGIN|COMMIT|ROLLBACK|SAVEPOINT|VACUUM|ANALYZE|FROM|WHERE|VALUES|JOIN|ON CONFLICT|"
                       r"ORDER BY|GROUP BY)\b")
SQL_START = re.compile(r"^\s*\(?\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|ATTACH|DETACH|BEGIN|"
                       r"COMMIT|ROLLBACK|SAVEPOINT|RELEASE|VACUUM|ANALYZE|WITH|REPLACE)\b")
EXECUTE = {"execute", "executemany", "executescript"}
PSYCOPG_QUOTED = {"Identifier", "Literal", "Placeholder"}  # psycopg.sql: quoted by the driver, never SQL text
PSYCOPG_TEXT = {"SQL", "Composed"}  # psycopg.sql: SQL text as given, traced like a string
UPPER = re.compile(r"^_?[A-Z][A-Z0-9_]*$")
NUMERIC = {"int", "len", "float", "bool", "abs", "round"}
PASS_THROUGH = {"str", "sorted", "list", "tuple", "reversed", "range", "enumerate", "zip", "min", "max", "set",
                "frozenset", "dict", "iter", "next", "filter"}
MESSAGE_SINKS = {"say", "print", "progress", "debug", "info", "warning", "error", "exception", "warn", "fail",
                 "echo", "line", "write"}
BUILTIN_TYPES = {"str", "dict", "list", "tuple", "set", "frozenset"}
MUTATORS = {"append", "extend", "add", "insert", "update", "setdefault", "appendleft", "extendleft"}
NUMERIC_METHODS = {"index", "count", "find", "rfind", "bit_length"}
STR_METHODS = {"join", "format", "upper", "lower", "strip", "rstrip", "lstrip", "replace", "split", "partition",
               "items", "keys", "values", "get", "removeprefix", "removesuffix", "fromkeys", "copy"}
# (module, function, parameter or local name): why its value may reach SQL text although the scan cannot trace it.
ALLOW = {
    ("schema", "create_sql", "self"): "a Table constant of schema.py",
    ("write", "insert", "row"): "keys checked against the table's schema columns by rows.check_row",
    ("write", "upsert", "row"): "keys checked against the table's schema columns by rows.check_row",
    ("write", "save_trade", "row"): "keys checked against the trades columns by rows.check_row",
    ("write", "save_trade_batch", "shape"): "columns checked against the trades columns by rows.check_row",
    ("write", "update", "sql"): "a statement constant of queries/plugin.py (PluginStore._update's callers)",
    ("base", "placeholders", "count"): "a number of columns: an int, never text",
    ("base", "insert_sql", "table"): "write.py passes a schema.py table name (TABLE_BY_NAME[...].name or 'trades')",
    ("base", "insert_sql", "columns"): "write.py passes the keys of a row checked by rows.check_row + 'plugin_id'",
    ("base", "upsert_sql", "table"): "write.upsert passes TABLE_BY_NAME[table].name",
    ("base", "upsert_sql", "columns"): "write.upsert passes the keys of a row checked by rows.check_row",
    ("base", "upsert_sql", "key"): "write.upsert passes 'plugin_id' and TABLE_BY_NAME[table].key",
    ("base", "upsert_sql", "updates"): "write.upsert passes keys of the checked row",
    ("base", "in_list", "expression"): "write.py passes the literal column name 'trade_id'",
    ("sqlite", "in_list", "expression"): "write.py passes the literal column name 'trade_id'",
    ("upgrade", "_rebuild", "extra"): "the file's own extra columns, quoted as identifiers by _extra_columns",
    ("upgrade", "_rebuild", "kept_indexes"): "the file's own CREATE INDEX statements, re-run after the rebuild",
    ("stats", "_plugin_rows", "trades"): "TradeSource.trades: 'trades' or _legacy_trades(), built from constants",
    ("legacy", "_insert_rows", "columns"): "the columns of the fixture's own tables, made from LEGACY_SCHEMA",
    ("sqlite_file", "savepoint", "name"): "checked by str.isidentifier() before it is used; callers pass literals",
    ("bot_history", "_insert", "table"): "a table of the sample's own LEGACY_SCHEMA (TABLE_SQL keys)",
    ("bot_history", "_insert", "columns"): "the columns of the sample's own tables, read by PRAGMA table_info",
    ("bot_history", "_make_older", "name"): "OLDER_TABLES / OLDER_MISSING_COLUMNS constants of the sample",
    ("bot_history", "_write", "t"): "table names read from the sample file's own sqlite_master",
    ("reads", "_alternate", "scan"): "a statement PluginStore itself sent (captured_sql), NOT INDEXED added",
    ("postgresql", "_measure_statistics", "query"): "bench: a statement PluginStore itself sent (captured_sql), "
                                                    "run again and under EXPLAIN",
    ("ddl", "ts_column", "name"): "a schema.py column: _legacy_column passes Column names, encode_row keys it "
                                  "checked against values.KINDS",
    ("base", "insert", "values"): "the checked row's columns (rows.check_row) and, on PostgreSQL, the store's own "
                                  "companions and zx_raw (values.encode_row checks every key against values.KINDS)",
    ("base", "upsert", "values"): "as base.insert's values",
    ("base", "upsert", "key"): "write.upsert passes 'plugin_id' and TABLE_BY_NAME[table].key",
    ("base", "assignments", "values"): "as base.insert's values",
    ("operations", "assignments", "values"): "as base.insert's values",
    ("operations", "assignments", "written"): "the keys of base.insert's values",
    ("operations", "upsert_sql", "table"): "as base.upsert_sql's table",
    ("operations", "upsert_sql", "columns"): "as base.upsert_sql's columns",
    ("operations", "upsert_sql", "key"): "as base.upsert_sql's key",
    ("operations", "upsert_sql", "updates"): "as base.upsert_sql's updates",
    ("operations", "upsert_sql", "written"): "the upsert's columns (above) less its key",
    ("operations", "insert_sql", "table"): "as base.insert_sql's table",
    ("operations", "insert_sql", "columns"): "as base.insert_sql's columns",
    ("operations", "in_list", "expression"): "write.py passes the literal column name 'trade_id'",
    ("operations", "execute", "text"): "PgConnection: the caller's statement (traced at its own call site) with "
                                       "only ? turned into %s (translate)",
    ("operations", "executemany", "text"): "as PgConnection.execute's text",
    ("store", "execute", "sql"): "PgRoute: the caller's statement, traced at its own call site",
    ("store", "executemany", "sql"): "as PgRoute.execute's sql",
}
# Package classes whose instances hold identifiers of schema.py only, checked when they are made: a parameter
# annotated with one (and `self` in their methods) is traced.
VALIDATED = {
    "Table": "schema.py's table constants (TABLES, TABLE_BY_NAME)",
    "Columns": "ops/sync/columns.py: __post_init__ checks every name is a column of schema.py",
    "Scope": "ops/sync/plan.py: __post_init__ checks a schema.py Table, its Columns and a Direction",
    "Direction": "ops/sync/job.py: an Enum whose src/dst are the literals 'sh' and 'iso'",
    "Operations": "backend/base.py: a backend's SQL spellings; its placeholder is a ClassVar literal",
    "SQLiteOperations": "backend/sqlite.py: SQLite's spellings; its placeholder is the ClassVar literal '?'",
    "PgOperations": "backend/postgresql/operations.py: PostgreSQL's spellings; its placeholder is base's '?'",
}
# Double-quoted tokens that are identifiers, not string literals: pragma columns named by SQL keywords.
SCHEMA_NAMES = {t.name for t in TABLES} | {c for t in TABLES for c in t.all_column_names}
QUOTED_IDENTIFIERS = {"table", "from", "to", "parent", "key", "index", "order", "group"}
DOUBLE_QUOTE_ALLOW = {
    ("legacy_schema", 'DEFAULT "legacy"'): "reproduces the seed plan's flawed migration on purpose (a test fixture)",
}


@dataclass
class _Module:
    name: str
    path: Path
    tree: ast.Module
    parent: dict[int, ast.AST] = field(default_factory=dict, repr=False)


def _modules() -> list[_Module]:
    mods = []
    for path in sorted(PACKAGE.rglob("*.py")):  # subpackages too: ops/, _sample/, _bench/
        mod = _Module(path.stem, path, ast.parse(path.read_text(), str(path)))
        for node in ast.walk(mod.tree):
            for child in ast.iter_child_nodes(node):
                mod.parent[id(child)] = node
        mods.append(mod)
    return mods


COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module, *COMPREHENSIONS)
Bindings = dict[str, list[object]]  # name -> expressions, a FunctionDef (a parameter of it), _Element or None


def _target_names(target: ast.AST) -> Iterator[str]:
    for node in ast.walk(target):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):  # not `t` in `d[t.name] = ...`
            yield node.id


class SqlScan:
    """Traces every value interpolated into SQL text back to constants (see module doc)."""

    def __init__(self) -> None:
        self.modules = _modules()
        self.defs: dict[str, list[tuple[_Module, ast.FunctionDef | ast.AsyncFunctionDef]]] = {}
        self.calls: dict[str, list[tuple[_Module, ast.Call, int]]] = {}  # name -> (module, call, arg offset)
        self.classes: set[str] = set()
        for mod in self.modules:
            for node in ast.walk(mod.tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.defs.setdefault(node.name, []).append((mod, node))
                elif isinstance(node, ast.ClassDef):
                    self.classes.add(node.name)
        for mod in self.modules:
            for node in ast.walk(mod.tree):
                if isinstance(node, ast.Call):
                    self._index_call(mod, node)
        self._bindings: dict[int, Bindings] = {}
        self._memo: dict[tuple[int, str], bool] = {}
        self.sites = 0
        self.unapproved: list[str] = []
        self.double_quoted: list[str] = []

    def _index_call(self, mod: _Module, call: ast.Call) -> None:
        func = call.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name:
            self.calls.setdefault(name, []).append((mod, call, 0))
        # db.read(fn, *args) / db.write(fn, *args) call fn(conn, *args) on the worker thread
        if isinstance(func, ast.Attribute) and func.attr in {"read", "write", "_execute"} and call.args:
            first = call.args[0]
            if isinstance(first, ast.Name) and first.id in self.defs:
                self.calls.setdefault(first.id, []).append((mod, call, 1))

    # -- scopes ---------------------------------------------------------------------------------------------------
    def _scope(self, mod: _Module, node: ast.AST) -> ast.AST:
        """The function, comprehension or module whose names `node` sees first."""
        current = mod.parent.get(id(node))
        while current is not None and not isinstance(current, SCOPES):
            current = mod.parent.get(id(current))
        return current or mod.tree

    def _function_name(self, mod: _Module, scope: ast.AST) -> str:
        while isinstance(scope, COMPREHENSIONS):
            scope = self._scope(mod, scope)
        return getattr(scope, "name", "<module>")

    def _bind(self, scope: ast.AST) -> Bindings:
        """name -> what it is bound to in `scope`: expressions, _Item, _Element, a FunctionDef (a parameter), None."""
        if id(scope) in self._bindings:
            return self._bindings[id(scope)]
        found: Bindings = {}
        if isinstance(scope, COMPREHENSIONS):
            for gen in scope.generators:
                self._bind_target(found, gen.target, gen.iter, loop=True)
            self._bindings[id(scope)] = found
            return found
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = scope.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]:
                found.setdefault(arg.arg, []).append(scope)
        stack: list[ast.AST] = list(getattr(scope, "body", []))
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.setdefault(node.name, []).append(None if isinstance(node, ast.ClassDef) else ast.Constant(0))
                continue  # a nested def has its own scope
            self._bind_node(found, node)
            if not isinstance(node, COMPREHENSIONS):  # their loop variables are theirs (Python 3)
                stack.extend(ast.iter_child_nodes(node))
            else:
                stack.extend(g.iter for g in node.generators)
        self._bindings[id(scope)] = found
        return found

    def _bind_node(self, found: Bindings, node: ast.AST) -> None:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                self._bind_target(found, target, node.value)
                if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                    found.setdefault(target.value.id, []).append(_Item(node.value))  # x[k] = v puts v in x
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.attr in MUTATORS:
            added = node.args if node.func.attr in ("extend", "update", "extendleft") else map(_Item, node.args)
            found.setdefault(node.func.value.id, []).extend(added)  # x.append(v) puts v in x
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            self._bind_target(found, node.target, node.value)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self._bind_target(found, node.target, node.iter, loop=True)
        elif isinstance(node, ast.NamedExpr):
            self._bind_target(found, node.target, node.value)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            self._bind_target(found, node.optional_vars, None)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            found.setdefault(node.name, []).append(None)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:  # an imported value is unknown (constants pass as UPPER_CASE, helpers as calls)
                found.setdefault((alias.asname or alias.name).split(".")[0], []).append(None)

    def _bind_target(self, found: Bindings, target: ast.AST, value: ast.AST | None, loop: bool = False) -> None:
        if isinstance(target, (ast.Tuple, ast.List)) and all(isinstance(t, ast.Name) for t in target.elts):
            if not loop and isinstance(value, (ast.Tuple, ast.List)) and len(target.elts) == len(value.elts):
                for t, v in zip(target.elts, value.elts):
                    found.setdefault(t.id, []).append(v)  # type: ignore[attr-defined]
                return
            if value is not None and (loop or isinstance(value, ast.Call)):
                for index, t in enumerate(target.elts):  # position `index` of each element / returned tuple
                    found.setdefault(t.id, []).append(_Element(value, index, loop))  # type: ignore[attr-defined]
                return
        for name in _target_names(target):
            found.setdefault(name, []).append(_Item(value) if loop and value is not None else value)

    # -- approval -------------------------------------------------------------------------------------------------
    def ok(self, mod: _Module, node: ast.AST | None) -> bool:
        """Whether `node`'s value is traced to constants (see module doc)."""
        if node is None:
            return False
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.Name):
            return self._name_ok(mod, node)
        if isinstance(node, ast.JoinedStr):
            return all(self.ok(mod, v) for v in node.values)
        if isinstance(node, ast.FormattedValue):
            return self.ok(mod, node.value)
        if isinstance(node, ast.Attribute):
            return bool(UPPER.match(node.attr)) or self.ok(mod, node.value)
        if isinstance(node, ast.Subscript):
            return self.ok(mod, node.value)
        if isinstance(node, ast.Call):
            return self._call_ok(mod, node)
        if isinstance(node, (ast.Compare,)):
            return True  # a bool
        if isinstance(node, ast.IfExp):
            return self.ok(mod, node.body) and self.ok(mod, node.orelse)
        if isinstance(node, ast.BinOp):
            return self.ok(mod, node.left) and self.ok(mod, node.right)
        if isinstance(node, ast.BoolOp):
            return all(self.ok(mod, v) for v in node.values)
        if isinstance(node, ast.UnaryOp):
            return self.ok(mod, node.operand)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return all(self.ok(mod, e) for e in node.elts)
        if isinstance(node, ast.Starred):
            return self.ok(mod, node.value)
        if isinstance(node, ast.Dict):
            return all(self.ok(mod, v) for v in [*node.keys, *node.values] if v is not None)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            return self.ok(mod, node.elt)  # its loop variables are bound to their iterables (see _bind)
        if isinstance(node, ast.DictComp):
            return self.ok(mod, node.key) and self.ok(mod, node.value)
        return False

    def _call_ok(self, mod: _Module, call: ast.Call) -> bool:
        func = call.func
        args = [*call.args, *(k.value for k in call.keywords)]
        if isinstance(func, ast.Name) and func.id in NUMERIC:
            return True
        if isinstance(func, ast.Name) and func.id in PASS_THROUGH:
            return all(self.ok(mod, a) for a in args)
        if isinstance(func, ast.Attribute) and func.attr in NUMERIC_METHODS:
            return True
        if isinstance(func, ast.Attribute) and func.attr in STR_METHODS:
            return self.ok(mod, func.value) and all(self.ok(mod, a) for a in args)
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in PSYCOPG_QUOTED:
            return True
        if name in PSYCOPG_TEXT:
            return all(self.ok(mod, a) for a in args)
        if name in self.classes:  # a dataclass of this package holds what it is given
            return all(self.ok(mod, a) for a in args)
        return name in self.defs and self._returns_ok(name)

    def _element_ok(self, mod: _Module, element: _Element) -> bool:
        sources = self._items(mod, element.source, 0) if element.loop else self._returns(mod, element.source)
        if sources is None:
            return self.ok(mod, element.source)
        for source_mod, value in sources:
            if isinstance(value, ast.Tuple) and len(value.elts) > element.index \
                    and not any(isinstance(e, ast.Starred) for e in value.elts):
                value = value.elts[element.index]
            if not self.ok(source_mod, value):
                return False
        return True

    def _returns(self, mod: _Module, call: ast.AST) -> list[tuple[_Module, ast.AST]] | None:
        func = call.func if isinstance(call, ast.Call) else None
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name not in self.defs:
            return None
        return [(m, node.value) for m, f in self.defs[name] for node in ast.walk(f)
                if isinstance(node, ast.Return) and node.value is not None and self._scope(m, node) is f]

    def _items(self, mod: _Module, node: ast.AST, depth: int) -> list[tuple[_Module, ast.AST]] | None:
        """What iterating `node` yields, where the scan can tell (None: it cannot)."""
        if depth > 8:
            return None
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            found: list[tuple[_Module, ast.AST]] = []
            for elt in node.elts:
                inner = self._items(mod, elt.value, depth + 1) if isinstance(elt, ast.Starred) else [(mod, elt)]
                if inner is None:
                    return None
                found += inner
            return found
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            return [(mod, node.elt)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self._items(mod, node.left, depth + 1), self._items(mod, node.right, depth + 1)
            return None if left is None or right is None else left + right
        if isinstance(node, ast.Call):
            returns = self._returns(mod, node)
            if returns is None:
                return None
            found = []
            for m, value in returns:
                inner = self._items(m, value, depth + 1)
                if inner is None:
                    return None
                found += inner
            return found
        if isinstance(node, ast.Name) and not UPPER.match(node.id):
            return self._name_items(mod, node, depth)
        return None

    def _name_items(self, mod: _Module, node: ast.Name, depth: int) -> list[tuple[_Module, ast.AST]] | None:
        scope: ast.AST | None = self._scope(mod, node)
        while scope is not None:
            bound = self._bind(scope).get(node.id)
            if bound is not None and (mod.name, self._function_name(mod, scope), node.id) in ALLOW:
                return None  # approved as a whole: see _name_ok
            if bound is not None:
                found: list[tuple[_Module, ast.AST]] = []
                for value in bound:
                    inner = [(mod, value.value)] if isinstance(value, _Item) and value.value is not None \
                        else self._items(mod, value, depth + 1) if isinstance(value, ast.AST) else None
                    if inner is None:
                        return None
                    found += inner
                return found
            scope = None if isinstance(scope, ast.Module) else self._scope(mod, scope)
        return None

    def _returns_ok(self, name: str) -> bool:
        """Whether every value a package helper of this name returns (or yields) is traced to constants."""
        key = (0, f"returns:{name}")
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = True  # assume so while tracing recursion
        result = True
        for mod, func in self.defs[name]:
            for node in ast.walk(func):
                if isinstance(node, (ast.Return, ast.Yield, ast.YieldFrom)) and node.value is not None \
                        and self._scope(mod, node) is func:
                    result = result and self.ok(mod, node.value)
        self._memo[key] = result
        return result

    def _name_ok(self, mod: _Module, name: ast.Name) -> bool:
        if UPPER.match(name.id) or name.id in BUILTIN_TYPES:
            return True
        scope: ast.AST | None = self._scope(mod, name)
        while scope is not None:
            bound = self._bind(scope).get(name.id)
            if bound is not None:
                if (mod.name, self._function_name(mod, scope), name.id) in ALLOW:
                    return True
                return self._bound_ok(mod, scope, name.id, bound)
            scope = None if isinstance(scope, ast.Module) else self._scope(mod, scope)
        return name.id in self.defs

    def _validated_param(self, mod: _Module, func: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> bool:
        """A parameter annotated with a VALIDATED class, or `self` of one of their methods."""
        owner = mod.parent.get(id(func))
        if name == "self" and isinstance(owner, ast.ClassDef) and owner.name in VALIDATED:
            return True
        a = func.args
        for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs]:
            if arg.arg == name and isinstance(arg.annotation, ast.Name) and arg.annotation.id in VALIDATED:
                return True
        return False

    def _bound_ok(self, mod: _Module, scope: ast.AST, name: str, bound: list[object]) -> bool:
        key = (id(scope), name)
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = True  # assume so while tracing a cycle
        result = True
        for value in bound:
            if isinstance(value, (ast.FunctionDef, ast.AsyncFunctionDef)) and self._validated_param(mod, value, name):
                continue
            if isinstance(value, (ast.FunctionDef, ast.AsyncFunctionDef)):
                result = result and self._param_ok(mod, value, name)
            elif isinstance(value, _Element):
                result = result and self._element_ok(mod, value)
            elif isinstance(value, _Item):
                result = result and self.ok(mod, value.value)
            else:
                result = result and self.ok(mod, value)
        self._memo[key] = result
        return result

    def _param_ok(self, mod: _Module, func: ast.FunctionDef | ast.AsyncFunctionDef, param: str) -> bool:
        a = func.args
        positional = [x.arg for x in [*a.posonlyargs, *a.args]]
        defaults = dict(zip(positional[len(positional) - len(a.defaults):], a.defaults))
        defaults.update({k.arg: d for k, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None})
        is_method = isinstance(mod.parent.get(id(func)), ast.ClassDef)
        # A private helper is called from its own module only (another module's `_plan` is another function).
        sites = [s for s in self.calls.get(func.name, []) if not func.name.startswith("_") or s[0] is mod]
        if not sites or param in (a.vararg.arg if a.vararg else "", a.kwarg.arg if a.kwarg else ""):
            return False
        for caller, call, offset in sites:
            arg = self._argument(call, positional, param, offset, is_method)
            if arg is _MISSING:
                arg = defaults.get(param)
            if not self.ok(caller, arg):
                return False
        return (param not in defaults) or self.ok(mod, defaults[param])

    @staticmethod
    def _argument(call: ast.Call, positional: list[str], param: str, offset: int, is_method: bool) -> object:
        for kw in call.keywords:
            if kw.arg == param:
                return kw.value
            if kw.arg is None:
                return None  # **kwargs: unknown
        if is_method and isinstance(call.func, ast.Attribute) and offset == 0 and positional[:1] == [param]:
            return call.func.value  # obj.method(...): `self` is obj
        names = positional[1:] if is_method and isinstance(call.func, ast.Attribute) and offset == 0 else positional
        args = call.args[offset:]
        if offset:
            names = names[1:]  # fn(conn, *args): the connection comes first
        if param not in names:
            return _MISSING
        for arg in args[: names.index(param) + 1]:
            if isinstance(arg, ast.Starred):
                return arg.value  # f(x, *rest): an element of `rest`
        return args[names.index(param)] if names.index(param) < len(args) else _MISSING

    # -- sites ----------------------------------------------------------------------------------------------------
    def run(self) -> SqlScan:
        for mod in self.modules:
            docstrings = {id(n.value) for n in ast.walk(mod.tree) if isinstance(n, ast.Expr)}
            for node in ast.walk(mod.tree):
                self._check_node(mod, node, docstrings)
        return self

    def _check_node(self, mod: _Module, node: ast.AST, docstrings: set[int]) -> None:
        where = f"{mod.name}.py:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            if SQL_WORDS.search(text) and not self._message(mod, node):
                self._site(mod, where, [v.value for v in node.values if isinstance(v, ast.FormattedValue)])
            self._quotes(where, text)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            parent = mod.parent.get(id(node))
            if not isinstance(parent, ast.JoinedStr):
                self._quotes(where, node.value)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and self._sql_text(node.left):
            self._site(mod, where, [node.right])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "format" and self._sql_text(node.func.value):
                self._site(mod, where, [*node.args, *(k.value for k in node.keywords)])
            elif node.func.attr in EXECUTE and node.args and not isinstance(node.args[0], (ast.Constant,
                                                                                          ast.JoinedStr)):
                self._site(mod, where, [node.args[0]])

    def _message(self, mod: _Module, node: ast.AST) -> bool:
        """Whether `node` is (part of) a message for people: an error, a log line, a progress line."""
        current = mod.parent.get(id(node))
        while isinstance(current, (ast.JoinedStr, ast.FormattedValue, ast.BinOp, ast.keyword)):
            current = mod.parent.get(id(current))
        if isinstance(current, (ast.Raise, ast.Assert)):
            return True
        if isinstance(current, ast.Call):
            func = current.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            return name in MESSAGE_SINKS or name.endswith(("Error", "Exception", "Warning"))
        return False

    def _sql_text(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(SQL_WORDS.search(node.value)) \
            or isinstance(node, ast.Name) and bool(UPPER.match(node.id))

    def _site(self, mod: _Module, where: str, values: list[ast.AST]) -> None:
        self.sites += 1
        for value in values:
            if not self.ok(mod, value):
                scope = self._scope(mod, value)
                name = getattr(scope, "name", "<module>")
                self.unapproved.append(f"{where} in {name}(): {ast.unparse(value)}")

    def _quotes(self, where: str, text: str) -> None:
        if not SQL_START.match(text) or '"' not in text:
            return
        module = where.split(".py:")[0]
        if any(m == module and fragment in text for m, fragment in DOUBLE_QUOTE_ALLOW):
            return
        tokens = re.findall(r'"([^"]*)"', text)
        if any(t.lower() not in QUOTED_IDENTIFIERS and t not in SCHEMA_NAMES for t in tokens) or text.count('"') % 2:
            self.double_quoted.append(f"{where}: {text.strip()[:80]!r}")


_MISSING = object()


@dataclass(frozen=True)
class _Element:
    """Position `index` of what `source` returns (`a, b = f()`) or yields (`for a, b in source`)."""

    source: ast.AST
    index: int
    loop: bool


@dataclass(frozen=True)
class _Item:
    """One element of a container (`x.append(v)`, `for v in x`): approved when `value` is."""

    value: ast.AST | None


def test_dynamic_sql_interpolates_only_constants(figures) -> None:
    scan = SqlScan().run()
    figures("E4 dynamic SQL (static scan)", f"dynamic SQL sites {scan.sites}, unapproved {len(scan.unapproved)}")
    assert scan.sites > 20, "the scan found no dynamic SQL: it is broken"
    assert scan.unapproved == [], "values reach SQL text untraced:\n" + "\n".join(scan.unapproved)


def test_sql_text_has_no_double_quoted_strings(figures) -> None:
    scan = SqlScan().run()
    figures("E4 double-quoted SQL literals", f"found {len(scan.double_quoted)}")
    assert scan.double_quoted == [], "\n".join(scan.double_quoted)


SCAN_SELF_TEST = """
TABLES = ('trades', 'sl_events')


def ok(conn, plugin_id):
    for table in TABLES:
        conn.execute(f'SELECT * FROM {table} WHERE plugin_id = ?', (plugin_id,))
    conn.execute(f'SELECT * FROM {_name("trades")}')


def _name(table):
    return f'main.{table}'


def names(conn):
    return [r[0] for r in conn.execute('SELECT name FROM sqlite_master')]


def leak(conn, plugin_id, table):
    conn.execute(f"SELECT * FROM {table} WHERE plugin_id = '{plugin_id}'")


def run(conn, text):
    conn.execute(text)
    conn.execute('SELECT * FROM trades WHERE status = \"closed\"')
    conn.execute('SELECT %s FROM trades' % text)
    conn.execute(f"SELECT {', '.join(names(conn))} FROM trades")


class Handle:
    def get(self, conn):
        conn.execute(f'SELECT * FROM trades WHERE plugin_id = {self.plugin_id}')


def composed(conn, schema, text):
    conn.execute(sql.SQL('SELECT * FROM {}').format(sql.Identifier(schema, 'trades')))
    conn.execute(sql.SQL(text))
"""


def test_the_scan_catches_what_it_is_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "zepix_store"
    bad.mkdir()
    (bad / "bad.py").write_text(SCAN_SELF_TEST)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", bad)
    scan = SqlScan().run()
    assert sorted(u.split(": ", 1)[1] for u in scan.unapproved) == sorted([
        "table", "plugin_id", "text", "text", "'SELECT %s FROM trades' % text", "', '.join(names(conn))",
        "self.plugin_id", "sql.SQL(text)"])
    assert [d.split(": ", 1)[1] for d in scan.double_quoted] == ["'SELECT * FROM trades WHERE status = \"closed\"'"]


# --- E5: file modes under umask 022 ------------------------------------------------------------------------------

MODES = """
import asyncio, json, os, shutil, stat, sys
os.umask(0o022)
from zepix_store import Store, Trade
from zepix_store.backend.sqlite_backup import backup_file
configs, data, backups, plugin = sys.argv[1:5]
shutil.rmtree(data)  # the library must create data/ itself
modes = {}
def mode(path):
    st = os.stat(path)
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
    modes[os.path.relpath(path, os.path.dirname(data))] = (kind, oct(stat.S_IMODE(st.st_mode)))
async def main():
    async with Store.open(configs) as store:
        db = store.for_plugin(plugin)
        await db.save_trade(Trade(trade_id="t1"))
        path = store.config.plugins[plugin].db_path
        for p in (data, path.parent, path, f"{path}-wal", f"{path}-shm"):
            mode(p)
        return path
path = asyncio.run(main())
copy = backup_file(path, __import__("pathlib").Path(backups))
for p in (backups, copy):
    mode(p)
print(json.dumps(modes))
"""


def test_files_the_library_creates_are_owner_only(project: Project, figures) -> None:
    config = project.plugin_config_path(REAL)
    doc = json.loads(config.read_text())
    doc["database"]["isolated_db"] = "data/plugins/v6.db"  # a folder of its own, made along with data/
    config.write_text(json.dumps(doc))
    result = run_python(MODES, project.configs, project.data, project.data / "backups", REAL, timeout=60)
    assert result.rc == 0, result.stderr
    modes = {path: tuple(entry) for path, entry in json.loads(result.stdout).items()}
    assert sorted(modes) == sorted(["data", "data/plugins", "data/plugins/v6.db", "data/plugins/v6.db-wal",
                                    "data/plugins/v6.db-shm", "data/backups", *[p for p in modes if
                                                                                 p.startswith("data/backups/")]])
    assert len(modes) == 7
    wrong = {path: mode for path, (kind, mode) in modes.items() if mode != {"dir": "0o700", "file": "0o600"}[kind]}
    assert wrong == {}, modes
    figures("E5 file permissions (umask 022)", f"files checked {len(modes)}, mode != 0600/0700: {len(wrong)}")


async def test_an_existing_group_readable_db_is_never_widened(project: Project) -> None:
    path = project.isolated_db(REAL)
    async with Store.open(project.configs) as store:
        await store.for_plugin(REAL).save_trade(Trade(trade_id="t1"))
    os.chmod(path, 0o640)
    async with Store.open(project.configs) as store:
        await store.for_plugin(REAL).save_trade(Trade(trade_id="t2"))
        for suffix in ("-wal", "-shm"):
            assert stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode) & ~0o640 == 0
    assert stat.S_IMODE(os.stat(path).st_mode) & ~0o640 == 0


# --- D1: wrong kinds of file where a plugin's database should be --------------------------------------------------

FIFO_OPEN = """
import asyncio, sys
from zepix_store import Store, StoreError
async def main():
    async with Store.open(sys.argv[1]) as store:
        try:
            await store.for_plugin(sys.argv[2]).get_statistics()
        except StoreError as exc:
            print(type(exc).__name__, exc.exit_code, exc)
asyncio.run(main())
"""


def _make_kind(kind: str, path: Path, outside: Path) -> None:
    if kind == "text file":
        path.write_text("symbol,pnl\nEURUSD,1.5\n" * 200)
    elif kind == "directory":
        path.mkdir()
    elif kind == "FIFO":
        os.mkfifo(path)
    elif kind == "zero-byte file":
        path.touch()
    elif kind == "symlink to /dev/null":
        path.symlink_to("/dev/null")
    elif kind == "symlink to a db outside data/":
        conn = sqlite3.connect(outside)  # a real, closed database the store must not touch
        conn.execute("CREATE TABLE notes (x)")
        conn.close()
        path.symlink_to(outside)
    elif kind == "dangling symlink":
        path.symlink_to(path.with_name("nowhere.db"))


KINDS: dict[str, tuple[type[Exception] | None, bool]] = {
    # kind: (what the library raises when the file turns up after config load (None: accepted),
    #        whether config load refuses it up front)
    "text file": (CorruptDatabaseError, False),
    "directory": (StoreIOError, True),
    "FIFO": (StoreIOError, False),
    "zero-byte file": (None, False),
    "symlink to /dev/null": (StoreIOError, True),
    "symlink to a db outside data/": (StoreIOError, True),
    "dangling symlink": (StoreIOError, False),
}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_wrong_kind_of_file_is_refused_unchanged(project: Project, tmp_path: Path, kind: str, figures) -> None:
    path = project.isolated_db(REAL)
    outside = tmp_path / "outside.db"
    expected, config_refuses = KINDS[kind]
    store = Store.open(project.configs)  # loaded first: the file changes kind under a running bot
    _make_kind(kind, path, outside)
    before = listing(project.root)
    fingerprint = byte_checksum(path) if kind in ("text file", "zero-byte file") else None
    outside_sum = byte_checksum(outside) if outside.exists() else None
    async with store:
        if kind == "FIFO":  # opening a FIFO would block: run it in a child that must not hang
            result = run_python(FIFO_OPEN, project.configs, REAL, timeout=20)
            assert result.rc == 0, result.stderr
            assert result.stdout.startswith(f"StoreIOError 3 {path}: ") and "not a regular file" in result.stdout
        elif expected is None:
            stats = await store.for_plugin(REAL).get_statistics()
            assert stats["total_trades"] == 0
        else:
            with pytest.raises(expected) as caught:
                await store.for_plugin(REAL).get_statistics()
            assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    if expected is None:  # a zero-byte file is an empty SQLite database: it becomes a new, empty store
        assert query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert query(path, "SELECT count(*) FROM trades") == [(0,)]
        figures("D1 wrong kinds (library)", f"{kind}: initialised as an empty store (user_version {SCHEMA_VERSION})")
        return
    assert listing(project.root) == before, "something was created or changed"
    if fingerprint is not None:
        assert byte_checksum(path) == fingerprint
    assert (byte_checksum(outside) if outside.exists() else None) == outside_sum
    assert sorted(p.name for p in tmp_path.iterdir()) == (["outside.db"] if outside_sum else []) + ["proj"]
    if config_refuses:
        with pytest.raises(ConfigError):
            load_config(project.configs)
    exit_code = {CorruptDatabaseError: 5, StoreIOError: 3}[expected]
    figures("D1 wrong kinds (library)", f"{kind}: {expected.__name__} (exit {exit_code}), file unchanged, nothing "
            f"created{'; config load refuses it too' if config_refuses else ''}")
