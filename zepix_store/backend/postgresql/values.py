"""One SQLite row as a PostgreSQL row and back, losing nothing (SPEC 9 "Nothing lost in the types").

SQLite keeps any value in any column; PostgreSQL's typed columns cannot. A value its column can hold goes there
(a float, -0.0 and infinities included, into double precision; an int into bigint; text without NUL into text;
an int into a REAL column as its float, which is what SQLite's REAL affinity stores and returns).
Any other (text in a REAL column, a BLOB, a NUL character, a real in an INTEGER column, an int beyond 64 bits)
is stored NULL in its column and verbatim in the row's `zx_raw`:

    {"pnl": {"t": "text", "v": "N/A"}, "comment": {"t": "text", "hex": "6100"}, "x": {"t": "real", "v": "0.1"}}

`t` is SQLite's storage class. Reals are repr strings (round trip bit for bit), blobs base64, and text with a NUL
is hex of its UTF-8 bytes (jsonb cannot hold \\u0000 either). Each DATETIME column's `_zx_ts` companion is the
instant timefmt.instant() reads in the value, naive times in store.yaml's zone.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from datetime import tzinfo

from ... import timefmt
from ...errors import RowError
from ...values import KINDS
from . import require_driver
from .ddl import RAW_COLUMN, ts_column

__all__ = ["decode_row", "decode_value", "encode_row", "encode_value", "storage_class"]

_INT64 = (-(1 << 63), (1 << 63) - 1)
Raw = dict[str, str | int]


def storage_class(value: object) -> str:
    """SQLite's storage class of a Python value as sqlite3 returns it."""
    if value is None:
        return "null"
    if isinstance(value, bool) or not isinstance(value, (int, float, str, bytes)):
        raise TypeError(f"{type(value).__name__} is no SQLite value")
    return {int: "integer", float: "real", str: "text", bytes: "blob"}[type(value)]


def _fits(kind: str, value: object) -> bool:
    """Whether `value` can stand in a column of `kind` and read back as the same value and type."""
    if kind == "real":
        return type(value) is float
    if kind == "integer":
        return type(value) is int and _INT64[0] <= value <= _INT64[1]
    return type(value) is str and "\x00" not in value  # text, and time kept as text


def _raw(value: object) -> Raw:
    if isinstance(value, float):
        return {"t": "real", "v": repr(value)}
    if isinstance(value, int):
        return {"t": "integer", "v": value}  # jsonb numbers are numeric: exact at any size
    if isinstance(value, bytes):
        return {"t": "blob", "v": base64.b64encode(value).decode("ascii")}
    assert isinstance(value, str)
    if "\x00" in value:
        return {"t": "text", "hex": value.encode("utf-8").hex()}
    return {"t": "text", "v": value}


def encode_value(table: str, column: str, value: object) -> tuple[object, Raw | None]:
    """(what the typed column holds, the zx_raw entry or None) for one legacy value.

    Raises:
        RowError: NaN (SQLite stores NULL for it; the API refuses it), a text that is no valid UTF-8, or a value
            that is no SQLite value at all.
    """
    if value is None:
        return None, None
    try:
        storage_class(value)
    except TypeError:
        raise RowError(f"{table}.{column}: {value!r} is no SQLite value", table=table) from None
    if isinstance(value, float) and math.isnan(value):
        raise RowError(f"{table}.{column}: NaN has no stored form (SQLite stores NULL)", table=table)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RowError(f"{table}.{column}: {value!r} is not valid UTF-8 (a lone surrogate)", table=table) \
                from None
    kind = KINDS[table][column]
    if kind == "real" and type(value) is int and _fits("integer", value):
        return float(value), None  # SQLite's REAL affinity: an int written to a REAL column reads back as a float
    if _fits(kind, value):
        return value, None
    return None, _raw(value)


def encode_row(table: str, row: Mapping[str, object], zone: tzinfo) -> dict[str, object]:
    """The PostgreSQL row of one logical SQLite row: its columns, each time's companion, and zx_raw.

    `row` maps column names of `table` (plugin_id included) to values as sqlite3 returns them; columns it
    leaves out are left out here too (their defaults apply).

    Raises:
        RowError: an unknown column, a plugin_id that is no text, or a value encode_value refuses.
    """
    require_driver()
    from psycopg.types.json import Jsonb

    kinds = KINDS[table]
    out: dict[str, object] = {}
    raw: dict[str, Raw] = {}
    for column, value in row.items():
        if column not in kinds:
            raise RowError(f"{table}: no column {column!r}", table=table)
        if column == "plugin_id" and not _fits("text", value):
            raise RowError(f"{table}.plugin_id: {value!r} is no plugin id", table=table)
        if column == "id" and value is None:
            continue  # as in SQLite, no id: the next one (the identity column's default)
        out[column], entry = encode_value(table, column, value)
        if entry is not None:
            raw[column] = entry
        if kinds[column] == "time":
            out[ts_column(column)] = timefmt.instant(value, zone)
    out[RAW_COLUMN] = Jsonb(raw) if raw else None
    return out


def decode_value(entry: Mapping[str, object]) -> object:
    """The original value of one zx_raw entry."""
    kind, value = entry["t"], entry.get("v")
    if kind == "real":
        return float(str(value))
    if kind == "integer":
        return int(str(value))
    if kind == "blob":
        return base64.b64decode(str(value))
    if "hex" in entry:
        return bytes.fromhex(str(entry["hex"])).decode("utf-8")
    return str(value)


def decode_row(table: str, row: Mapping[str, object]) -> dict[str, object]:
    """The logical SQLite row of a PostgreSQL row (as encode_row made it): companions and zx_raw folded away."""
    raw = row.get(RAW_COLUMN) or {}
    assert isinstance(raw, Mapping)
    out: dict[str, object] = {}
    for column in KINDS[table]:
        if column in row:
            entry = raw.get(column)
            out[column] = decode_value(entry) if entry is not None else row[column]
    return out

