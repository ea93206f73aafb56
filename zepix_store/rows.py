"""Row types: `Trade` mirrors the legacy `trades` columns by name; rows in and out of the store are checked here."""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .errors import IsolationError, RowError
from .schema import TABLES

_COLUMNS: dict[str, frozenset[str]] = {t.name: frozenset(t.all_column_names) for t in TABLES}

Row = dict[str, Any]


@dataclass(slots=True)
class Trade:
    """One trade, field for field the legacy `trades` table (plugin_id is set by the handle)."""

    trade_id: str | None = None
    symbol: str | None = None
    entry_price: float | None = None
    exit_price: float | None = None
    sl_price: float | None = None
    tp_price: float | None = None
    lot_size: float | None = None
    direction: str | None = None
    strategy: str | None = None
    pnl: float | None = None
    commission: float | None = None
    swap: float | None = None
    comment: str | None = None
    status: str | None = None
    open_time: str | None = None
    close_time: str | None = None
    chain_id: str | None = None
    chain_level: int | None = None
    is_re_entry: bool | None = None
    order_type: str | None = None
    profit_chain_id: str | None = None
    profit_level: int | None = 0
    session_id: str | None = None
    sl_adjusted: int | None = 0
    original_sl_distance: float | None = 0.0
    logic_type: str | None = None
    base_lot_size: float | None = 0.0
    final_lot_size: float | None = 0.0
    base_sl_pips: float | None = 0.0
    final_sl_pips: float | None = 0.0
    lot_multiplier: float | None = 1.0
    sl_multiplier: float | None = 1.0
    id: int | None = None
    plugin_id: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Trade:
        return cls(**row)


def utc_now() -> str:
    """Now in the store's timestamp format: UTC 'YYYY-MM-DD HH:MM:SS'."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def format_timestamp(value: Any) -> Any:
    """datetimes become UTC 'YYYY-MM-DD HH:MM:SS' text; anything else is stored as given."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value


def check_row(table: str, row: Mapping[str, Any] | Any, plugin_id: str) -> Row:
    """Return `row` as a dict of `table` columns without plugin_id; refuse unknown keys and foreign plugins."""
    if isinstance(row, Mapping):
        items = dict(row)
    elif dataclasses.is_dataclass(row) and not isinstance(row, type):
        names, getter = _fields_of(type(row))
        items = dict(zip(names, getter(row), strict=True))  # asdict deep-copies: slow on the batch path
    else:
        raise RowError(f"{table}: a row must be a dict or dataclass, not {type(row).__name__}")
    unknown = items.keys() - _COLUMNS[table]
    if unknown:
        raise RowError(f"{table}: unknown column(s) {', '.join(sorted(map(str, unknown)))}")
    owner = items.pop("plugin_id", None)
    if owner is not None and owner != plugin_id:
        raise IsolationError(f"{table}: row belongs to plugin {owner!r}, refused by the handle of {plugin_id!r}")
    items.pop("id", None)  # ids are the store's to assign
    if not _PLAIN_TYPES.issuperset(map(type, items.values())):
        items = {k: format_timestamp(v) for k, v in items.items()}
    return items


_PLAIN_TYPES = frozenset({str, int, float, bytes, bool, type(None)})


@functools.cache
def _fields_of(cls: type) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    names = tuple(f.name for f in dataclasses.fields(cls))
    single = operator.attrgetter(*names)
    return names, (single if len(names) > 1 else lambda obj: (single(obj),))
