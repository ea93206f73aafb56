"""System state values: any JSON-able value stored so that it reads back equal (a False as False, not 'False')."""

from __future__ import annotations

import json
from typing import Any

from ..backend.base import Connection
from ..errors import RowError
from .fetch import Row, fetch_one

__all__ = ['STATE_MARK', 'decode_state', 'encode_state', 'get_state', 'state_row']

# System state values other than text are stored as this mark + JSON, so a False reads back False, not 'False'.
STATE_MARK = "\ue000"


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


def get_state(conn: Connection, key: str, plugin_id: str) -> tuple[bool, Any]:
    """(found, value) of the plugin's state `key`."""
    # every column: on PostgreSQL a legacy value its column cannot hold (a blob) is read back from zx_raw only then
    row = fetch_one(conn, "SELECT * FROM system_state WHERE plugin_id = ? AND key = ?", (plugin_id, key))
    return (False, None) if row is None else (True, decode_state(row["value"]))
