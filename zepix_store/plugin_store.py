"""PluginStore: the bot's whole legacy database surface, scoped to one plugin.

Every statement carries `plugin_id = ?` bound to the handle's id, so a handle cannot read, count, update or
delete another plugin's row in a shared or group file. Each public method is one transaction (see backend/base.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from . import timefmt
from .backend.base import Database
from .queries import bot as bot_queries
from .queries import plugin as q
from .queries.fetch import fetch_all, fetch_one
from .queries.state import decode_state, get_state, state_row
from .queries.windows import as_day, by_time, sessions_started_in, trades_closed_in
from .queries.write import insert, save_trade, save_trade_batch, update, update_by_key, upsert
from .rows import Row, Trade, check_row, utc_now

__all__ = [
    'PluginStore',
]


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
        db = await self._database()
        await db.write(upsert, db.operations, table, checked, self.plugin_id, inline=True)

    async def _add(self, table: str, row: Mapping[str, Any] | Any) -> int:
        checked = check_row(table, row, self.plugin_id, self.zone)
        db = await self._database()
        return await db.write(insert, db.operations, table, checked, self.plugin_id, inline=True)

    # -- trades ---------------------------------------------------------------------------------------
    async def save_trade(self, trade: Trade | Mapping[str, Any] | Any) -> int:
        """Insert the trade, or update this plugin's trade with the same trade_id; return its row id.

        `trade` is a `Trade` (only its set fields are written), a dict of trades columns, or the bot's own
        Trade model (read by attribute or `model_dump()`; `entry`, `sl`, `tp`, `close_price` are the columns
        entry_price, sl_price, tp_price, exit_price; attributes the table lacks are ignored).
        """
        row = check_row("trades", trade, self.plugin_id, self.zone)
        db = await self._database()
        return await db.write(save_trade, db.operations, row, self.plugin_id, inline=True)

    async def save_trades(self, trades: Iterable[Trade | Mapping[str, Any]]) -> list[int]:
        """Save many trades in one transaction (same rules as save_trade); return their row ids.

        The rows are checked and read on the connection's worker thread, so the event loop stays free during a
        large batch: do not change them until this returns.
        """
        given = list(trades)
        if not given:
            return []
        db = await self._database()
        return await db.write(save_trade_batch, db.operations, given, self.plugin_id, self.zone)

    async def get_trade(self, trade_id: str | int) -> Row | None:
        """The plugin's trade with this trade_id (the newest row if legacy data holds duplicates); an int ticket
        finds the trade it was saved as (stored as text)."""
        return await self._one(q.TRADE,
                               _ticket(trade_id))

    async def get_open_trades(self) -> list[Row]:
        """Open positions: open rows not superseded by a later row of the same trade_id (SPEC 4)."""
        return await self._all(q.OPEN_TRADES)

    async def get_trades(self, days: int = 30) -> list[Row]:
        """Trades closed in the last `days` days, newest first (every stored time form read as its instant)."""
        since = datetime.now(UTC) - timedelta(days=days)
        ops = (await self._database()).operations
        rows = await self._all(trades_closed_in(ops), *ops.window_bounds(since, None, self.zone))
        return by_time(rows, "close_time", self.zone, newest_first=True)

    async def get_trades_by_date(self, day: date | datetime | str, zone: tzinfo | str | None = None) -> list[Row]:
        """Trades closed on calendar day `day` in `zone` (a tzinfo or a name; default: store.yaml's timezone),
        oldest first."""
        start, end = timefmt.day_bounds(as_day(day), timefmt.as_zone(zone, self.zone))
        ops = (await self._database()).operations
        rows = await self._all(trades_closed_in(ops), *ops.window_bounds(start, end, self.zone))
        return by_time(rows, "close_time", self.zone)

    async def get_statistics(self) -> Row:
        """Closed-trade statistics (the seed plan's keys); pnl that is not a number is not summed."""
        row = await self._one(q.STATISTICS_SQL)
        assert row is not None
        return row

    # -- re-entry chains ------------------------------------------------------------------------------
    async def save_reentry_chain(self, chain: Mapping[str, Any]) -> None:
        """Insert or update (by chain_id) one of this plugin's re-entry chains."""
        await self._save("reentry_chains", chain)

    async def get_reentry_chain(self, chain_id: str) -> Row | None:
        return await self._one(q.REENTRY_CHAIN, chain_id)

    async def get_active_reentry_chains(self) -> list[Row]:
        return await self._all(q.ACTIVE_REENTRY_CHAINS)

    async def get_reentry_chain_statistics(self) -> Row:
        row = await self._one(
            q.CHAIN_STATISTICS)
        assert row is not None
        return row

    # -- SL events ------------------------------------------------------------------------------------
    async def save_sl_event(self, event: Mapping[str, Any]) -> int:
        return await self._add("sl_events", event)

    async def get_sl_events(self, trade_id: str | int | None = None) -> list[Row]:
        if trade_id is None:
            return await self._all(q.SL_EVENTS)
        return await self._all(q.SL_EVENTS_OF_TRADE, _ticket(trade_id))

    async def get_sl_recovery_stats(self) -> Row:
        row = await self._one(q.sl_recovery_stats_sql((await self._database()).operations))
        assert row is not None
        tried = row["recovery_attempted"]
        row["success_rate"] = row["recovery_successful"] / tried * 100 if tried else 0.0
        return row

    # -- TP re-entry events ---------------------------------------------------------------------------
    async def save_tp_reentry_event(self, event: Mapping[str, Any]) -> int:
        return await self._add("tp_reentry_events", event)

    async def get_tp_reentry_events(self, chain_id: str | None = None) -> list[Row]:
        if chain_id is None:
            return await self._all(q.TP_REENTRY_EVENTS)
        return await self._all(q.TP_REENTRY_EVENTS_OF_CHAIN,
                               chain_id)

    async def get_tp_reentry_stats(self) -> Row:
        row = await self._one(
            q.TP_REENTRY_STATS)
        assert row is not None
        return row

    # -- reversal exits -------------------------------------------------------------------------------
    async def save_reversal_exit_event(self, event: Mapping[str, Any]) -> int:
        return await self._add("reversal_exit_events", event)

    async def get_reversal_exit_events(self, trade_id: str | int | None = None) -> list[Row]:
        if trade_id is None:
            return await self._all(q.REVERSAL_EXIT_EVENTS)
        return await self._all(q.REVERSAL_EXIT_EVENTS_OF_TRADE,
                               _ticket(trade_id))

    async def get_reversal_exit_stats(self) -> Row:
        """Reversal exits of the last 30 days, as the compat facade's (total_reversal_exits, profitable_exits,
        total_reversal_pnl, avg_reversal_pnl)."""
        db = await self._database()
        return await db.read(bot_queries.reversal_exit_stats, self.plugin_id, db.operations, self.zone)

    async def get_todays_performance(self, zone: tzinfo | str | None = None) -> Row:
        """Closed trades of today (the calendar day now in `zone`; default store.yaml's timezone): profit, loss,
        net and trade_count, as the compat facade's."""
        db = await self._database()
        return await db.read(bot_queries.todays_performance, self.plugin_id, db.operations, self.zone,
                             timefmt.as_zone(zone, self.zone))

    # -- system state ---------------------------------------------------------------------------------
    async def get_system_state(self, key: str, default: Any = None) -> Any:
        """The value set under `key` (equal to what was set: bool, number, str, None, list, dict), or `default`."""
        found, value = await (await self._database()).read(get_state, key, self.plugin_id)
        return value if found else default

    async def set_system_state(self, key: str, value: Any) -> None:
        await self._save("system_state", state_row(key, value, utc_now()))

    async def get_all_system_state(self) -> dict[str, Any]:
        rows = await self._all(q.ALL_SYSTEM_STATE)
        return {r["key"]: decode_state(r["value"]) for r in rows}

    # -- profit booking -------------------------------------------------------------------------------
    async def save_profit_booking_chain(self, chain: Mapping[str, Any]) -> None:
        """Insert or update (by chain_id) a profit-booking chain; updated_at is set to now unless given."""
        await self._save("profit_booking_chains", {"updated_at": utc_now(), **chain})

    async def get_profit_booking_chain(self, chain_id: str) -> Row | None:
        return await self._one(q.PROFIT_CHAIN, chain_id)

    async def get_active_profit_booking_chains(self) -> list[Row]:
        return await self._all(q.ACTIVE_PROFIT_CHAINS)

    async def save_profit_booking_order(self, order: Mapping[str, Any]) -> None:
        """Insert or update (by order_id) an order; its chain must be this plugin's (foreign key)."""
        await self._save("profit_booking_orders", order)

    async def get_profit_booking_orders(self, chain_id: str) -> list[Row]:
        return await self._all(q.PROFIT_BOOKING_ORDERS, chain_id)

    async def save_profit_booking_event(self, event: Mapping[str, Any]) -> int:
        return await self._add("profit_booking_events", event)

    async def get_profit_booking_events(self, chain_id: str | None = None) -> list[Row]:
        if chain_id is None:
            return await self._all(q.PROFIT_BOOKING_EVENTS)
        return await self._all(q.PROFIT_BOOKING_EVENTS_OF_CHAIN,
                               chain_id)

    async def get_profit_booking_stats(self) -> Row:
        row = await self._one(
            q.PROFIT_BOOKING_STATS)
        events = await self._one(q.PROFIT_BOOKING_EVENT_STATS)
        assert row is not None and events is not None
        return {**row, **events}

    # -- trading sessions -----------------------------------------------------------------------------
    async def create_session(self, session: Mapping[str, Any]) -> None:
        """Start a session (status ACTIVE, start_time now unless given); session_id must be new for the plugin."""
        row = check_row("trading_sessions", {"start_time": utc_now(), "status": "ACTIVE", **session},
                        self.plugin_id, self.zone)
        db = await self._database()
        await db.write(insert, db.operations, "trading_sessions", row, self.plugin_id, inline=True)

    async def close_session(self, session_id: str, exit_reason: str | None = None,
                            end_time: str | None = None) -> bool:
        """Mark the session CLOSED; return False if the plugin has no such session."""
        values = {"status": "CLOSED", "exit_reason": exit_reason, "end_time": end_time or utc_now()}
        db = await self._database()
        return await db.write(update_by_key, db.operations, "trading_sessions", values, self.plugin_id, session_id,
                              inline=True)

    async def update_session_stats(self, session_id: str, pnl: float, trades: int = 1) -> bool:
        """Add `pnl` and `trades` to the session's totals; return False if the plugin has no such session."""
        return await self._update(q.UPDATE_SESSION_STATS,
                                  pnl, trades, self.plugin_id, session_id)

    async def _update(self, sql: str, *params: Any) -> bool:
        return await (await self._database()).write(update, sql, params, inline=True)

    async def get_active_session(self, symbol: str | None = None) -> Row | None:
        if symbol is None:
            return await self._one(q.ACTIVE_SESSION)
        return await self._one(q.ACTIVE_SESSION_OF_SYMBOL, symbol)

    async def get_sessions_by_date(self, day: date | datetime | str, zone: tzinfo | str | None = None) -> list[Row]:
        """Sessions started on calendar day `day` in `zone` (a tzinfo or a name; default: store.yaml's timezone),
        oldest first."""
        start, end = timefmt.day_bounds(as_day(day), timefmt.as_zone(zone, self.zone))
        ops = (await self._database()).operations
        rows = await self._all(sessions_started_in(ops), *ops.window_bounds(start, end, self.zone))
        return by_time(rows, "start_time", self.zone)

    async def get_session_metadata(self, session_id: str) -> Any:
        """The session's metadata: stored JSON as its value, other text as it is; None when unknown or unset."""
        return await (await self._database()).read(bot_queries.session_metadata, self.plugin_id, session_id)

    async def get_session_details(self, session_id: str) -> Row | None:
        """The session with its trades under the key 'trades', or None."""
        session = await self._one(q.SESSION,
                                  session_id)
        if session is None:
            return None
        session["trades"] = await self._all(q.SESSION_TRADES, session_id)
        return session


def _ticket(trade_id: str | int) -> str | int:
    """A trade_id as it is stored: the bot's int MT5 ticket as its text (SQLite compares a TEXT column with an int
    as text; PostgreSQL refuses `text = integer`, so the bot's lookup by ticket raised there)."""
    return str(trade_id) if isinstance(trade_id, int) and not isinstance(trade_id, bool) else trade_id
