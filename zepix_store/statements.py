"""The statements both PluginStore (async) and compat.TradeDatabase (sync) run, on a plain sqlite3 connection.

Each takes the connection and the handle's plugin id; every statement binds `plugin_id = ?`, so no caller can
read or change another plugin's row. Table and column names come from schema.py or from rows checked by
rows.check_row; values are always parameters. An integrity error (a duplicate key, a missing parent, a NOT NULL
column left empty) leaves as a RowError naming table and key, never as a raw sqlite3 error.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from . import timefmt
from .errors import ConfigError, RowError
from .schema import CLOSE_KEY_SQL, START_KEY_SQL, TABLE_BY_NAME

__all__ = [
    'SESSIONS_STARTED_IN',
    'STATE_MARK',
    'TRADES_CLOSED_IN',
    'as_day',
    'by_time',
    'decode_state',
    'encode_state',
    'fetch_all',
    'fetch_one',
    'get_state',
    'insert',
    'integrity_errors',
    'save_trade',
    'state_row',
    'upsert',
]

Row = dict[str, Any]
# System state values other than text are stored as this mark + JSON, so a False reads back False, not 'False'.
STATE_MARK = "\ue000"


def fetch_all(conn: sqlite3.Connection, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur]


def fetch_one(conn: sqlite3.Connection, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Row | None:
    rows = fetch_all(conn, sql, params)
    return rows[0] if rows else None


def _key_text(table: str, row: Mapping[str, Any]) -> str:
    names = ("trade_id",) if table == "trades" else TABLE_BY_NAME[table].key
    shown = [f"{n}={row[n]!r}" for n in names if n in row]
    for parent in ("chain_id", "session_id", "trade_id"):
        if parent in row and parent not in names:
            shown.append(f"{parent}={row[parent]!r}")
    return ", ".join(shown) or "a new row"


@contextmanager
def integrity_errors(table: str, row: Mapping[str, Any], plugin_id: str) -> Iterator[None]:
    """Re-raise a constraint failure of a write to `table` as a RowError naming the table and the row's key."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        text = str(exc)
        if "FOREIGN KEY" in text:
            why = "its chain_id names no profit-booking chain of this plugin"
        elif "UNIQUE" in text or "PRIMARY KEY" in text:
            why = "the plugin already has this key"
        else:
            why = text
        raise RowError(f"{table} ({_key_text(table, row)}) of plugin {plugin_id!r} refused: {why} ({text})") \
            from exc


def insert(conn: sqlite3.Connection, table: str, row: Row, plugin_id: str) -> int:
    cols = [*row, "plugin_id"]
    sql = f"INSERT INTO {TABLE_BY_NAME[table].name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    with integrity_errors(table, row, plugin_id):
        return int(conn.execute(sql, [*row.values(), plugin_id]).lastrowid or 0)


def upsert(conn: sqlite3.Connection, table: str, row: Row, plugin_id: str) -> None:
    spec = TABLE_BY_NAME[table]
    missing = [k for k in spec.key if row.get(k) is None]
    if missing:
        raise RowError(f"{table}: {', '.join(missing)} is required")
    cols = [*row, "plugin_id"]
    updates = [c for c in row if c not in spec.key]
    action = f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in updates)}" if updates else "DO NOTHING"
    with integrity_errors(table, row, plugin_id):
        conn.execute(
            f"INSERT INTO {spec.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT (plugin_id, {', '.join(spec.key)}) {action}",
            [*row.values(), plugin_id],
        )


def save_trade(conn: sqlite3.Connection, row: Row, plugin_id: str) -> int:
    """Update the plugin's newest row with the row's trade_id, else insert; return the row id."""
    if row.get("trade_id") is not None:
        found = conn.execute(
            "SELECT max(id) FROM trades WHERE plugin_id = ? AND trade_id = ?", (plugin_id, row["trade_id"])
        ).fetchone()[0]
        if found is not None:
            if row:
                sets = ", ".join(f"{c} = ?" for c in row)
                with integrity_errors("trades", row, plugin_id):
                    conn.execute(f"UPDATE trades SET {sets} WHERE id = ? AND plugin_id = ?",
                                 [*row.values(), found, plugin_id])
            return int(found)
    return insert(conn, "trades", row, plugin_id)


# -- time windows ------------------------------------------------------------------------------------------------

TRADES_CLOSED_IN = f"SELECT * FROM trades WHERE plugin_id = ? AND {timefmt.window_sql(CLOSE_KEY_SQL)}"
SESSIONS_STARTED_IN = f"SELECT * FROM trading_sessions WHERE plugin_id = ? AND {timefmt.window_sql(START_KEY_SQL)}"


def as_day(day: date | datetime | str) -> date:
    """A calendar day given as a date, a datetime (its own date) or text starting 'YYYY-MM-DD'."""
    if isinstance(day, datetime):
        return day.date()
    if isinstance(day, date):
        return day
    try:
        return date.fromisoformat(day[:10]) if isinstance(day, str) else _no_day(day)
    except ValueError:
        raise ConfigError(f"day: {day!r} is not a date (pass a date or 'YYYY-MM-DD')") from None


def _no_day(day: object) -> date:
    raise ValueError(day)


def by_time(rows: list[Row], column: str, zone: tzinfo, newest_first: bool = False) -> list[Row]:
    """Rows in time order, ties by id: the window's rows read as instants (naive local ones in `zone`)."""
    oldest = datetime.min.replace(tzinfo=UTC)
    rows.sort(key=lambda r: (timefmt.instant(r[column], zone) or oldest, r.get("id", 0)),
              reverse=newest_first)
    return rows



# -- system state ------------------------------------------------------------------------------------------------


def encode_state(key: str, value: Any) -> str | None:
    """The stored text of a system state value: text as it is, None as NULL, anything else as mark + JSON."""
    if value is None or (isinstance(value, str) and not value.startswith(STATE_MARK)):
        return value
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise RowError(f"system_state ({key=}): {value!r} refused: a value must be bool, int, finite float, "
                       f"str, None or a JSON-able list or dict ({exc})") from None
    return STATE_MARK + text


def decode_state(stored: Any) -> Any:
    """The value set_system_state was given; legacy text (the bot's '0', 'True') reads as the text it is."""
    if isinstance(stored, str) and stored.startswith(STATE_MARK):
        try:
            return json.loads(stored[len(STATE_MARK):])
        except ValueError:
            return stored
    return stored


def state_row(key: str, value: Any, updated_at: str) -> Row:
    """The system_state row that stores `value` under `key` (check it with rows.check_row, then upsert it)."""
    return {"key": key, "value": encode_state(key, value), "updated_at": updated_at}


def get_state(conn: sqlite3.Connection, key: str, plugin_id: str) -> tuple[bool, Any]:
    """(found, value) of the plugin's state `key`."""
    row = conn.execute("SELECT value FROM system_state WHERE plugin_id = ? AND key = ?", (plugin_id, key)).fetchone()
    return (False, None) if row is None else (True, decode_state(row[0]))
