"""Row types: `Trade` mirrors the legacy `trades` columns by name; rows in and out of the store are checked here."""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any

from . import bot_models, timefmt
from .errors import IsolationError, RowError
from .schema import TABLES
from .values import convert_value, row_needs_conversion

__all__ = [
    'BatchShape',
    'NotUniform',
    'Trade',
    'check_row',
    'utc_now',
]

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
    # the fields given to __init__: an update writes those and the ones changed since (SPEC 6)
    _given: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False,
                                   metadata={"zx_internal": True})

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Trade:
        return cls(**row)

    def set_fields(self) -> dict[str, Any]:
        """The fields that were set: given to the constructor, or holding other than their default since."""
        return {name: getattr(self, name) for name, default in _TRADE_DEFAULTS.items()
                if name in self._given or getattr(self, name) != default}


_TRADE_FIELDS = tuple(f.name for f in dataclasses.fields(Trade) if not f.metadata.get("zx_internal"))
_TRADE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Trade) if not f.metadata.get("zx_internal")}
_dataclass_init = Trade.__init__


def _trade_init(self: Trade, *args: Any, **kwargs: Any) -> None:
    _dataclass_init(self, *args, **kwargs)
    object.__setattr__(self, "_given", frozenset((*_TRADE_FIELDS[:len(args)], *kwargs)))


_trade_init.__doc__ = _dataclass_init.__doc__
Trade.__init__ = _trade_init  # type: ignore[method-assign]


def utc_now() -> str:
    """Now in the store's timestamp format: UTC 'YYYY-MM-DD HH:MM:SS'."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _items(table: str, row: Mapping[str, Any] | Any, only_set: bool) -> dict[str, Any]:
    if isinstance(row, Mapping):
        return dict(row)
    if isinstance(row, Trade) and only_set:
        return row.set_fields()
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        names, getter = _fields_of(type(row))
        return dict(zip(names, getter(row), strict=True))  # asdict deep-copies: slow on the batch path
    if bot_models.is_model(row):  # the bot's pydantic models: only the table's columns are taken
        return bot_models.trade_row(row) if table == "trades" else bot_models.table_row(table, row)
    raise RowError(f"{table}: a row must be a dict, a dataclass or a model, not {type(row).__name__}")


def check_row(table: str, row: Mapping[str, Any] | Any, plugin_id: str, zone: tzinfo | None = None, *,
              only_set: bool = True) -> Row:
    """Return `row` as a dict of `table` columns without plugin_id, each value in its stored form (SPEC 4).

    Refuses unknown keys, foreign plugins and values a column cannot take (RowError). Naive datetimes are in
    `zone` (store.yaml's timezone). A `Trade` gives only its set fields unless `only_set` is false.
    """
    items = _items(table, row, only_set)
    unknown = items.keys() - _COLUMNS[table]
    if unknown:
        raise RowError(f"{table}: unknown column(s) {', '.join(sorted(map(str, unknown)))}")
    owner = items.pop("plugin_id", None)
    if owner is not None and owner != plugin_id:
        raise IsolationError(f"{table}: row belongs to plugin {owner!r}, refused by the handle of {plugin_id!r}")
    items.pop("id", None)  # ids are the store's to assign
    columns, values = tuple(items), tuple(items.values())
    if row_needs_conversion(table, columns, values):
        zone = zone if zone is not None else timefmt.resolve_zone(timefmt.LOCAL)
        items = {k: convert_value(table, k, v, zone) for k, v in items.items()}
    return items

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

    zone: tzinfo

    @classmethod
    def of(cls, table: str, first: Any, plugin_id: str, zone: tzinfo) -> BatchShape | None:
        """Check `first` as check_row does (raising as it does); None if it cannot serve as a shape.

        Only inserts use a shape: a Trade's unset fields then write their defaults, which are the columns'.
        """
        columns = tuple(check_row(table, first, plugin_id, zone, only_set=False))
        if isinstance(first, Mapping):
            if type(first) is not dict:  # a subclass may invent missing keys (defaultdict): check row by row
                return None
            names, key_count = tuple(first), len(first)
        elif dataclasses.is_dataclass(first):
            names, key_count = _fields_of(type(first))[0], -1  # type: ignore[arg-type]  # a dataclass type
        else:
            return None
        extra = tuple(k for k in _STORE_OWNED if k in names)
        if len(columns) + len(extra) < 2:  # a one-name getter returns a bare value, not a tuple
            return None
        getter = (operator.itemgetter if key_count >= 0 else operator.attrgetter)(*columns, *extra)
        owner_at = len(columns) + extra.index("plugin_id") if "plugin_id" in extra else -1
        return cls(table, plugin_id, columns, type(first), key_count, getter, owner_at, zone)

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
            values = got[:width]
            if row_needs_conversion(self.table, self.columns, values):
                values = tuple(convert_value(self.table, c, v, self.zone)
                               for c, v in zip(self.columns, values, strict=False))
            checked.append((*values, plugin_id))
        return checked


@functools.cache
def _fields_of(cls: type) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    names = tuple(f.name for f in dataclasses.fields(cls) if not f.metadata.get("zx_internal"))
    single = operator.attrgetter(*names)
    return names, (single if len(names) > 1 else lambda obj: (single(obj),))
