"""bench: the store's per-plugin reads over a migrated file, against the same query forced to scan the table.

The SQL is captured from the real PluginStore call (not retyped here), so the plan shown is the plan the bot
gets; `EXPLAIN QUERY PLAN` must SEARCH an index and never `SCAN trades`.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import plugin_store
from ..backend.base import Connection
from ..queries import fetch
from ..registry import Store
from .core import Figure, Say, median, ratio_figure, timed, write_project

__all__ = [
    "Plan",
    "Query",
    "READS",
    "busiest_plugin",
    "captured_sql",
    "explain",
    "measure_reads",
    "plans_for",
    "scan_sql",
]

Query = tuple[str, tuple[Any, ...]]


@dataclass
class Plan:
    """EXPLAIN QUERY PLAN of one store query on one file."""

    query: str
    database: str
    lines: list[str]
    sql: str
    params: tuple[Any, ...]

    @property
    def uses_index(self) -> bool:
        searches = any(line.startswith("SEARCH trades USING") for line in self.lines)
        return searches and not any(line.startswith("SCAN trades") for line in self.lines)

    def as_dict(self) -> dict[str, Any]:
        return {"query": self.query, "database": self.database, "plan": self.lines, "uses_index": self.uses_index,
                "sql": " ".join(self.sql.split())}


@contextmanager
def captured_sql() -> Iterator[list[Query]]:
    """Record every (sql, params) PluginStore sends through fetch_all while the block runs."""
    calls: list[Query] = []
    original = fetch.fetch_all

    def recording(conn: Connection, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        calls.append((sql, tuple(params)))
        return original(conn, sql, params)

    # PluginStore calls it by name, and through fetch.fetch_one
    plugin_store.fetch_all = fetch.fetch_all = recording  # type: ignore[attr-defined]
    try:
        yield calls
    finally:
        plugin_store.fetch_all = fetch.fetch_all = original  # type: ignore[attr-defined]


def explain(conn: sqlite3.Connection, name: str, database: str, query: Query) -> Plan:
    rows = conn.execute(f"EXPLAIN QUERY PLAN {query[0]}", query[1]).fetchall()
    return Plan(name, database, [str(r[3]) for r in rows], query[0], query[1])


def scan_sql(sql: str) -> str:
    """The same query forced to read the whole table (what it costs without the store's index)."""
    forced, n = re.subn(r"\bFROM trades\b", "FROM trades NOT INDEXED", sql)
    if n == 0:
        raise ValueError(f"cannot force a scan of: {sql}")
    return forced


def busiest_plugin(path: Path, default: str) -> tuple[str, int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT plugin_id, count(*) FROM trades WHERE plugin_id <> ? GROUP BY plugin_id "
                           "ORDER BY count(*) DESC, plugin_id LIMIT 1", (default,)).fetchone()
    finally:
        conn.close()
    if row is None:
        raise ValueError(f"{path}: no attributed trades to read")
    return str(row[0]), int(row[1])


READS: dict[str, Callable[[plugin_store.PluginStore], Awaitable[Any]]] = {
    "reads.plugin_statistics": lambda h: h.get_statistics(),
    "reads.trades_30_days": lambda h: h.get_trades(days=30),
}


async def _measure(migrated: Path, plugin: str, repeat: int) -> tuple[list[Figure], list[Plan]]:
    configs = write_project(migrated.parent.parent, {plugin: None})
    figures, plans = [], []
    async with Store.open(configs) as store:
        handle = store.for_plugin(plugin)
        await handle.get_statistics()  # opens the file (and its WAL) before the stdlib reader joins
        raw = sqlite3.connect(f"file:{migrated}?mode=ro", uri=True, isolation_level=None)
        try:
            for name, call in READS.items():
                with captured_sql() as calls:
                    result = await call(handle)
                query = calls[-1]
                plan = explain(raw, name, migrated.name, query)
                store_times, raw_times = await _alternate(handle, call, raw, (scan_sql(query[0]), query[1]), repeat)
                figures.append(_read_figure(name, store_times, raw_times, plan, _size(result)))
                plans.append(plan)
        finally:
            raw.close()
    return figures, plans


async def _alternate(handle: plugin_store.PluginStore, call: Callable[[plugin_store.PluginStore], Awaitable[Any]],
                     raw: sqlite3.Connection, scan: Query, repeat: int) -> tuple[list[float], list[float]]:
    """Scan, store, scan, store, ... inside one event loop, so the Store stays open between runs."""
    store_times, raw_times = [], []
    for _ in range(repeat):
        raw_times.append(timed(lambda: fetch.fetch_all(raw, *scan)))
        start = time.perf_counter()
        await call(handle)
        store_times.append(time.perf_counter() - start)
    return store_times, raw_times


def _size(result: Any) -> int:
    return len(result) if isinstance(result, list) else 1


def _read_figure(name: str, store: Sequence[float], raw: Sequence[float], plan: Plan, rows: int) -> Figure:
    value, baseline = median(store) * 1000, median(raw) * 1000
    detail = {"rows_returned": rows, "speedup": baseline / value if value else None, "plan": plan.lines,
              "uses_index": plan.uses_index, "seconds": list(store), "baseline_seconds": list(raw),
              "baseline_is": "same SQL with NOT INDEXED (full table scan), stdlib sqlite3"}
    fig = ratio_figure(name, value, baseline, "ms", at_most=1 / 3, detail=detail)
    fig.goal = "ratio <= 0.333 (3x faster than a scan), plan SEARCHes an index"
    fig.met = fig.met and plan.uses_index
    return fig


def measure_reads(migrated: Path, default: str, repeat: int, say: Say) -> tuple[list[Figure], list[Plan]]:
    """Time the store's reads of the busiest plugin in `migrated` (a migrated store at <root>/data/trading_bot.db)."""
    if migrated.parent.name != "data" or migrated.name != "trading_bot.db":
        raise ValueError(f"{migrated}: the store to read must be <root>/data/trading_bot.db")
    plugin, trades = busiest_plugin(migrated, default)
    say(f"reads: statistics and 30-day trades of {plugin} ({trades:,} of its trades), index vs scan, "
        f"{repeat} runs each")
    return asyncio.run(_measure(migrated, plugin, repeat))


def plans_for(path: Path, plans: Sequence[Plan]) -> list[Plan]:
    """The plans of the same captured store queries on another store file (e.g. a split's isolated file)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [explain(conn, p.query, path.name, (p.sql, p.params)) for p in plans]
    finally:
        conn.close()
