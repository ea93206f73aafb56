"""The copy ledger and the SQL that split, merge and verify share.

Every file that receives copied rows holds `zx_copy_ledger`: one entry per (table, plugin, source rowid) naming
the rowid of the copy. split keeps it in each isolated file (source = the shared file), merge keeps it in the
shared file (source = the plugin's isolated file). A rerun skips every source row that already has an entry, so
nothing is copied twice, and verification joins source and copy through it.

A copy keeps its source rowid (so `id` values stay what they were) unless that rowid is taken in the target, by
a row the bot wrote there or by another plugin's copy of the same shared-lineage row; then it gets a fresh one
above every rowid of both files, and the ledger records which.

Schema names used in SQL text: `src` (the file read, attached read-only by split and verify), `dst` (the file
written) and `main`; table and column names come from schema.py only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import fault, upgrade
from .attribution import DEFAULT_MAPPING_COLUMNS, owner_table
from .backup import backup_connection, fsync_path
from .backup_identity import identity_of
from .config import StoreConfig
from .db import (
    BUSY_TIMEOUT_MS,
    check_wal_pairing,
    connect_sync,
    ensure_private_dir,
    transaction,
    translated_errors,
)
from .errors import ConfigError, CorruptDatabaseError, SchemaError, StoreIOError
from .readonly import WriteGuard, attach_uri, remove_unused_side_files
from .schema import SCHEMA_VERSION, Table, create_schema_sql

LEDGER = "zx_copy_ledger"
SEGMENTS = "zx_copy_segments"
RUNS = "zx_copy_runs"
META = "zx_meta"
MAPPING_KEY = "split_mapping"
SCHEMAS = ("main", "src", "dst")
# Money columns whose per-plugin totals are compared after a copy (SPEC 7).
MONEY = {"trades": ("pnl", "commission", "swap")}


def ledger_ddl(schema: str) -> list[str]:
    """Statements that create the ledger tables in `schema` if they are missing."""
    assert schema in SCHEMAS
    return [
        (f"CREATE TABLE IF NOT EXISTS {schema}.{SEGMENTS} (seg INTEGER PRIMARY KEY, table_name TEXT NOT NULL, "
         "plugin_id TEXT NOT NULL, UNIQUE (table_name, plugin_id))"),
        (f"CREATE TABLE IF NOT EXISTS {schema}.{LEDGER} (seg INTEGER NOT NULL, src_rowid INTEGER NOT NULL, "
         "dst_rowid INTEGER NOT NULL, run_id INTEGER NOT NULL, linked INTEGER NOT NULL DEFAULT 0, "
         "pruned INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (seg, src_rowid)) WITHOUT ROWID"),
        (f"CREATE TABLE IF NOT EXISTS {schema}.{RUNS} (run_id INTEGER PRIMARY KEY, command TEXT NOT NULL, "
         "source TEXT NOT NULL, plugins TEXT NOT NULL, started_at TEXT NOT NULL)"),
        f"CREATE TABLE IF NOT EXISTS {schema}.{META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ]


def has_table(conn: sqlite3.Connection, schema: str, name: str) -> bool:
    assert schema in SCHEMAS
    row = conn.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return row.fetchone() is not None


def file_uri(path: Path, mode: str) -> str:
    """A SQLite URI for `path`; mode `ro`, `rw` or `rwc` (immutable=1 may be appended by the caller)."""
    return f"file:{urllib.parse.quote(str(path.absolute()))}?mode={mode}"


READ = "read"  # attach mode: read only, leaving no -wal/-shm behind (see readonly.py)


class ScratchConnection(sqlite3.Connection):
    """The in-memory connection files are attached to; `guard` keeps the ones attached to read unwritten.

    Files whose `-wal`/`-shm` only our read created are tidied when it closes (see readonly.attach_uri).
    """

    guard: WriteGuard
    read_files: list[Path]

    def close(self) -> None:
        super().close()
        read, self.read_files = self.read_files, []
        for path in dict.fromkeys(read):
            remove_unused_side_files(path)


def attach(conn: sqlite3.Connection, path: Path, schema: str, mode: str) -> None:
    """ATTACH `path` as `schema`: mode `ro`, `rw`, `rwc` or READ (the connection must be opened with uri=True)."""
    assert schema in SCHEMAS and schema != "main"
    check_wal_pairing(path)
    if mode == READ:
        assert isinstance(conn, ScratchConnection)
        conn.guard.read_only.add(schema)
        uri, creates_side_files = attach_uri(path)
        if creates_side_files:
            conn.read_files.append(path)
    else:
        if isinstance(conn, ScratchConnection):
            conn.guard.read_only.discard(schema)
        uri = file_uri(path, mode)
    conn.execute(f"ATTACH DATABASE ? AS {schema}", (uri,))


def open_scratch(busy_timeout_ms: int) -> sqlite3.Connection:
    """An in-memory main database to attach files to; temp tables hold the attribution."""
    conn = sqlite3.connect(":memory:", uri=True, isolation_level=None, check_same_thread=False,
                           factory=ScratchConnection)
    conn.guard, conn.read_files = WriteGuard(allow_attach=True), []
    conn.set_authorizer(conn.guard)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    # Copies mirror their source, dangling references included (they are reported, not repaired).
    conn.execute("PRAGMA foreign_keys = OFF")
    return conn


def start_run(conn: sqlite3.Connection, schema: str, command: str, source: Path, plugins: Sequence[str]) -> int:
    """Record a copy run in `schema` and return its id (inside the caller's transaction)."""
    assert schema in SCHEMAS
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    cur = conn.execute(f"INSERT INTO {schema}.{RUNS} (command, source, plugins, started_at) VALUES (?, ?, ?, ?)",
                       (command, str(source), json.dumps(sorted(plugins)), stamp))
    return int(cur.lastrowid or 0)


def mapping_record(mapping: Mapping[str, str], default: str,
                   mapping_columns: Sequence[str] = DEFAULT_MAPPING_COLUMNS) -> str:
    """The attribution rules a split records in its file; the default columns are left out (older records)."""
    record: dict[str, object] = {"default_plugin_id": default, "mapping": dict(sorted(mapping.items()))}
    if tuple(mapping_columns) != DEFAULT_MAPPING_COLUMNS:
        record["mapping_columns"] = list(mapping_columns)
    return json.dumps(record, sort_keys=True)


def recorded_mapping(conn: sqlite3.Connection, schema: str) -> str | None:
    """The mapping a previous split recorded in `schema`, or None."""
    if not has_table(conn, schema, META):
        return None
    row = conn.execute(f"SELECT value FROM {schema}.{META} WHERE key = ?", (MAPPING_KEY,)).fetchone()
    return None if row is None else str(row[0])


def record_mapping(conn: sqlite3.Connection, schema: str, record: str) -> None:
    assert schema in SCHEMAS
    conn.execute(f"INSERT INTO {schema}.{META} (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (MAPPING_KEY, record))


# --- columns and row comparison --------------------------------------------------------------------------


def rowid_alias(table: Table) -> str | None:
    """The INTEGER PRIMARY KEY column that is the rowid, if the table has one."""
    for col in table.columns:
        if col.decl.upper().startswith("INTEGER PRIMARY KEY"):
            return col.name
    return None


def content_columns(table: Table, present: set[str]) -> list[str]:
    """Columns copied by value: the legacy columns the source has, minus the rowid alias."""
    alias = rowid_alias(table)
    return [c for c in table.column_names if c in present and c != alias]


def same_row(columns: Sequence[str], a: str, b: str, typed: Sequence[str] = ()) -> str:
    """SQL true when rows `a` and `b` hold the same value in every column and the same storage class in `typed`.

    `IS` already tells text from blob from number and compares numbers exactly; only 1 vs 1.0 are equal under
    it. Within one column affinity SQLite stores such a pair in one class only, so the storage class needs its
    own test only for the columns whose declared affinity differs between the two files (see `columns_for`).
    """
    assert a in ("s", "d") and b in ("s", "d")
    if not columns:
        return "1"
    test = f"({', '.join(f'{a}.{c}' for c in columns)}) IS ({', '.join(f'{b}.{c}' for c in columns)})"
    return " AND ".join([test, *(f"typeof({a}.{c}) = typeof({b}.{c})" for c in typed)])


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


def _declared(conn: sqlite3.Connection, schema: str, table: Table) -> dict[str, str]:
    assert schema in SCHEMAS
    return {row[1]: str(row[2] or "") for row in conn.execute(f"PRAGMA {schema}.table_info({table.name})")}


@dataclass(frozen=True)
class Columns:
    """The columns a table copies by value, and those whose storage class is also compared explicitly."""

    values: tuple[str, ...]
    typed: tuple[str, ...] = ()

    def same(self, a: str = "s", b: str = "d") -> str:
        return same_row(self.values, a, b, self.typed)


def columns_for(conn: sqlite3.Connection, table: Table, present: set[str]) -> Columns:
    """The copy columns of `table` between attached `src` and `dst` (both must be attached)."""
    values = content_columns(table, present)
    src, dst = _declared(conn, "src", table), _declared(conn, "dst", table)
    typed = [c for c in values if affinity(src.get(c, "")) in ("BLOB", "") or
             affinity(src.get(c, "")) != affinity(dst.get(c, ""))]
    return Columns(tuple(values), tuple(typed))


def key_expr(table: Table, alias: str) -> str:
    """SQL text naming a row for reports: its natural key, else its id, else its rowid."""
    assert alias in ("s", "d")
    if table.key:
        parts = [f"'{k}=' || quote({alias}.{k})" for k in table.key]
    else:
        rid = rowid_alias(table) or "rowid"
        parts = [f"'{rid}=' || {alias}.rowid"]
    return " || ' ' || ".join(parts)


# --- split: plan, copy, check -----------------------------------------------------------------------------
# Ledger rows are keyed by (seg, src_rowid): `seg` names one (table, plugin) pair in zx_copy_segments, so the
# ledger holds small integers only (it has a row per copied row).


def segment(conn: sqlite3.Connection, schema: str, table: Table, plugin: str, create: bool = False) -> int | None:
    """The ledger segment of (table, plugin) in `schema`; created when asked, else None if it has none."""
    assert schema in SCHEMAS
    if not has_table(conn, schema, SEGMENTS):
        return None
    row = conn.execute(f"SELECT seg FROM {schema}.{SEGMENTS} WHERE table_name = ? AND plugin_id = ?",
                       (table.name, plugin)).fetchone()
    if row is not None or not create:
        return None if row is None else int(row[0])
    cur = conn.execute(f"INSERT INTO {schema}.{SEGMENTS} (table_name, plugin_id) VALUES (?, ?)", (table.name, plugin))
    return int(cur.lastrowid or 0)


def _not_ledgered(src_rowid: str, seg: int | None) -> str:
    """SQL: source rowid `src_rowid` has no ledger entry in the segment (always true without a segment)."""
    assert src_rowid in ("o.src_rowid", "m.dst_rowid")
    if seg is None:
        return "1"
    return f"NOT EXISTS (SELECT 1 FROM dst.{LEDGER} l WHERE l.seg = {int(seg)} AND l.src_rowid = {src_rowid})"


def key_collisions(conn: sqlite3.Connection, table: Table, plugin: str, seg: int | None, limit: int = 5) -> list[str]:
    """Natural keys of `plugin` that the copy would write over: held by another row in dst, or twice in src."""
    if not table.key:
        return []
    (k,) = table.key  # every keyed table has a one-column natural key
    own, t = owner_table(table.name), table.name
    args = {"p": plugin, "n": limit}
    found: list[str] = []
    if conn.execute(f"SELECT 1 FROM dst.{t} WHERE plugin_id = :p LIMIT 1", args).fetchone():
        found += [f"{k}={v!r} already in the file" for (v,) in conn.execute(
            f"SELECT s.{k} FROM {own} o JOIN src.{t} s ON s.rowid = o.src_rowid WHERE o.plugin_id = :p "
            f"AND {_not_ledgered('o.src_rowid', seg)} AND EXISTS (SELECT 1 FROM dst.{t} d WHERE d.plugin_id = :p "
            f"AND d.{k} = s.{k}) LIMIT :n", args)]
    if "plugin_id" in {row[1] for row in conn.execute(f"PRAGMA src.table_info({t})")}:
        # a legacy key is unique on its own; a store file's only per plugin, so two rows may meet in one owner
        found += [f"{k}={v!r} on {n} source rows" for v, n in conn.execute(
            f"SELECT s.{k}, count(*) FROM {own} o JOIN src.{t} s ON s.rowid = o.src_rowid WHERE o.plugin_id = :p "
            f"AND s.{k} IS NOT NULL GROUP BY s.{k} HAVING count(*) > 1 LIMIT :n", args)]
    return found


def link_back(conn: sqlite3.Connection, table: Table, cols: Columns, plugin: str, seg: int, run_id: int,
              same_plugin: bool) -> int:
    """Ledger, without copying, the source rows that were copied FROM dst earlier and still equal that row.

    The source file's own ledger says which dst row each of its rows came from (a split read by merge, or a
    merge read by a later split: a round trip). `same_plugin` also requires the dst row to carry `plugin`.
    """
    back = segment(conn, "src", table, plugin)
    if back is None:
        return 0
    t, own = table.name, owner_table(table.name)
    mine = "AND d.plugin_id = :p " if same_plugin else ""
    return conn.execute(
        f"INSERT INTO dst.{LEDGER} (seg, src_rowid, dst_rowid, run_id, linked) "
        f"SELECT :seg, m.dst_rowid, m.src_rowid, :run, 1 FROM src.{LEDGER} m "
        f"JOIN {own} o ON o.src_rowid = m.dst_rowid AND o.plugin_id = :p "
        f"JOIN src.{t} s ON s.rowid = m.dst_rowid JOIN dst.{t} d ON d.rowid = m.src_rowid {mine}"
        f"WHERE m.seg = :back AND {cols.same()} AND {_not_ledgered('m.dst_rowid', seg)}",
        {"seg": seg, "back": back, "p": plugin, "run": run_id}).rowcount


def plan_copies(conn: sqlite3.Connection, table: Table, plugin: str, seg: int, run_id: int,
                expected: int | None) -> tuple[int, int]:
    """Ledger every source row of `plugin` not copied yet; return (planned, renumbered).

    `expected` is the number of rows to plan when the segment is still empty: the ledger is then not
    consulted, so SQLite streams the INSERT ... SELECT instead of first materialising it.
    """
    t, own = table.name, owner_table(table.name)
    fresh = expected is not None
    kept = conn.execute(
        f"INSERT INTO dst.{LEDGER} (seg, src_rowid, dst_rowid, run_id) "
        f"SELECT :seg, o.src_rowid, o.src_rowid, :run FROM {own} o WHERE o.plugin_id = :p "
        f"AND {'1' if fresh else _not_ledgered('o.src_rowid', seg)} "
        f"AND NOT EXISTS (SELECT 1 FROM dst.{t} d WHERE d.rowid = o.src_rowid)",
        {"seg": seg, "p": plugin, "run": run_id}).rowcount
    if fresh and kept == expected:
        return kept, 0
    renumbered = plan_renumbered(conn, table, plugin, seg, run_id)
    return kept + renumbered, renumbered


def plan_renumbered(conn: sqlite3.Connection, table: Table, plugin: str, seg: int, run_id: int) -> int:
    """Ledger the rest of `plugin`'s unledgered rows with fresh rowids above every rowid either file uses."""
    t, own = table.name, owner_table(table.name)
    args: dict[str, object] = {"seg": seg, "p": plugin, "run": run_id}
    # Above rows planned (ledgered) but not yet copied too, so no later copy of this run can collide either.
    args["base"] = conn.execute(
        f"SELECT max(coalesce((SELECT max(rowid) FROM dst.{t}), 0), coalesce((SELECT max(rowid) FROM src.{t}), 0), "
        f"coalesce((SELECT max(dst_rowid) FROM dst.{LEDGER} WHERE seg = :seg), 0))", args).fetchone()[0]
    return conn.execute(
        f"INSERT INTO dst.{LEDGER} (seg, src_rowid, dst_rowid, run_id) "
        f"SELECT :seg, o.src_rowid, :base + row_number() OVER (ORDER BY o.src_rowid), :run FROM {own} o "
        f"WHERE o.plugin_id = :p AND {_not_ledgered('o.src_rowid', seg)}", args).rowcount


def ledgered(conn: sqlite3.Connection, seg: int | None) -> bool:
    """Whether the segment holds any ledger entry."""
    if seg is None:
        return False
    return conn.execute(f"SELECT 1 FROM dst.{LEDGER} WHERE seg = ? LIMIT 1", (seg,)).fetchone() is not None


def copy_planned(conn: sqlite3.Connection, table: Table, cols: Columns, plugin: str, seg: int, run_id: int) -> int:
    """Copy the rows planned in this run, by SQLite alone, values as stored; return the rows written."""
    t = table.name
    target = [rowid_alias(table) or "rowid", *cols.values, "plugin_id"]
    values = ["l.dst_rowid", *(f"s.{c}" for c in cols.values), ":p"]
    return conn.execute(
        f"INSERT INTO dst.{t} ({', '.join(target)}) SELECT {', '.join(values)} FROM dst.{LEDGER} l "
        f"JOIN src.{t} s ON s.rowid = l.src_rowid WHERE l.seg = :seg AND l.run_id = :run AND l.linked = 0",
        {"seg": seg, "p": plugin, "run": run_id}).rowcount


def unledgered_count(conn: sqlite3.Connection, table: Table, plugin: str, seg: int | None) -> int:
    """Source rows of `plugin` with no ledger entry (0 after a complete copy)."""
    return int(conn.execute(
        f"SELECT count(*) FROM {owner_table(table.name)} o "
        f"WHERE o.plugin_id = ? AND {_not_ledgered('o.src_rowid', seg)}",
        (plugin,)).fetchone()[0])


_COPY_JOIN = ("LEFT JOIN src.{t} s ON s.rowid = l.src_rowid LEFT JOIN dst.{t} d ON d.rowid = l.dst_rowid "
              "AND (l.linked = 1 OR d.plugin_id = :p)")


def compare_sql(table: Table, cols: Columns, money: Sequence[str], where: str) -> str:
    """One pass over the segment's ledger entries matching `where`, joined to source and copy.

    Returns: entries, with a source row, with a copy, differing pairs, entries whose source row is gone
    without having been pruned, then (source total, copy total) of each `money` column over the pairs. Both
    sums run over the same rows in the same order, so equal values give bit-identical totals.
    """
    pair = "s.rowid IS NOT NULL AND d.rowid IS NOT NULL"
    sums = "".join(f", total(CASE WHEN {pair} THEN s.{c} END), total(CASE WHEN {pair} THEN d.{c} END)"
                   for c in money)
    return (
        "SELECT count(*), count(s.rowid), count(d.rowid), "
        f"coalesce(sum({pair} AND NOT ({cols.same()})), 0), "
        f"coalesce(sum(s.rowid IS NULL AND l.pruned = 0), 0){sums} FROM dst.{LEDGER} l "
        f"{_COPY_JOIN.format(t=table.name)} WHERE l.seg = :seg AND {where}")


def pair_check_sql(table: Table, cols: Columns, money: Sequence[str]) -> str:
    """This run's (source, copy) pairs: how many, how many differ, and (source, copy) totals of `money`.

    Inner joins: a pair count equal to the run's ledger count says no source row and no copy is missing, and the
    comparison then runs only once per row (cheaper than compare_sql's outer joins, which report what is lost).
    """
    sums = "".join(f", total(s.{c}), total(d.{c})" for c in money)
    return (f"SELECT count(*), coalesce(sum(NOT ({cols.same()})), 0){sums} FROM dst.{LEDGER} l "
            f"JOIN src.{table.name} s ON s.rowid = l.src_rowid JOIN dst.{table.name} d ON d.rowid = l.dst_rowid "
            "AND (l.linked = 1 OR d.plugin_id = :p) WHERE l.seg = :seg AND l.run_id = :run")


def differing_keys(conn: sqlite3.Connection, table: Table, cols: Columns, where: str, args: Mapping[str, object],
                   limit: int = 5) -> list[str]:
    """Keys of copies that differ from, or lost, their source row (for the error message); args: seg, p."""
    rows = conn.execute(
        f"SELECT l.src_rowid, l.dst_rowid, {key_expr(table, 's')}, {key_expr(table, 'd')}, "
        f"s.rowid IS NULL, d.rowid IS NULL FROM dst.{LEDGER} l {_COPY_JOIN.format(t=table.name)} "
        f"WHERE l.seg = :seg AND {where} AND ((s.rowid IS NULL AND l.pruned = 0) "
        f"OR d.rowid IS NULL OR (s.rowid IS NOT NULL AND NOT ({cols.same()}))) LIMIT :n", {**args, "n": limit})
    out = []
    for src_rowid, dst_rowid, skey, dkey, no_src, no_dst in rows:
        what = "copy missing" if no_dst else "source row missing" if no_src else "copy differs from source"
        out.append(f"{skey or dkey} ({what}; source rowid {src_rowid}, copy rowid {dst_rowid})")
    return out


def drop_stale_copies(conn: sqlite3.Connection, table: Table, cols: Columns, plugin: str, seg: int) -> tuple[int, int]:
    """--remap: forget copies whose source row `plugin` no longer owns; delete those still equal to it.

    A stale copy the bot has changed since is kept (never lose a write) but leaves the ledger. Returns
    (removed, kept).
    """
    t, own = table.name, owner_table(table.name)
    stale = (f"l.seg = :seg AND l.pruned = 0 AND EXISTS (SELECT 1 FROM src.{t} x WHERE x.rowid = l.src_rowid) "
             f"AND NOT EXISTS (SELECT 1 FROM {own} o WHERE o.src_rowid = l.src_rowid AND o.plugin_id = :p)")
    args = {"seg": seg, "p": plugin}
    removed = conn.execute(
        f"DELETE FROM dst.{t} WHERE plugin_id = :p AND rowid IN (SELECT l.dst_rowid FROM dst.{LEDGER} l "
        f"JOIN src.{t} s ON s.rowid = l.src_rowid JOIN dst.{t} d ON d.rowid = l.dst_rowid "
        f"WHERE {stale} AND {cols.same()})", args).rowcount
    kept = conn.execute(f"SELECT count(*) FROM dst.{LEDGER} l JOIN dst.{t} d ON d.rowid = l.dst_rowid WHERE {stale}",
                        args).fetchone()[0]
    conn.execute(f"DELETE FROM dst.{LEDGER} AS l WHERE {stale}", args)
    return removed, int(kept)


def collect_verified(conn: sqlite3.Connection, table: Table, cols: Columns, plugin: str, seg: int) -> None:
    """Add to temp.zx_verified the source rows of which dst holds a copy for `plugin` equal to them."""
    t = table.name
    conn.execute(
        f"INSERT OR IGNORE INTO temp.zx_verified (table_name, src_rowid, plugin_id) SELECT :t, l.src_rowid, :p "
        f"FROM dst.{LEDGER} l JOIN src.{t} s ON s.rowid = l.src_rowid JOIN dst.{t} d ON d.rowid = l.dst_rowid "
        f"AND d.plugin_id = :p WHERE l.seg = :seg AND {cols.same()}", {"t": t, "p": plugin, "seg": seg})


def delete_verified(conn: sqlite3.Connection, table: Table, delete: bool) -> int:
    """Rows of src whose every owner has a verified copy and one owner is selected: deleted, or only counted.

    Such rows then leave temp.zx_verified, so a later pass can never take a row that reused their rowid.
    """
    t, own = table.name, owner_table(table.name)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS zx_doomed (src_rowid INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM temp.zx_doomed")
    conn.execute(
        f"INSERT INTO temp.zx_doomed SELECT o.src_rowid FROM {own} o LEFT JOIN temp.zx_verified v "
        "ON v.table_name = :t AND v.src_rowid = o.src_rowid AND v.plugin_id = o.plugin_id GROUP BY o.src_rowid "
        "HAVING count(v.plugin_id) = count(*) AND max(o.plugin_id IN (SELECT plugin_id FROM temp.zx_selected))",
        {"t": t})
    if delete:
        done = conn.execute(f"DELETE FROM src.{t} WHERE rowid IN (SELECT src_rowid FROM temp.zx_doomed)").rowcount
    else:
        done = int(conn.execute("SELECT count(*) FROM temp.zx_doomed").fetchone()[0])
    conn.execute("DELETE FROM temp.zx_verified WHERE table_name = ? AND src_rowid IN "
                 "(SELECT src_rowid FROM temp.zx_doomed)", (t,))
    return done


def mark_pruned(conn: sqlite3.Connection, table: Table) -> int:
    """Flag the ledger entries of `table` (every plugin) whose source row no longer exists."""
    t = table.name
    return conn.execute(
        f"UPDATE dst.{LEDGER} SET pruned = 1 WHERE pruned = 0 AND seg IN (SELECT seg FROM dst.{SEGMENTS} "
        f"WHERE table_name = :t) AND NOT EXISTS (SELECT 1 FROM src.{t} s WHERE s.rowid = {LEDGER}.src_rowid)",
        {"t": t}).rowcount


# --- results and the check after a copy -------------------------------------------------------------


@dataclass
class TableResult:
    source_rows: int = 0         # rows of this plugin in the source
    copied: int = 0              # copied by this run
    linked: int = 0              # already in the file, brought there by a merge (round trip)
    earlier: int = 0             # copied by earlier runs
    renumbered: int = 0          # copies given a new rowid because theirs was taken in the file
    changed_since_copy: int = 0  # earlier copies that no longer equal their source row
    source_gone: int = 0         # earlier copies whose source row is gone (pruned ones included)
    copy_gone: int = 0           # earlier copies deleted from the file
    remap_removed: int = 0       # --remap: copies removed because the plugin no longer owns their source
    remap_detached: int = 0      # --remap: such copies kept because they changed (no longer traced)
    updated: int = 0             # merge: rows the plugin changed after the split, updated in place (in linked)


@dataclass
class PluginResult:
    plugin_id: str
    file: str
    status: str = "pending"
    tables: dict[str, TableResult] = field(default_factory=dict)
    money: dict[str, list[float]] = field(default_factory=dict)  # column -> [source, copy], this run's rows
    problems: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class CopyReport:
    """What split and merge report alike: each plugin's result and the problems found (ok when none)."""

    plugins: dict[str, PluginResult] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def rows_copied(self) -> int:
        return sum(t.copied for p in self.plugins.values() for t in p.tables.values())

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def check_table(conn: sqlite3.Connection, table: Table, cols: Columns, pid: str, seg: int, run_id: int,
                result: PluginResult, tr: TableResult, fresh: bool) -> None:
    """Counts, every value and money totals of this run's copies against their source rows."""
    name, money = table.name, [c for c in MONEY.get(table.name, ()) if c in cols.values]
    args = {"seg": seg, "p": pid, "run": run_id}
    if fresh and not (tr.source_rows or tr.copied or tr.linked):  # no row owned, none ledgered: nothing to compare
        for col in money:
            result.money.setdefault(col, [0.0, 0.0])
        return
    # On a first copy the plan took every source row, so what is left unledgered is arithmetic, not a scan.
    unledgered = tr.source_rows - tr.copied - tr.linked if fresh else unledgered_count(conn, table, pid, seg)
    count = conn.execute(f"SELECT count(*) FROM dst.{LEDGER} l WHERE l.seg = :seg AND l.run_id = :run",
                         args).fetchone()[0]
    with_dst, differ, *sums = conn.execute(pair_check_sql(table, cols, money), args).fetchone()
    if unledgered or count != tr.copied + tr.linked or with_dst != count or differ:
        keys = differing_keys(conn, table, cols, "l.run_id = :run", args)
        result.problems.append(
            f"{name}: source {tr.source_rows}, not copied {unledgered}, ledgered {count}, copies {with_dst}, "
            f"differing {differ}" + (f": {', '.join(keys)}" if keys else ""))
    for i, col in enumerate(money):
        pair = result.money.setdefault(col, [0.0, 0.0])
        pair[0] += sums[2 * i]
        pair[1] += sums[2 * i + 1]
        if sums[2 * i] != sums[2 * i + 1]:
            result.problems.append(f"{name}: total {col} of the copies {sums[2 * i + 1]!r} != source {sums[2 * i]!r}")
    if not fresh:
        count, with_src, with_dst, differ, _lost = conn.execute(
            compare_sql(table, cols, [], "l.run_id <> :run"), args).fetchone()
        tr.earlier, tr.changed_since_copy = count, differ
        tr.source_gone, tr.copy_gone = count - with_src, count - with_dst


# --- files: the source read-only, targets built aside and linked into place ------------------------------


def check_regular_file(path: Path) -> bool:
    """Whether `path` exists; refuse what is not a regular file (directory, FIFO, dangling symlink)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise StoreIOError(f"{path}: dangling symlink") from None
        return False
    if not stat.S_ISREG(st.st_mode):
        raise StoreIOError(f"{path}: is not a regular file, not a database")
    return True


def open_source(path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A scratch connection with `path` attached read-only as `src`, checked to be a readable store."""
    if not check_regular_file(path):
        raise ConfigError(f"{path}: shared database not found (shared_db in store.yaml)")
    conn = open_scratch(busy_timeout_ms)
    try:
        with translated_errors(path):
            attach(conn, path, "src", READ)
            tables = conn.execute("SELECT count(*) FROM src.sqlite_master WHERE type = 'table'").fetchone()[0]
            version = conn.execute("PRAGMA src.user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaError(f"{path}: schema version {version} is newer than this zepix_store knows "
                              f"({SCHEMA_VERSION}); upgrade zepix_store")
        if not tables:
            raise CorruptDatabaseError(f"{path}: source has no tables (empty or not the bot's database)")
    except BaseException:
        conn.close()
        raise
    return conn


@dataclass
class Target:
    """A file receiving copies: the final path, and the file actually written (`<name>.tmp` while new)."""

    path: Path
    file: Path
    created: bool
    attached: bool = False
    linked: bool = False

    @property
    def side_files(self) -> list[Path]:
        return [self.file, *(Path(f"{self.file}{s}") for s in ("-journal", "-wal", "-shm"))]


def tmp_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def prepare_target(conn: sqlite3.Connection, config: StoreConfig, path: Path) -> Target:
    """Attach `path` as `dst` for writing: a new file is built as `<name>.tmp`, an old one upgraded if needed."""
    stale = Target(path, tmp_path(path), created=True)
    for leftover in stale.side_files:  # from a run killed before linking: never verified, never used
        leftover.unlink(missing_ok=True)
    created = not check_regular_file(path)
    target = Target(path, stale.file if created else path, created)
    try:
        with translated_errors(target.file):
            if created:
                ensure_private_dir(path.parent)
                os.close(os.open(target.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            else:
                _upgrade_if_needed(config, path)
            attach(conn, target.file, "dst", "rw")
            target.attached = True
            conn.execute("PRAGMA dst.synchronous = FULL")
    except BaseException:
        release_target(conn, target)
        raise
    return target


def _upgrade_if_needed(config: StoreConfig, path: Path) -> None:
    """An isolated file of an older version is upgraded in place after a backup (as the Store would)."""
    own = connect_sync(path)
    try:
        if upgrade.needs_upgrade(own, path):
            backup_connection(own, path, config.backup_dir, "pre-upgrade", identity=identity_of(config, path))
            upgrade.upgrade(own, path, config.rules)
    finally:
        own.close()


@contextmanager
def target_transaction(conn: sqlite3.Connection, target: Target) -> Iterator[None]:
    """One write transaction over `dst`: schema and ledger made sure of first; rolled back on any error."""
    with translated_errors(target.file), transaction(conn):
        if conn.execute("PRAGMA dst.user_version").fetchone()[0] == 0:
            conn.execute(f"PRAGMA dst.user_version = {SCHEMA_VERSION}")
        for sql in [*create_schema_sql("dst"), *ledger_ddl("dst")]:
            conn.execute(sql)
        yield


def finish_target(conn: sqlite3.Connection, target: Target) -> None:
    """After COMMIT: put a new file under its final name (durably), never over an existing one."""
    if not target.created:
        return
    detach(conn, target)
    with translated_errors(target.path):
        fsync_path(target.file)
        fault.point(f"before_link:{target.path.name}")
        try:
            os.link(target.file, target.path)
        except FileExistsError:
            raise StoreIOError(f"{target.path}: appeared while splitting (is the bot running?); run split again") \
                from None
        target.linked = True
        target.file.unlink()
        fsync_path(target.path.parent, directory=True)
        fault.point(f"after_link:{target.path.name}")


def detach(conn: sqlite3.Connection, target: Target) -> None:
    if target.attached:
        conn.execute("DETACH DATABASE dst")
        target.attached = False


def release_target(conn: sqlite3.Connection, target: Target) -> None:
    """Detach; a new file that was not linked into place is removed (it was never verified or committed)."""
    detach(conn, target)
    if target.created and not target.linked:
        for leftover in target.side_files:
            leftover.unlink(missing_ok=True)


def check_existing_mappings(conn: sqlite3.Connection, paths: Sequence[Path], record: str, remap: bool) -> None:
    """Refuse (before writing anything) when a file was split with another mapping and `remap` is not set."""
    for path in paths:
        if remap or not check_regular_file(path):
            continue
        with translated_errors(path):
            attach(conn, path, "dst", READ)
            try:
                recorded = recorded_mapping(conn, "dst")
            finally:
                conn.execute("DETACH DATABASE dst")
        if recorded is not None and recorded != record:
            raise ConfigError(f"{path}: store.yaml's mapping changed since the last split into this file "
                              f"({mapping_changes(recorded, record)}); check it, then run split again with --remap "
                              "to re-attribute the copies")


def mapping_changes(recorded: str, current: str) -> str:
    """The logic_type values (or default id) whose target differs between two mapping records."""
    old, new = json.loads(recorded), json.loads(current)
    keys = sorted(set(old["mapping"]) | set(new["mapping"]))
    changed = [k for k in keys if old["mapping"].get(k) != new["mapping"].get(k)]
    if old["default_plugin_id"] != new["default_plugin_id"]:
        changed.append("default_plugin_id")
    if old.get("mapping_columns") != new.get("mapping_columns"):
        changed.append("mapping_columns")
    return "changed: " + ", ".join(repr(k) for k in changed)
