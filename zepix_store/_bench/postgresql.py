"""bench: the store on PostgreSQL beside SQLite, as SPEC 9's ratios, on the server `--postgresql DSN` names.

Every PostgreSQL side runs in schemas of its own (a fresh `schema_prefix` per run, dropped at the end), as the
connecting user (no pg-setup: no role, no row-level security), and is timed alternately with its SQLite side in
the same run. The statistics are read from trades loaded with COPY and then vacuumed (what autovacuum does to a
settled table): an index-only scan needs the visibility map set.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backend.postgresql.operations import PgConnection, PgOperations
from ..config import load_config
from ..registry import Store
from ..rows import check_row
from .core import Figure, Say, median, ratio_figure
from .reads import captured_sql
from .writes import WriteBench, rate_figure, trade_rows

if TYPE_CHECKING:
    import psycopg

__all__ = ["DSN_ENV", "NO_DSN", "PgWriteBench", "index_only", "measure_postgresql"]

DSN_ENV = "ZEPIX_BENCH_PG_DSN"
NO_DSN = "skipped: no --postgresql DSN"
STATS_PLUGINS = 8
_VACUUM_TRIES = 25
CALLS_PER_SAMPLE = 10  # one get_statistics takes about a millisecond: each timed sample is the mean of several
_SCAN = re.compile(r"(Seq Scan|Parallel Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan)( using \S+)? on trades\b")


def index_only(plan: list[str]) -> bool:
    """Whether every read of trades in an EXPLAIN is an index-only scan."""
    scans = [m.group(1) for line in plan for m in _SCAN.finditer(line)]
    return bool(scans) and all(s == "Index Only Scan" for s in scans)


class PgWriteBench(WriteBench):
    """WriteBench whose store runs on PostgreSQL, each run in schemas of its own prefix."""

    def __init__(self, scratch: Path, dsn: str) -> None:
        super().__init__(scratch)
        self.dsn = dsn
        self.prefixes: list[str] = []
        self._token = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(4))

    def configs(self, plugins: dict[str, str | None]) -> Path:
        configs = super().configs(plugins)
        prefix = f"zxb{self._token}{len(self.prefixes)}_"
        self.prefixes.append(prefix)
        store = configs / "store.yaml"
        store.write_text(store.read_text() + f"backend: postgresql\npostgresql: {{dsn: {json.dumps(self.dsn)}, "
                                              f"schema_prefix: {prefix}}}\n")
        return configs

    def connect(self) -> psycopg.Connection[Any]:
        import psycopg

        return psycopg.connect(self.dsn, autocommit=True)

    def drop_schemas(self) -> None:
        """Drop every schema this bench made (its prefixes are its own)."""
        from psycopg import sql

        if not self.prefixes:
            return
        with self.connect() as conn:
            for prefix in self.prefixes:
                names = conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                                     [prefix]).fetchall()
                for (name,) in names:
                    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def _rotate(sides: list[Callable[[], float]], repeat: int) -> list[list[float]]:
    """Run the sides in turn `repeat` times (A B C A B C ...): a noisy neighbour slows each alike."""
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(repeat):
        for k, side in enumerate(sides):
            times[k].append(side())
    return times


def measure_postgresql(scratch: Path, dsn: str, single: int, batch: int, concurrent: int, repeat: int,
                       say: Say) -> list[Figure]:
    """save_trade one by one, 8 writers at once, a batch and get_statistics on PostgreSQL against SQLite."""
    pg = PgWriteBench(scratch / "pg", dsn)
    lite = WriteBench(scratch / "sqlite")
    figures = []
    try:
        rows = trade_rows(single, "S")
        say(f"postgresql: save_trade x {single:,} vs stdlib insert+commit and vs the SQLite store, {repeat} runs")
        pg_t, raw_t, lite_t = _rotate([lambda: pg.store_single(rows), lambda: lite.raw_single(rows),
                                       lambda: lite.store_single(rows)], repeat)
        figures.append(rate_figure("postgresql.save_trade", single, pg_t, raw_t, at_least=0.25))
        figures.append(rate_figure("postgresql.save_trade_vs_sqlite_store", single, pg_t, lite_t, at_least=0.5,
                                   baseline_name="the SQLite store's save_trade"))
        per_plugin = {f"bench-{k:02d}": trade_rows(concurrent, f"C{k}", seed=k) for k in range(1, 9)}
        say(f"postgresql: 8 plugins x {concurrent:,} save_trade at once vs the SQLite store (shared file), "
            f"{repeat} runs")
        pg_t, lite_t = _rotate([lambda: pg.store_concurrent(per_plugin, False),
                                lambda: lite.store_concurrent(per_plugin, False)], repeat)
        figures.append(rate_figure("postgresql.concurrent_8_writers", 8 * concurrent, pg_t, lite_t, at_least=1.5,
                                   baseline_name="the SQLite store, 8 plugins on the shared file"))
        rows = trade_rows(batch, "B")
        say(f"postgresql: save_trades of {batch:,} vs executemany on SQLite, {repeat} runs")
        pg_t, raw_t = _rotate([lambda: pg.store_batch(rows), lambda: lite.raw_batch(rows)], repeat)
        figures.append(rate_figure("postgresql.save_trades_batch", batch, pg_t, raw_t, at_least=0.9,
                                   baseline_name="executemany, stdlib sqlite3"))
        per = max(batch // 4, 100)
        say(f"postgresql: get_statistics of 1 of {STATS_PLUGINS} plugins x {per:,} trades vs SQLite and vs a "
            f"table scan, {repeat} runs")
        figures += asyncio.run(_measure_statistics(pg, lite, per, repeat))
        server = _server_version(pg)
        for fig in figures:
            fig.detail["server"] = server
    finally:
        pg.drop_schemas()
        shutil.rmtree(scratch, ignore_errors=True)
    return figures


# -- get_statistics -----------------------------------------------------------------------------------------------

def _copy_trades(pg: PgWriteBench, configs: Path, per_plugin: dict[str, list[dict[str, Any]]]) -> str:
    """Load the trades into the shared schema with COPY (the values as the store writes them); its schema."""
    from psycopg import sql

    config = load_config(configs)
    assert config.postgresql is not None
    ops = PgOperations(config.zone)
    schema = f"{config.postgresql.schema_prefix}shared"
    with pg.connect() as conn:
        for plugin_id, rows in per_plugin.items():
            values = [ops.write_values("trades", {**check_row("trades", r, plugin_id, config.zone),
                                                   "plugin_id": plugin_id}) for r in rows]
            columns = list(values[0])
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(schema, "trades"), sql.SQL(", ").join(sql.Identifier(c) for c in columns))
            with conn.cursor() as cur, cur.copy(statement) as copy:
                for value in values:
                    copy.write_row([value[c] for c in columns])
        table = sql.Identifier(schema, "trades")
        conn.execute(sql.SQL("ANALYZE {}").format(table))
        # A VACUUM marks a page all-visible only if no snapshot still open (an autovacuum ANALYZE started during
        # the load, say) may not see its rows: seen leaving 0 of 9,091 pages marked. Vacuum until all are.
        for _ in range(_VACUUM_TRIES):
            conn.execute(sql.SQL("VACUUM {}").format(table))
            pages, visible = conn.execute("SELECT relpages, relallvisible FROM pg_class WHERE oid = %s::regclass",
                                          [table.as_string(conn)]).fetchone() or (0, 0)
            if visible >= pages:
                break
            time.sleep(0.2)
    return schema


async def _measure_statistics(pg: PgWriteBench, lite: WriteBench, per: int, repeat: int) -> list[Figure]:
    per_plugin = {f"stats-{k:02d}": _spread(trade_rows(per, f"T{k}", seed=100 + k))
                  for k in range(1, STATS_PLUGINS + 1)}
    plugin = next(iter(per_plugin))
    pg_configs = pg.configs(dict.fromkeys(per_plugin))
    lite_configs = lite.configs(dict.fromkeys(per_plugin))
    async with Store.open(pg_configs) as pg_store, Store.open(lite_configs) as lite_store:
        await pg_store.for_plugin(plugin).get_statistics()  # creates the schemas
        schema = await asyncio.to_thread(_copy_trades, pg, pg_configs, per_plugin)
        for plugin_id, rows in per_plugin.items():
            await lite_store.for_plugin(plugin_id).save_trades(rows)
        pg_handle, lite_handle = pg_store.for_plugin(plugin), lite_store.for_plugin(plugin)
        with captured_sql() as calls:
            expected = await pg_handle.get_statistics()
        query = calls[-1]
        same = _same_figures(expected, await lite_handle.get_statistics())
        with pg.connect() as conn:
            raw = PgConnection(conn)
            conn.execute("SELECT set_config('search_path', %s, false)", [f'"{schema}"'])
            plan = [str(r[0]) for r in raw.execute(f"EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF) {query[0]}",
                                                   query[1]).fetchall()]
            with _table_scan(conn):
                scan_plan = [str(r[0]) for r in raw.execute(f"EXPLAIN (COSTS OFF) {query[0]}", query[1]).fetchall()]

            async def scan() -> None:
                with _table_scan(conn):
                    raw.execute(*query).fetchall()

            times: list[list[float]] = [[], [], []]
            for _ in range(repeat):
                times[0].append(await _sample(lambda: pg_handle.get_statistics()))
                times[1].append(await _sample(lambda: lite_handle.get_statistics()))
                times[2].append(await _sample(scan))
    only = index_only(plan)
    detail = {"rows_of_plugin": per, "rows_in_table": per * STATS_PLUGINS, "plan": plan, "index_only": only,
              "same_result_as_sqlite": same, "result": expected, "scan_plan": scan_plan,
              "calls_per_sample": CALLS_PER_SAMPLE}
    vs_lite = _read_figure("postgresql.statistics", times[0], times[1], 1 / 0.75, only,
                           {**detail, "baseline_is": "the SQLite store's get_statistics"})
    vs_scan = _read_figure("postgresql.statistics_vs_scan", times[0], times[2], 1 / 3, only,
                           {**detail, "baseline_is": "same SQL on PostgreSQL with index scans off (seq scan)"})
    return [vs_lite, vs_scan]


def _spread(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trades closed a minute apart, as a history is (one close time for all would shrink its index)."""
    start = datetime(2025, 1, 2, 11, 0)
    for k, row in enumerate(rows):
        row["close_time"] = (start + timedelta(minutes=k)).strftime("%Y-%m-%d %H:%M:%S")
    return rows


def _same_figures(pg: Mapping[str, Any], lite: Mapping[str, Any]) -> bool:
    """Counts equal, sums equal up to the rounding of adding the same floats in another order."""
    if set(pg) != set(lite):
        return False
    return all(pg[k] == lite[k] if not isinstance(pg[k], float) or not isinstance(lite[k], float)
               else math.isclose(pg[k], lite[k], rel_tol=1e-9, abs_tol=1e-6) for k in pg)


@contextmanager
def _table_scan(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """The planner without index, index-only or bitmap scans, for one transaction."""
    with conn.transaction():
        conn.execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_indexonlyscan = off; "
                     "SET LOCAL enable_bitmapscan = off")
        yield


async def _sample(call: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    for _ in range(CALLS_PER_SAMPLE):
        await call()
    return (time.perf_counter() - start) / CALLS_PER_SAMPLE


def _read_figure(name: str, store: list[float], base: list[float], at_most: float, only: bool,
                 detail: dict[str, Any]) -> Figure:
    fig = ratio_figure(name, median(store) * 1000, median(base) * 1000, "ms", at_most=at_most,
                       detail={**detail, "seconds": store, "baseline_seconds": base})
    fig.goal = f"ratio <= {at_most:.3g}, an index-only scan"
    fig.met = fig.met and only
    return fig


def _server_version(pg: PgWriteBench) -> str:
    try:
        with pg.connect() as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except Exception as exc:  # the figures stand without it
        return f"unknown ({exc.__class__.__name__})"
    return str(row[0]) if row else "unknown"
