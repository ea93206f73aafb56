"""Bring plugins' isolated rows back into the shared database: the way back for a plugin set to use_shared: true.

Set the plugin's `use_shared` to true, run merge, then start the bot. The shared file is backed up first (and
upgraded to the current schema if it is older), then, in one transaction per isolated file, every row of the
plugin goes back exactly once: a row that came from the shared file by split and is still there is only
recorded; one the plugin changed since is updated in place; a pruned one is restored under its old id when
that id is free; rows the plugin wrote in its own file are added with new ids. The shared file's copy ledger
makes a rerun add nothing twice. Before committing, counts, every value and the money totals are compared
with the isolated file. A natural key the plugin already holds in the shared file refuses that plugin.

examples:
  zepix-store merge --plugin v6-logic-01-1min
  zepix-store merge --plugin v3-logic-01-5min --plugin v3-logic-02-15min --json

exit codes: 0 done, 1 a verification failed or a plugin was refused, 2 bad config or input (plugin not
use_shared, no isolated file), 3 disk full / I/O, 4 busy, 5 corrupt database.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import attribution, fault, upgrade
from . import copy_ledger as cl
from ._output import Progress, emit_report, print_table
from .backup import backup_connection
from .backup_identity import identity_of
from .cli import command_main
from .config import StoreConfig, load_config
from .db import BUSY_TIMEOUT_MS, connect_sync, transaction, translated_errors
from .errors import ConfigError, VerifyError
from .schema import ATTRIBUTION_ORDER, TABLE_BY_NAME, Table

Say = Callable[[str], None]


@dataclass(kw_only=True)
class MergeReport(cl.CopyReport):
    shared_db: str
    backup: str | None = None
    upgraded_from: int | None = None

    def to_json(self) -> dict[str, Any]:
        doc = super().to_json()
        doc["rows_merged"] = self.rows_copied()
        return doc


def check_plugins(config: StoreConfig, plugin_ids: Sequence[str]) -> dict[Path, list[str]]:
    """The isolated files to merge from and their plugins; each plugin must be use_shared and have its file."""
    if not plugin_ids:
        raise ConfigError("--plugin: name at least one plugin to merge back")
    groups: dict[Path, list[str]] = {}
    for pid in sorted(set(plugin_ids)):
        plugin = config.plugin(pid)
        if not plugin.use_shared:
            raise ConfigError(f"{plugin.config_path}: database.use_shared: plugin {pid} is still isolated; set it "
                              "to true first (merge brings an isolated plugin's rows back to the shared file)")
        if plugin.isolated_db is None or not cl.check_regular_file(plugin.isolated_db):
            raise ConfigError(f"{plugin.config_path}: database.isolated_db: {plugin.isolated_db} does not exist, "
                              "nothing to merge")
        groups.setdefault(plugin.isolated_db, []).append(pid)
    return groups


def merge(config: StoreConfig, plugin_ids: Sequence[str], progress: Say | None = None) -> MergeReport:
    """Merge the plugins' isolated rows into the shared file (see the module doc).

    Raises:
        ConfigError: unknown plugin, a plugin still isolated, or no isolated file.
        StoreError: I/O, busy or corrupt files; the shared file is then unchanged (one transaction per file).
    """
    say = progress or (lambda _msg: None)
    groups = check_plugins(config, plugin_ids)
    report = MergeReport(shared_db=str(config.shared_db))
    report.backup, report.upgraded_from = prepare_shared(config)
    conn = cl.open_scratch(BUSY_TIMEOUT_MS)
    try:
        for path, members in groups.items():
            _merge_file(conn, config, path, members, report, say)
    finally:
        conn.close()
    return report


def prepare_shared(config: StoreConfig) -> tuple[str | None, int | None]:
    """Back up the shared file, then bring it to the current schema; return (backup, version upgraded from)."""
    path = config.shared_db
    conn = connect_sync(path, create=True, synchronous="FULL")
    try:
        backup = None
        if not upgrade.is_empty(conn):
            backup = str(backup_connection(conn, path, config.backup_dir, "pre-merge",
                                            identity=identity_of(config, path)))
            fault.point("after_merge_backup")
        version = upgrade.file_version(conn, path)
        if upgrade.needs_upgrade(conn, path):
            upgrade.upgrade(conn, path, config.rules)
            return backup, version
        if upgrade.is_empty(conn):
            with translated_errors(path), transaction(conn):
                upgrade.initialise(conn)
        return backup, None
    finally:
        conn.close()


def _merge_file(conn: sqlite3.Connection, config: StoreConfig, path: Path, members: list[str],
                report: MergeReport, say: Say) -> None:
    results = {p: cl.PluginResult(p, str(path)) for p in members}
    report.plugins.update(results)
    with translated_errors(path):
        cl.attach(conn, path, "src", cl.READ)
    try:
        present = {t: attribution.source_columns(conn, "src", t) for t in ATTRIBUTION_ORDER}
        present = {t: cols for t, cols in present.items() if "plugin_id" in cols}
        _select_rows(conn, present, members)
        with translated_errors(config.shared_db):
            cl.attach(conn, config.shared_db, "dst", "rw")
        try:
            _merge_in_transaction(conn, config, path, members, present, results, say)
        except VerifyError as exc:
            report.problems.append(str(exc))
        finally:
            conn.execute("DETACH DATABASE dst")
    finally:
        conn.execute("DETACH DATABASE src")
    for r in results.values():
        report.problems.extend(f"{r.plugin_id}: refused: {p}" for p in r.problems if r.status == "refused")


def _merge_in_transaction(conn: sqlite3.Connection, config: StoreConfig, path: Path, members: list[str],
                          present: dict[str, set[str]], results: dict[str, cl.PluginResult], say: Say) -> None:
    conn.execute("PRAGMA dst.synchronous = FULL")
    with translated_errors(config.shared_db), transaction(conn):
        for sql in cl.ledger_ddl("dst"):
            conn.execute(sql)
        run_id = cl.start_run(conn, "dst", "merge", path, members)
        for pid in members:
            _merge_plugin(conn, pid, present, run_id, results[pid], say)
        problems = [f"{r.plugin_id}: {p}" for r in results.values() if r.status != "refused" for p in r.problems]
        if problems:
            for r in results.values():
                r.status = "failed" if r.status != "refused" else r.status
            raise VerifyError(f"{config.shared_db}: merge from {path} failed verification, nothing committed: "
                              + "; ".join(problems))
        conn.execute("PRAGMA analysis_limit = 1000")
        conn.execute("ANALYZE dst")
        fault.point("before_merge_commit")
    fault.point("after_merge_commit")


def _select_rows(conn: sqlite3.Connection, present: dict[str, set[str]], members: list[str]) -> None:
    """Temp owner tables for the merge: the isolated file's rows of the merged plugins, by their plugin_id."""
    marks = ", ".join("?" * len(members))
    for name in present:
        own = attribution.owner_table(name)
        conn.execute(f"DROP TABLE IF EXISTS {own}")
        conn.execute(f"CREATE TABLE {own} (src_rowid INTEGER NOT NULL, plugin_id TEXT NOT NULL, "
                     "orphan INTEGER NOT NULL DEFAULT 0)")
        conn.execute(f"INSERT INTO {own} SELECT rowid, plugin_id, 0 FROM src.{TABLE_BY_NAME[name].name} "
                     f"WHERE plugin_id IN ({marks})", members)
        conn.execute(f"CREATE INDEX {own}_rowid ON zx_owner_{TABLE_BY_NAME[name].name} (src_rowid)")


def _merge_plugin(conn: sqlite3.Connection, pid: str, present: dict[str, set[str]], run_id: int,
                  result: cl.PluginResult, say: Say) -> None:
    """Update, link, then copy one plugin's rows; a key collision rolls back this plugin only."""
    conn.execute("SAVEPOINT zx_plugin")
    tables = [TABLE_BY_NAME[n] for n in ATTRIBUTION_ORDER if n in present]
    cols = {t.name: cl.columns_for(conn, t, present[t.name]) for t in tables}
    fresh = {t.name: not cl.ledgered(conn, cl.segment(conn, "dst", t, pid)) for t in tables}
    segs = {t.name: cl.segment(conn, "dst", t, pid, create=True) or 0 for t in tables}
    for table in tables:
        tr = result.tables.setdefault(table.name, cl.TableResult())
        tr.source_rows = int(conn.execute(f"SELECT count(*) FROM {attribution.owner_table(table.name)} "
                                          "WHERE plugin_id = ?", (pid,)).fetchone()[0])
        tr.updated = _update_changed(conn, table, cols[table.name], pid, segs[table.name])
        tr.linked = cl.link_back(conn, table, cols[table.name], pid, segs[table.name], run_id, same_plugin=False)
    collisions = [f"{t.name}: {c}" for t in tables for c in cl.key_collisions(conn, t, pid, segs[t.name])]
    if collisions:
        conn.execute("ROLLBACK TO zx_plugin")
        conn.execute("RELEASE zx_plugin")
        result.status = "refused"
        result.problems.append("natural key already in the shared file, nothing merged for this plugin: "
                               + "; ".join(collisions))
        return
    for table in tables:
        tr, seg = result.tables[table.name], segs[table.name]
        planned, tr.renumbered = _plan(conn, table, pid, seg, run_id)
        tr.copied = cl.copy_planned(conn, table, cols[table.name], pid, seg, run_id)
        if tr.copied != planned:
            result.problems.append(f"{table.name}: planned {planned} rows, wrote {tr.copied}")
        fault.point(f"after_merge:{pid}:{table.name}")
        if tr.source_rows:
            say(f"merge: {pid} {table.name}: {tr.copied:,} added, {tr.linked:,} already there "
                f"({tr.updated:,} updated)")
        cl.check_table(conn, table, cols[table.name], pid, seg, run_id, result, tr, fresh[table.name])
    conn.execute("RELEASE zx_plugin")
    result.status = "merged" if any(t.copied or t.updated for t in result.tables.values()) else "up to date"


def _update_changed(conn: sqlite3.Connection, table: Table, cols: cl.Columns, pid: str, seg: int) -> int:
    """Rows split from the shared file that the plugin changed since: write its state over the old row.

    Only a row still carrying the plugin's id (not a shared-lineage row) and never pruned (its rowid cannot
    have been reused) is the same row.
    """
    back = cl.segment(conn, "src", table, pid)
    if not cols.values or back is None:
        return 0
    t, own = table.name, attribution.owner_table(table.name)
    targets = ", ".join(cols.values)
    values = ", ".join(f"s.{c}" for c in cols.values)
    return conn.execute(
        f"UPDATE dst.{t} AS d SET ({targets}) = ({values}) FROM src.{cl.LEDGER} m "
        f"JOIN {own} o ON o.src_rowid = m.dst_rowid AND o.plugin_id = :p JOIN src.{t} s ON s.rowid = m.dst_rowid "
        f"WHERE m.seg = :back AND m.pruned = 0 AND d.rowid = m.src_rowid AND d.plugin_id = :p "
        f"AND NOT ({cols.same()}) AND NOT EXISTS (SELECT 1 FROM dst.{cl.LEDGER} l "
        "WHERE l.seg = :seg AND l.src_rowid = m.dst_rowid)", {"back": back, "seg": seg, "p": pid}).rowcount


def _plan(conn: sqlite3.Connection, table: Table, pid: str, seg: int, run_id: int) -> tuple[int, int]:
    """Ledger the rows to add: a pruned row gets its old shared rowid back when free, the rest new rowids."""
    kept = 0
    back = cl.segment(conn, "src", table, pid)
    if back is not None:
        t, own = table.name, attribution.owner_table(table.name)
        conn.execute("DROP TABLE IF EXISTS temp.zx_back")
        conn.execute("CREATE TEMP TABLE zx_back (iso_rowid INTEGER PRIMARY KEY, shared_rowid INTEGER NOT NULL)")
        conn.execute(f"INSERT OR IGNORE INTO temp.zx_back SELECT dst_rowid, src_rowid FROM src.{cl.LEDGER} "
                     "WHERE seg = ?", (back,))
        kept = conn.execute(
            f"INSERT INTO dst.{cl.LEDGER} (seg, src_rowid, dst_rowid, run_id) "
            f"SELECT :seg, o.src_rowid, b.shared_rowid, :run FROM {own} o "
            "JOIN temp.zx_back b ON b.iso_rowid = o.src_rowid WHERE o.plugin_id = :p "
            f"AND NOT EXISTS (SELECT 1 FROM dst.{cl.LEDGER} l WHERE l.seg = :seg AND l.src_rowid = o.src_rowid) "
            f"AND NOT EXISTS (SELECT 1 FROM dst.{t} d WHERE d.rowid = b.shared_rowid)",
            {"seg": seg, "p": pid, "run": run_id}).rowcount
    renumbered = cl.plan_renumbered(conn, table, pid, seg, run_id)
    return kept + renumbered, renumbered


# --- command line ------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="ID", required=True,
                        help="plugin to merge back (repeatable); its config must say use_shared: true")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    report = merge(config, args.plugin, progress=Progress(enabled=not args.quiet))
    return emit_report("merge", report, args.json, print_report)


def print_report(report: MergeReport) -> None:
    print(f"merge into {report.shared_db}" + (f" (backup {report.backup})" if report.backup else ""))
    if report.upgraded_from is not None:
        print(f"upgraded the shared file from schema version {report.upgraded_from}")
    rows = [(p.plugin_id, name, t.source_rows, t.copied, t.linked, t.updated, t.renumbered, p.status)
            for p in report.plugins.values() for name, t in p.tables.items() if t.source_rows or t.earlier]
    if rows:
        print_table(["plugin", "table", "isolated rows", "added", "already there", "updated", "new ids", "status"],
                    rows)
    money = [(p.plugin_id, col, s, c) for p in report.plugins.values() for col, (s, c) in p.money.items()]
    if money:
        print()
        print_table(["plugin", "money", "isolated total", "merged total"], money)


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("merge", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
