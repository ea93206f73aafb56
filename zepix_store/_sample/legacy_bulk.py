"""The bulk of a generated legacy file: seeded patterns in temp tables, then INSERT ... SELECT per table."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

__all__ = ["BULK_SQL", "EPOCH", "SYMBOLS", "TOTALS_SQL", "bulk_params", "prepare_bulk"]

_P = 2147483647  # 2**31 - 1: a square stays below 2**62, so SQLite never overflows into REAL
_PATTERNS = 128
_HISTORY = timedelta(days=730)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# (symbol, weight, base price, pip, pip value per lot in USD, digits, min SL pips, SL pip span)
SYMBOLS = (
    ("EURUSD", 3, 1.0850, 0.0001, 10.0, 5, 10, 30),
    ("GBPUSD", 2, 1.2650, 0.0001, 10.0, 5, 12, 34),
    ("XAUUSD", 3, 2050.0, 0.1, 10.0, 2, 20, 60),
    ("USDJPY", 2, 150.00, 0.01, 6.7, 3, 10, 30),
    ("AUDUSD", 2, 0.6550, 0.0001, 10.0, 5, 8, 25),
    ("USDCAD", 1, 1.3600, 0.0001, 7.35, 5, 10, 30),
    ("EURJPY", 1, 162.50, 0.01, 6.7, 3, 12, 35),
    ("GBPJPY", 2, 190.00, 0.01, 6.7, 3, 15, 45),
)


# ---------------------------------------------------------------------------------------------------------------
# Bulk rows: seeded patterns in temp tables, then INSERT ... SELECT with an integer hash per row.


def bulk_params(seed: int, ref: datetime, n_edge: int, n_bulk: int) -> dict[str, int | float]:
    start = ref - _HISTORY
    return {
        "seed": (seed * 104729 + 12345) % _P,
        "n": n_bulk,
        "e": n_edge,
        "np": _PATTERNS,
        "t0": int((start - EPOCH).total_seconds()),
        "step": (_HISTORY - timedelta(days=2)).total_seconds() / max(n_bulk, 1),
    }


def prepare_bulk(conn: sqlite3.Connection, seed: int, params: Mapping[str, int | float]) -> None:
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
    weighted = [s for s in SYMBOLS for _ in range(s[1])]
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
TOTALS_SQL = (
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
BULK_SQL: dict[str, str] = {
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


