"""F1: three plugins share one file and collide on every natural key; each still sees exactly its own writes.

A Hypothesis state machine drives the async store from sync rules through one event loop it owns, against a
pure-Python model per plugin. Two guards back it: every table of a store (fresh and upgraded) carries
plugin_id NOT NULL, indexed and inside each unique key; and every SQL literal of plugin_store.py that reads or
writes one of the ten tables is scoped by `plugin_id = ?` or inserts plugin_id.
"""

from __future__ import annotations

import ast
import asyncio
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)

from tests.helpers import REPO, Project, scaled
from zepix_store import Store, Trade
from zepix_store.schema import TABLES

T = TypeVar("T")
PLUGINS = ("v3-logic-01-5min", "v3-logic-02-15min", "v6-logic-01-1min")
KEYS = ("K1", "K2")  # two keys: plugins collide on nearly every write
plugin_ids = st.sampled_from(PLUGINS)
keys = st.sampled_from(KEYS)
money = st.sampled_from([-5.0, 0.0, 2.5, 10.0])
_STEPS: list[int] = []


@dataclass
class View:
    """What one plugin must see: the pure-Python twin of its part of the store."""

    trades: dict[str, dict[str, Any]] = field(default_factory=dict)
    chains: dict[str, float] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)


class SharedFileIsolation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="zepix-f1-"))
        project = Project(self.tmp / "proj")
        for plugin in PLUGINS:
            project.set_use_shared(plugin, True)
        self.shared_db = project.shared_db
        self.loop = asyncio.new_event_loop()
        self.store = Store.open(project.configs)
        self.model = {p: View() for p in PLUGINS}
        self.steps = 0

    def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return self.loop.run_until_complete(make())

    def db(self, plugin: str) -> Any:
        return self.store.for_plugin(plugin)

    @initialize()
    def open_file(self) -> None:
        self.run(self.db(PLUGINS[0]).get_statistics)

    # -- rules: one write each, then every plugin's view of the touched key ------------------------------------
    @rule(plugin=plugin_ids, key=keys, pnl=money, status=st.sampled_from(["open", "closed"]))
    def save_trade(self, plugin: str, key: str, pnl: float, status: str) -> None:
        self.run(lambda: self.db(plugin).save_trade(Trade(trade_id=key, pnl=pnl, status=status, symbol=plugin)))
        self.model[plugin].trades[key] = {"pnl": pnl, "status": status, "symbol": plugin}
        self.check_trade(key)

    @rule(plugin=plugin_ids, key=keys, pnl=money)
    def update_trade_pnl(self, plugin: str, key: str, pnl: float) -> None:
        self.run(lambda: self.db(plugin).save_trade({"trade_id": key, "pnl": pnl}))
        old = self.model[plugin].trades.get(key, {"status": None, "symbol": None})
        self.model[plugin].trades[key] = {**old, "pnl": pnl}
        self.check_trade(key)

    @rule(plugin=plugin_ids, key=keys, profit=money)
    def save_chain(self, plugin: str, key: str, profit: float) -> None:
        self.run(lambda: self.db(plugin).save_reentry_chain({"chain_id": key, "status": "active",
                                                              "total_profit": profit}))
        self.model[plugin].chains[key] = profit
        self.steps += 1
        for p in PLUGINS:
            row = self.run(lambda p=p: self.db(p).get_reentry_chain(key))
            expected = self.model[p].chains.get(key)
            got = None if row is None else (row["total_profit"], row["plugin_id"])
            assert got == (None if expected is None else (expected, p)), f"{p} sees chain {key} as {row}"

    @rule(plugin=plugin_ids, key=keys, value=st.text(max_size=3))
    def set_state(self, plugin: str, key: str, value: str) -> None:
        self.run(lambda: self.db(plugin).set_system_state(key, value))
        self.model[plugin].state[key] = value
        self.steps += 1
        for p in PLUGINS:
            assert self.run(lambda p=p: self.db(p).get_system_state(key)) == self.model[p].state.get(key)

    @rule(plugin=plugin_ids, key=keys, pnl=money)
    def session(self, plugin: str, key: str, pnl: float) -> None:
        sessions = self.model[plugin].sessions
        if key not in sessions:
            self.run(lambda: self.db(plugin).create_session({"session_id": key, "symbol": "EURUSD",
                                                             "direction": "buy"}))
            sessions[key] = {"total_pnl": 0.0, "total_trades": 0, "status": "ACTIVE"}
        else:
            assert self.run(lambda: self.db(plugin).update_session_stats(key, pnl)) is True
            sessions[key]["total_pnl"] += pnl
            sessions[key]["total_trades"] += 1
        self.check_session(key)

    @rule(plugin=plugin_ids, key=keys)
    def close_session(self, plugin: str, key: str) -> None:
        closed = self.run(lambda: self.db(plugin).close_session(key, "done"))
        assert closed is (key in self.model[plugin].sessions)
        if closed:
            self.model[plugin].sessions[key]["status"] = "CLOSED"
        self.check_session(key)

    # -- checks ------------------------------------------------------------------------------------------------
    def check_trade(self, key: str) -> None:
        self._check_views("trade", key, lambda db: db.get_trade(key), lambda model: model.trades)

    def check_session(self, key: str) -> None:
        self._check_views("session", key, lambda db: db.get_session_details(key), lambda model: model.sessions)

    def _check_views(self, kind: str, key: str, read: Callable[[Any], Coroutine[Any, Any, Any]],
                     rows_of: Callable[[Any], dict[str, dict[str, Any]]]) -> None:
        """Every plugin sees exactly its own row under `key`, as the model says, and never another plugin's."""
        self.steps += 1
        for p in PLUGINS:
            row = self.run(lambda p=p: read(self.db(p)))
            expected = rows_of(self.model[p]).get(key)
            if expected is None:
                assert row is None, f"{p} sees another plugin's {kind} {key}: {row}"
            else:
                assert row is not None and row["plugin_id"] == p
                assert {k: row[k] for k in expected} == expected

    def teardown(self) -> None:
        try:
            for p in PLUGINS:
                view = self.model[p]
                closed = sum(t["status"] == "closed" for t in view.trades.values())
                assert self.run(lambda p=p: self.db(p).get_statistics())["total_trades"] == closed
                assert self.run(lambda p=p: self.db(p).get_all_system_state()) == dict(sorted(view.state.items()))
            self.check_rows()
        finally:
            self.loop.run_until_complete(self.store.aclose())
            self.loop.close()
            _STEPS.append(self.steps)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def check_rows(self) -> None:
        """No duplicates, no overwrites: the file holds exactly one row per (plugin, key) the model has."""
        self.loop.run_until_complete(self.store.aclose())  # closed file: a plain read of the final state
        if not self.shared_db.exists():  # reads create no file: only a write does
            assert not any(getattr(v, a) for v in self.model.values() for a in ("trades", "chains", "state",
                                                                                  "sessions"))
            return
        conn = sqlite3.connect(f"file:{self.shared_db}?mode=ro", uri=True)
        try:
            for table, attr in (("trades", "trades"), ("reentry_chains", "chains"), ("system_state", "state"),
                                ("trading_sessions", "sessions")):
                counts = dict(conn.execute(f"SELECT plugin_id, count(*) FROM {table} GROUP BY plugin_id"))
                assert counts == {p: len(getattr(v, attr)) for p, v in self.model.items() if getattr(v, attr)}
        finally:
            conn.close()


@pytest.mark.slow
def test_plugins_sharing_a_file_each_see_only_their_own_rows(figures) -> None:
    _STEPS.clear()
    run_state_machine_as_test(SharedFileIsolation, settings=settings(
        max_examples=scaled(50, 100, 500), stateful_step_count=30, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    figures("F1 cross-tenant isolation (stateful)", f"examples {len(_STEPS)} x up to 30 steps, checked steps "
            f"{sum(_STEPS):,} (each followed by every plugin's view of the key), cross-plugin rows seen 0, "
            "overwrites 0")


# --- meta-guards --------------------------------------------------------------------------------------------------


def _plugin_id_guard(path: Path) -> list[str]:
    """Every table: plugin_id NOT NULL, leading column of an index or the primary key, inside each unique key."""
    problems = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")]
        for table in tables:
            info = {r[1]: r for r in conn.execute(f"PRAGMA table_info({table})")}
            if "plugin_id" not in info or info["plugin_id"][3] != 1:
                problems.append(f"{table}: plugin_id missing or nullable")
                continue
            pk = [name for name, r in sorted(info.items(), key=lambda kv: kv[1][5]) if r[5] > 0]
            leading = {pk[0]} if pk else set()
            for _, index, unique, *_ in conn.execute(f"PRAGMA index_list({table})"):
                columns = [r[2] for r in conn.execute(f"PRAGMA index_info({index})")]
                leading.add(columns[0] if columns else "")
                if unique and "plugin_id" not in columns:
                    problems.append(f"{table}: unique index {index} {columns} lacks plugin_id")
            if "plugin_id" not in leading:
                problems.append(f"{table}: no index or primary key leads with plugin_id")
    finally:
        conn.close()
    return problems


async def _fresh_and_upgraded(project: Project, tmp_path: Path) -> list[Path]:
    from zepix_store._sample.legacy import build_legacy_db

    project.set_use_shared("v6-logic-02-5min", True)
    build_legacy_db(project.shared_db, trades=40)
    async with Store.open(project.configs) as store:
        await store.for_plugin("v6-logic-01-1min").set_system_state("k", "1")  # a fresh isolated file (a write)
        await store.for_plugin("v6-logic-02-5min").get_statistics()  # the legacy shared file, upgraded
    return [project.isolated_db("v6-logic-01-1min"), project.shared_db]


async def test_every_table_scopes_by_plugin_id(project: Project, tmp_path: Path, figures) -> None:
    files = await _fresh_and_upgraded(project, tmp_path)
    problems = [f"{path.name}: {p}" for path in files for p in _plugin_id_guard(path)]
    assert problems == []
    figures("F1 meta-guard (schema)", f"files 2 (fresh, upgraded legacy) x {len(TABLES)} tables: plugin_id NOT NULL, "
            "indexed first, in every unique key")


def test_the_schema_guard_can_fail(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE a (x, plugin_id TEXT); CREATE TABLE b (k UNIQUE, plugin_id TEXT NOT NULL);"
                       "CREATE INDEX b_p ON b (plugin_id)")
    conn.close()
    assert _plugin_id_guard(path) == ["a: plugin_id missing or nullable",
                                      "b: unique index sqlite_autoindex_b_1 ['k'] lacks plugin_id"]


TABLE_NAMES = "|".join(t.name for t in TABLES)
TOUCHES = re.compile(rf"\b(FROM|JOIN|INTO|UPDATE)\s+(?:main\.)?(?:({TABLE_NAMES})\b|\{{\}})")


def unscoped_sql(source: str) -> list[str]:
    """SQL literals that touch one of the ten tables without `plugin_id = ?` (or, inserting, without plugin_id)."""
    tree = ast.parse(source)
    parent = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            # a backend's placeholder (`{ops.placeholder}`) binds a parameter as `?` does
            text = "".join(v.value if isinstance(v, ast.Constant)
                           else "?" if ast.unparse(v).endswith(".placeholder}") else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and not isinstance(parent.get(id(node)), (ast.JoinedStr, ast.Expr)):
            text = node.value
        else:
            continue
        if not TOUCHES.search(text) or "plugin_id = ?" in text:
            continue
        if re.match(r"\s*INSERT", text) and ("plugin_id" in text or _names_plugin_id(node, parent)):
            continue
        found.append(f"line {node.lineno}: {' '.join(text.split())[:100]}")
    return sorted(set(found))


def _names_plugin_id(node: ast.AST, parent: dict[int, ast.AST]) -> bool:
    """Whether the function around `node` adds the column by name (`cols = [*row, "plugin_id"]`)."""
    scope = parent.get(id(node))
    while scope is not None and not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        scope = parent.get(id(scope))
    return scope is not None and any(isinstance(n, ast.Constant) and n.value == "plugin_id" for n in ast.walk(scope))


def test_every_statement_of_plugin_store_is_scoped(figures) -> None:
    statements = 0
    # PluginStore's and the compat facade's
    queries = [f"queries/{p.name}" for p in sorted((REPO / "zepix_store" / "queries").glob("*.py"))]
    for module in ("plugin_store.py", "compat.py", *queries):
        source = (REPO / "zepix_store" / module).read_text()
        statements += len({n.lineno for n in ast.walk(ast.parse(source))
                           if isinstance(n, (ast.Constant, ast.JoinedStr)) and TOUCHES.search(ast.unparse(n))})
        assert unscoped_sql(source) == [], module
    assert statements > 30, "the scan found too few statements: it is broken"
    figures("F1 meta-guard (plugin_store SQL)", f"statements touching the ten tables {statements}, unscoped 0")


def test_the_statement_guard_can_fail() -> None:
    source = ('A = "SELECT * FROM trades WHERE plugin_id = ?"\n'
              'B = "SELECT coalesce(max(rowid), 0) FROM trades"\n'
              'def f(t):\n    return f"UPDATE {t} SET x = 1 WHERE id = ?"\n'
              'def g():\n    return "INSERT INTO sl_events (trade_id) VALUES (?)"\n')
    assert [u.split(": ", 1)[1] for u in unscoped_sql(source)] == [
        "SELECT coalesce(max(rowid), 0) FROM trades", "UPDATE {} SET x = 1 WHERE id = ?",
        "INSERT INTO sl_events (trade_id) VALUES (?)"]
