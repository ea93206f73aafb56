"""Who owns each legacy row (SPEC 5), computed once by SQLite into temp tables.

`build_owners` fills `temp.zx_owner_<table>(src_rowid, plugin_id, orphan, shared)`: one row per (source row, owner).
A row with several owners is shared lineage (shared = 1 on its first owner's row, 2 on the others, 0 when the row
has one owner); an orphan has the default owner and orphan = 1. Copy, migrate,
verify and reports all join on these tables, so attribution is decided in exactly one place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field

from .schema import ATTRIBUTION_ORDER, TABLE_BY_NAME, Table

SCHEMAS = ("main", "src")  # the only schema names these statements are built with


def owner_table(table: str) -> str:
    return f"temp.zx_owner_{TABLE_BY_NAME[table].name}"


def keys_table(table: str) -> str:
    return f"temp.zx_keys_{TABLE_BY_NAME[table].name}"


def source_columns(conn: sqlite3.Connection, schema: str, table: str) -> set[str]:
    """Columns `table` has in attached `schema` (empty when the table is absent)."""
    assert schema in SCHEMAS
    return {row[1] for row in conn.execute(f"PRAGMA {schema}.table_info({TABLE_BY_NAME[table].name})")}


def build_owners(
    conn: sqlite3.Connection, schema: str, mapping: Mapping[str, str], default: str
) -> dict[str, set[str]]:
    """Create the temp owner tables for every table present in `schema`; return each one's columns."""
    assert schema in SCHEMAS
    conn.execute("DROP TABLE IF EXISTS temp.zx_mapping")
    conn.execute("CREATE TEMP TABLE zx_mapping (logic_type TEXT PRIMARY KEY, plugin_id TEXT NOT NULL)")
    conn.executemany("INSERT INTO temp.zx_mapping VALUES (?, ?)", sorted(mapping.items()))
    conn.execute("DROP TABLE IF EXISTS temp.zx_keys_fresh")
    conn.execute("CREATE TEMP TABLE zx_keys_fresh (name TEXT PRIMARY KEY)")
    present: dict[str, set[str]] = {}
    for name in ATTRIBUTION_ORDER:
        cols = source_columns(conn, schema, name)
        if not cols:
            continue
        present[name] = cols
        table = TABLE_BY_NAME[name]
        conn.execute(f"DROP TABLE IF EXISTS {owner_table(name)}")
        # A trade has exactly one owner, so its owner table can be keyed (and joined) by the source rowid.
        key = "PRIMARY KEY" if name == "trades" else "NOT NULL"
        conn.execute(f"CREATE TABLE {owner_table(name)} (src_rowid INTEGER {key}, plugin_id TEXT NOT NULL, "
                     "orphan INTEGER NOT NULL DEFAULT 0, shared INTEGER NOT NULL DEFAULT 0)")
        own = "NULLIF(x.plugin_id, :d)" if "plugin_id" in cols else "NULL"
        _fill_owners(conn, schema, table, own, cols, present, default)
        if name != "trades":
            conn.execute(f"CREATE INDEX {owner_table(name)}_rowid ON zx_owner_{name} (src_rowid, plugin_id)")
    return present


def _fill_owners(
    conn: sqlite3.Connection, schema: str, table: Table, own: str, cols: set[str],
    present: dict[str, set[str]], default: str,
) -> None:
    src, d = f"{schema}.{table.name}", {"d": default}
    dst = f"{owner_table(table.name)} (src_rowid, plugin_id, orphan, shared)"
    if table.name == "trades":
        mapped = "m.plugin_id" if "logic_type" in cols else "NULL"
        join = "LEFT JOIN temp.zx_mapping m ON m.logic_type = x.logic_type" if "logic_type" in cols else ""
        conn.execute(f"INSERT INTO {dst} SELECT x.rowid, COALESCE({own}, {mapped}, :d), 0, 0 FROM {src} x {join}", d)
        return
    if "plugin_id" in cols:
        conn.execute(f"INSERT INTO {dst} SELECT x.rowid, x.plugin_id, 0, 0 FROM {src} x WHERE {own} IS NOT NULL", d)
    lin = table.lineage
    if lin is None or lin.column not in cols or lin.parent_column not in present.get(lin.parent, set()):
        conn.execute(f"INSERT INTO {dst} SELECT x.rowid, :d, {int(lin is not None)}, 0 FROM {src} x "
                     f"WHERE {own} IS NULL", d)
        return
    keys = _build_keys(conn, schema, lin.parent, lin.parent_column)
    conn.execute(
        f"INSERT INTO {dst} SELECT x.rowid, k.plugin_id, 0, k.shared FROM {src} x "
        f"JOIN {keys} k ON k.k = x.{lin.column} WHERE {own} IS NULL", d)
    conn.execute(
        f"INSERT INTO {dst} SELECT x.rowid, :d, 1, 0 FROM {src} x WHERE {own} IS NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {keys} k WHERE k.k = x.{lin.column})", d)


def _build_keys(conn: sqlite3.Connection, schema: str, parent: str, column: str) -> str:
    """Temp table of (parent key value, owner, shared): each distinct pair once, for the children's joins.

    `shared` marks keys with several owners (1 on the first owner, 2 on the others), so the owner tables carry
    their buckets and counting them is one scan instead of a GROUP BY over every source row.
    """
    assert column in TABLE_BY_NAME[parent].column_names
    name = f"temp.zx_keys_{TABLE_BY_NAME[parent].name}_{TABLE_BY_NAME[parent].column_names.index(column)}"
    if conn.execute("SELECT 1 FROM temp.zx_keys_fresh WHERE name = ?", (name,)).fetchone() is not None:
        return name  # sl_events and reversal_exit_events both join trades.trade_id: build it once per run
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"CREATE TABLE {name} (k NOT NULL, plugin_id TEXT NOT NULL, shared INTEGER NOT NULL DEFAULT 0, "
                 "PRIMARY KEY (k, plugin_id)) WITHOUT ROWID")
    conn.execute(
        f"INSERT OR IGNORE INTO {name} (k, plugin_id) SELECT p.{column}, o.plugin_id FROM {schema}.{parent} p "
        f"JOIN {owner_table(parent)} o ON o.src_rowid = p.rowid WHERE p.{column} IS NOT NULL")
    conn.execute(  # the GROUP BY is an ordered scan of the primary key; only shared keys are written
        f"UPDATE {name} SET shared = CASE WHEN plugin_id = (SELECT min(x.plugin_id) FROM {name} x "
        f"WHERE x.k = {name}.k) THEN 1 ELSE 2 END WHERE k IN (SELECT k FROM {name} GROUP BY k HAVING count(*) > 1)")
    conn.execute("INSERT INTO temp.zx_keys_fresh VALUES (?)", (name,))
    return name


@dataclass
class TableBuckets:
    """Where the rows of one source table went: every row lands in exactly one bucket."""

    source_rows: int = 0
    by_plugin: dict[str, int] = field(default_factory=dict)  # rows with a single owner (default included)
    orphans: int = 0          # no parent: kept by the default id
    shared_rows: int = 0      # owned by several plugins
    shared_copies: dict[str, int] = field(default_factory=dict)  # copies of shared rows per plugin

    @property
    def bucket_total(self) -> int:
        return sum(self.by_plugin.values()) + self.orphans + self.shared_rows


def count_buckets(conn: sqlite3.Connection, schema: str, table: str) -> TableBuckets:
    """Count `table`'s source rows by bucket from its owner table (one scan; the source count is SQLite's)."""
    assert schema in SCHEMAS
    b = TableBuckets()
    b.source_rows = conn.execute(f"SELECT count(*) FROM {schema}.{TABLE_BY_NAME[table].name}").fetchone()[0]
    q = f"SELECT plugin_id, orphan, shared, count(*) FROM {owner_table(table)} GROUP BY plugin_id, orphan, shared"
    for plugin, orphan, shared, rows in conn.execute(q):
        if shared:
            b.shared_copies[plugin] = b.shared_copies.get(plugin, 0) + rows
            b.shared_rows += rows if shared == 1 else 0  # each shared row has exactly one first owner
        elif orphan:
            b.orphans += rows
        else:
            b.by_plugin[plugin] = b.by_plugin.get(plugin, 0) + rows
    return b


def owned_rows(b: TableBuckets, plugin: str, default: str) -> int:
    """Rows of the table `plugin` owns (its copies of shared rows included): what a split of it copies."""
    return b.by_plugin.get(plugin, 0) + b.shared_copies.get(plugin, 0) + (b.orphans if plugin == default else 0)


def unmapped_logic_types(conn: sqlite3.Connection, schema: str, default: str) -> list[tuple[object, int]]:
    """logic_type values of trades left with the default id (no mapping), with their counts."""
    assert schema in SCHEMAS
    if "logic_type" not in source_columns(conn, schema, "trades"):
        return []
    own = "AND (x.plugin_id IS NULL OR x.plugin_id = :d)" if "plugin_id" in source_columns(
        conn, schema, "trades") else ""
    # parenthesised: without it AND binds tighter and a NULL logic_type counts even when the row has an owner
    q = (f"SELECT x.logic_type, count(*) FROM {schema}.trades x WHERE (x.logic_type IS NULL OR x.logic_type NOT IN "
         f"(SELECT logic_type FROM temp.zx_mapping)) {own} GROUP BY x.logic_type ORDER BY count(*) DESC, 1")
    return [(v, n) for v, n in conn.execute(q, {"d": default})]


def duplicate_trade_ids(conn: sqlite3.Connection, schema: str) -> list[tuple[object, int]]:
    """trade_id values that appear on more than one trade row (kept, never merged), with their counts."""
    assert schema in SCHEMAS
    if "trade_id" not in source_columns(conn, schema, "trades"):
        return []
    q = (f"SELECT trade_id, count(*) FROM {schema}.trades WHERE trade_id IS NOT NULL GROUP BY trade_id "
         "HAVING count(*) > 1 ORDER BY count(*) DESC, 1")
    return list(conn.execute(q))
