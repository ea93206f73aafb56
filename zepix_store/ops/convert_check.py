"""convert's whole-table check: one plugin's rows of a table in the source file against its rows on the server.

Both sides are streamed (memory stays flat) into the same figures: the row count, the sum of a digest of every
row (every value with its storage class, values.decode_row undoing the server's typed columns and zx_raw) and the
money totals summed exactly as floats (math.fsum, never through `numeric`). Only when they differ are the rows
read again to name the first few that differ.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..schema import Table
from .convert_source import HASH_BYTES, SourceFile, SourceRow, money_of, name_row, row_hash
from .convert_target import target_rows

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.rows import TupleRow

__all__ = ["Comparison", "compare_streams", "compare_unit"]

_MOD = 1 << (8 * HASH_BYTES)
NAMED = 5


class _ExactSum:
    """A running sum of floats with no rounding on the way (Shewchuk's partials, as math.fsum keeps them)."""

    def __init__(self) -> None:
        self.partials: list[float] = []

    def add(self, x: float) -> None:
        kept = 0
        for y in self.partials:
            if abs(x) < abs(y):
                x, y = y, x
            high = x + y
            low = y - (high - x)
            if low:
                self.partials[kept] = low
                kept += 1
            x = high
        self.partials[kept:] = [x]

    def total(self) -> float:
        return math.fsum(self.partials)


@dataclass
class _Side:
    rows: int = 0
    digest: int = 0
    money: list[_ExactSum] = field(default_factory=list)

    def add(self, table: Table, row: Mapping[str, object]) -> None:
        self.rows += 1
        self.digest = (self.digest + row_hash(table, row)) % _MOD
        values = money_of(table, row)
        while len(self.money) < len(values):
            self.money.append(_ExactSum())
        for total, value in zip(self.money, values, strict=False):
            total.add(value)

    def totals(self) -> tuple[float, ...]:
        return tuple(total.total() for total in self.money)


@dataclass
class Comparison:
    source_rows: int
    target_rows: int
    equal: bool
    money: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
    only_source: list[str] = field(default_factory=list)
    only_target: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"{self.source_rows} rows in the source, {self.target_rows} in the target"]
        if self.only_source:
            parts.append("only in the source or changed: " + ", ".join(self.only_source))
        if self.only_target:
            parts.append("only in the target or changed: " + ", ".join(self.only_target))
        if self.money[0] != self.money[1]:
            parts.append(f"money totals {self.money[0]} vs {self.money[1]}")
        return "; ".join(parts)


def compare_unit(conn: Connection[TupleRow], source: SourceFile, schema: str, table: Table, plugin: str,
                 chunk_rows: int) -> Comparison:
    """Compare `plugin`'s rows of `table` in `source` with its rows in `schema` on the server."""
    return compare_streams(table, lambda: source.iter_rows(table, plugin, chunk_rows),
                           lambda: target_rows(conn, schema, table, plugin, source.columns(table), chunk_rows))


def compare_streams(table: Table, source: Callable[[], Iterable[SourceRow]],
                    target: Callable[[], Iterable[Mapping[str, object]]]) -> Comparison:
    """Compare the rows `source()` yields (rowid, row) with those `target()` yields; each is read once, twice
    when they differ (to name the rows)."""
    src, dst = _Side(), _Side()
    for _, row in source():
        src.add(table, row)
    for other in target():
        dst.add(table, other)
    money = (src.totals(), dst.totals())
    equal = src.rows == dst.rows and src.digest == dst.digest and money[0] == money[1]
    found = Comparison(src.rows, dst.rows, equal, money)
    if not equal and dst.rows:
        _name_differences(table, source, target, found)
    return found


def _name_differences(table: Table, source: Callable[[], Iterable[SourceRow]],
                      target: Callable[[], Iterable[Mapping[str, object]]], found: Comparison) -> None:
    """The first few rows found on one side only (a changed row is on both lists, once per version)."""
    theirs: Counter[int] = Counter()
    names: dict[int, str] = {}
    for row in target():
        digest = row_hash(table, row)
        theirs[digest] += 1
        if len(names) < 10_000:
            names.setdefault(digest, name_row(table, row))
    for rowid, row in source():
        digest = row_hash(table, row)
        if theirs[digest] > 0:
            theirs[digest] -= 1
        elif len(found.only_source) < NAMED:
            found.only_source.append(name_row(table, row, rowid or None))
    found.only_target = [names.get(d, "(a row)") for d, n in theirs.items() if n > 0][:NAMED]
