"""Row types: `Trade` mirrors the legacy `trades` columns by name; rows in and out of the store are checked here."""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Mapping, Sequence
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
_STORE_OWNED = ("id", "plugin_id")


class NotUniform(Exception):
    """A later row of a batch differs in type or keys from the first: check the rows one by one instead."""


@dataclass(frozen=True)
class BatchShape:
    """The first row of a batch, fully checked: later rows of the same type and keys are checked at C speed."""

    table: str
    plugin_id: str
    columns: tuple[str, ...]  # the row's columns in insert order, without the store-owned id and plugin_id
    kind: type[Any]
    key_count: int  # a mapping's number of keys; -1 for a dataclass, whose type fixes its fields
    getter: Callable[[Any], tuple[Any, ...]]
    owner_at: int  # where the getter puts the row's own plugin_id, -1 if it has none

    @classmethod
    def of(cls, table: str, first: Any, plugin_id: str) -> BatchShape | None:
        """Check `first` as check_row does (raising as it does); None if it cannot serve as a shape."""
        columns = tuple(check_row(table, first, plugin_id))
        if isinstance(first, Mapping):
            if type(first) is not dict:  # a subclass may invent missing keys (defaultdict): check row by row
                return None
            names, key_count = tuple(first), len(first)
        else:
            names, key_count = tuple(f.name for f in dataclasses.fields(first)), -1
        extra = tuple(k for k in _STORE_OWNED if k in names)
        if len(columns) + len(extra) < 2:  # a one-name getter returns a bare value, not a tuple
            return None
        getter = (operator.itemgetter if key_count >= 0 else operator.attrgetter)(*columns, *extra)
        owner_at = len(columns) + extra.index("plugin_id") if "plugin_id" in extra else -1
        return cls(table, plugin_id, columns, type(first), key_count, getter, owner_at)

    def check(self, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Each row's values in `columns` order, then the handle's plugin id; raises NotUniform or IsolationError.

        A row must have exactly the first row's keys (same count, every one present), so none can carry a
        column check_row did not see.
        """
        width, owner_at, plugin_id = len(self.columns), self.owner_at, self.plugin_id
        checked = []
        for row in rows:
            if type(row) is not self.kind or (self.key_count >= 0 and len(row) != self.key_count):
                raise NotUniform
            try:
                got = self.getter(row)
            except (KeyError, AttributeError):
                raise NotUniform from None
            if owner_at >= 0 and got[owner_at] is not None and got[owner_at] != plugin_id:
                raise IsolationError(f"{self.table}: row belongs to plugin {got[owner_at]!r}, "
                                     f"refused by the handle of {plugin_id!r}")
            if not _PLAIN_TYPES.issuperset(map(type, got)):
                got = tuple(map(format_timestamp, got))
            checked.append((*got[:width], plugin_id))
        return checked


@functools.cache
def _fields_of(cls: type) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    names = tuple(f.name for f in dataclasses.fields(cls))
    single = operator.attrgetter(*names)
    return names, (single if len(names) > 1 else lambda obj: (single(obj),))
