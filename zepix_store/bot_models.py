"""The bot's own pydantic models as rows (BOT_INTERFACE.md section 2), without depending on pydantic.

A model is read through `model_dump()` (pydantic 2), `dict()` (pydantic 1) or its attributes, under its field
names and its aliases; only the table's columns are kept (the models carry `extra = "allow"` attributes the
tables lack, such as `metadata` or `v3_metadata`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .schema import TABLE_BY_NAME

__all__ = [
    'TRADE_ALIASES',
    'final_sl_pips',
    'is_model',
    'model_fields',
    'table_row',
    'trade_row',
]

# The bot's Trade field -> its trades column (the bot's own save_trade read these names first).
TRADE_ALIASES = {"entry": "entry_price", "sl": "sl_price", "tp": "tp_price", "close_price": "exit_price"}
# What the bot's save_trade wrote when the model lacked the attribute (getattr with a default).
_TRADE_DEFAULTS = {"commission": 0.0, "swap": 0.0, "chain_level": 1, "is_re_entry": False, "profit_level": 0,
                   "sl_adjusted": 0, "original_sl_distance": 0.0, "base_sl_pips": 0.0, "lot_multiplier": 1.0,
                   "sl_multiplier": 1.0}
_NOT_ROWS = (str, bytes, bytearray, int, float, complex, list, tuple, set, frozenset)


def is_model(obj: object) -> bool:
    """Whether `obj` can be read as a model: an object with fields, not a scalar or a plain collection."""
    return not isinstance(obj, (Mapping, *_NOT_ROWS)) and obj is not None


def _dump(obj: Any, method: str, **options: Any) -> dict[str, Any] | None:
    fn = getattr(obj, method, None)
    if not callable(fn):
        return None
    try:
        data = fn(**options)
    except TypeError:  # a model-like class whose dump takes no options
        data = fn() if options else None
    return dict(data) if isinstance(data, Mapping) else None


def model_fields(obj: Any, names: Iterable[str]) -> dict[str, Any]:
    """The fields of `obj` among `names`: from its dump by field name, then by alias, else its attributes."""
    wanted = set(names)
    if isinstance(obj, Mapping):
        return {k: v for k, v in obj.items() if k in wanted}
    for method in ("model_dump", "dict"):
        plain = _dump(obj, method)
        if plain is not None:
            aliased = _dump(obj, method, by_alias=True) or {}
            merged = {**aliased, **plain}
            return {k: v for k, v in merged.items() if k in wanted}
    found: dict[str, Any] = {}
    for name in wanted:
        try:
            found[name] = getattr(obj, name)
        except AttributeError:
            continue
    return found


def table_row(table: str, obj: Any) -> dict[str, Any]:
    """The columns of `table` that `obj` has (plugin_id included, for the handle's isolation check)."""
    return model_fields(obj, TABLE_BY_NAME[table].all_column_names)


def trade_row(obj: Any) -> dict[str, Any]:
    """The trades row of a bot `Trade`: entry/sl/tp/close_price mapped, lot sizes and defaults as the bot had."""
    columns = TABLE_BY_NAME["trades"].all_column_names
    data = model_fields(obj, (*columns, *TRADE_ALIASES))
    row = {k: v for k, v in data.items() if k in columns}
    for name, column in TRADE_ALIASES.items():
        if (data.get(name) is not None or column not in row) and name in data:
            row[column] = data[name]
    for column, default in _TRADE_DEFAULTS.items():
        row.setdefault(column, default)
    lot = row.get("lot_size")
    if lot is not None:
        if row.get("base_lot_size") is None:
            row["base_lot_size"] = lot
        row["final_lot_size"] = lot
    return row


def final_sl_pips(row: Mapping[str, Any]) -> float:
    """`final_sl_pips` as the bot's TradeDatabase.save_trade computed it from a trades row, ignoring the model's.

    0.0 unless entry and SL are both set and non-zero; else |entry - SL| x 100 for a symbol containing 'JPY', x
    10000 for any other (the bot's class raised on a None symbol and saved nothing; here None is not 'JPY').
    Values that are not numbers are left for the row check to refuse (0.0 here).
    """
    entry, sl = row.get("entry_price"), row.get("sl_price")
    if not (_number(entry) and _number(sl) and entry and sl):
        return 0.0
    symbol = row.get("symbol")
    pips = abs(entry - sl)
    pips *= 100 if isinstance(symbol, str) and "JPY" in symbol else 10000
    return float(pips)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
