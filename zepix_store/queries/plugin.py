"""The statements of PluginStore's reads and session updates; each binds the handle's plugin id first.

Writes by key (insert, upsert, save a trade) are write.py's, built through the backend's Operations.
"""

from __future__ import annotations

import functools

from ..backend.base import Operations
from ..schema import OPEN_POSITION_SQL

__all__ = [
    'ACTIVE_PROFIT_CHAINS',
    'ACTIVE_REENTRY_CHAINS',
    'ACTIVE_SESSION',
    'ACTIVE_SESSION_OF_SYMBOL',
    'ALL_SYSTEM_STATE',
    'CHAIN_STATISTICS',
    'NUMERIC_PNL',
    'OPEN_TRADES',
    'PROFIT_BOOKING_EVENTS',
    'PROFIT_BOOKING_EVENTS_OF_CHAIN',
    'PROFIT_BOOKING_EVENT_STATS',
    'PROFIT_BOOKING_ORDERS',
    'PROFIT_BOOKING_STATS',
    'PROFIT_CHAIN',
    'REENTRY_CHAIN',
    'REVERSAL_EXIT_EVENTS',
    'REVERSAL_EXIT_EVENTS_OF_TRADE',
    'SESSION',
    'SESSION_TRADES',
    'SL_EVENTS',
    'SL_EVENTS_OF_TRADE',
    'STATISTICS_SQL',
    'sl_recovery_stats_sql',
    'TP_REENTRY_EVENTS',
    'TP_REENTRY_EVENTS_OF_CHAIN',
    'TP_REENTRY_STATS',
    'TRADE',
    'UPDATE_SESSION_STATS',
]

# Finite numbers only: NULL, text, blobs (legacy values in the REAL column) and +-infinity all fail it, so one bad
# row never blanks the money figures, and the condition stays a range on the (plugin_id, status, pnl) index.
NUMERIC_PNL = "pnl BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308"

# -- trades
TRADE = "SELECT * FROM trades WHERE plugin_id = ? AND trade_id = ? ORDER BY id DESC LIMIT 1"
OPEN_TRADES = f"SELECT * FROM trades WHERE plugin_id = ? AND {OPEN_POSITION_SQL} ORDER BY id"
STATISTICS_SQL = f"""
SELECT (SELECT count(*) FROM trades WHERE plugin_id = ?1 AND status = 'closed') AS total_trades,
       count(CASE WHEN pnl > 0 THEN 1 END) AS winning_trades,
       count(CASE WHEN pnl < 0 THEN 1 END) AS losing_trades,
       coalesce(sum(pnl), 0.0) AS total_pnl, avg(pnl) AS avg_pnl, max(pnl) AS best_trade, min(pnl) AS worst_trade
FROM trades WHERE plugin_id = ?1 AND status = 'closed' AND {NUMERIC_PNL}"""

# -- re-entry chains
REENTRY_CHAIN = "SELECT * FROM reentry_chains WHERE plugin_id = ? AND chain_id = ?"
ACTIVE_REENTRY_CHAINS = ("SELECT * FROM reentry_chains WHERE plugin_id = ? AND status = 'active' "
                         "ORDER BY created_at, chain_id")
CHAIN_STATISTICS = (
    "SELECT count(*) AS total_chains, count(CASE WHEN status = 'active' THEN 1 END) AS active_chains, "
    "count(CASE WHEN status = 'completed' THEN 1 END) AS completed_chains, "
    "avg(max_level_reached) AS avg_max_level, coalesce(sum(total_profit), 0.0) AS total_profit "
    "FROM reentry_chains WHERE plugin_id = ?")

# -- SL events, TP re-entries, reversal exits
SL_EVENTS = "SELECT * FROM sl_events WHERE plugin_id = ? ORDER BY id"
SL_EVENTS_OF_TRADE = "SELECT * FROM sl_events WHERE plugin_id = ? AND trade_id = ? ORDER BY id"


@functools.cache
def sl_recovery_stats_sql(ops: Operations) -> str:
    return (f"SELECT count(*) AS total_sl_hits, count(CASE WHEN {ops.is_true_value('recovery_attempted')} THEN 1 "
            f"END) AS recovery_attempted, count(CASE WHEN {ops.is_true_value('recovery_successful')} THEN 1 END) "
            "AS recovery_successful FROM sl_events WHERE plugin_id = ?")



TP_REENTRY_EVENTS = "SELECT * FROM tp_reentry_events WHERE plugin_id = ? ORDER BY id"
TP_REENTRY_EVENTS_OF_CHAIN = "SELECT * FROM tp_reentry_events WHERE plugin_id = ? AND chain_id = ? ORDER BY id"
TP_REENTRY_STATS = (
    "SELECT count(*) AS total_tp_reentries, coalesce(sum(pnl), 0.0) AS total_pnl, max(tp_level) AS max_tp_level, "
    "avg(sl_reduction_percent) AS avg_sl_reduction_percent FROM tp_reentry_events WHERE plugin_id = ?")
REVERSAL_EXIT_EVENTS = "SELECT * FROM reversal_exit_events WHERE plugin_id = ? ORDER BY id"
REVERSAL_EXIT_EVENTS_OF_TRADE = "SELECT * FROM reversal_exit_events WHERE plugin_id = ? AND trade_id = ? ORDER BY id"

# -- system state
ALL_SYSTEM_STATE = "SELECT * FROM system_state WHERE plugin_id = ? ORDER BY key"  # * : zx_raw's values too

# -- profit booking
PROFIT_CHAIN = "SELECT * FROM profit_booking_chains WHERE plugin_id = ? AND chain_id = ?"
ACTIVE_PROFIT_CHAINS = ("SELECT * FROM profit_booking_chains WHERE plugin_id = ? AND status = 'ACTIVE' "
                        "ORDER BY created_at, chain_id")
PROFIT_BOOKING_ORDERS = ("SELECT * FROM profit_booking_orders WHERE plugin_id = ? AND chain_id = ? "
                         "ORDER BY level, order_id")
PROFIT_BOOKING_EVENTS = "SELECT * FROM profit_booking_events WHERE plugin_id = ? ORDER BY id"
PROFIT_BOOKING_EVENTS_OF_CHAIN = "SELECT * FROM profit_booking_events WHERE plugin_id = ? AND chain_id = ? ORDER BY id"
PROFIT_BOOKING_STATS = (
    "SELECT count(*) AS total_chains, count(CASE WHEN status = 'ACTIVE' THEN 1 END) AS active_chains, "
    "coalesce(sum(total_profit), 0.0) AS total_profit, max(current_level) AS max_level "
    "FROM profit_booking_chains WHERE plugin_id = ?")
PROFIT_BOOKING_EVENT_STATS = ("SELECT count(*) AS total_events, coalesce(sum(profit_booked), 0.0) "
                              "AS total_profit_booked FROM profit_booking_events WHERE plugin_id = ?")

# -- trading sessions (the UPDATEs bind plugin_id third: their SET parameters come first)
UPDATE_SESSION_STATS = ("UPDATE trading_sessions SET total_pnl = coalesce(total_pnl, 0) + ?, "
                        "total_trades = coalesce(total_trades, 0) + ? WHERE plugin_id = ? AND session_id = ?")
ACTIVE_SESSION = ("SELECT * FROM trading_sessions WHERE plugin_id = ? AND status = 'ACTIVE' "
                  "ORDER BY start_time DESC LIMIT 1")
ACTIVE_SESSION_OF_SYMBOL = ("SELECT * FROM trading_sessions WHERE plugin_id = ? AND status = 'ACTIVE' "
                            "AND symbol = ? ORDER BY start_time DESC LIMIT 1")
SESSION = "SELECT * FROM trading_sessions WHERE plugin_id = ? AND session_id = ?"
SESSION_TRADES = "SELECT * FROM trades WHERE plugin_id = ? AND session_id = ? ORDER BY id"
