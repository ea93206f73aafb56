"""The store schema: the ten legacy tables, each with `plugin_id`, keys unique per plugin (no I/O here).

Every identifier that reaches SQL text comes from this module's constants.
"""

from __future__ import annotations

from dataclasses import dataclass

from .timefmt import time_key_sql

__all__ = [
    "ATTRIBUTION_ORDER",
    "CLOSE_INDEX",
    "CLOSE_KEY_SQL",
    "Column",
    "DEFAULT_PLUGIN_ID",
    "Lineage",
    "OPEN_POSITION_SQL",
    "PLUGIN_ID_COLUMN",
    "SCHEMA_VERSION",
    "START_KEY_SQL",
    "TABLES",
    "TABLE_BY_NAME",
    "TRADES",
    "Table",
    "create_schema_sql",
    "index_sql",
]

# 2: the close-time index key keeps UTC and naive local times in two bands (timefmt.time_key_sql)
# 3: the change-tracking triggers decide "first change" in a WHEN clause (change_tracking); the close-time key
#    reads numeric text, YYYY/MM/DD and DD.MM.YYYY (timefmt.time_key_sql)
SCHEMA_VERSION = 3
DEFAULT_PLUGIN_ID = "legacy"
PLUGIN_ID_COLUMN = f"plugin_id TEXT NOT NULL DEFAULT '{DEFAULT_PLUGIN_ID}'"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    decl: str  # type and default exactly as the legacy schema declares them

    @property
    def ddl(self) -> str:
        return f"{self.name} {self.decl}".rstrip()


@dataclass(frozen=True, slots=True)
class Lineage:
    """A row of `table` belongs to the owners of the `parent` rows whose `parent_column` equals its `column`."""

    parent: str
    parent_column: str
    column: str


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()  # natural key, unique per plugin: (plugin_id, *key)
    foreign_key: str = ""
    lineage: Lineage | None = None
    indexes: tuple[tuple[str, str], ...] = ()  # (index name, column list) created by the store

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def all_column_names(self) -> tuple[str, ...]:
        return (*self.column_names, "plugin_id")

    def create_sql(self, name: str | None = None, schema: str = "main") -> str:
        """The CREATE TABLE statement of the current version, optionally under another name."""
        parts = [c.ddl for c in self.columns] + [PLUGIN_ID_COLUMN]
        if self.key:
            parts.append(f"PRIMARY KEY (plugin_id, {', '.join(self.key)})")
        if self.foreign_key:
            parts.append(self.foreign_key)
        return f"CREATE TABLE {schema}.{name or self.name} ({', '.join(parts)})"


def _cols(spec: str) -> tuple[Column, ...]:
    cols = []
    for item in spec.split(","):
        name, _, decl = item.strip().partition(" ")
        cols.append(Column(name, decl.strip()))
    return tuple(cols)


TRADES = Table(
    "trades",
    _cols(
        "id INTEGER PRIMARY KEY, trade_id TEXT, symbol TEXT, entry_price REAL, exit_price REAL, sl_price REAL,"
        "tp_price REAL, lot_size REAL, direction TEXT, strategy TEXT, pnl REAL, commission REAL, swap REAL,"
        "comment TEXT, status TEXT, open_time DATETIME, close_time DATETIME, chain_id TEXT, chain_level INTEGER,"
        "is_re_entry BOOLEAN, order_type TEXT, profit_chain_id TEXT, profit_level INTEGER DEFAULT 0, session_id TEXT,"
        "sl_adjusted INTEGER DEFAULT 0, original_sl_distance REAL DEFAULT 0.0, logic_type TEXT,"
        "base_lot_size REAL DEFAULT 0.0, final_lot_size REAL DEFAULT 0.0, base_sl_pips REAL DEFAULT 0.0,"
        "final_sl_pips REAL DEFAULT 0.0, lot_multiplier REAL DEFAULT 1.0, sl_multiplier REAL DEFAULT 1.0"
    ),
    indexes=(
        ("idx_trades_plugin_trade_id", "plugin_id, trade_id"),
        ("idx_trades_plugin_status_pnl", "plugin_id, status, pnl"),
        # readers compare close_time through CLOSE_KEY_SQL; the index must hold the same expression
        ("idx_trades_plugin_close", "plugin_id, {close}"),
    ),
)

TABLES: tuple[Table, ...] = (
    TRADES,
    Table(
        "reentry_chains",
        _cols(
            "chain_id TEXT, symbol TEXT, direction TEXT, original_entry REAL, original_sl_distance REAL,"
            "max_level_reached INTEGER, total_profit REAL, status TEXT, created_at DATETIME, completed_at DATETIME"
        ),
        key=("chain_id",),
        lineage=Lineage("trades", "chain_id", "chain_id"),
        indexes=(("idx_reentry_chains_plugin_status", "plugin_id, status"),),
    ),
    Table(
        "sl_events",
        _cols(
            "id INTEGER PRIMARY KEY, trade_id TEXT, symbol TEXT, sl_price REAL, original_entry REAL,"
            "hit_time DATETIME, recovery_attempted BOOLEAN, recovery_successful BOOLEAN"
        ),
        lineage=Lineage("trades", "trade_id", "trade_id"),
        indexes=(("idx_sl_events_plugin_trade", "plugin_id, trade_id"),),
    ),
    Table(
        "tp_reentry_events",
        _cols(
            "id INTEGER PRIMARY KEY, chain_id TEXT, symbol TEXT, tp_level INTEGER, tp_price REAL,"
            "reentry_price REAL, sl_reduction_percent REAL, pnl REAL, timestamp DATETIME"
        ),
        lineage=Lineage("reentry_chains", "chain_id", "chain_id"),
        indexes=(("idx_tp_reentry_events_plugin_chain", "plugin_id, chain_id"),),
    ),
    Table(
        "reversal_exit_events",
        _cols("id INTEGER PRIMARY KEY, trade_id TEXT, symbol TEXT, exit_price REAL, exit_signal TEXT, pnl REAL,"
              "timestamp DATETIME"),
        lineage=Lineage("trades", "trade_id", "trade_id"),
        indexes=(("idx_reversal_exit_events_plugin_trade", "plugin_id, trade_id"),),
    ),
    Table("system_state", _cols("key TEXT, value TEXT, updated_at DATETIME"), key=("key",)),
    Table(
        "profit_booking_chains",
        _cols(
            "chain_id TEXT, symbol TEXT NOT NULL, direction TEXT NOT NULL, base_lot REAL NOT NULL,"
            "current_level INTEGER DEFAULT 0, total_profit REAL DEFAULT 0, status TEXT DEFAULT 'ACTIVE',"
            "created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP"
        ),
        key=("chain_id",),
        lineage=Lineage("trades", "profit_chain_id", "chain_id"),
        indexes=(("idx_profit_booking_chains_plugin_status", "plugin_id, status"),),
    ),
    Table(
        "profit_booking_orders",
        _cols(
            "order_id TEXT, chain_id TEXT, level INTEGER, profit_target REAL, sl_reduction INTEGER, status TEXT,"
            "created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP"
        ),
        key=("order_id",),
        foreign_key=(
            "FOREIGN KEY (plugin_id, chain_id) REFERENCES profit_booking_chains(plugin_id, chain_id)"
        ),
        lineage=Lineage("profit_booking_chains", "chain_id", "chain_id"),
        indexes=(("idx_profit_booking_orders_plugin_chain", "plugin_id, chain_id"),),
    ),
    Table(
        "profit_booking_events",
        _cols(
            "id INTEGER PRIMARY KEY, chain_id TEXT, level INTEGER, profit_booked REAL, orders_closed INTEGER,"
            "orders_placed INTEGER, timestamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP"
        ),
        lineage=Lineage("profit_booking_chains", "chain_id", "chain_id"),
        indexes=(("idx_profit_booking_events_plugin_chain", "plugin_id, chain_id"),),
    ),
    Table(
        "trading_sessions",
        _cols(
            "session_id TEXT, symbol TEXT NOT NULL, direction TEXT NOT NULL, entry_signal TEXT, exit_reason TEXT,"
            "start_time DATETIME NOT NULL, end_time DATETIME, total_pnl REAL DEFAULT 0,"
            "total_trades INTEGER DEFAULT 0, status TEXT DEFAULT 'ACTIVE', metadata TEXT"
        ),
        key=("session_id",),
        lineage=Lineage("trades", "session_id", "session_id"),
        indexes=(("idx_trading_sessions_plugin_status", "plugin_id, status"),),
    ),
)

TABLE_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

# Attribution order: every parent before its children.
ATTRIBUTION_ORDER: tuple[str, ...] = (
    "trades", "reentry_chains", "profit_booking_chains", "trading_sessions", "sl_events",
    "reversal_exit_events", "tp_reentry_events", "profit_booking_orders", "profit_booking_events",
    "system_state",
)

# The index key of trades.close_time (timefmt.time_key_sql): windows compare it one range per band.
CLOSE_KEY_SQL = time_key_sql("close_time")
START_KEY_SQL = time_key_sql("start_time")
CLOSE_INDEX = "idx_trades_plugin_close"

# An open trade row is a position unless a later row (higher id) of its plugin has its trade_id: the bot saved
# every trade twice, an open snapshot at entry and the closed row at exit (SPEC 4 "superseded snapshots").
OPEN_POSITION_SQL = (
    "(trades.status = 'open' AND NOT EXISTS (SELECT 1 FROM trades zx_later WHERE zx_later.plugin_id = "
    "trades.plugin_id AND zx_later.trade_id = trades.trade_id AND zx_later.id > trades.id))"
)


def index_sql(table: Table, schema: str = "main") -> list[str]:
    """CREATE INDEX statements the store keeps on `table`."""
    return [
        f"CREATE INDEX IF NOT EXISTS {schema}.{name} ON {table.name} ({cols.format(close=CLOSE_KEY_SQL)})"
        for name, cols in table.indexes
    ]


def create_schema_sql(schema: str = "main") -> list[str]:
    """Every statement that creates an empty store of the current version."""
    statements: list[str] = []
    for table in TABLES:
        statements.append(table.create_sql(schema=schema).replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
        statements.extend(index_sql(table, schema))
    return statements
