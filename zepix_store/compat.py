"""A drop-in for the bot's synchronous `TradeDatabase`, scoped to one plugin (SPEC 6, BOT_INTERFACE.md 1).

    from zepix_store.compat import TradeDatabase
    db = TradeDatabase("v6-logic-01-1min")      # was: db = TradeDatabase()

The bot calls its database from the event loop without `await` and from Telegram handler threads, so this
class is synchronous and thread-safe: one connection per facade, one lock, and every call one
`BEGIN IMMEDIATE` transaction (a call is never interleaved with another thread's, and a failed call leaves
nothing behind). It routes like `Store.for_plugin` and runs the same statements as `PluginStore`
(queries/) plus the bot's own queries (queries/bot.py). Reads never create a file: until the plugin's
file exists, they read an empty schema in memory, so they return exactly the bot's empty values. A file in a
folder we cannot write (a read-only mount) is read through a short read-only connection per call. A move of the
plugin by another process (`zepix-store flip`) is followed at the next call (route_follow.py).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from contextlib import nullcontext
from datetime import date, datetime, tzinfo
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from . import bot_models, timefmt
from .backend.base import Backend, Connection
from .config import StoreConfig
from .errors import RowError, StoreError
from .queries import bot as bot_queries
from .queries import write
from .queries.state import get_state, state_row
from .registry import backend_for, load_lenient_config
from .route_follow import RouteFollower
from .rows import Row, check_row

__all__ = [
    'TradeDatabase',
]

T = TypeVar("T")
log = logging.getLogger("zepix_store.compat")
_CHAIN_FIELDS = ("chain_id", "symbol", "direction", "original_entry", "original_sl_distance", "current_level",
                 "total_profit", "status", "created_at")


class TradeDatabase:
    """The bot's TradeDatabase, method for method, for the rows of one plugin.

    Args:
        plugin_id: the plugin whose rows this object reads and writes.
        config: the config folder (store.yaml and plugins/), or a loaded StoreConfig.

    Raises:
        UnknownPluginError: no plugin config has this id.
        ConfigError: the configs are invalid, or this plugin's own config.json is.
    """

    def __init__(self, plugin_id: str, config: str | os.PathLike[str] | StoreConfig = "configs") -> None:
        self.config = config if isinstance(config, StoreConfig) else load_lenient_config(config)
        # one call at a time (the lock below): on PostgreSQL one pooled connection serves the facade
        self._backend: Backend = backend_for(self.config, connections=1)
        self._ops = self._backend.operations
        self.plugin_id = self.config.plugin(plugin_id).plugin_id
        self.path: Path = self.config.plugin(plugin_id).db_path
        self.zone = self.config.zone
        self.upgrades: list[Any] = []  # (file, backup, report) of an older file upgraded at first use
        self._follow = RouteFollower(self.config, self.plugin_id)
        self._routed = self.config.plugin(plugin_id)  # the config self.path comes from
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._empty: Connection | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"TradeDatabase({self.plugin_id!r}, path={str(self.path)!r})"

    # -- connection ----------------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (safe to call twice)."""
        with self._lock:
            self._closed = True
            self._follow.close()
            for conn in (self._conn, self._empty):
                if conn is not None:
                    conn.close()
            self._conn = self._empty = None
            self._backend.close()

    def _file(self, create: bool) -> Connection | None:
        if self._closed:
            raise StoreError(f"{self.path}: TradeDatabase({self.plugin_id!r}) is closed")
        if self._conn is None:
            self._conn = self._backend.connect(self.path, self.config, self.upgrades, create=create,
                                               plugin_id=self.plugin_id)
        return self._conn

    def _empty_schema(self) -> Connection:
        if self._empty is None:
            self._empty = self._backend.empty()
        return self._empty

    def _run(self, fn: Callable[..., T], *args: Any, write: bool = True) -> T:
        with self._lock:
            if self._closed:
                raise StoreError(f"{self.path}: TradeDatabase({self.plugin_id!r}) is closed")
            # a write checks the route under the writers' lock, which a flip of the SQLite files takes last
            with self._follow.writers.hold() if write and self._backend.name == "sqlite" else nullcontext():
                self._follow_route()
                return self._run_here(fn, args, write)

    def _follow_route(self) -> None:
        plugin = self._follow.plugin()
        if plugin is self._routed:
            return
        self._routed = plugin
        if plugin.db_path != self.path:  # moved by a flip: the next statement goes to the new place
            log.info("zepix_store: plugin %s moved: %s -> %s", self.plugin_id, self.path, plugin.db_path)
            if self._conn is not None:
                self._conn.close()
            self._conn, self.path = None, plugin.db_path

    def _run_here(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        with self._backend.translated_errors(self.path):
            snapshot = None if write or self._conn is not None else self._backend.read_only_snapshot(self.path)
            if snapshot is not None:
                with snapshot as reader:
                    return fn(reader, self.plugin_id, *args)
            conn = self._file(create=write) or self._empty_schema()
            return self._backend.run_sync(conn, lambda c: fn(c, self.plugin_id, *args), write=write)

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return self._run(fn, *args, write=False)

    def _now(self) -> str:
        """Now as the bot stamped it: naive local ISO time (store.yaml's timezone), microseconds included."""
        return timefmt.local_now(self.zone).isoformat()

    def _check(self, table: str, row: Any) -> Row:
        return check_row(table, row, self.plugin_id, self.zone)

    def _save(self, table: str, row: Any) -> None:
        checked = self._check(table, row)
        self._run(lambda conn, pid: write.upsert(conn, self._ops, table, checked, pid))

    def _add(self, table: str, row: Any) -> int:
        checked = self._check(table, row)
        return self._run(lambda conn, pid: write.insert(conn, self._ops, table, checked, pid))

    # -- trades --------------------------------------------------------------------------------------------------
    def save_trade(self, trade: Any) -> int:
        """Write the bot's Trade (its open save, then its close save, update one row); return its row id.

        `final_sl_pips` is computed from entry and SL as the bot's class did, whatever the model holds.
        """
        row = self._check("trades", trade)
        if bot_models.is_model(trade) and ("entry_price" in row or "sl_price" in row):
            row["final_sl_pips"] = bot_models.final_sl_pips(row)
        return self._run(lambda conn, pid: write.save_trade(conn, self._ops, row, pid))

    def get_trade_history(self, days: int = 30) -> list[Row]:
        """Trades closed in the last `days` days, newest first."""
        return self._read(bot_queries.trade_history, self._ops, days, self.zone)

    def get_trades_by_date(self, target_date: date, zone: tzinfo | str | None = None) -> list[Row]:
        """Closed trades whose close time is on that day (in `zone`, a tzinfo or a name; default store.yaml's
        timezone), newest first; [] on error."""
        try:
            return self._read(bot_queries.trades_by_date, self._ops, target_date, self.zone,
                              timefmt.as_zone(zone, self.zone))
        except (StoreError, ValueError, TypeError) as exc:
            log.warning("zepix_store: get_trades_by_date(%r) of %s: %s", target_date, self.plugin_id, exc)
            return []

    def get_open_trades(self) -> list[Row]:
        """Open positions (an open snapshot a later row of its trade_id supersedes is not one)."""
        return self._read(bot_queries.open_trades)

    def test_connection(self) -> bool:
        """True if the database answers `SELECT 1`."""
        try:
            return bool(self._read(lambda conn, pid: conn.execute("SELECT 1").fetchone()[0] == 1))
        except Exception:  # noqa: BLE001 - the bot's contract: any failure is False
            return False

    # -- re-entry chains and SL events ---------------------------------------------------------------------------
    def save_chain(self, chain: Any) -> None:
        """Insert or update (by chain_id) the bot's ReEntryChain; completed_at is now when it is completed."""
        fields = bot_models.model_fields(chain, _CHAIN_FIELDS)
        row = {k: fields.get(k) for k in _CHAIN_FIELDS if k != "current_level"}
        row["max_level_reached"] = fields.get("current_level")
        row["completed_at"] = self._now() if fields.get("status") == "completed" else None
        self._save("reentry_chains", row)

    def get_chain_statistics(self) -> Row:
        return self._read(bot_queries.chain_statistics)

    def save_sl_event(self, trade_id: str, symbol: str, sl_price: float, original_entry: float,
                      recovery_attempted: bool = False, recovery_successful: bool = False) -> int:
        return self._add("sl_events", {
            "trade_id": trade_id, "symbol": symbol, "sl_price": sl_price, "original_entry": original_entry,
            "hit_time": self._now(), "recovery_attempted": recovery_attempted,
            "recovery_successful": recovery_successful})

    def get_sl_recovery_stats(self) -> Row:
        """SL hits of the last 30 days: total_sl_hits, recovery_attempts, successful_recoveries."""
        return self._read(bot_queries.sl_recovery_stats, self._ops, self.zone)

    def get_sl_hunt_reentry_stats(self) -> Row:
        """Last 30 days: total_sl_hunt_reentries (recovered), sl_hunt_attempts."""
        return self._read(bot_queries.sl_hunt_reentry_stats, self._ops, self.zone)

    def get_tp_reentry_stats(self) -> Row:
        """TP re-entries of the last 30 days: count, total and average pnl, profitable ones."""
        return self._read(bot_queries.tp_reentry_stats, self._ops, self.zone)

    # -- TP re-entries and reversal exits (the bot's raw INSERTs and its reversal summary) ------------------------
    def save_tp_reentry_event(self, chain_id: str, symbol: str, tp_level: int, tp_price: float,
                              reentry_price: float, sl_reduction_percent: float, pnl: float = 0.0) -> int:
        """Insert a `tp_reentry_events` row (the bot's 8 values after id, timestamp now); return its row id."""
        return self._add("tp_reentry_events", {
            "chain_id": chain_id, "symbol": symbol, "tp_level": tp_level, "tp_price": tp_price,
            "reentry_price": reentry_price, "sl_reduction_percent": sl_reduction_percent, "pnl": pnl,
            "timestamp": self._now()})

    def save_reversal_exit_event(self, trade_id: Any, symbol: str, exit_price: float, exit_signal: str,
                                 pnl: float) -> int:
        """Insert a `reversal_exit_events` row (the bot's values after id, timestamp now); return its row id."""
        return self._add("reversal_exit_events", {
            "trade_id": trade_id, "symbol": symbol, "exit_price": exit_price, "exit_signal": exit_signal,
            "pnl": pnl, "timestamp": self._now()})

    def get_reversal_exit_stats(self) -> Row:
        """Reversal exits of the last 30 days: total_reversal_exits, profitable_exits, total_reversal_pnl,
        avg_reversal_pnl (the bot's summary: all but the count are None when there is none)."""
        return self._read(bot_queries.reversal_exit_stats, self._ops, self.zone)

    def get_todays_performance(self, zone: tzinfo | str | None = None) -> Row:
        """Today's closed trades, as the bot's risk manager summed them: `profit`, `loss` (negative), `net`
        (floats) and `trade_count`. Today is the calendar day now in `zone` (default store.yaml's timezone).
        An error is raised, not read as a day without losses (the bot's method caught it and returned zeros)."""
        return self._read(bot_queries.todays_performance, self._ops, self.zone, timefmt.as_zone(zone, self.zone))

    # -- system state --------------------------------------------------------------------------------------------
    def clear_lifetime_losses(self) -> None:
        """Set the plugin's `lifetime_loss` state to '0'."""
        self._save("system_state", state_row("lifetime_loss", "0", self._now()))

    def get_system_state(self, key: str, default: Any = None) -> Any:
        """The value set under `key` (read back equal: bool, number, str, None, list, dict), or `default`."""
        found, value = self._read(lambda conn, pid: get_state(conn, key, pid))
        return value if found else default

    def set_system_state(self, key: str, value: Any) -> None:
        self._save("system_state", state_row(key, value, self._now()))

    # -- profit booking ------------------------------------------------------------------------------------------
    def save_profit_chain(self, chain: Any) -> None:
        """Insert or update (by chain_id) the bot's ProfitBookingChain; attributes the table lacks are ignored."""
        self._save("profit_booking_chains", bot_models.table_row("profit_booking_chains", chain))

    def get_active_profit_chains(self) -> list[Row]:
        return self._read(bot_queries.active_profit_chains, self._ops)

    def save_profit_booking_order(self, order_id: str, chain_id: str, level: int, profit_target: float,
                                  sl_reduction: int, status: str) -> None:
        """Insert or update (by order_id) an order of one of this plugin's chains; created_at is now."""
        self._save("profit_booking_orders", {
            "order_id": order_id, "chain_id": chain_id, "level": level, "profit_target": profit_target,
            "sl_reduction": sl_reduction, "status": status, "created_at": self._now()})

    def save_profit_booking_event(self, chain_id: str, level: int, profit_booked: float, orders_closed: int,
                                  orders_placed: int) -> int:
        return self._add("profit_booking_events", {
            "chain_id": chain_id, "level": level, "profit_booked": profit_booked, "orders_closed": orders_closed,
            "orders_placed": orders_placed, "timestamp": self._now()})

    def get_profit_chain_stats(self) -> Row:
        return self._read(bot_queries.profit_chain_stats)

    # -- sessions ------------------------------------------------------------------------------------------------
    def create_session(self, session_id: str, symbol: str, direction: str, entry_signal: str) -> None:
        """Start a session: status 'ACTIVE', start_time now (a session_id the plugin has is a RowError)."""
        self._add("trading_sessions", {"session_id": session_id, "symbol": symbol, "direction": direction,
                                       "entry_signal": entry_signal, "start_time": self._now(),
                                       "status": "ACTIVE"})

    def close_session(self, session_id: str, exit_reason: str) -> bool:
        """Mark the session 'COMPLETED' with end_time now; False if the plugin has no such session."""
        reason = self._check("trading_sessions", {"exit_reason": exit_reason})["exit_reason"]
        return self._run(bot_queries.close_session, self._ops, session_id, reason, self._now())

    def update_session_stats(self, session_id: str) -> bool:
        """Recompute total_trades and total_pnl from the session's closed trades (safe to call again)."""
        return self._run(bot_queries.recompute_session_stats, self._ops, session_id)

    def get_active_session(self, symbol: str | None = None) -> Row:
        """The newest ACTIVE session (of `symbol`), or {}."""
        return self._read(bot_queries.active_session, symbol, self.zone)

    def get_sessions_by_date(self, target_date: date | datetime | str, zone: tzinfo | str | None = None) -> list[Row]:
        """Sessions started on that day (in `zone`, a tzinfo or a name; default store.yaml's timezone), newest
        first."""
        return self._read(bot_queries.sessions_by_date, self._ops, target_date, self.zone,
                          timefmt.as_zone(zone, self.zone))

    def get_session_details(self, session_id: str) -> Row:
        """The session row plus `breakdown` of its closed trades, or {} when unknown."""
        return self._read(bot_queries.session_details, self._ops, session_id)

    def get_session_metadata(self, session_id: str) -> Any:
        """The session's `metadata`: stored JSON as its value (a dict update_session_metadata was given), other
        text as it is; None when the plugin has no such session or it has no metadata."""
        return self._read(bot_queries.session_metadata, session_id)

    def update_session_metadata(self, session_id: str, metadata: Any) -> bool:
        """Set the session's `metadata` (a dict or list is stored as JSON); False if no such session."""
        checked = self._check("trading_sessions", {"metadata": _metadata_text(metadata)})["metadata"]
        return self._run(bot_queries.set_session_metadata, self._ops, session_id, checked)


def _metadata_text(metadata: Any) -> str | None:
    """Session metadata as stored: text as it is, anything else as strict JSON (no NaN, no str() fallback)."""
    if metadata is None or isinstance(metadata, str):
        return metadata
    try:
        return json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        shown = repr(metadata)
        shown = shown if len(shown) <= 60 else f"{shown[:60]}...({len(shown)} chars)"
        raise RowError(f"trading_sessions.metadata: {shown} refused: not JSON text ({exc})") from None
