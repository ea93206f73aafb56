"""The identity map in a plugin's isolated file: segments, pairs, base rows and the triggers that keep them.

`zx_sync_pairs` holds one row per pair (isolated rowid, shared rowid) per segment, a segment being one
(table, plugin). A pair whose row is missing on one side is kept (a pruned side, a restored backup): its other
row is copied back under its old id when that id is free. `zx_sync_base_<table>` holds, for an isolated row the
bot changed or deleted since the last synchronisation, the row as it was then: the triggers fill it, the sync
empties it. Files written by the older copy ledger (`zx_copy_ledger`) are converted in place.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

from ...attribution import DEFAULT_MAPPING_COLUMNS
from ...change_tracking import base_columns, base_table, tracking_ddl
from ...schema import TABLES, Table
from .files import has_table

__all__ = [
    'MAPPING_KEY',
    'META',
    'PAIRS',
    'SEGMENTS',
    'base_table',
    'has_identity',
    'identity_ddl',
    'mapping_changes',
    'mapping_record',
    'has_pairs',
    'record_mapping',
    'recorded_mapping',
    'segment',
    'upgrade_old_ledgers',
]

SEGMENTS = "zx_sync_segments"
PAIRS = "zx_sync_pairs"
META = "zx_meta"
MAPPING_KEY = "split_mapping"
OLD_LEDGER, OLD_SEGMENTS, OLD_RUNS = "zx_copy_ledger", "zx_copy_segments", "zx_copy_runs"


def identity_ddl(schema: str = "iso") -> list[str]:
    """Statements that create the identity map, base tables and triggers in `schema` if missing."""
    assert schema in ("iso", "main")
    return [
        (f"CREATE TABLE IF NOT EXISTS {schema}.{SEGMENTS} (seg INTEGER PRIMARY KEY, table_name TEXT NOT NULL, "
         "plugin_id TEXT NOT NULL, UNIQUE (table_name, plugin_id))"),
        (f"CREATE TABLE IF NOT EXISTS {schema}.{PAIRS} (seg INTEGER NOT NULL, iso_rowid INTEGER NOT NULL, "
         "shared_rowid INTEGER NOT NULL, PRIMARY KEY (seg, iso_rowid)) WITHOUT ROWID"),
        f"CREATE UNIQUE INDEX IF NOT EXISTS {schema}.zx_sync_pairs_shared ON {PAIRS} (seg, shared_rowid)",
        f"CREATE TABLE IF NOT EXISTS {schema}.{META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        *tracking_ddl(schema),
    ]


def has_identity(conn: sqlite3.Connection, schema: str = "iso") -> bool:
    return has_table(conn, schema, PAIRS)


def segment(conn: sqlite3.Connection, table: Table, plugin: str, create: bool = False) -> int | None:
    """The segment of (table, plugin) in `iso`; created when asked, else None if it has none."""
    if not has_table(conn, "iso", SEGMENTS):
        return None
    row = conn.execute(f"SELECT seg FROM iso.{SEGMENTS} WHERE table_name = ? AND plugin_id = ?",
                       (table.name, plugin)).fetchone()
    if row is not None or not create:
        return None if row is None else int(row[0])
    cur = conn.execute(f"INSERT INTO iso.{SEGMENTS} (table_name, plugin_id) VALUES (?, ?)", (table.name, plugin))
    return int(cur.lastrowid or 0)


def has_pairs(conn: sqlite3.Connection, seg: int) -> bool:
    """Whether the segment was synchronised before (it holds a pair)."""
    return conn.execute(f"SELECT 1 FROM iso.{PAIRS} WHERE seg = ? LIMIT 1", (seg,)).fetchone() is not None


# --- the mapping a split used -----------------------------------------------------------------------------


def mapping_record(mapping: Mapping[str, str], default: str,
                   mapping_columns: Sequence[str] = DEFAULT_MAPPING_COLUMNS) -> str:
    """The attribution rules a split records in its file; the default columns are left out (older records)."""
    record: dict[str, object] = {"default_plugin_id": default, "mapping": dict(sorted(mapping.items()))}
    if tuple(mapping_columns) != DEFAULT_MAPPING_COLUMNS:
        record["mapping_columns"] = list(mapping_columns)
    return json.dumps(record, sort_keys=True)


def recorded_mapping(conn: sqlite3.Connection, schema: str = "iso") -> str | None:
    """The mapping a previous split recorded in `schema`, or None."""
    if not has_table(conn, schema, META):
        return None
    row = conn.execute(f"SELECT value FROM {schema}.{META} WHERE key = ?", (MAPPING_KEY,)).fetchone()
    return None if row is None else str(row[0])


def record_mapping(conn: sqlite3.Connection, record: str) -> None:
    conn.execute(f"INSERT INTO iso.{META} (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (MAPPING_KEY, record))


def mapping_changes(recorded: str, current: str) -> str:
    """The values (or default id) whose target differs between two mapping records."""
    old, new = json.loads(recorded), json.loads(current)
    keys = sorted(set(old["mapping"]) | set(new["mapping"]))
    changed = [k for k in keys if old["mapping"].get(k) != new["mapping"].get(k)]
    if old["default_plugin_id"] != new["default_plugin_id"]:
        changed.append("default_plugin_id")
    if old.get("mapping_columns") != new.get("mapping_columns"):
        changed.append("mapping_columns")
    return "changed: " + ", ".join(repr(k) for k in changed)


# --- the older copy ledger ----------------------------------------------------------------------------------


def upgrade_old_ledgers(conn: sqlite3.Connection, routed_isolated: Mapping[str, bool]) -> int:
    """Convert `zx_copy_ledger` entries (split's in `iso`, merge's in `sh`) into pairs; return pairs added.

    The old ledger kept no base: where a pair's rows differ, the side the plugin is routed to is taken as the
    one the bot changed (its base becomes the other side's row), so its write is kept and carried over.
    """
    added = 0
    for schema, shared_col, iso_col in (("iso", "src_rowid", "dst_rowid"), ("sh", "dst_rowid", "src_rowid")):
        if not has_table(conn, schema, OLD_LEDGER) or schema == "sh" and conn.execute(
                "SELECT 1 FROM pragma_database_list WHERE name = 'sh'").fetchone() is None:
            continue
        for seg, name, plugin in conn.execute(f"SELECT seg, table_name, plugin_id FROM {schema}.{OLD_SEGMENTS}"
                                              ).fetchall():
            table = next((t for t in TABLES if t.name == name), None)
            if table is None:
                continue
            new = segment(conn, table, plugin, create=True)
            added += conn.execute(
                f"INSERT OR IGNORE INTO iso.{PAIRS} (seg, iso_rowid, shared_rowid) SELECT ?, {iso_col}, {shared_col} "
                f"FROM {schema}.{OLD_LEDGER} WHERE seg = ?", (new, seg)).rowcount
            _base_for_differences(conn, table, plugin, int(new or 0), routed_isolated.get(plugin, True))
        if schema == "iso":
            for old in (OLD_LEDGER, OLD_SEGMENTS, OLD_RUNS):
                conn.execute(f"DROP TABLE IF EXISTS iso.{old}")
    return added


def _base_for_differences(conn: sqlite3.Connection, table: Table, plugin: str, seg: int, isolated: bool) -> None:
    cols = [c for c in base_columns(table)
            if c in {r[1] for r in conn.execute(f"PRAGMA sh.table_info({table.name})")}]
    if not cols or not has_table(conn, "sh", table.name):
        return
    listed = ", ".join(cols)
    differ = f"({', '.join(f's.{c}' for c in cols)}) IS NOT ({', '.join(f'i.{c}' for c in cols)})"
    side = "s" if isolated else "i"
    conn.execute(
        f"INSERT OR IGNORE INTO iso.{base_table(table)} (zx_rowid, {listed}) SELECT p.iso_rowid, "
        f"{', '.join(f'{side}.{c}' for c in cols)} FROM iso.{PAIRS} p JOIN iso.{table.name} i ON i.rowid = p.iso_rowid "
        f"JOIN sh.{table.name} s ON s.rowid = p.shared_rowid WHERE p.seg = ? AND i.plugin_id = ? AND {differ}",
        (seg, plugin))
