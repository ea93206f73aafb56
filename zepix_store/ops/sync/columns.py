"""Which columns a table's rows are compared and copied by, and SQL that compares two rows."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ...schema import TABLES, Table

__all__ = [
    'ALIASES',
    'Columns',
    'MONEY',
    'SCHEMAS',
    'affinity',
    'columns_for',
    'content_columns',
    'declared_types',
    'key_text',
    'money_columns',
    'natural_key',
    'rowid_alias',
]

ALIASES = ("s", "i", "b", "x")  # shared row, isolated row, base row, another row: the only aliases used
SCHEMAS = ("sh", "iso")
PREFIXES = {"": "", **{a: f"{a}." for a in ALIASES}}
# Money columns whose per-plugin totals are compared after a copy.
MONEY = {"trades": ("pnl", "commission", "swap")}


def rowid_alias(table: Table) -> str | None:
    """The INTEGER PRIMARY KEY column that is the rowid, if the table has one."""
    for col in table.columns:
        if col.decl.upper().startswith("INTEGER PRIMARY KEY"):
            return col.name
    return None


def content_columns(table: Table, present: set[str]) -> list[str]:
    """Columns copied by value: the legacy columns both files have, minus the rowid alias."""
    alias = rowid_alias(table)
    return [c for c in table.column_names if c in present and c != alias]


def affinity(decl: str) -> str:
    """SQLite's column affinity of a declared type (the rules of datatype3.html, section 3.1)."""
    d = decl.upper()
    if "INT" in d:
        return "INTEGER"
    if any(k in d for k in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in d or not d:
        return "BLOB"
    if any(k in d for k in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def declared_types(conn: sqlite3.Connection, schema: str, table: str) -> dict[str, str]:
    assert schema in SCHEMAS
    return {row[1]: str(row[2] or "") for row in conn.execute(f"PRAGMA {schema}.table_info({table})")}


@dataclass(frozen=True)
class Columns:
    """The columns a table copies by value, and those whose storage class is also compared explicitly.

    `IS` already tells text from blob from number and compares numbers exactly; only 1 vs 1.0 are equal under
    it. Within one column affinity SQLite stores such a pair in one class only, so the storage class needs its
    own test only where the declared affinity differs between the two files (`typed`).
    """

    values: tuple[str, ...]
    typed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        known = {c for t in TABLES for c in t.all_column_names}
        if not set(self.values) <= known or not set(self.typed) <= set(self.values):
            raise ValueError(f"not schema columns: {self.values!r} / {self.typed!r}")

    def check(self, table: Table) -> None:
        """Every column is one of `table`'s (raises ValueError)."""
        if not set(self.values) <= set(table.all_column_names):
            raise ValueError(f"{table.name}: not its columns: {sorted(set(self.values) - set(table.all_column_names))}")

    def same(self, a: str, b: str) -> str:
        """SQL true when rows `a` and `b` hold the same values (and storage classes where needed)."""
        assert a in ALIASES and b in ALIASES
        if not self.values:
            return "1"
        test = f"({', '.join(f'{a}.{c}' for c in self.values)}) IS ({', '.join(f'{b}.{c}' for c in self.values)})"
        return " AND ".join([test, *(f"typeof({a}.{c}) = typeof({b}.{c})" for c in self.typed)])

    def names(self, alias: str = "") -> str:
        prefix = PREFIXES[alias]  # KeyError for anything but our own aliases
        return ", ".join(f"{prefix}{c}" for c in self.values)


def columns_for(conn: sqlite3.Connection, table: Table, present: set[str]) -> Columns:
    """The copy columns of `table` between the attached `sh` and `iso` files."""
    values = content_columns(table, present)
    sh, iso = declared_types(conn, "sh", table.name), declared_types(conn, "iso", table.name)
    typed = [c for c in values if affinity(sh.get(c, "")) == "BLOB" or
             affinity(sh.get(c, "")) != affinity(iso.get(c, ""))]
    return Columns(tuple(values), tuple(typed))


def key_text(table: Table, alias: str) -> str:
    """SQL text naming a row in reports: its natural key and id, as `trade_id='T1' (id=5)`."""
    assert alias in ALIASES
    rid = f"'({rowid_alias(table) or 'rowid'}=' || {alias}.rowid || ')'"
    parts = [f"'{k}=' || quote({alias}.{k})" for k in table.key or (("trade_id",) if table.name == "trades" else ())]
    return " || ' ' || ".join([*parts, rid])


def natural_key(table: Table) -> str | None:
    """The column a row is known by across files: trade_id for trades, else the table's key (None: keyless)."""
    if table.key:
        (k,) = table.key
        return k
    return "trade_id" if table.name == "trades" else None


def money_columns(table: Table, cols: Columns) -> list[str]:
    return [c for c in MONEY.get(table.name, ()) if c in cols.values]
