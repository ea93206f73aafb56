"""Who owns each legacy row (SPEC 5), decided once by SQLite into temp tables.

`build_owners(conn, schema, rules)` fills `temp.zx_owner_<table>(src_rowid, plugin_id, orphan, shared)` for every
table present: one row per (source row, owner). A row with several owners is shared lineage (shared = 1 on its
first owner's row, 2 on the others, 0 when the row has one owner); an orphan has the default owner and
orphan = 1. `temp.zx_owner_trades` holds exactly one row per trade (src_rowid is its key) and one more column,
`rule`: which rule decided the owner (RULE_OWN, 'mapping.<column>', 'link.<column>', 'ambiguous.<column>',
RULE_DEFAULT). Copy, migrate, verify, stats and the reports all join on these tables, so attribution is decided
in exactly one place.

A trade's owner is the first of (SPEC 5):
1. its own plugin_id, where the column exists and holds a value other than the default id;
2. mapping[value] for the first of `mapping_columns` whose value is a text in the mapping (exact match);
3. inherited, one step, from the trades rules 1-2 decided that share its chain_id, else its profit_chain_id,
   else its session_id: the first of these links that leads to any such trade decides; to exactly one owner,
   the trade gets it; to several, it stays with the default id and is ambiguous (a NULL or '' links nothing);
4. the default id.
Children follow their parents (schema.Lineage), whatever rule decided the parent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field

from .schema import ATTRIBUTION_ORDER, DEFAULT_PLUGIN_ID, TABLE_BY_NAME, TRADES, Table

__all__ = [
    "AttributionRules",
    "DEFAULT_MAPPING_COLUMNS",
    "LINKS",
    "SCHEMAS",
    "TRADE_OWNERS",
    "TableBuckets",
    "ambiguous_rule",
    "build_owners",
    "count_buckets",
    "keys_table",
    "link_rule",
    "link_table",
    "mapping_rule",
    "owned_rows",
    "owner_table",
    "source_columns",
]

SCHEMAS = ("main", "src", "sh")  # the only schema names these statements are built with
DEFAULT_MAPPING_COLUMNS = ("logic_type", "strategy")
LINKS = ("chain_id", "profit_chain_id", "session_id")  # rule 3, in order
RULE_OWN, RULE_DEFAULT = "plugin_id", "default"
TRADE_OWNERS = "temp.zx_owner_trades"


@dataclass(frozen=True, slots=True)
class AttributionRules:
    """What decides a legacy row's owner: store.yaml's mapping, default_plugin_id and mapping_columns."""

    mapping: Mapping[str, str]
    default_plugin_id: str = DEFAULT_PLUGIN_ID
    mapping_columns: tuple[str, ...] = DEFAULT_MAPPING_COLUMNS

    def __post_init__(self) -> None:
        unknown = [c for c in self.mapping_columns if c not in TRADES.column_names]
        if unknown:
            raise ValueError(f"mapping_columns: not columns of trades: {', '.join(unknown)}")

    def record(self) -> dict[str, object]:
        """The rules as plain data (what a split records in the file it writes)."""
        return {"default_plugin_id": self.default_plugin_id, "mapping": dict(sorted(self.mapping.items())),
                "mapping_columns": list(self.mapping_columns)}


def mapping_rule(column: str) -> str:
    return f"mapping.{column}"


def link_rule(column: str) -> str:
    return f"link.{column}"


def ambiguous_rule(column: str) -> str:
    return f"ambiguous.{column}"


def owner_table(table: str) -> str:
    return f"temp.zx_owner_{TABLE_BY_NAME[table].name}"


def keys_table(table: str) -> str:
    return f"temp.zx_keys_{TABLE_BY_NAME[table].name}"


def link_table(column: str) -> str:
    """Temp table of rule 3: link value -> the owners rules 1-2 gave the trades carrying it."""
    return f"temp.zx_link_{_trades_column(column)}"


def _trades_column(name: str) -> str:
    """`name` as the schema constant spells it (so only our own identifiers reach SQL text)."""
    return TRADES.column_names[TRADES.column_names.index(name)]


def source_columns(conn: sqlite3.Connection, schema: str, table: str) -> set[str]:
    """Columns `table` has in attached `schema` (empty when the table is absent)."""
    assert schema in SCHEMAS
    return {row[1] for row in conn.execute(f"PRAGMA {schema}.table_info({TABLE_BY_NAME[table].name})")}


def build_owners(conn: sqlite3.Connection, schema: str, rules: AttributionRules) -> dict[str, set[str]]:
    """Create the temp owner tables for every table present in `schema`; return each one's columns."""
    assert schema in SCHEMAS
    conn.execute("DROP TABLE IF EXISTS temp.zx_mapping")
    conn.execute("CREATE TEMP TABLE zx_mapping (value TEXT PRIMARY KEY, plugin_id TEXT NOT NULL)")
    conn.executemany("INSERT INTO temp.zx_mapping VALUES (?, ?)", sorted(rules.mapping.items()))
    conn.execute("DROP TABLE IF EXISTS temp.zx_keys_fresh")
    conn.execute("CREATE TEMP TABLE zx_keys_fresh (name TEXT PRIMARY KEY)")
    present: dict[str, set[str]] = {}
    for name in ATTRIBUTION_ORDER:
        cols = source_columns(conn, schema, name)
        if not cols:
            continue
        present[name] = cols
        conn.execute(f"DROP TABLE IF EXISTS {owner_table(name)}")
        if name == "trades":
            _fill_trade_owners(conn, schema, cols, rules)
            continue
        conn.execute(f"CREATE TABLE {owner_table(name)} (src_rowid INTEGER NOT NULL, plugin_id TEXT NOT NULL, "
                     "orphan INTEGER NOT NULL DEFAULT 0, shared INTEGER NOT NULL DEFAULT 0)")
        own = "NULLIF(x.plugin_id, :d)" if "plugin_id" in cols else "NULL"
        _fill_owners(conn, schema, TABLE_BY_NAME[name], own, cols, present, rules.default_plugin_id)
        conn.execute(f"CREATE INDEX {owner_table(name)}_rowid ON zx_owner_{name} (src_rowid, plugin_id)")
    return present


# --- trades -----------------------------------------------------------------------------------------------------


def _fill_trade_owners(conn: sqlite3.Connection, schema: str, cols: set[str], rules: AttributionRules) -> None:
    conn.execute(f"CREATE TABLE {TRADE_OWNERS} (src_rowid INTEGER PRIMARY KEY, plugin_id TEXT NOT NULL, "
                 "orphan INTEGER NOT NULL DEFAULT 0, shared INTEGER NOT NULL DEFAULT 0, rule TEXT NOT NULL)")
    _decide_by_own_and_mapping(conn, schema, cols, rules)
    links = [_trades_column(c) for c in LINKS if c in cols]
    conn.execute("DROP TABLE IF EXISTS temp.zx_pending")
    conn.execute("CREATE TEMP TABLE zx_pending (src_rowid INTEGER PRIMARY KEY, "
                 + ", ".join([*links, "zx_none"]) + ")")
    # Only trades rules 1-2 left undecided need the links; an empty link value links nothing.
    picked = ", ".join([*(f"NULLIF(x.{c}, '')" for c in links), "NULL"])
    conn.execute(f"INSERT INTO temp.zx_pending SELECT x.rowid, {picked} FROM {schema}.trades x "
                 f"WHERE NOT EXISTS (SELECT 1 FROM {TRADE_OWNERS} o WHERE o.src_rowid = x.rowid)")
    for column in links:
        _build_link(conn, schema, column)
    _decide_pending(conn, links, rules.default_plugin_id)
    conn.execute("DROP TABLE temp.zx_pending")


def _decide_by_own_and_mapping(conn: sqlite3.Connection, schema: str, cols: set[str],
                               rules: AttributionRules) -> None:
    """Rules 1 and 2: one pass over the trades, one mapping lookup per mapping column the file has."""
    columns = [_trades_column(c) for c in rules.mapping_columns if c in cols]
    params: dict[str, object] = {"d": rules.default_plugin_id, "own": RULE_OWN}
    owners, rules_sql, joins = [], [], []
    if "plugin_id" in cols:
        owners.append("NULLIF(x.plugin_id, :d)")
        rules_sql.append("WHEN NULLIF(x.plugin_id, :d) IS NOT NULL THEN :own")
    for i, column in enumerate(columns):
        params[f"r{i}"] = mapping_rule(column)
        # typeof: only a text maps (an integer 1 must not match the key '1' through column affinity)
        joins.append(f"LEFT JOIN temp.zx_mapping m{i} ON m{i}.value = x.{column} AND typeof(x.{column}) = 'text'")
        owners.append(f"m{i}.plugin_id")
        rules_sql.append(f"WHEN m{i}.plugin_id IS NOT NULL THEN :r{i}")
    if not owners:
        return
    owner = f"COALESCE({', '.join(owners)})" if len(owners) > 1 else owners[0]
    conn.execute(
        f"INSERT INTO {TRADE_OWNERS} (src_rowid, plugin_id, rule) SELECT x.rowid, {owner}, "
        f"CASE {' '.join(rules_sql)} END FROM {schema}.trades x {' '.join(joins)} WHERE {owner} IS NOT NULL", params)


def _build_link(conn: sqlite3.Connection, schema: str, column: str) -> None:
    """Rule 3's lookup for one link column: each value an undecided trade carries -> its decided owners."""
    table = link_table(column)
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} (k NOT NULL PRIMARY KEY, plugin_id TEXT NOT NULL, owners INTEGER NOT NULL, "
                 "plugins TEXT NOT NULL) WITHOUT ROWID")
    conn.execute(
        f"INSERT INTO {table} SELECT x.{column}, min(o.plugin_id), count(DISTINCT o.plugin_id), "
        f"group_concat(DISTINCT o.plugin_id) FROM {schema}.trades x JOIN {TRADE_OWNERS} o ON o.src_rowid = x.rowid "
        f"WHERE x.{column} IN (SELECT p.{column} FROM temp.zx_pending p WHERE p.{column} IS NOT NULL) "
        f"GROUP BY x.{column}")


def _decide_pending(conn: sqlite3.Connection, links: list[str], default: str) -> None:
    """Rules 3 and 4 for the trades rules 1-2 left undecided: the first link that leads anywhere decides."""
    params: dict[str, object] = {"d": default, "default": RULE_DEFAULT}
    owners, rules_sql, joins = [], [], []
    for i, column in enumerate(links):
        params[f"link{i}"], params[f"amb{i}"] = link_rule(column), ambiguous_rule(column)
        joins.append(f"LEFT JOIN {link_table(column)} l{i} ON l{i}.k = p.{column}")
        owners.append(f"WHEN l{i}.k IS NOT NULL THEN (CASE WHEN l{i}.owners = 1 THEN l{i}.plugin_id ELSE :d END)")
        rules_sql.append(f"WHEN l{i}.k IS NOT NULL THEN (CASE WHEN l{i}.owners = 1 THEN :link{i} ELSE :amb{i} END)")
    owner = f"CASE {' '.join(owners)} ELSE :d END" if owners else ":d"
    rule = f"CASE {' '.join(rules_sql)} ELSE :default END" if rules_sql else ":default"
    conn.execute(f"INSERT INTO {TRADE_OWNERS} (src_rowid, plugin_id, rule) SELECT p.src_rowid, {owner}, {rule} "
                 f"FROM temp.zx_pending p {' '.join(joins)}", params)


# --- children ---------------------------------------------------------------------------------------------------


def _fill_owners(
    conn: sqlite3.Connection, schema: str, table: Table, own: str, cols: set[str],
    present: dict[str, set[str]], default: str,
) -> None:
    src, d = f"{schema}.{table.name}", {"d": default}
    dst = f"{owner_table(table.name)} (src_rowid, plugin_id, orphan, shared)"
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


# --- buckets ----------------------------------------------------------------------------------------------------


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
