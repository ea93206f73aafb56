"""The reads and writes of the bot's own TradeDatabase (BOT_INTERFACE.md section 1), scoped to one plugin.

Each function takes a connection (backend.base.Connection) and the plugin id, runs inside the caller's
transaction, and returns what the bot's class returned for that plugin's rows: the same keys, the same empty
values (NULL sums on no rows, `{}` for no session), the same status words. Two things are deliberately better
than the bot's SQL: 30-day windows and calendar days compare instants (timefmt), so a naive local time with a
`T` is neither dropped nor added by a text comparison with SQLite's UTC `datetime('now')`; and every statement
binds `plugin_id = ?`.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from .. import timefmt
from ..backend.base import Connection, Operations
from ..schema import OPEN_POSITION_SQL
from .fetch import Row, fetch_all, fetch_one
from .plugin import NUMERIC_PNL
from .windows import as_day, by_time, sessions_started_in, trades_closed_in
from .write import update_by_key

__all__ = [
    'CHAIN_STATISTICS',
    'PROFIT_CHAIN_STATS',
    'SESSION_METADATA',
    'WINDOW_DAYS',
    'active_profit_chains',
    'active_session',
    'chain_statistics',
    'close_session',
    'open_trades',
    'profit_chain_stats',
    'recompute_session_stats',
    'reversal_exit_stats',
    'session_details',
    'session_metadata',
    'sessions_by_date',
    'set_session_metadata',
    'sl_hunt_reentry_stats',
    'sl_recovery_stats',
    'todays_performance',
    'tp_reentry_stats',
    'trade_history',
    'trades_by_date',
]

WINDOW_DAYS = 30

CHAIN_STATISTICS = """
SELECT count(*) AS total_chains, avg(max_level_reached) AS avg_max_level, sum(total_profit) AS total_chain_profit,
       count(CASE WHEN status = 'completed' THEN 1 END) AS completed_chains,
       count(CASE WHEN total_profit > 0 THEN 1 END) AS profitable_chains
FROM reentry_chains WHERE plugin_id = ?1"""
PROFIT_CHAIN_STATS = """
SELECT count(*) AS total_chains, count(CASE WHEN status = 'COMPLETED' THEN 1 END) AS completed_chains,
       count(CASE WHEN status = 'ACTIVE' THEN 1 END) AS active_chains, avg(current_level) AS avg_level,
       sum(total_profit) AS total_profit, avg(total_profit) AS avg_profit_per_chain
FROM profit_booking_chains WHERE plugin_id = ?1"""
SESSION_METADATA = "SELECT metadata FROM trading_sessions WHERE plugin_id = ? AND session_id = ?"


@functools.cache
def _sl_recovery_stats(ops: Operations) -> str:
    return f"""
SELECT count(*) AS total_sl_hits, count(CASE WHEN {ops.is_true('recovery_attempted')} THEN 1 END) AS recovery_attempts,
       count(CASE WHEN {ops.is_true('recovery_successful')} THEN 1 END) AS successful_recoveries
FROM sl_events WHERE plugin_id = ?1 AND {ops.window('hit_time', first=2)}"""


@functools.cache
def _sl_hunt_stats(ops: Operations) -> str:
    return f"""
SELECT count(CASE WHEN {ops.is_true('recovery_successful')} THEN 1 END) AS total_sl_hunt_reentries,
       count(CASE WHEN {ops.is_true('recovery_attempted')} THEN 1 END) AS sl_hunt_attempts
FROM sl_events WHERE plugin_id = ?1 AND {ops.window('hit_time', first=2)}"""


@functools.cache
def _tp_reentry_stats(ops: Operations) -> str:
    return f"""
SELECT count(*) AS total_tp_reentries, sum(pnl) AS total_tp_reentry_pnl, avg(pnl) AS avg_tp_reentry_pnl,
       count(CASE WHEN pnl > 0 THEN 1 END) AS profitable_tp_reentries
FROM tp_reentry_events WHERE plugin_id = ?1 AND {ops.window('timestamp', first=2)}"""


# The bot's reversal exit handler's summary: SUM(CASE ... ELSE 0) as it wrote it, so NULL on no rows as there.
@functools.cache
def _reversal_exit_stats(ops: Operations) -> str:
    return f"""
SELECT count(*) AS total_reversal_exits, sum(CASE WHEN pnl > 0 THEN 1 ELSE 0 END) AS profitable_exits,
       sum(pnl) AS total_reversal_pnl, avg(pnl) AS avg_reversal_pnl
FROM reversal_exit_events WHERE plugin_id = ?1 AND {ops.window('timestamp', first=2)}"""


# The risk manager's day (its get_todays_performance summed each closed row's pnl in Python): a NULL pnl is a
# trade but no money, and a pnl that is no finite number is no money either (a word or an infinity in legacy rows).
@functools.cache
def _day_performance(ops: Operations) -> str:
    return f"""
SELECT count(*) AS trade_count, coalesce(sum(CASE WHEN pnl > 0 AND {NUMERIC_PNL} THEN pnl END), 0) AS profit,
       coalesce(sum(CASE WHEN pnl < 0 AND {NUMERIC_PNL} THEN pnl END), 0) AS loss
FROM trades WHERE plugin_id = ?1 AND status = 'closed' AND {ops.window('close_time', first=2)}"""


# dual_orders counts DISTINCT of a constant, so it is 1 when the session has any DUAL_A/DUAL_B trade: the bot's
# class returns exactly that, and the Telegram report reads it as such.
@functools.cache
def _session_breakdown(ops: Operations) -> str:
    return f"""
SELECT count(CASE WHEN pnl > 0 THEN 1 END) AS wins, count(CASE WHEN pnl < 0 THEN 1 END) AS losses,
       coalesce(sum(CASE WHEN pnl > 0 THEN pnl END), 0) AS total_profit,
       coalesce(sum(CASE WHEN pnl < 0 THEN pnl END), 0) AS total_loss,
       count(DISTINCT CASE WHEN order_type = 'DUAL_A' OR order_type = 'DUAL_B' THEN 1 END) AS dual_orders,
       count(DISTINCT profit_chain_id) AS profit_chains, count(CASE WHEN {ops.is_true('is_re_entry')} THEN 1 END)
       AS reentries
FROM trades WHERE plugin_id = ?1 AND session_id = ?2 AND status = 'closed'"""


def _last_days(ops: Operations, days: float, zone: tzinfo) -> tuple[Any, ...]:
    return ops.window_bounds(datetime.now(UTC) - timedelta(days=days), None, zone)


def _stats(conn: Connection, sql: str, plugin_id: str, *params: Any) -> Row:
    row = fetch_one(conn, sql, (plugin_id, *params))
    return row if row is not None else {}


def trade_history(conn: Connection, plugin_id: str, ops: Operations, days: float, zone: tzinfo) -> list[Row]:
    rows = fetch_all(conn, trades_closed_in(ops), (plugin_id, *_last_days(ops, days, zone)))
    return by_time(rows, "close_time", zone, newest_first=True)


def chain_statistics(conn: Connection, plugin_id: str) -> Row:
    return _stats(conn, CHAIN_STATISTICS, plugin_id)


def sl_recovery_stats(conn: Connection, plugin_id: str, ops: Operations, zone: tzinfo) -> Row:
    return _stats(conn, _sl_recovery_stats(ops), plugin_id, *_last_days(ops, WINDOW_DAYS, zone))


def sl_hunt_reentry_stats(conn: Connection, plugin_id: str, ops: Operations, zone: tzinfo) -> Row:
    return _stats(conn, _sl_hunt_stats(ops), plugin_id, *_last_days(ops, WINDOW_DAYS, zone))


def tp_reentry_stats(conn: Connection, plugin_id: str, ops: Operations, zone: tzinfo) -> Row:
    return _stats(conn, _tp_reentry_stats(ops), plugin_id, *_last_days(ops, WINDOW_DAYS, zone))


def reversal_exit_stats(conn: Connection, plugin_id: str, ops: Operations, zone: tzinfo) -> Row:
    """Reversal exits of the last 30 days: total_reversal_exits, profitable_exits, total and average pnl."""
    return _stats(conn, _reversal_exit_stats(ops), plugin_id, *_last_days(ops, WINDOW_DAYS, zone))


def todays_performance(conn: Connection, plugin_id: str, ops: Operations, zone: tzinfo,
                       day_zone: tzinfo | None = None) -> Row:
    """Closed trades of today (the calendar day now in `day_zone`, default `zone`): profit, loss, net (floats)
    and trade_count, as the bot's risk manager returned them."""
    day_zone = day_zone or zone
    start, end = timefmt.day_bounds(timefmt.local_now(day_zone).date(), day_zone)
    row = _stats(conn, _day_performance(ops), plugin_id, *ops.window_bounds(start, end, zone))
    profit, loss = float(row["profit"]), float(row["loss"])
    return {"profit": profit, "loss": loss, "net": profit + loss, "trade_count": row["trade_count"]}


def session_metadata(conn: Connection, plugin_id: str, session_id: str) -> Any:
    """The session's metadata: JSON text as its value (the dict update_session_metadata stored), other text as
    it is, None when the session is unknown or has none."""
    row = conn.execute(SESSION_METADATA, (plugin_id, session_id)).fetchone()
    text = row[0] if row is not None else None
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def profit_chain_stats(conn: Connection, plugin_id: str) -> Row:
    return _stats(conn, PROFIT_CHAIN_STATS, plugin_id)


def trades_by_date(conn: Connection, plugin_id: str, ops: Operations, day: date | datetime | str, zone: tzinfo,
                   day_zone: tzinfo | None = None) -> list[Row]:
    """Closed trades whose close time falls on `day` in `day_zone` (default `zone`, the zone of naive times),
    newest first."""
    start, end = timefmt.day_bounds(as_day(day), day_zone or zone)
    rows = fetch_all(conn, trades_closed_in(ops) + " AND status = 'closed'",
                     (plugin_id, *ops.window_bounds(start, end, zone)))
    return by_time(rows, "close_time", zone, newest_first=True)


def sessions_by_date(conn: Connection, plugin_id: str, ops: Operations, day: date | datetime | str,
                     zone: tzinfo, day_zone: tzinfo | None = None) -> list[Row]:
    start, end = timefmt.day_bounds(as_day(day), day_zone or zone)
    rows = fetch_all(conn, sessions_started_in(ops), (plugin_id, *ops.window_bounds(start, end, zone)))
    return by_time(rows, "start_time", zone, newest_first=True)


def active_profit_chains(conn: Connection, plugin_id: str, ops: Operations) -> list[Row]:
    return fetch_all(conn, "SELECT * FROM profit_booking_chains WHERE plugin_id = ? AND status = 'ACTIVE' "
                           f"ORDER BY {ops.insertion_order('profit_booking_chains')}", (plugin_id,))


def active_session(conn: Connection, plugin_id: str, symbol: str | None, zone: tzinfo) -> Row:
    """The newest ACTIVE session (of `symbol`), or {} when there is none."""
    if symbol:
        rows = fetch_all(conn, "SELECT * FROM trading_sessions WHERE plugin_id = ? AND status = 'ACTIVE' "
                               "AND symbol = ?", (plugin_id, symbol))
    else:
        rows = fetch_all(conn, "SELECT * FROM trading_sessions WHERE plugin_id = ? AND status = 'ACTIVE'",
                         (plugin_id,))
    rows = by_time(rows, "start_time", zone, newest_first=True)
    return rows[0] if rows else {}


def session_details(conn: Connection, plugin_id: str, ops: Operations, session_id: str) -> Row:
    session = fetch_one(conn, "SELECT * FROM trading_sessions WHERE plugin_id = ? AND session_id = ?",
                        (plugin_id, session_id))
    if session is None:
        return {}
    session["breakdown"] = _stats(conn, _session_breakdown(ops), plugin_id, session_id)
    return session


def open_trades(conn: Connection, plugin_id: str) -> list[Row]:
    """Open positions: open rows no later row of the same trade_id supersedes (SPEC 4)."""
    return fetch_all(conn, f"SELECT * FROM trades WHERE plugin_id = ? AND {OPEN_POSITION_SQL} ORDER BY id",
                     (plugin_id,))


def recompute_session_stats(conn: Connection, plugin_id: str, ops: Operations, session_id: str) -> bool:
    """Set the session's total_trades and total_pnl from its closed trades (idempotent, as the bot's)."""
    trades, pnl = conn.execute("SELECT count(*), coalesce(sum(pnl), 0) FROM trades WHERE plugin_id = ? "
                               "AND session_id = ? AND status = 'closed'", (plugin_id, session_id)).fetchone()
    return update_by_key(conn, ops, "trading_sessions", {"total_pnl": pnl, "total_trades": trades}, plugin_id,
                         session_id)


def close_session(conn: Connection, plugin_id: str, ops: Operations, session_id: str, exit_reason: str | None,
                  now: str) -> bool:
    return update_by_key(conn, ops, "trading_sessions",
                         {"status": "COMPLETED", "end_time": now, "exit_reason": exit_reason}, plugin_id, session_id)


def set_session_metadata(conn: Connection, plugin_id: str, ops: Operations, session_id: str,
                         text: str | None) -> bool:
    return update_by_key(conn, ops, "trading_sessions", {"metadata": text}, plugin_id, session_id)
