"""Writes both PluginStore and the compat facade run: insert, upsert by key, save a trade, save a batch of trades.

Each takes the connection, the backend's Operations (how this engine spells an insert, an upsert, a list
parameter) and the handle's plugin id, and runs inside the caller's transaction. Table and column names come
from schema.py or from rows checked by rows.check_row; values are always parameters. An integrity error (a
duplicate key, a missing parent, a NOT NULL column left empty) leaves as a RowError naming table and key, never
as the driver's error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import tzinfo
from typing import Any

from ..backend.base import Connection, Operations
from ..errors import RowError
from ..rows import BatchShape, NotUniform, check_row
from ..schema import TABLE_BY_NAME
from .fetch import Row

__all__ = [
    'integrity_errors',
    'insert',
    'save_trade',
    'save_trade_batch',
    'update',
    'update_by_key',
    'upsert',
]

_BATCH_CHUNK = 2048
FIND_TRADE = "SELECT max(id) FROM trades WHERE plugin_id = ? AND trade_id = ?"


def _key_text(table: str, row: Mapping[str, Any]) -> str:
    names = ("trade_id",) if table == "trades" else TABLE_BY_NAME[table].key
    shown = [f"{n}={row[n]!r}" for n in names if n in row]
    for parent in ("chain_id", "session_id", "trade_id"):
        if parent in row and parent not in names:
            shown.append(f"{parent}={row[parent]!r}")
    return ", ".join(shown) or "a new row"


@contextmanager
def integrity_errors(ops: Operations, table: str, row: Mapping[str, Any], plugin_id: str) -> Iterator[None]:
    """Re-raise a constraint failure of a write to `table` as a RowError naming the table and the row's key."""
    try:
        yield
    except ops.integrity_error as exc:
        text = str(exc)
        if "foreign key" in text.lower():
            why = "its chain_id names no profit-booking chain of this plugin"
        elif "unique" in text.lower() or "primary key" in text.lower():
            why = "the plugin already has this key"
        else:
            why = text
        raise RowError(f"{table} ({_key_text(table, row)}) of plugin {plugin_id!r} refused: {why} ({text})") \
            from exc


def insert(conn: Connection, ops: Operations, table: str, row: Row, plugin_id: str) -> int:
    sql, params = ops.insert(TABLE_BY_NAME[table].name, {**row, "plugin_id": plugin_id})
    with integrity_errors(ops, table, row, plugin_id):
        return ops.inserted_id(conn.execute(sql, params))


def upsert(conn: Connection, ops: Operations, table: str, row: Row, plugin_id: str) -> None:
    spec = TABLE_BY_NAME[table]
    missing = [k for k in spec.key if row.get(k) is None]
    if missing:
        raise RowError(f"{table}: {', '.join(missing)} is required")
    sql, params = ops.upsert(spec.name, {**row, "plugin_id": plugin_id}, ["plugin_id", *spec.key])
    with integrity_errors(ops, table, row, plugin_id):
        conn.execute(sql, params)


def update(conn: Connection, sql: str, params: Sequence[Any]) -> bool:
    """Run an UPDATE; whether it changed a row."""
    return conn.execute(sql, params).rowcount > 0


def update_by_key(conn: Connection, ops: Operations, table: str, values: Row, plugin_id: str, key: str) -> bool:
    """Set `values` (checked columns) on the plugin's row whose natural key is `key`; whether there was one."""
    sets, params = ops.assignments(table, values)
    column = TABLE_BY_NAME[table].key[0]
    with integrity_errors(ops, table, values, plugin_id):
        return conn.execute(f"UPDATE {TABLE_BY_NAME[table].name} SET {sets} WHERE plugin_id = {ops.placeholder} "
                            f"AND {column} = {ops.placeholder}", [*params, plugin_id, key]).rowcount > 0


def save_trade(conn: Connection, ops: Operations, row: Row, plugin_id: str) -> int:
    """Update the plugin's newest row with the row's trade_id, else insert; return the row id."""
    if row.get("trade_id") is not None:
        ops.lock_key(conn, "trades", plugin_id, row["trade_id"])  # concurrent saves of one trade_id: one row
        found = conn.execute(FIND_TRADE, (plugin_id, row["trade_id"])).fetchone()[0]
        if found is not None:
            if row:
                sets, params = ops.assignments("trades", row)
                with integrity_errors(ops, "trades", row, plugin_id):
                    conn.execute(f"UPDATE trades SET {sets} WHERE id = {ops.placeholder} "
                                 f"AND plugin_id = {ops.placeholder}", [*params, found, plugin_id])
            return int(found)
    return insert(conn, ops, "trades", row, plugin_id)


def _save_each_trade(conn: Connection, ops: Operations, trades: Sequence[Any], plugin_id: str,
                     zone: tzinfo) -> list[int]:
    rows = [check_row("trades", t, plugin_id, zone) for t in trades]  # every row checked before the first write
    return [save_trade(conn, ops, row, plugin_id) for row in rows]


def save_trade_batch(conn: Connection, ops: Operations, trades: Sequence[Any], plugin_id: str,
                     zone: tzinfo) -> list[int]:
    """Save many trades in the caller's transaction (save_trade's rules); all new ones in one prepared insert
    (SQLite) or one bulk load (PostgreSQL's COPY)."""
    shape = BatchShape.of("trades", trades[0], plugin_id, zone)
    ids = [t.get("trade_id") if isinstance(t, Mapping) else getattr(t, "trade_id", None) for t in trades]
    named = [i for i in ids if i is not None]
    texts = [i for i in named if isinstance(i, str)]
    # every trade_id of the batch locked up front, in one order: no concurrent save can slip in between the
    # check below and the insert, and two batches never wait on each other in a circle
    ops.lock_keys(conn, ("trades", plugin_id), texts)
    existing = conn.execute(
        f"SELECT 1 FROM trades WHERE plugin_id = {ops.placeholder} AND {ops.in_list('trade_id')} LIMIT 1",
        (plugin_id, ops.list_parameter(texts))).fetchone()
    features = ops.features
    by_key = features.bulk_insert_by_key and len(texts) == len(trades)
    if (shape is None or not (features.consecutive_batch_ids or by_key) or len(texts) != len(named)
            or len(set(named)) != len(named) or existing):
        return _save_each_trade(conn, ops, trades, plugin_id, zone)  # updates, or a trade_id twice: in order
    # All new: one prepared statement (or bulk load) for the whole batch, fed chunk by chunk as rows are checked.
    columns = (*shape.columns, "plugin_id")
    checked = (row for start in range(0, len(trades), _BATCH_CHUNK)
               for row in shape.check(trades[start:start + _BATCH_CHUNK]))
    conn.execute("SAVEPOINT zx_batch")
    try:
        if features.consecutive_batch_ids:
            conn.executemany(ops.insert_sql("trades", columns), checked)
        else:
            new_ids = ops.insert_batch(conn, "trades", columns, checked, "trade_id")
    except NotUniform:  # mixed row types or keys, seen part way: undo and take them one by one
        conn.execute("ROLLBACK TO zx_batch")
        conn.execute("RELEASE zx_batch")
        return _save_each_trade(conn, ops, trades, plugin_id, zone)
    conn.execute("RELEASE zx_batch")
    return ops.batch_ids(conn, len(trades)) if features.consecutive_batch_ids else new_ids
