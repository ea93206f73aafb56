"""Typed writes (SPEC 4): each value a caller writes is converted to what its column stores, or refused.

Numpy-style scalars become their Python value first, so nothing reaches SQLite as a BLOB, and nothing the
sqlite3 module would refuse (an int past 64 bits, a lone surrogate) gets as far as a raw sqlite3/OverflowError:
the caller gets a RowError naming table, column and value. Legacy values already in a file are never checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from . import timefmt
from .errors import RowError
from .schema import TABLES

__all__ = [
    'KINDS',
    'convert_row',
    'convert_value',
    'row_needs_conversion',
]

REAL, INTEGER, TEXT, TIME = "real", "integer", "text", "time"
_INT64 = (-(1 << 63), (1 << 63) - 1)
_KIND_OF_DECL = {"REAL": REAL, "INTEGER": INTEGER, "BOOLEAN": INTEGER, "TEXT": TEXT, "DATETIME": TIME,
                 "TIMESTAMP": TIME}


def _kind(decl: str) -> str:
    return _KIND_OF_DECL[decl.split()[0].upper()]


KINDS: dict[str, dict[str, str]] = {t.name: {c.name: _kind(c.decl) for c in t.columns} | {"plugin_id": TEXT}
                                    for t in TABLES}


class _Refused(Exception):
    """The value has no stored form in its column; `why` says which kinds it takes."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _plain(value: Any) -> Any:
    """A numpy-style scalar (numpy.float64, numpy.int64, numpy.bool_) as its Python value."""
    if type(value).__module__ == "numpy" and callable(getattr(value, "item", None)):
        return value.item()
    return value


def _real(value: Any, zone: tzinfo) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Refused("a REAL column takes finite numbers only (no NaN or infinity)")
        return float(value)  # a float subclass (numpy.float64) as the plain float
    if isinstance(value, int):
        return _integer(value, zone)
    raise _Refused("a REAL column takes int, float or None")


def _integer(value: Any, zone: tzinfo) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise _Refused("an integer beyond 64 bits has no SQLite form")
        return int(value)
    raise _Refused("an INTEGER/BOOLEAN column takes int, bool or None")


def _text(value: Any, zone: tzinfo) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Refused("a text with a lone surrogate is not valid UTF-8") from None
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(_integer(value, zone))  # ticket 123 and '123' are one trade
    raise _Refused("a TEXT column takes str, int or None")


def _time(value: Any, zone: tzinfo) -> Any:
    if isinstance(value, datetime):
        moment = timefmt.to_utc(value, zone) if value.tzinfo is None else value
        return moment.astimezone(UTC).strftime(timefmt.STORE_FORMAT)
    if isinstance(value, date):
        return value.isoformat()  # a date alone reads as its midnight in store.yaml's zone
    if isinstance(value, str):
        if timefmt.instant(_text(value, zone), zone) is None:
            raise _Refused("not a time in an accepted format (ISO date/time, optionally with Z or an offset)")
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if timefmt.instant(_real(value, zone), zone) is None:
            raise _Refused("an epoch number out of range")
        return value  # epoch seconds or milliseconds, read as their instant
    raise _Refused("a DATETIME column takes datetime, date, time text, epoch number or None")


_CONVERT: dict[str, Callable[[Any, tzinfo], Any]] = {REAL: _real, INTEGER: _integer, TEXT: _text, TIME: _time}


def convert_value(table: str, column: str, value: Any, zone: tzinfo) -> Any:
    """The stored form of `value` in `table.column`; RowError naming table, column and value if it has none."""
    if value is None:
        return None
    value = _plain(value)
    try:
        return _CONVERT[KINDS[table][column]](value, zone)
    except _Refused as exc:
        raise RowError(f"{table}.{column}: {_show(value)} refused: {exc.why}") from None


def convert_row(table: str, row: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    """Every value of `row` (checked column names) in its stored form."""
    return {column: convert_value(table, column, value, zone) for column, value in row.items()}


def row_needs_conversion(table: str, columns: tuple[str, ...], values: tuple[Any, ...]) -> bool:
    """Whether a row must go through convert_value: False only for values already in their stored form.

    Fast for the common case (batch writes): an int in an INTEGER column, a finite float in a REAL one,
    a short ASCII-safe str in a TEXT one, None anywhere.
    """
    kinds = KINDS[table]
    for column, value in zip(columns, values, strict=True):
        kind = type(value)
        if kind is float:
            if kinds[column] != REAL or value - value != 0.0:  # NaN and infinities fail x - x == 0
                return True
        elif kind is type(None):
            continue
        elif kind is int:
            if kinds[column] not in (INTEGER, REAL) or not _INT64[0] <= value <= _INT64[1]:
                return True
        elif kind is str:
            if kinds[column] != TEXT or not value.isascii():
                return True
        else:
            return True
    return False


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"
