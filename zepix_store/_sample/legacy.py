"""Build realistic legacy ``trading_bot.db`` files for the demo, the tests, the fault tests and the benchmark.

The first rows of every table are fixed edge cases (odd logic_types, duplicates, shared lineage, orphans,
mixed storage classes and timestamp formats); the bulk after them is generated inside SQLite by
``INSERT ... SELECT`` from a seeded integer hash, so a million trades build in seconds with flat memory
and the same seed, size and reference time always give the same logical content. Times in the store's form
('YYYY-MM-DD HH:MM:SS') are UTC; the 'T' and fractional ones are naive wall-clock times in ``zone``, as the
bot's isoformat() wrote them (timefmt reads them so). History shaped like the real bot's is in
``zepix_store._sample.bot_history``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from ..timefmt import LOCAL, resolve_zone
from .legacy_bulk import BULK_SQL, EPOCH, TOTALS_SQL, bulk_params, prepare_bulk
from .legacy_edge import edge_row_set, wall_clock
from .legacy_schema import (
    INDEX_SQL,
    INDEXES,
    LEGACY_SCHEMA,
    LEGACY_TABLES_SQL,
    MAPPING,
    SEED_PLAN_COLUMN,
    SEED_PLAN_INDEXES,
    SEED_PLAN_TABLES,
    TABLE_SQL,
    TABLES,
)
from .wal import write_wal_only_trades

__all__ = ["LEGACY_SCHEMA", "MAPPING", "LegacySummary", "build_legacy_db", "edge_rows", "write_wal_only_trades"]


@dataclass(slots=True)
class LegacySummary:
    """What build_legacy_db wrote: row count per table, the file, the seed and the number of trades."""

    rows: dict[str, int]
    path: Path
    seed: int
    trades: int


def build_legacy_db(
    path: str | os.PathLike[str],
    *,
    trades: int = 2000,
    seed: int = 7,
    omit_tables: Collection[str] = (),
    omit_columns: Mapping[str, Collection[str]] = {},  # never mutated
    seed_plan_migrated: bool = False,
    progress: Callable[[str], None] | None = None,
    now: datetime | None = None,
    zone: str = LOCAL,
) -> LegacySummary:
    """Create a new legacy database at ``path`` with ``trades`` trades (at least the fixed edge cases).

    Args:
        path: the file to create; it must not exist.
        trades: total number of trades, edge cases included.
        seed: the same seed, size and ``now`` give the same logical content.
        omit_tables: tables to leave out.
        omit_columns: table -> columns to leave out (an older legacy file).
        seed_plan_migrated: leave the state the seed plan's migration leaves.
        progress: called with one short line per table.
        now: the reference time of "recent" rows; default the current UTC time rounded up to the hour.
        zone: the store.yaml `timezone` the naive times are written in (local, UTC or an IANA name).

    Raises:
        FileExistsError: ``path`` exists.
        ValueError: an unknown table or column, or a key column, in the omissions.
    """
    target = Path(path)
    _check_omissions(omit_tables, omit_columns)
    ref = _reference_time(now)
    wall = wall_clock(resolve_zone(zone))
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        rows = _build(target, trades, seed, ref, frozenset(omit_tables), omit_columns, seed_plan_migrated, progress,
                      wall)
    except BaseException:
        _remove_partial(target)
        raise
    return LegacySummary(rows=rows, path=target, seed=seed, trades=rows.get("trades", 0))


def edge_rows(now: datetime | None = None, zone: str = LOCAL) -> dict[str, list[dict[str, object]]]:
    """The fixed edge-case rows of every table (trade ids from 1), as build_legacy_db writes them first."""
    return edge_row_set(_reference_time(now), wall_clock(resolve_zone(zone)))


def _reference_time(now: datetime | None) -> datetime:
    if now is None:
        # Rounded up to the hour: two builds in one hour are identical, and recent rows stay in the past.
        return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(microsecond=0)


@cache
def _legacy_columns() -> dict[str, tuple[tuple[str, bool], ...]]:
    """Column names of each legacy table, each with True when it is a key no older file can lack."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(LEGACY_TABLES_SQL)
        fk = {(t, row[3]) for t in TABLES for row in conn.execute(f"PRAGMA foreign_key_list({t})")}
        return {
            t: tuple((r[1], bool(r[5]) or (t, r[1]) in fk) for r in conn.execute(f"PRAGMA table_info({t})"))
            for t in TABLES
        }
    finally:
        conn.close()


def _check_omissions(omit_tables: Collection[str], omit_columns: Mapping[str, Collection[str]]) -> None:
    known = _legacy_columns()
    for table in [*omit_tables, *omit_columns]:
        if table not in known:
            raise ValueError(f"unknown legacy table: {table!r}")
    for table, columns in omit_columns.items():
        keys = dict(known[table])
        for column in columns:
            if column not in keys:
                raise ValueError(f"unknown column {table}.{column}")
            if keys[column]:
                raise ValueError(f"{table}.{column} is a key column; a legacy file always has it")


def _remove_partial(target: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)


def _build(
    target: Path,
    trades: int,
    seed: int,
    ref: datetime,
    omit_tables: frozenset[str],
    omit_columns: Mapping[str, Collection[str]],
    seed_plan_migrated: bool,
    progress: Callable[[str], None] | None,
    wall: Callable[[datetime], str],
) -> dict[str, int]:
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        # only the generator's own INSERT ... SELECT calls it (never a schema object: the file stays plain)
        conn.create_function("zx_wall", 1, lambda epoch: wall(EPOCH + timedelta(seconds=epoch)), deterministic=True)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-65536", "temp_store=FILE"):
            conn.execute(f"PRAGMA {pragma}")
        conn.execute("BEGIN")
        _fill(conn, trades, seed, ref, omit_tables, progress or _quiet, wall)
        _omit(conn, omit_tables, omit_columns)
        _create_indexes(conn)
        if seed_plan_migrated:
            _seed_plan_migrate(conn)
        conn.execute("COMMIT")
        # How the bot runs it (foreign_keys is per connection; the journal mode lives in the file).
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return _count_rows(conn)
    finally:
        conn.close()


def _quiet(_line: str) -> None:
    pass


def _count_rows(conn: sqlite3.Connection) -> dict[str, int]:
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES if t in present}


def _fill(
    conn: sqlite3.Connection,
    trades: int,
    seed: int,
    ref: datetime,
    omit_tables: frozenset[str],
    progress: Callable[[str], None],
    wall: Callable[[datetime], str],
) -> None:
    # trades is always built (every child derives from it) and dropped afterwards when omitted.
    built = [t for t in TABLES if t == "trades" or t not in omit_tables]
    for table in built:
        conn.execute(TABLE_SQL[table])
    edge = edge_row_set(ref, wall)
    n_bulk = max(0, trades - len(edge["trades"]))
    params = bulk_params(seed, ref, len(edge["trades"]), n_bulk)
    prepare_bulk(conn, seed, params)
    for table in built:
        count = _insert_rows(conn, table, edge.get(table, []))
        if n_bulk and table in BULK_SQL:
            count += conn.execute(BULK_SQL[table], params).rowcount
        if n_bulk and table == "trades":
            for sql in TOTALS_SQL:
                conn.execute(sql, params)
        if table not in omit_tables:
            progress(f"{table}: {count} rows")


def _insert_rows(conn: sqlite3.Connection, table: str, rows: Iterable[Mapping[str, object]]) -> int:
    columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    return conn.executemany(sql, (tuple(row.get(c) for c in columns) for row in rows)).rowcount


def _omit(conn: sqlite3.Connection, omit_tables: frozenset[str], omit_columns: Mapping[str, Collection[str]]) -> None:
    if "trades" in omit_tables:
        conn.execute("DROP TABLE trades")
    for table, columns in omit_columns.items():
        if table in omit_tables:
            continue
        for column in dict.fromkeys(columns):
            # Dropped before the indexes exist, which DROP COLUMN would refuse.
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


def _create_indexes(conn: sqlite3.Connection) -> None:
    # The sorter may take as much memory as the page cache: shrink both so peak memory stays flat.
    conn.execute("PRAGMA cache_size=-16384")
    present = {r[1] for r in conn.execute("SELECT * FROM pragma_table_info('trades')")}
    for name, columns in INDEXES:
        if present.issuperset(columns):
            conn.execute(INDEX_SQL[name])


def _seed_plan_migrate(conn: sqlite3.Connection) -> None:
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table in SEED_PLAN_TABLES:
        if table in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {SEED_PLAN_COLUMN}")
    columns = {r[1] for r in conn.execute("SELECT * FROM pragma_table_info('trades')")}
    if "logic_type" in columns:
        conn.executemany(
            "UPDATE trades SET plugin_id = ? WHERE logic_type = ? AND (plugin_id IS NULL OR plugin_id = 'legacy')",
            [(plugin, logic) for logic, plugin in MAPPING.items()],
        )
    for name, table, cols in SEED_PLAN_INDEXES:
        if table in present:
            conn.execute(f"CREATE INDEX {name} ON {table}({cols})")
