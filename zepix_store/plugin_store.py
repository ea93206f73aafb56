"""PluginStore: the bot's whole legacy database surface, scoped to one plugin.

Every statement carries `plugin_id = ?` bound to the handle's id, so a handle cannot read, count, update or
delete another plugin's row in a shared or group file. Each public method is one transaction (see db.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from . import timefmt
from .db import Database
from .rows import BatchShape, NotUniform, Row, Trade, check_row, utc_now
from .schema import OPEN_POSITION_SQL
from .statements import (
    SESSIONS_STARTED_IN,
    TRADES_CLOSED_IN,
    as_day,
    by_time,
    decode_state,
    fetch_all,
    fetch_one,
    get_state,
    insert,
    save_trade,
    state_row,
    upsert,
)

__all__ = [
    'NUMERIC_PNL',
    'PluginStore',
    'STATISTICS_SQL',
    'TRUE_VALUES',
]

TRUE_VALUES = "(1, '1', 'true', 'True', 'TRUE')"
# Finite numbers only: NULL, text, blobs (legacy values in the REAL column) and +-infinity all fail it, so one bad
# row never blanks the money figures, and the condition stays a range on the (plugin_id, status, pnl) index.
NUMERIC_PNL = "pnl BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308"
STATISTICS_SQL = f"""
SELECT (SELECT count(*) FROM trades WHERE plugin_id = ?1 AND status = 'closed') AS total_trades,
       count(CASE WHEN pnl > 0 THEN 1 END) AS winning_trades,
       count(CASE WHEN pnl < 0 THEN 1 END) AS losing_trades,
       total(pnl) AS total_pnl, avg(pnl) AS avg_pnl, max(pnl) AS best_trade, min(pnl) AS worst_trade
FROM trades WHERE plugin_id = ?1 AND status = 'closed' AND {NUMERIC_PNL}"""


_BATCH_CHUNK = 2048


def _save_each_trade(conn: sqlite3.Connection, trades: Sequence[Any], plugin_id: str, zone: tzinfo) -> list[int]:
    rows = [check_row("trades", t, plugin_id, zone) for t in trades]  # every row checked before the first write
    return [save_trade(conn, row, plugin_id) for row in rows]


def _save_trade_batch(conn: sqlite3.Connection, trades: Sequence[Any], plugin_id: str, zone: tzinfo) -> list[int]:
    shape = BatchShape.of("trades", trades[0], plugin_id, zone)
    ids = [t.get("trade_id") if isinstance(t, Mapping) else getattr(t, "trade_id", None) for t in trades]
    named = [i for i in ids if i is not None]
    existing = conn.execute(
        "SELECT 1 FROM trades WHERE plugin_id = ? AND trade_id IN (SELECT value FROM json_each(?)) LIMIT 1",
        (plugin_id, json.dumps([i for i in named if isinstance(i, str)]))).fetchone()
    if shape is None or not all(isinstance(i, str) for i in named) or len(set(named)) != len(named) or existing:
        return _save_each_trade(conn, trades, plugin_id, zone)  # updates, or a trade_id twice: in order
    # All new: one prepared statement for the whole batch, fed chunk by chunk as the rows are checked.
    cols = (*shape.columns, "plugin_id")
    sql = f"INSERT INTO trades ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    checked = (row for start in range(0, len(trades), _BATCH_CHUNK)
               for row in shape.check(trades[start:start + _BATCH_CHUNK]))
    conn.execute("SAVEPOINT zx_batch")
    try:
        conn.executemany(sql, checked)
    except NotUniform:  # mixed row types or keys, seen part way: undo and take them one by one
        conn.execute("ROLLBACK TO zx_batch")
        conn.execute("RELEASE zx_batch")
        return _save_each_trade(conn, trades, plugin_id, zone)
    conn.execute("RELEASE zx_batch")
    # One writer, no AUTOINCREMENT: the batch got consecutive rowids ending at the last one. (Asking for
    # max(rowid) first would read every plugin's rows; a handle reads only its own.)
    last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
    return list(range(last - len(trades) + 1, last + 1))


class PluginStore:
    """One plugin's view of its store; get one from `Store.for_plugin(plugin_id)`."""

    def __init__(self, plugin_id: str, database: Callable[[], Awaitable[Database]], *,
                 zone: tzinfo | str | None = None) -> None:
        self.plugin_id = plugin_id
        self._database = database
        # the zone of naive legacy times and of calendar days (store.yaml `timezone`)
        self.zone = timefmt.as_zone(zone, timefmt.resolve_zone(timefmt.LOCAL)) if zone is not None else \
            timefmt.resolve_zone(timefmt.LOCAL)

    def __repr__(self) -> str:
        return f"PluginStore({self.plugin_id!r})"

    async def _all(self, sql: str, *params: Any) -> list[Row]:
        return await (await self._database()).read(fetch_all, sql, (self.plugin_id, *params))

    async def _one(self, sql: str, *params: Any) -> Row | None:
        return await (await self._database()).read(fetch_one, sql, (self.plugin_id, *params))

    async def _save(self, table: str, row: Mapping[str, Any] | Any) -> None:
        checked = check_row(table, row, self.plugin_id, self.zone)
        await (await self._database()).write(upsert, table, checked, self.plugin_id, inline=True)

    async def _add(self, table: str, row: Mapping[str, Any] | Any) -> int:
        checked = check_row(table, row, self.plugin_id, self.zone)
        return await (await self._database()).write(insert, table, checked, self.plugin_id, inline=True)

    # -- trades ---------------------------------------------------------------------------------------
    async def save_trade(self, trade: Trade | Mapping[str, Any] | Any) -> int:
        """Insert the trade, or update this plugin's trade with the same trade_id; return its row id.

        `trade` is a `Trade` (only its set fields are written), a dict of trades columns, or the bot's own
        Trade model (read by attribute or `model_dump()`; `entry`, `sl`, `tp`, `close_price` are the columns
        entry_price, sl_price, tp_price, exit_price; attributes the table lacks are ignored).
        """
        row = check_row("trades", trade, self.plugin_id, self.zone)
        return await (await self._database()).write(save_trade, row, self.plugin_id, inline=True)

    async def save_trades(self, trades: Iterable[Trade | Mapping[str, Any]]) -> list[int]:
        """Save many trades in one transaction (same rules as save_trade); return their row ids.

        The rows are checked and read on the connection's worker thread, so the event loop stays free during a
        large batch: do not change them until this returns.
        """
        given = list(trades)
        if not given:
            return []
        return await (await self._database()).write(_save_trade_batch, given, self.plugin_id, self.zone)

    async def get_trade(self, trade_id: str) -> Row | None:
        """The plugin's trade with this trade_id (the newest row if legacy data holds duplicates)."""
        return await self._one("SELECT * FROM trades WHERE plugin_id = ? AND trade_id = ? ORDER BY id DESC LIMIT 1",
                               trade_id)

    async def get_open_trades(self) -> list[Row]:
        """Open positions: open rows not superseded by a later row of the same trade_id (SPEC 4)."""
        return await self._all(f"SELECT * FROM trades WHERE plugin_id = ? AND {OPEN_POSITION_SQL} ORDER BY id")

    async def get_trades(self, days: int = 30) -> list[Row]:
        """Trades closed in the last `days` days, newest first (every stored time form read as its instant)."""
        since = datetime.now(UTC) - timedelta(days=days)
        rows = await self._all(TRADES_CLOSED_IN, *timefmt.band_bounds(since, None, self.zone))
        return by_time(rows, "close_time", self.zone, newest_first=True)

    async def get_trades_by_date(self, day: date | datetime | str, zone: tzinfo | str | None = None) -> list[Row]:
        """Trades closed on calendar day `day` in `zone` (a tzinfo or a name; default: store.yaml's timezone),
        oldest first."""
        start, end = timefmt.day_bounds(as_day(day), timefmt.as_zone(zone, self.zone))
        rows = await self._all(TRADES_CLOSED_IN, *timefmt.band_bounds(start, end, self.zone))
        return by_time(rows, "close_time", self.zone)

    async def get_statistics(self) -> Row:
        """Closed-trade statistics (the seed plan's keys); pnl that is not a number is not summed."""
        row = await self._one(STATISTICS_SQL)
        assert row is not None
        return row

    # -- re-entry chains ------------------------------------------------------------------------------
    async def save_reentry_chain(self, chain: Mapping[str, Any]) -> None:
        """Insert or update (by chain_id) one of this plugin's re-entry chains."""
        await self._save("reentry_chains", chain)

    async def get_reentry_chain(self, chain_id: str) -> Row | None:
        return await self._one("SELECT * FROM reentry_chains WHERE plugin_id = ? AND chain_id = ?", chain_id)

    async def get_active_reentry_chains(self) -> list[Row]:
        return await self._all("SELECT * FROM reentry_chains WHERE plugin_id = ? AND status = 'active' "
                               "ORDER BY created_at, chain_id")

    async def get_reentry_chain_statistics(self) -> Row:
        row = await self._one(
            "SELECT count(*) AS total_chains, count(CASE WHEN status = 'active' THEN 1 END) AS active_chains, "
            "count(CASE WHEN status = 'completed' THEN 1 END) AS completed_chains, "
            "avg(max_level_reached) AS avg_max_level, total(total_profit) AS total_profit "
            "FROM reentry_chains WHERE plugin_id = ?")
        assert row is not None
        return row

    # -- SL events ------------------------------------------------------------------------------------
    async def save_sl_event(self, event: Mapping[str, Any]) -> int:
        return await self._add("sl_events", event)

    async def get_sl_events(self, trade_id: str | None = None) -> list[Row]:
        if trade_id is None:
            return await self._all("SELECT * FROM sl_events WHERE plugin_id = ? ORDER BY id")
        return await self._all("SELECT * FROM sl_events WHERE plugin_id = ? AND trade_id = ? ORDER BY id", trade_id)

    async def get_sl_recovery_stats(self) -> Row:
        row = await self._one(
            f"SELECT count(*) AS total_sl_hits, count(CASE WHEN recovery_attempted IN {TRUE_VALUES} THEN 1 END) "
            f"AS recovery_attempted, count(CASE WHEN recovery_successful IN {TRUE_VALUES} THEN 1 END) "
            "AS recovery_successful FROM sl_events WHERE plugin_id = ?")
        assert row is not None
        tried = row["recovery_attempted"]
        row["success_rate"] = row["recovery_successful"] / tried * 100 if tried else 0.0
        return row

    # -- TP re-entry events ---------------------------------------------------------------------------
    async def save_tp_reentry_event(self, event: Mapping[str, Any]) -> int:
        return await self._add("tp_reentry_events", event)

    async def get_tp_reentry_events(self, chain_id: str | None = None) -> list[Row]:
        if chain_id is None:
            return await self._all("SELECT * FROM tp_reentry_events WHERE plugin_id = ? ORDER BY id")
        return await self._all("SELECT * FROM tp_reentry_events WHERE plugin_id = ? AND chain_id = ? ORDER BY id",
                               chain_id)

    async def get_tp_reentry_stats(self) -> Row:
        row = await self._one(
            "SELECT count(*) AS total_tp_reentries, total(pnl) AS total_pnl, max(tp_level) AS max_tp_level, "
            "avg(sl_reduction_percent) AS avg_sl_reduction_percent FROM tp_reentry_events WHERE plugin_id = ?")
        assert row is not None
        return row

    # -- reversal exits -------------------------------------------------------------------------------
    async def save_reversal_exit_event(self, event: Mapping[str, Any]) -> int:
        return await self._add("reversal_exit_events", event)

    async def get_reversal_exit_events(self, trade_id: str | None = None) -> list[Row]:
        if trade_id is None:
            return await self._all("SELECT * FROM reversal_exit_events WHERE plugin_id = ? ORDER BY id")
        return await self._all("SELECT * FROM reversal_exit_events WHERE plugin_id = ? AND trade_id = ? ORDER BY id",
                               trade_id)

    # -- system state ---------------------------------------------------------------------------------
    async def get_system_state(self, key: str, default: Any = None) -> Any:
        """The value set under `key` (equal to what was set: bool, number, str, None, list, dict), or `default`."""
        found, value = await (await self._database()).read(get_state, key, self.plugin_id)
        return value if found else default

    async def set_system_state(self, key: str, value: Any) -> None:
        await self._save("system_state", state_row(key, value, utc_now()))

    async def get_all_system_state(self) -> dict[str, Any]:
        rows = await self._all("SELECT key, value FROM system_state WHERE plugin_id = ? ORDER BY key")
        return {r["key"]: decode_state(r["value"]) for r in rows}

    # -- profit booking -------------------------------------------------------------------------------
    async def save_profit_booking_chain(self, chain: Mapping[str, Any]) -> None:
        """Insert or update (by chain_id) a profit-booking chain; updated_at is set to now unless given."""
        await self._save("profit_booking_chains", {"updated_at": utc_now(), **chain})

    async def get_profit_booking_chain(self, chain_id: str) -> Row | None:
        return await self._one("SELECT * FROM profit_booking_chains WHERE plugin_id = ? AND chain_id = ?", chain_id)

    async def get_active_profit_booking_chains(self) -> list[Row]:
        return await self._all("SELECT * FROM profit_booking_chains WHERE plugin_id = ? AND status = 'ACTIVE' "
                               "ORDER BY created_at, chain_id")

    async def save_profit_booking_order(self, order: Mapping[str, Any]) -> None:
        """Insert or update (by order_id) an order; its chain must be this plugin's (foreign key)."""
        await self._save("profit_booking_orders", order)

    async def get_profit_booking_orders(self, chain_id: str) -> list[Row]:
        return await self._all("SELECT * FROM profit_booking_orders WHERE plugin_id = ? AND chain_id = ? "
                               "ORDER BY level, order_id", chain_id)

    async def save_profit_booking_event(self, event: Mapping[str, Any]) -> int:
        return await self._add("profit_booking_events", event)

    async def get_profit_booking_events(self, chain_id: str | None = None) -> list[Row]:
        if chain_id is None:
            return await self._all("SELECT * FROM profit_booking_events WHERE plugin_id = ? ORDER BY id")
        return await self._all("SELECT * FROM profit_booking_events WHERE plugin_id = ? AND chain_id = ? ORDER BY id",
                               chain_id)

    async def get_profit_booking_stats(self) -> Row:
        row = await self._one(
            "SELECT count(*) AS total_chains, count(CASE WHEN status = 'ACTIVE' THEN 1 END) AS active_chains, "
            "total(total_profit) AS total_profit, max(current_level) AS max_level "
            "FROM profit_booking_chains WHERE plugin_id = ?")
        events = await self._one("SELECT count(*) AS total_events, total(profit_booked) AS total_profit_booked "
                                 "FROM profit_booking_events WHERE plugin_id = ?")
        assert row is not None and events is not None
        return {**row, **events}

    # -- trading sessions -----------------------------------------------------------------------------
    async def create_session(self, session: Mapping[str, Any]) -> None:
        """Start a session (status ACTIVE, start_time now unless given); session_id must be new for the plugin."""
        row = check_row("trading_sessions", {"start_time": utc_now(), "status": "ACTIVE", **session},
                        self.plugin_id, self.zone)
        await (await self._database()).write(insert, "trading_sessions", row, self.plugin_id, inline=True)

    async def close_session(self, session_id: str, exit_reason: str | None = None,
                            end_time: str | None = None) -> bool:
        """Mark the session CLOSED; return False if the plugin has no such session."""
        return await self._update("UPDATE trading_sessions SET status = 'CLOSED', exit_reason = ?, end_time = ? "
                                  "WHERE plugin_id = ? AND session_id = ?", exit_reason, end_time or utc_now(),
                                  self.plugin_id, session_id)

    async def update_session_stats(self, session_id: str, pnl: float, trades: int = 1) -> bool:
        """Add `pnl` and `trades` to the session's totals; return False if the plugin has no such session."""
        return await self._update("UPDATE trading_sessions SET total_pnl = coalesce(total_pnl, 0) + ?, "
                                  "total_trades = coalesce(total_trades, 0) + ? WHERE plugin_id = ? AND session_id = ?",
                                  pnl, trades, self.plugin_id, session_id)

    async def _update(self, sql: str, *params: Any) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            return conn.execute(sql, params).rowcount > 0
        return await (await self._database()).write(run, inline=True)

    async def get_active_session(self, symbol: str | None = None) -> Row | None:
        if symbol is None:
            return await self._one("SELECT * FROM trading_sessions WHERE plugin_id = ? AND status = 'ACTIVE' "
                                   "ORDER BY start_time DESC LIMIT 1")
        return await self._one("SELECT * FROM trading_sessions WHERE plugin_id = ? AND status = 'ACTIVE' "
                               "AND symbol = ? ORDER BY start_time DESC LIMIT 1", symbol)

    async def get_sessions_by_date(self, day: date | datetime | str, zone: tzinfo | str | None = None) -> list[Row]:
        """Sessions started on calendar day `day` in `zone` (a tzinfo or a name; default: store.yaml's timezone),
        oldest first."""
        start, end = timefmt.day_bounds(as_day(day), timefmt.as_zone(zone, self.zone))
        rows = await self._all(SESSIONS_STARTED_IN, *timefmt.band_bounds(start, end, self.zone))
        return by_time(rows, "start_time", self.zone)

    async def get_session_details(self, session_id: str) -> Row | None:
        """The session with its trades under the key 'trades', or None."""
        session = await self._one("SELECT * FROM trading_sessions WHERE plugin_id = ? AND session_id = ?",
                                  session_id)
        if session is None:
            return None
        session["trades"] = await self._all("SELECT * FROM trades WHERE plugin_id = ? AND session_id = ? "
                                            "ORDER BY id", session_id)
        return session
