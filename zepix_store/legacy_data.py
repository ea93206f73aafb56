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
import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from pathlib import Path

from .timefmt import LOCAL, resolve_zone

__all__ = ["LEGACY_SCHEMA", "MAPPING", "LegacySummary", "build_legacy_db", "edge_rows", "write_wal_only_trades"]

_LEGACY_TABLES_SQL = """\
CREATE TABLE trades (
  id INTEGER PRIMARY KEY, trade_id TEXT, symbol TEXT, entry_price REAL, exit_price REAL, sl_price REAL,
  tp_price REAL, lot_size REAL, direction TEXT, strategy TEXT, pnl REAL, commission REAL, swap REAL,
  comment TEXT, status TEXT, open_time DATETIME, close_time DATETIME, chain_id TEXT, chain_level INTEGER,
  is_re_entry BOOLEAN, order_type TEXT, profit_chain_id TEXT, profit_level INTEGER DEFAULT 0, session_id TEXT,
  sl_adjusted INTEGER DEFAULT 0, original_sl_distance REAL DEFAULT 0.0, logic_type TEXT,
  base_lot_size REAL DEFAULT 0.0, final_lot_size REAL DEFAULT 0.0, base_sl_pips REAL DEFAULT 0.0,
  final_sl_pips REAL DEFAULT 0.0, lot_multiplier REAL DEFAULT 1.0, sl_multiplier REAL DEFAULT 1.0);
CREATE TABLE reentry_chains (chain_id TEXT PRIMARY KEY, symbol TEXT, direction TEXT, original_entry REAL,
  original_sl_distance REAL, max_level_reached INTEGER, total_profit REAL, status TEXT, created_at DATETIME,
  completed_at DATETIME);
CREATE TABLE sl_events (id INTEGER PRIMARY KEY, trade_id TEXT, symbol TEXT, sl_price REAL, original_entry REAL,
  hit_time DATETIME, recovery_attempted BOOLEAN, recovery_successful BOOLEAN);
CREATE TABLE tp_reentry_events (id INTEGER PRIMARY KEY, chain_id TEXT, symbol TEXT, tp_level INTEGER,
  tp_price REAL, reentry_price REAL, sl_reduction_percent REAL, pnl REAL, timestamp DATETIME);
CREATE TABLE reversal_exit_events (id INTEGER PRIMARY KEY, trade_id TEXT, symbol TEXT, exit_price REAL,
  exit_signal TEXT, pnl REAL, timestamp DATETIME);
CREATE TABLE system_state (key TEXT PRIMARY KEY, value TEXT, updated_at DATETIME);
CREATE TABLE profit_booking_chains (chain_id TEXT PRIMARY KEY, symbol TEXT NOT NULL, direction TEXT NOT NULL,
  base_lot REAL NOT NULL, current_level INTEGER DEFAULT 0, total_profit REAL DEFAULT 0,
  status TEXT DEFAULT 'ACTIVE', created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE profit_booking_orders (order_id TEXT PRIMARY KEY, chain_id TEXT, level INTEGER, profit_target REAL,
  sl_reduction INTEGER, status TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  FOREIGN KEY (chain_id) REFERENCES profit_booking_chains(chain_id));
CREATE TABLE profit_booking_events (id INTEGER PRIMARY KEY, chain_id TEXT, level INTEGER, profit_booked REAL,
  orders_closed INTEGER, orders_placed INTEGER, timestamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE trading_sessions (session_id TEXT PRIMARY KEY, symbol TEXT NOT NULL, direction TEXT NOT NULL,
  entry_signal TEXT, exit_reason TEXT, start_time DATETIME NOT NULL, end_time DATETIME,
  total_pnl REAL DEFAULT 0, total_trades INTEGER DEFAULT 0, status TEXT DEFAULT 'ACTIVE', metadata TEXT);
"""

_INDEXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("idx_trades_symbol", ("symbol",)),
    ("idx_trades_status", ("status",)),
    ("idx_trades_close_time", ("close_time",)),
    ("idx_trades_chain_id", ("chain_id",)),
    ("idx_trades_logic_type", ("logic_type",)),
    ("idx_trades_session_id", ("session_id",)),
    ("idx_trades_status_close", ("status", "close_time")),
    ("idx_trades_logic_status", ("logic_type", "status")),
)
_INDEX_SQL = {name: f"CREATE INDEX {name} ON trades({', '.join(cols)})" for name, cols in _INDEXES}

LEGACY_SCHEMA: str = _LEGACY_TABLES_SQL + "".join(sql + ";\n" for sql in _INDEX_SQL.values())

MAPPING: dict[str, str] = {
    "combinedlogic-1": "v3-logic-01-5min",
    "combinedlogic-2": "v3-logic-02-15min",
    "combinedlogic-3": "v3-logic-03-1h",
    "LOGIC1": "v3-logic-01-5min",
    "LOGIC2": "v3-logic-02-15min",
    "LOGIC3": "v3-logic-03-1h",
}

_TABLE_SQL: dict[str, str] = {
    stmt.split("(", 1)[0].split()[-1]: stmt.strip() for stmt in _LEGACY_TABLES_SQL.split(";") if stmt.strip()
}
_TABLES: tuple[str, ...] = tuple(_TABLE_SQL)

# The flawed seed plan (seed_plan.md 2.2/3.1/4.1), reproduced on purpose: four tables only, and the
# double-quoted default that only SQLite's DQS misfeature accepts.
_SEED_PLAN_COLUMN = 'plugin_id TEXT DEFAULT "legacy"'
_SEED_PLAN_TABLES = ("trades", "reentry_chains", "profit_booking_chains", "trading_sessions")
_SEED_PLAN_INDEXES = (
    ("idx_trades_plugin_id", "trades", "plugin_id"),
    ("idx_trades_plugin_status", "trades", "plugin_id, status"),
    ("idx_reentry_chains_plugin_id", "reentry_chains", "plugin_id"),
    ("idx_profit_booking_chains_plugin_id", "profit_booking_chains", "plugin_id"),
    ("idx_trading_sessions_plugin_id", "trading_sessions", "plugin_id"),
)

_P = 2147483647  # 2**31 - 1: a square stays below 2**62, so SQLite never overflows into REAL
_PATTERNS = 128
_HISTORY = timedelta(days=730)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# (symbol, weight, base price, pip, pip value per lot in USD, digits, min SL pips, SL pip span)
_SYMBOLS = (
    ("EURUSD", 3, 1.0850, 0.0001, 10.0, 5, 10, 30),
    ("GBPUSD", 2, 1.2650, 0.0001, 10.0, 5, 12, 34),
    ("XAUUSD", 3, 2050.0, 0.1, 10.0, 2, 20, 60),
    ("USDJPY", 2, 150.00, 0.01, 6.7, 3, 10, 30),
    ("AUDUSD", 2, 0.6550, 0.0001, 10.0, 5, 8, 25),
    ("USDCAD", 1, 1.3600, 0.0001, 7.35, 5, 10, 30),
    ("EURJPY", 1, 162.50, 0.01, 6.7, 3, 12, 35),
    ("GBPJPY", 2, 190.00, 0.01, 6.7, 3, 15, 45),
)


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
    wall = _wall_clock(resolve_zone(zone))
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
    return _edge_rows(_reference_time(now), _wall_clock(resolve_zone(zone)))


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
        conn.executescript(_LEGACY_TABLES_SQL)
        fk = {(t, row[3]) for t in _TABLES for row in conn.execute(f"PRAGMA foreign_key_list({t})")}
        return {
            t: tuple((r[1], bool(r[5]) or (t, r[1]) in fk) for r in conn.execute(f"PRAGMA table_info({t})"))
            for t in _TABLES
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
        conn.create_function("zx_wall", 1, lambda epoch: wall(_EPOCH + timedelta(seconds=epoch)), deterministic=True)
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
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _TABLES if t in present}


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
    built = [t for t in _TABLES if t == "trades" or t not in omit_tables]
    for table in built:
        conn.execute(_TABLE_SQL[table])
    edge = _edge_rows(ref, wall)
    n_bulk = max(0, trades - len(edge["trades"]))
    params = _bulk_params(seed, ref, len(edge["trades"]), n_bulk)
    _prepare_bulk(conn, seed, params)
    for table in built:
        count = _insert_rows(conn, table, edge.get(table, []))
        if n_bulk and table in _BULK_SQL:
            count += conn.execute(_BULK_SQL[table], params).rowcount
        if n_bulk and table == "trades":
            for sql in _TOTALS_SQL:
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
    for name, columns in _INDEXES:
        if present.issuperset(columns):
            conn.execute(_INDEX_SQL[name])


def _seed_plan_migrate(conn: sqlite3.Connection) -> None:
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table in _SEED_PLAN_TABLES:
        if table in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {_SEED_PLAN_COLUMN}")
    columns = {r[1] for r in conn.execute("SELECT * FROM pragma_table_info('trades')")}
    if "logic_type" in columns:
        conn.executemany(
            "UPDATE trades SET plugin_id = ? WHERE logic_type = ? AND (plugin_id IS NULL OR plugin_id = 'legacy')",
            [(plugin, logic) for logic, plugin in MAPPING.items()],
        )
    for name, table, cols in _SEED_PLAN_INDEXES:
        if table in present:
            conn.execute(f"CREATE INDEX {name} ON {table}({cols})")


# ---------------------------------------------------------------------------------------------------------------
# Bulk rows: seeded patterns in temp tables, then INSERT ... SELECT with an integer hash per row.


def _bulk_params(seed: int, ref: datetime, n_edge: int, n_bulk: int) -> dict[str, int | float]:
    start = ref - _HISTORY
    return {
        "seed": (seed * 104729 + 12345) % _P,
        "n": n_bulk,
        "e": n_edge,
        "np": _PATTERNS,
        "t0": int((start - _EPOCH).total_seconds()),
        "step": (_HISTORY - timedelta(days=2)).total_seconds() / max(n_bulk, 1),
    }


def _prepare_bulk(conn: sqlite3.Connection, seed: int, params: Mapping[str, int | float]) -> None:
    for sql in filter(str.strip, _TEMP_TABLES_SQL.split(";")):
        conn.execute(sql)  # not executescript(), which would commit the open transaction
    pats, slots, chains = _patterns(random.Random(seed))
    conn.executemany("INSERT INTO zp_pat VALUES (?, ?)", pats)
    conn.executemany("INSERT INTO zp_slot VALUES (?, ?, ?, ?, ?, ?, ?)", slots)
    conn.executemany("INSERT INTO zp_chain VALUES (?, ?, ?, ?, ?)", chains)
    conn.executemany("INSERT INTO zp_sym VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _symbol_rows())
    conn.executemany("INSERT INTO zp_num VALUES (?)", [(k,) for k in range(1, 5)])
    if params["n"]:
        conn.execute(_SESSIONS_SQL, params)
        conn.execute(_LINKS_SQL, params)


_TEMP_TABLES_SQL = """
CREATE TEMP TABLE zp_pat (p INTEGER PRIMARY KEY, len INTEGER NOT NULL);
CREATE TEMP TABLE zp_slot (p INTEGER, slot INTEGER, rc INTEGER, rlevel INTEGER, pc INTEGER, plevel INTEGER,
  chain_bp INTEGER, PRIMARY KEY (p, slot)) WITHOUT ROWID;
CREATE TEMP TABLE zp_chain (kind TEXT, p INTEGER, c INTEGER, s0 INTEGER, len INTEGER,
  PRIMARY KEY (kind, p, c)) WITHOUT ROWID;
CREATE TEMP TABLE zp_sym (k INTEGER PRIMARY KEY, name TEXT, base_pts INTEGER, scale REAL, pip_pts INTEGER,
  pipval_c INTEGER, slmin INTEGER, slspan INTEGER);
CREATE TEMP TABLE zp_num (k INTEGER PRIMARY KEY);
CREATE TEMP TABLE zp_sess (g INTEGER PRIMARY KEY, p INTEGER, first INTEGER, len INTEGER, symk INTEGER,
  dir TEXT, logic TEXT, lot_pm INTEGER, sl10 INTEGER, lot_c INTEGER, t0 INTEGER, n_open INTEGER, pnl REAL,
  end_e INTEGER);
CREATE TEMP TABLE zp_link (kind TEXT, g INTEGER, c INTEGER, symbol TEXT, direction TEXT, lo INTEGER, hi INTEGER,
  levels INTEGER, n_open INTEGER, pnl REAL, PRIMARY KEY (kind, g, c)) WITHOUT ROWID;
"""


def _symbol_rows() -> list[tuple[object, ...]]:
    """Prices in integer points (scale = points per unit), so no row needs SQLite's slow round()."""
    weighted = [s for s in _SYMBOLS for _ in range(s[1])]
    return [
        (k, name, round(base * 10**digits), float(10**digits), round(pip * 10**digits), round(value * 100), lo, span)
        for k, (name, _, base, pip, value, digits, lo, span) in enumerate(weighted)
    ]


def _patterns(rng: random.Random) -> tuple[list[tuple[int, int]], list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Session shapes: 8-12 trades, ~40% in re-entry chains of 1-5, ~20% in profit chains of 1-3."""
    pats: list[tuple[int, int]] = []
    slots: list[tuple[object, ...]] = []
    chains: list[tuple[object, ...]] = []
    for p in range(_PATTERNS):
        length = rng.randint(8, 12)
        pats.append((p, length))
        slot, counters = 0, {"R": 0, "P": 0}
        while slot < length:
            r = rng.random()
            kind = "R" if r < 0.22 else "P" if r < 0.38 else ""
            size = min(rng.randint(1, 5 if kind == "R" else 3), length - slot) if kind else 1
            if kind:
                counters[kind] += 1
                chains.append((kind, p, counters[kind], slot, size))
            for k in range(size):
                c = counters[kind] if kind else None
                rc, rl, mult = (c, k + 1, round(10000 * 0.7**k)) if kind == "R" else (None, None, 10000)
                pc, pl = (c, k) if kind == "P" else (None, None)
                slots.append((p, slot + k, rc, rl, pc, pl, mult))
            slot += size
    return pats, slots, chains


def _h(key: str, salt: int) -> str:
    """SQL for a seeded pseudo-random integer in [0, 2**31 - 1) of the integer SQL expression ``key``."""
    x = f"((({key})*48271+:seed+{salt * 7919})%{_P})"
    return f"({x}*{x}%{_P})"


def _ts(epoch: str) -> str:
    return f"strftime('%Y-%m-%d %H:%M:%S', {epoch}, 'unixepoch')"


def _mixed_ts(epoch: str) -> str:
    """Mostly 'YYYY-MM-DD HH:MM:SS' (UTC); some rows written by bot versions that used isoformat() (local)."""
    iso = f"zx_wall({epoch})"
    frac = f"{iso} || printf('.%06d', c.frac)"
    return f"CASE WHEN c.fmt < 45 THEN {_ts(epoch)} WHEN c.fmt < 49 THEN {iso} ELSE {frac} END"


_SESSIONS_SQL = f"""
WITH RECURSIVE s(g, p, first) AS (
  SELECT 0, {_h('0', 11)} % :np, 0
  UNION ALL
  SELECT s.g + 1, {_h('s.g + 1', 11)} % :np, s.first + z.len FROM s JOIN zp_pat z ON z.p = s.p
  WHERE s.first + z.len < :n)
INSERT INTO zp_sess (g, p, first, len, symk, dir, logic, lot_pm, sl10, lot_c, t0)
SELECT a.g, a.p, a.first, a.len, a.symk, CASE WHEN a.hd % 2 = 0 THEN 'buy' ELSE 'sell' END,
  CASE WHEN a.hd / 2 % 100 = 0 THEN NULL WHEN a.first * 2 < :n THEN 'LOGIC' || a.lk ELSE 'combinedlogic-' || a.lk END,
  CASE a.lk WHEN 1 THEN 1250 WHEN 2 THEN 1000 ELSE 625 END, CASE a.lk WHEN 1 THEN 10 WHEN 2 THEN 15 ELSE 25 END,
  1 + a.hd / 200 % 50, :t0 + CAST(a.first * :step AS INTEGER) + a.hd / 10000 % 3600
FROM (SELECT s.g, s.p, s.first, min(z.len, :n - s.first) AS len, {_h('s.g', 12)} % 16 AS symk,
  {_h('s.g', 13)} AS hd, 1 + {_h('s.g', 14)} % 3 AS lk FROM s JOIN zp_pat z ON z.p = s.p LIMIT -1 OFFSET 0) a
"""

# One row per re-entry ('R') or profit ('P') chain, with its rowid range in trades.
_LINKS_SQL = """
INSERT INTO zp_link (kind, g, c, symbol, direction, lo, hi, levels)
SELECT c.kind, s.g, c.c, y.name, s.dir, :e + 1 + s.first + c.s0, :e + s.first + c.s0 + min(c.len, s.len - c.s0),
  min(c.len, s.len - c.s0)
FROM zp_sess s JOIN zp_chain c ON c.kind IN ('R', 'P') AND c.p = s.p AND c.s0 < s.len JOIN zp_sym y ON y.k = s.symk
"""

# Three co-routine layers (OFFSET 0 stops SQLite from flattening them) so each hash is computed once per row.
_TRADE_LAYER_1 = f"""
SELECT s.g, z.slot, s.first + z.slot AS i, s.dir, s.logic, s.lot_pm, s.sl10, s.lot_c, s.t0,
  z.rc, z.rlevel, z.pc, z.plevel, z.chain_bp, y.name AS symbol, y.base_pts, y.scale, y.pip_pts, y.pipval_c, y.slmin,
  y.slspan, {', '.join(f"{_h('s.first + z.slot', k)} AS h{k}" for k in range(1, 7))}
FROM zp_sess s JOIN zp_slot z ON z.p = s.p AND z.slot < s.len JOIN zp_sym y ON y.k = s.symk
ORDER BY s.g, z.slot LIMIT -1 OFFSET 0
"""
# Integer units: points for prices, tenths for pips, cents for lots and money (divided only at the end).
_TRADE_LAYER_2 = f"""
SELECT a.*, a.base_pts + a.base_pts * (a.h1 % 20001 - 10000) / 250000 AS entry, a.slmin + a.h2 % a.slspan AS base_sl,
  ((a.slmin + a.h2 % a.slspan) * a.sl10 * a.chain_bp + 5000) / 10000 AS sl_t,
  max(1, (a.lot_c * a.lot_pm + 500) / 1000) AS lot, CASE a.dir WHEN 'buy' THEN 1 ELSE -1 END AS sgn,
  a.h3 % 10 = 0 AS is_open, a.t0 + a.slot * 900 + a.h5 % 600 AS open_e,
  a.t0 + a.slot * 900 + a.h5 % 600 + 300 + a.h5 / 600 % 14400 AS close_e, a.h6 % 50 AS fmt, a.h6 / 50 % 1000000 AS frac
FROM ({_TRADE_LAYER_1}) a LIMIT -1 OFFSET 0
"""
_TRADE_LAYER_3 = f"""
SELECT b.*, b.sl_t * (300 + b.h4 % 100) / 200 AS tp_t,
  CASE WHEN b.h4 / 100 % 100 < 62 THEN b.sl_t * (300 + b.h4 % 100) / 200 * (30 + b.h4 / 10000 % 71) / 100
  ELSE -(b.sl_t * (80 + b.h4 / 10000 % 21) / 100) END AS res_t
FROM ({_TRADE_LAYER_2}) b LIMIT -1 OFFSET 0
"""
_TRADE_COLUMNS = {
    "id": ":e + 1 + c.i",
    "trade_id": "CAST(100000000 + c.i AS TEXT)",
    "symbol": "c.symbol",
    "entry_price": "c.entry / c.scale",
    "exit_price": "CASE WHEN c.is_open THEN NULL ELSE (c.entry + c.sgn * c.res_t * c.pip_pts / 10) / c.scale END",
    "sl_price": "(c.entry - c.sgn * c.sl_t * c.pip_pts / 10) / c.scale",
    "tp_price": "(c.entry + c.sgn * c.tp_t * c.pip_pts / 10) / c.scale",
    "lot_size": "c.lot / 100.0",
    "direction": "c.dir",
    "strategy": "'ZepixPremium'",
    "pnl": "CASE WHEN c.is_open THEN 0.0 ELSE c.res_t * c.pipval_c * c.lot / 1000 / 100.0 END",
    "commission": "-7 * c.lot / 100.0",
    "swap": "CASE WHEN c.is_open OR c.h3 / 10 % 5 <> 0 THEN 0.0 ELSE -(c.h3 / 50 % 300 * c.lot / 100) / 100.0 END",
    "comment": "CASE WHEN c.pc IS NULL THEN 'order A' ELSE 'order B' END",
    "status": "CASE WHEN c.is_open THEN 'open' ELSE 'closed' END",
    "open_time": _mixed_ts("c.open_e"),
    "close_time": f"CASE WHEN c.is_open THEN NULL ELSE {_mixed_ts('c.close_e')} END",
    "chain_id": "CASE WHEN c.rc IS NULL THEN NULL ELSE printf('RC-%07d-%d', c.g, c.rc) END",
    "chain_level": "coalesce(c.rlevel, 1)",
    "is_re_entry": "coalesce(c.rlevel, 1) > 1",
    "order_type": "CASE WHEN c.pc IS NULL THEN 'TP_TRAIL' ELSE 'PROFIT_TRAIL' END",
    "profit_chain_id": "CASE WHEN c.pc IS NULL THEN NULL ELSE printf('PB-%07d-%d', c.g, c.pc) END",
    "profit_level": "coalesce(c.plevel, 0)",
    "session_id": "printf('SES-%07d', c.g)",
    "sl_adjusted": "c.h2 / 1000 % 7 = 0",
    "original_sl_distance": "c.sl_t * c.pip_pts / 10 / c.scale",
    "logic_type": "c.logic",
    "base_lot_size": "c.lot_c / 100.0",
    "final_lot_size": "c.lot / 100.0",
    "base_sl_pips": "c.base_sl",
    "final_sl_pips": "c.sl_t / 10.0",
    "lot_multiplier": "c.lot_pm / 1000.0",
    "sl_multiplier": "c.sl10 * c.chain_bp / 100000.0",
}
_TRADES_SQL = (
    f"INSERT INTO trades ({', '.join(_TRADE_COLUMNS)}) SELECT {', '.join(_TRADE_COLUMNS.values())} "
    f"FROM ({_TRADE_LAYER_3}) c"
)

# Per-session and per-chain totals, read once from the rowid range of their trades (no sort, no index).
_RANGE = "FROM trades t WHERE t.rowid BETWEEN {lo} AND {hi}"
_SESSION_RANGE = _RANGE.format(lo=":e + 1 + zp_sess.first", hi=":e + zp_sess.first + zp_sess.len")
_LINK_RANGE = _RANGE.format(lo="zp_link.lo", hi="zp_link.hi")
_TOTALS_SQL = (
    f"""UPDATE zp_sess SET n_open = (SELECT count(*) {_SESSION_RANGE} AND t.status = 'open'),
  pnl = (SELECT total(t.pnl) {_SESSION_RANGE}),
  end_e = (SELECT max(CAST(strftime('%s', t.close_time) AS INTEGER)) {_SESSION_RANGE})""",
    f"""UPDATE zp_link SET n_open = (SELECT count(*) {_LINK_RANGE} AND t.status = 'open'),
  pnl = (SELECT total(t.pnl) {_LINK_RANGE})""",
)
_TRADING_SESSIONS_SQL = f"""
INSERT INTO trading_sessions (session_id, symbol, direction, entry_signal, exit_reason, start_time, end_time,
  total_pnl, total_trades, status, metadata)
SELECT printf('SES-%07d', s.g), y.name, s.dir,
  CASE s.dir WHEN 'buy' THEN 'bullish_alignment' ELSE 'bearish_alignment' END,
  CASE WHEN s.n_open > 0 THEN NULL ELSE CASE {_h('s.g', 17)} % 4 WHEN 0 THEN 'TP_HIT' WHEN 1 THEN 'SL_HIT'
    WHEN 2 THEN 'REVERSAL' ELSE 'SESSION_END' END END,
  {_ts('s.t0')}, CASE WHEN s.n_open > 0 THEN NULL ELSE {_ts('s.end_e')} END, round(s.pnl, 2), s.len,
  CASE WHEN s.n_open > 0 THEN 'ACTIVE' ELSE 'CLOSED' END, json_object('logic_type', s.logic, 'planned_trades', s.len)
FROM zp_sess s JOIN zp_sym y ON y.k = s.symk
ORDER BY s.g
"""

_LINK_AGG = """zp_link x JOIN trades h ON h.rowid = x.lo JOIN trades l ON l.rowid = x.hi WHERE x.kind = '{kind}'"""
_REENTRY_CHAINS_SQL = f"""
INSERT INTO reentry_chains (chain_id, symbol, direction, original_entry, original_sl_distance, max_level_reached,
  total_profit, status, created_at, completed_at)
SELECT printf('RC-%07d-%d', x.g, x.c), x.symbol, x.direction, h.entry_price, h.original_sl_distance, x.levels,
  round(x.pnl, 2), CASE WHEN x.n_open > 0 THEN 'active' WHEN l.pnl > 0 THEN 'completed' ELSE 'stopped' END,
  h.open_time, CASE WHEN x.n_open > 0 THEN NULL ELSE l.close_time END
FROM {_LINK_AGG.format(kind='R')} ORDER BY x.kind, x.g, x.c
"""
_PROFIT_CHAINS_SQL = f"""
INSERT INTO profit_booking_chains (chain_id, symbol, direction, base_lot, current_level, total_profit, status,
  created_at, updated_at)
SELECT printf('PB-%07d-%d', x.g, x.c), x.symbol, x.direction, h.base_lot_size, x.levels - 1, round(x.pnl, 2),
  CASE WHEN x.n_open > 0 THEN 'ACTIVE' ELSE 'COMPLETED' END, datetime(h.open_time),
  coalesce(datetime(l.close_time), datetime(l.open_time))
FROM {_LINK_AGG.format(kind='P')} ORDER BY x.kind, x.g, x.c
"""
_PER_LINK = """FROM zp_link x JOIN zp_num k ON k.k <= {low} + {hash} % 3 JOIN trades h ON h.rowid = x.lo
  JOIN trades l ON l.rowid = x.hi {join} WHERE x.kind = '{kind}' ORDER BY x.kind, x.g, x.c, k.k"""
_REF_TRADE = "JOIN trades r ON r.rowid = x.lo + min(k.k, x.levels) - 1"
_TP_REENTRY_SQL = f"""
INSERT INTO tp_reentry_events (chain_id, symbol, tp_level, tp_price, reentry_price, sl_reduction_percent, pnl,
  timestamp)
SELECT printf('RC-%07d-%d', x.g, x.c), x.symbol, k.k, r.tp_price, coalesce(r.exit_price, r.entry_price),
  CASE k.k WHEN 1 THEN 30.0 WHEN 2 THEN 51.0 ELSE 65.7 END, r.pnl, coalesce(r.close_time, r.open_time)
{_PER_LINK.format(low=1, hash=_h('x.g * 16 + x.c', 45), join=_REF_TRADE, kind='R')}
"""
_PROFIT_ORDERS_SQL = f"""
INSERT INTO profit_booking_orders (order_id, chain_id, level, profit_target, sl_reduction, status, created_at)
SELECT printf('PBO-%07d-%d-%d', x.g, x.c, k.k), printf('PB-%07d-%d', x.g, x.c), k.k - 1, 7.0 * (1 << (k.k - 1)),
  (k.k - 1) * 10, CASE WHEN l.status = 'open' THEN 'OPEN' ELSE 'CLOSED' END,
  datetime(h.open_time, printf('+%d minutes', 5 * (k.k - 1)))
{_PER_LINK.format(low=2, hash=_h('x.g * 16 + x.c', 47), join='', kind='P')}
"""
_PROFIT_EVENTS_SQL = f"""
INSERT INTO profit_booking_events (chain_id, level, profit_booked, orders_closed, orders_placed, timestamp)
SELECT printf('PB-%07d-%d', x.g, x.c), k.k - 1, round(7.0 * (1 << (k.k - 1)) * (0.8 + x.g % 41 / 100.0), 2),
  k.k, k.k + 1, datetime(h.open_time, printf('+%d minutes', 10 * k.k))
{_PER_LINK.format(low=1, hash=_h('x.g * 16 + x.c', 49), join='', kind='P')}
"""
_SL_EVENTS_SQL = f"""
INSERT INTO sl_events (trade_id, symbol, sl_price, original_entry, hit_time, recovery_attempted, recovery_successful)
SELECT t.trade_id, t.symbol, t.sl_price, t.entry_price, t.close_time, {_h('t.rowid', 51)} % 2,
  {_h('t.rowid', 51)} % 2 = 1 AND {_h('t.rowid', 52)} % 3 = 0
FROM trades t WHERE t.rowid > :e AND t.status = 'closed' AND t.pnl < 0 AND {_h('t.rowid', 53)} % 10 < 9
ORDER BY t.rowid
"""
_REVERSAL_SQL = f"""
INSERT INTO reversal_exit_events (trade_id, symbol, exit_price, exit_signal, pnl, timestamp)
SELECT t.trade_id, t.symbol, t.exit_price,
  CASE t.direction WHEN 'buy' THEN 'bearish_reversal' ELSE 'bullish_reversal' END, t.pnl, t.close_time
FROM trades t WHERE t.rowid > :e AND t.status = 'closed' AND t.pnl > 0 AND {_h('t.rowid', 55)} % 6 = 0
ORDER BY t.rowid
"""
_BULK_SQL: dict[str, str] = {
    "trades": _TRADES_SQL,
    "reentry_chains": _REENTRY_CHAINS_SQL,
    "sl_events": _SL_EVENTS_SQL,
    "tp_reentry_events": _TP_REENTRY_SQL,
    "reversal_exit_events": _REVERSAL_SQL,
    "profit_booking_chains": _PROFIT_CHAINS_SQL,
    "profit_booking_orders": _PROFIT_ORDERS_SQL,
    "profit_booking_events": _PROFIT_EVENTS_SQL,
    "trading_sessions": _TRADING_SESSIONS_SQL,
}


# ---------------------------------------------------------------------------------------------------------------
# Edge cases: the first rows of every table, present whatever the size.


def _sp(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _wall_clock(zone: tzinfo) -> Callable[[datetime], str]:
    """isoformat() of an instant as the bot wrote it: naive wall-clock time in `zone`, whole seconds."""
    return lambda t: t.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S")


def _closed_at(close: datetime, fmt: Callable[[datetime], object]) -> dict[str, object]:
    return {"open_time": fmt(close - timedelta(hours=1)), "close_time": fmt(close)}


def _edge_trade(
    n: int, opened: datetime, trade_id: object, logic: str | None, over: Mapping[str, object]
) -> dict[str, object]:
    by_name = {s[0]: s for s in _SYMBOLS}
    name, _, base, pip, pipval, digits, _, _ = by_name.get(str(over.get("symbol")), _SYMBOLS[n % len(_SYMBOLS)])
    direction = str(over.get("direction", "buy" if n % 2 else "sell"))
    sign, win = (1 if direction == "buy" else -1), n % 3 != 0
    entry = round(base * (1 + n / 1000), digits)
    row: dict[str, object] = {
        "id": n, "trade_id": trade_id, "symbol": name, "entry_price": entry,
        "exit_price": round(entry + sign * (30 if win else -20) * pip, digits),
        "sl_price": round(entry - sign * 20 * pip, digits), "tp_price": round(entry + sign * 30 * pip, digits),
        "lot_size": 0.1, "direction": direction, "strategy": "ZepixPremium",
        "pnl": round((30 if win else -20) * pipval * 0.1, 2), "commission": -0.7, "swap": 0.0, "comment": "order A",
        "status": "closed", "open_time": _sp(opened), "close_time": _sp(opened + timedelta(hours=2)),
        "chain_id": None, "chain_level": 1, "is_re_entry": 0, "order_type": "TP_TRAIL", "profit_chain_id": None,
        "profit_level": 0, "session_id": None, "sl_adjusted": 0, "original_sl_distance": round(20 * pip, digits),
        "logic_type": logic, "base_lot_size": 0.08, "final_lot_size": 0.1, "base_sl_pips": 20.0,
        "final_sl_pips": 20.0, "lot_multiplier": 1.25, "sl_multiplier": 1.0,
    }
    row.update(over)
    return row


def _edge_trades(ref: datetime, _iso: Callable[[datetime], str]) -> list[dict[str, object]]:
    mid = ref - timedelta(days=400)
    epoch = int((mid - _EPOCH).total_seconds())
    shared = {"symbol": "EURUSD", "direction": "buy", "session_id": "SES-SHARED", "profit_chain_id": "PB-SHARED",
              "chain_id": "RC-SHARED"}
    open_row = {"status": "open", "close_time": None, "exit_price": None, "pnl": 0.0}
    specs: list[tuple[object, str | None, Mapping[str, object]]] = [
        ("E-C1-001", "combinedlogic-1", shared),
        ("E-C2-001", "combinedlogic-2", {**shared, "chain_level": 2, "is_re_entry": 1, "profit_level": 1}),
        ("E-C3-001", "combinedlogic-3", {}), ("E-L1-001", "LOGIC1", {}), ("E-L2-001", "LOGIC2", {}),
        ("E-L3-001", "LOGIC3", {}), ("E-LT-NULL", None, {}), ("E-LT-EMPTY", "", {}), ("E-LT-LOWER", "logic1", {}),
        ("E-LT-LSPACE", " LOGIC1", {}), ("E-LT-TSPACE", "LOGIC1 ", {}), ("E-LT-UPPER", "COMBINEDLOGIC-1", {}),
        ("E-LT-UNKNOWN", "combinedlogic-9", {}),
        ("E-DUP-1", "LOGIC2", {**open_row, "symbol": "AUDUSD"}),  # saved open, then again closed
        ("E-DUP-1", "LOGIC2", {"symbol": "AUDUSD"}),
        ("E-XPLUG-1", "combinedlogic-1", {"symbol": "USDCAD"}), ("E-XPLUG-1", "LOGIC2", {"symbol": "USDCAD"}),
        (None, "LOGIC3", {}), (None, "combinedlogic-2", {}),
        (4242, "LOGIC1", {}),  # bound as an int; TEXT affinity stores it as the text '4242'
        ("E-BLOB-COMMENT", "combinedlogic-1", {"comment": b"\x00\xffMT5\x01"}),
        ("E-PNL-NA", "LOGIC1", {"pnl": "n/a"}),
        ("E-NEG-ZERO", "combinedlogic-2", {"pnl": -0.0}),  # SQLite stores a REAL -0.0 as 0.0
        ("E-BIG-REAL", "combinedlogic-3", {"tp_price": 1e308}),
        ("E-17-DIGITS", "LOGIC3", {"pnl": 0.1 + 0.2}),
        ("E-BOOL-TRUE", "LOGIC1", {"is_re_entry": "true"}), ("E-BOOL-NULL", "LOGIC2", {"is_re_entry": None}),
        ("E-TS-ISO", "combinedlogic-1", _closed_at(mid, _iso)),
        ("E-TS-FRAC", "LOGIC2", _closed_at(mid, lambda t: _iso(t).replace("T", " ") + ".250000")),
        ("E-TS-ISO-FRAC", "combinedlogic-3", _closed_at(mid, lambda t: _iso(t) + ".123456")),
        ("E-TS-EPOCH", "LOGIC3", {"open_time": epoch - 3600, "close_time": epoch}),
        ("E-RECENT-SP", "LOGIC1", _closed_at(ref - timedelta(days=2), _sp)),
        ("E-RECENT-ISO", "combinedlogic-2", _closed_at(ref - timedelta(days=5), _iso)),
        ("E-RECENT-ISO-FRAC", "LOGIC3", _closed_at(ref - timedelta(days=10), lambda t: _iso(t) + ".5")),
        ("E-RECENT-29D23H", "combinedlogic-1", _closed_at(ref - timedelta(days=29, hours=23), _sp)),
        ("E-RECENT-OUT-ISO", "combinedlogic-1", _closed_at(ref - timedelta(days=30, hours=2), _iso)),
        ("E-OPEN-RECENT", "LOGIC2", {**open_row, "open_time": _sp(ref - timedelta(hours=3))}),
    ]
    return [_edge_trade(n, mid + timedelta(hours=6 * n), tid, lt, over) for n, (tid, lt, over) in enumerate(specs, 1)]


def _rows(columns: str, values: Iterable[tuple[object, ...]]) -> list[dict[str, object]]:
    names = columns.split()
    return [dict(zip(names, v, strict=True)) for v in values]


def _edge_rows(ref: datetime, _iso: Callable[[datetime], str]) -> dict[str, list[dict[str, object]]]:
    m = ref - timedelta(days=400)
    t = [_sp(m + timedelta(hours=h)) for h in range(12)]
    epoch = int((m - _EPOCH).total_seconds())
    return {
        "trades": _edge_trades(ref, _iso),
        "reentry_chains": _rows(
            "chain_id symbol direction original_entry original_sl_distance max_level_reached total_profit status "
            "created_at completed_at",
            [("RC-SHARED", "EURUSD", "buy", 1.0861, 0.002, 2, 37.0, "completed", t[1], t[3]),
             ("RC-ORPHAN", "GBPUSD", "sell", 1.2711, 0.0025, 1, -20.0, "stopped", t[2], t[4])]),
        "sl_events": _rows(
            "trade_id symbol sl_price original_entry hit_time recovery_attempted recovery_successful",
            [("E-XPLUG-1", "USDCAD", 1.3821, 1.3818, t[5], 1, 0),
             ("E-DUP-1", "AUDUSD", 0.6583, 0.6586, t[6], "true", None),
             ("E-L1-001", "AUDUSD", 0.6590, 0.6576, epoch, 0, 0),
             ("E-GONE-SL", "EURUSD", 1.0801, 1.0821, t[7], 1, 1),
             (None, "XAUUSD", 2041.5, 2043.5, t[8], 0, None)]),
        "tp_reentry_events": _rows(
            "chain_id symbol tp_level tp_price reentry_price sl_reduction_percent pnl timestamp",
            [("RC-SHARED", "EURUSD", 1, 1.0891, 1.0889, 30.0, 30.0, t[2]),
             ("RC-SHARED", "EURUSD", 2, 1.0921, 1.0918, 51.0, 7.0, t[3]),
             ("RC-ORPHAN", "GBPUSD", 1, 1.2681, 1.2684, 30.0, 18.0, t[4]),
             ("RC-GONE", "USDJPY", 1, 151.2, 151.1, 30.0, 13.4, t[5])]),
        "reversal_exit_events": _rows(
            "trade_id symbol exit_price exit_signal pnl timestamp",
            [("E-XPLUG-1", "USDCAD", 1.3841, "bearish_reversal", 14.7, t[6]),
             ("E-C3-001", "USDJPY", 150.75, "bullish_reversal", 20.1, t[7]),
             ("E-GONE-REV", "GBPJPY", 191.2, "bearish_reversal", 9.9, t[8])]),
        "system_state": _rows(
            "key value updated_at",
            [("bot_status", "running", _sp(ref)), ("config_version", "3.2.1", t[0]), ("daily_pnl", "123.45", _sp(ref)),
             ("last_signal_time", _iso(ref - timedelta(hours=2)), _sp(ref)), ("risk_tier", "5000", t[1])]),
        **_edge_group_rows(t),
    }


def _edge_group_rows(t: Sequence[str]) -> dict[str, list[dict[str, object]]]:
    """Profit-booking chains and trading sessions: shared, orphan and missing parents."""
    return {
        "trading_sessions": _rows(
            "session_id symbol direction entry_signal exit_reason start_time end_time total_pnl total_trades status "
            "metadata",
            [("SES-SHARED", "EURUSD", "buy", "bullish_alignment", "TP_HIT", t[0], t[4], 37.0, 2, "CLOSED",
              '{"logic_type": "combinedlogic-1"}'),
             ("SES-ORPHAN", "XAUUSD", "sell", "bearish_alignment", None, t[5], None, 0.0, 0, "ACTIVE", None)]),
        "profit_booking_chains": _rows(
            "chain_id symbol direction base_lot current_level total_profit status created_at updated_at",
            [("PB-SHARED", "EURUSD", "buy", 0.08, 1, 37.0, "COMPLETED", t[1], t[4]),
             ("PB-ORPHAN", "XAUUSD", "sell", 0.05, 0, 0.0, "ACTIVE", t[2], t[2])]),
        "profit_booking_orders": _rows(
            "order_id chain_id level profit_target sl_reduction status created_at",
            [("PBO-SHARED-1", "PB-SHARED", 0, 7.0, 0, "CLOSED", t[1]),
             ("PBO-SHARED-2", "PB-SHARED", 1, 14.0, 10, "CLOSED", t[2]),
             ("PBO-ORPHAN-1", "PB-ORPHAN", 0, 7.0, 0, "OPEN", t[2]),
             ("PBO-GONE-1", "PB-GONE", 0, 7.0, 0, "CLOSED", t[3]),  # violates the foreign key
             ("PBO-NULL-1", None, 0, 7.0, 0, "CLOSED", t[3])]),
        "profit_booking_events": _rows(
            "chain_id level profit_booked orders_closed orders_placed timestamp",
            [("PB-SHARED", 0, 7.4, 1, 2, t[2]), ("PB-SHARED", 1, 14.9, 2, 3, t[3]), ("PB-ORPHAN", 0, 6.8, 1, 2, t[3]),
             ("PB-GONE", 0, 7.1, 1, 2, t[4])]),
    }


# ---------------------------------------------------------------------------------------------------------------
# Rows committed only to the -wal file.

_WAL_CHILD = r"""
import os, random, sqlite3, sys
from datetime import datetime, timedelta, timezone
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conn = sqlite3.connect(path, isolation_level=None, timeout=30)
conn.execute("PRAGMA wal_autocheckpoint=0")
if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
    os._exit(3)
present = {r[1] for r in conn.execute("PRAGMA table_info(trades)")}
wanted = ("trade_id", "symbol", "direction", "entry_price", "exit_price", "lot_size", "pnl", "commission", "swap",
          "status", "open_time", "close_time", "logic_type")
cols = [c for c in wanted if c in present]
conn.execute("BEGIN IMMEDIATE")
start = conn.execute("SELECT coalesce(max(CAST(substr(trade_id, 5) AS INTEGER)), 0) FROM trades "
                     "WHERE trade_id LIKE 'WAL-%'").fetchone()[0]
rng, now = random.Random(seed), datetime.now(timezone.utc)
def rows():
    for k in range(start + 1, start + n + 1):
        entry, win = round(rng.uniform(1.05, 1.12), 5), rng.random() < 0.6
        pnl = round(rng.uniform(5, 40) if win else -rng.uniform(5, 30), 2)
        closed = now - timedelta(minutes=k)
        row = {"trade_id": f"WAL-{k:06d}", "symbol": "EURUSD", "direction": rng.choice(("buy", "sell")),
               "entry_price": entry, "exit_price": round(entry + pnl / 100000, 5), "lot_size": 0.1, "pnl": pnl,
               "commission": -0.7, "swap": 0.0, "status": "closed",
               "open_time": (closed - timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M:%S"),
               "close_time": closed.strftime("%Y-%m-%d %H:%M:%S"), "logic_type": "LOGIC1"}
        yield tuple(row[c] for c in cols)
conn.executemany(f"INSERT INTO trades ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows())
conn.execute("COMMIT")
os._exit(0)  # no close: the last connection's close would checkpoint the rows into the main file
"""


def write_wal_only_trades(path: str | os.PathLike[str], n: int, *, seed: int = 1) -> None:
    """Commit ``n`` LOGIC1 trades ('WAL-...') that exist only in the ``-wal`` file of the WAL database ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RuntimeError: the writer failed or left no ``-wal`` content.
    """
    db = Path(path)
    if not db.exists():
        raise FileNotFoundError(db)
    done = subprocess.run(
        [sys.executable, "-c", _WAL_CHILD, str(db), str(n), str(seed)], capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"{db}: WAL writer exited {done.returncode}: {done.stderr.strip()[-500:]}")
    wal = Path(f"{db}-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        raise RuntimeError(f"{db}: the writer left no -wal content")
