"""The legacy bot's schema as the generators write it, the shipped mapping, and the seed plan's flawed migration."""

from __future__ import annotations

__all__ = ["INDEXES", "INDEX_SQL", "LEGACY_SCHEMA", "LEGACY_TABLES_SQL", "MAPPING", "SEED_PLAN_COLUMN",
           "SEED_PLAN_INDEXES", "SEED_PLAN_TABLES", "TABLES", "TABLE_SQL"]

LEGACY_TABLES_SQL = """\
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

INDEXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("idx_trades_symbol", ("symbol",)),
    ("idx_trades_status", ("status",)),
    ("idx_trades_close_time", ("close_time",)),
    ("idx_trades_chain_id", ("chain_id",)),
    ("idx_trades_logic_type", ("logic_type",)),
    ("idx_trades_session_id", ("session_id",)),
    ("idx_trades_status_close", ("status", "close_time")),
    ("idx_trades_logic_status", ("logic_type", "status")),
)
INDEX_SQL = {name: f"CREATE INDEX {name} ON trades({', '.join(cols)})" for name, cols in INDEXES}

LEGACY_SCHEMA: str = LEGACY_TABLES_SQL + "".join(sql + ";\n" for sql in INDEX_SQL.values())

MAPPING: dict[str, str] = {
    "combinedlogic-1": "v3-logic-01-5min",
    "combinedlogic-2": "v3-logic-02-15min",
    "combinedlogic-3": "v3-logic-03-1h",
    "LOGIC1": "v3-logic-01-5min",
    "LOGIC2": "v3-logic-02-15min",
    "LOGIC3": "v3-logic-03-1h",
}

TABLE_SQL: dict[str, str] = {
    stmt.split("(", 1)[0].split()[-1]: stmt.strip() for stmt in LEGACY_TABLES_SQL.split(";") if stmt.strip()
}
TABLES: tuple[str, ...] = tuple(TABLE_SQL)

# The flawed seed plan (seed_plan.md 2.2/3.1/4.1), reproduced on purpose: four tables only, and the
# double-quoted default that only SQLite's DQS misfeature accepts.
SEED_PLAN_COLUMN = 'plugin_id TEXT DEFAULT "legacy"'
SEED_PLAN_TABLES = ("trades", "reentry_chains", "profit_booking_chains", "trading_sessions")
SEED_PLAN_INDEXES = (
    ("idx_trades_plugin_id", "trades", "plugin_id"),
    ("idx_trades_plugin_status", "trades", "plugin_id, status"),
    ("idx_reentry_chains_plugin_id", "reentry_chains", "plugin_id"),
    ("idx_profit_booking_chains_plugin_id", "profit_booking_chains", "plugin_id"),
    ("idx_trading_sessions_plugin_id", "trading_sessions", "plugin_id"),
)
