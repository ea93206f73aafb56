"""Copy each isolated plugin's rows from the shared database into its own file, verified.

The shared database is only read (never upgraded, never written) unless --prune is given. Every plugin with
`use_shared: false` is split, or only those named with --plugin. Rows are given their owner once and copied
by SQLite itself, values and storage classes exactly; each copy is recorded in the file's copy ledger, so a
rerun copies only what is new. After copying, counts, every copied value and the money totals are compared
with the source before anything is committed; a new file is built as `<name>.tmp` and appears under its name
only once verified.

examples:
  zepix-store split --dry-run          # the preflight: what would be copied, problems, disk
  zepix-store split                    # every isolated plugin
  zepix-store split --plugin v6-logic-01-1min --json
  zepix-store split --prune            # then delete verified copies from the shared file

exit codes: 0 done, 1 a verification failed or a plugin was refused (key collision), 2 bad config or input
(also: the mapping changed since the last split, see --remap), 3 disk full / I/O, 4 busy, 5 corrupt database.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import attribution, fault
from . import copy_ledger as cl
from ._output import Progress, emit_report, human, print_table
from .attribution_report import AttributionReport, attribution_report
from .backup import backup_file
from .backup_identity import identity_of
from .cli import command_main
from .config import StoreConfig, load_config
from .db import read_snapshot, transaction, translated_errors
from .errors import ConfigError, VerifyError
from .schema import ATTRIBUTION_ORDER, TABLE_BY_NAME, TABLES

Say = Callable[[str], None]


@dataclass(kw_only=True)
class SplitReport(cl.CopyReport):
    shared_db: str
    dry_run: bool
    files: dict[str, str] = field(default_factory=dict)  # file -> created | updated | up to date | failed
    buckets: dict[str, attribution.TableBuckets] = field(default_factory=dict)
    attribution: AttributionReport | None = None
    absent_tables: list[str] = field(default_factory=list)
    absent_columns: dict[str, list[str]] = field(default_factory=dict)
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    preflight: dict[str, Any] = field(default_factory=dict)
    prune: dict[str, Any] = field(default_factory=dict)
    # Wall time per phase: attribute, report (unmapped, duplicates), verify (buckets, counts, values, money)
    # and copy (per file, its verification included).
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = round(self.seconds.get(phase, 0.0) + time.perf_counter() - start, 6)

    def to_json(self) -> dict[str, Any]:
        doc = super().to_json()
        doc["buckets"] = {t: {**asdict(b), "bucket_total": b.bucket_total} for t, b in self.buckets.items()}
        doc["rows_copied"] = self.rows_copied()
        doc["attribution"] = self.attribution.to_json() if self.attribution else None
        return doc


def select_plugins(config: StoreConfig, plugin_ids: Sequence[str]) -> list[str]:
    """The plugins to split: those named (each must have an isolated_db), else every use_shared: false one."""
    if not plugin_ids:
        return sorted(p.plugin_id for p in config.plugins.values() if not p.use_shared)
    for pid in plugin_ids:
        if config.plugin(pid).isolated_db is None:
            raise ConfigError(f"{config.plugin(pid).config_path}: database.isolated_db: plugin {pid} has none to "
                              "split into")
    return sorted(set(plugin_ids))


def group_by_file(config: StoreConfig, plugins: Sequence[str]) -> dict[Path, list[str]]:
    groups: dict[Path, list[str]] = {}
    for pid in plugins:
        path = config.plugin(pid).isolated_db
        assert path is not None
        groups.setdefault(path, []).append(pid)
    return groups


def split(config: StoreConfig, plugin_ids: Sequence[str] = (), *, dry_run: bool = False, prune: bool = False,
          remap: bool = False, progress: Say | None = None) -> SplitReport:
    """Copy the selected plugins' rows into their isolated files and verify them (see the module doc).

    Raises:
        ConfigError: unknown plugin, missing shared database, or a changed mapping without `remap`.
        StoreError: I/O, busy or corrupt files (nothing is left half-written under a final name).
    """
    say = progress or (lambda _msg: None)
    plugins = select_plugins(config, plugin_ids)
    groups = group_by_file(config, plugins)
    report = SplitReport(shared_db=str(config.shared_db), dry_run=dry_run)
    conn = cl.open_source(config.shared_db)
    try:
        cl.check_existing_mappings(conn, list(groups), cl.mapping_record(config.mapping, config.default_plugin_id,
                                                                           config.mapping_columns), remap)
        # One snapshot: the bot may commit between the attribution and the counts of the same table.
        with translated_errors(config.shared_db), read_snapshot(conn):  # a damaged page is named here
            present = _attribute(conn, config, report, say)
        if dry_run:
            preflight(conn, config, groups, present, report)
            if prune:
                report.prune = {"would_delete": prune_preview(conn, config, plugins, present)}
            return report
        for path, members in groups.items():
            with report.timed("copy"):  # verification included; its own share is also counted apart
                _split_file(conn, config, path, members, present, remap, report, say)
        if prune and report.ok:
            report.prune = prune_shared(conn, config, plugins, present, say)
    finally:
        conn.close()
    return report


def _attribute(conn: sqlite3.Connection, config: StoreConfig, report: SplitReport, say: Say) -> dict[str, set[str]]:
    """Attribute every source row once (temp owner tables) and fill the report's attribution part."""
    say(f"split: attributing the rows of {config.shared_db}")
    with report.timed("attribute"):
        present = attribution.build_owners(conn, "src", config.rules)
    fault.point("after_owners")
    with report.timed("report"):
        report.attribution = attribution_report(conn, "src", config.rules, present)
    for table in TABLES:
        cols = present.get(table.name)
        if cols is None:
            report.absent_tables.append(table.name)
            continue
        if missing := [c for c in table.column_names if c not in cols]:
            report.absent_columns[table.name] = missing
        if extra := sorted(cols - set(table.all_column_names)):
            report.extra_columns[table.name] = extra
        with report.timed("verify"):  # every row in exactly one bucket: part of the verification
            buckets = attribution.count_buckets(conn, "src", table.name)
        report.buckets[table.name] = buckets
        if buckets.bucket_total != buckets.source_rows:
            report.problems.append(f"{table.name}: attribution buckets hold {buckets.bucket_total} rows, "
                                   f"the source {buckets.source_rows}")
    return present


class _NothingToDo(Exception):
    """Raised inside a target's transaction to roll back a run that would change nothing but bookkeeping."""


Present = dict[str, set[str]]  # table -> the columns it has in the source


def _split_file(conn: sqlite3.Connection, config: StoreConfig, path: Path, members: list[str], present: Present,
                remap: bool, report: SplitReport, say: Say) -> None:
    """Copy and verify every member plugin's rows into `path` in one transaction; record the outcome."""
    results = {p: cl.PluginResult(p, str(path)) for p in members}
    report.plugins.update(results)
    target = cl.prepare_target(conn, config, path)
    try:
        with cl.target_transaction(conn, target):
            _split_in_transaction(conn, config, target, members, present, remap, results, report, say)
        fault.point(f"after_commit:{path.name}")
        cl.finish_target(conn, target)
        report.files[str(path)] = "created" if target.created else "updated"
    except _NothingToDo:
        report.files[str(path)] = "up to date"
    except VerifyError as exc:
        report.files[str(path)] = "failed"
        report.problems.append(str(exc))
        for r in results.values():
            r.status = "failed" if r.status != "refused" else r.status
    finally:
        cl.release_target(conn, target)
    for r in results.values():
        report.problems.extend(f"{r.plugin_id}: refused: {p}" for p in r.problems if r.status == "refused")


def _split_in_transaction(conn: sqlite3.Connection, config: StoreConfig, target: cl.Target, members: list[str],
                          present: dict[str, set[str]], remap: bool, results: dict[str, cl.PluginResult],
                          report: SplitReport, say: Say) -> None:
    run_id = cl.start_run(conn, "dst", "split", config.shared_db, members)
    record = cl.mapping_record(config.mapping, config.default_plugin_id, config.mapping_columns)
    recorded = cl.recorded_mapping(conn, "dst")
    if remap and recorded not in (None, record):
        _remap_file(conn, present, report, say)
    cl.record_mapping(conn, "dst", record)
    for pid in members:
        _copy_plugin(conn, pid, present, run_id, results[pid], say, report, config.default_plugin_id)
    problems = [f"{r.plugin_id}: {p}" for r in results.values() if r.status != "refused" for p in r.problems]
    if problems:
        raise VerifyError(f"{target.path}: verification failed, nothing committed: " + "; ".join(problems))
    changed = any(t.copied or t.linked for r in results.values() for t in r.tables.values())
    if not (changed or target.created or recorded != record):
        raise _NothingToDo()
    conn.execute("PRAGMA analysis_limit = 1000")
    conn.execute("ANALYZE dst")
    fault.point(f"before_commit:{target.path.name}")


def _copy_plugin(conn: sqlite3.Connection, pid: str, present: dict[str, set[str]], run_id: int, result: cl.PluginResult,
                 say: Say, report: SplitReport, default: str) -> None:
    buckets = report.buckets
    tables = [TABLE_BY_NAME[n] for n in ATTRIBUTION_ORDER if n in present]
    segs = {t.name: cl.segment(conn, "dst", t, pid) for t in tables}
    owned = {t.name: attribution.owned_rows(buckets[t.name], pid, default) for t in tables}  # counted once
    collisions = [f"{t.name}: {c}" for t in tables if owned[t.name]
                  for c in cl.key_collisions(conn, t, pid, segs[t.name])]
    if collisions:
        result.status = "refused"
        result.problems.append("natural key collision, nothing copied for this plugin: " + "; ".join(collisions))
        return
    for table in tables:
        name, tr = table.name, result.tables.setdefault(table.name, cl.TableResult())
        cols = cl.columns_for(conn, table, present[name])
        tr.source_rows = owned[name]
        fresh = not cl.ledgered(conn, segs[name])
        seg = segs[name] or cl.segment(conn, "dst", table, pid, create=True)
        assert seg is not None
        # Owning no row and never copied, every statement below would scan the owner table to touch no row.
        idle = fresh and not tr.source_rows
        tr.linked = 0 if idle else cl.link_back(conn, table, cols, pid, seg, run_id, same_plugin=True)
        planned, tr.renumbered = (0, 0) if idle else cl.plan_copies(
            conn, table, pid, seg, run_id, tr.source_rows - tr.linked if fresh else None)
        tr.copied = 0 if idle else cl.copy_planned(conn, table, cols, pid, seg, run_id)
        if tr.copied != planned:
            result.problems.append(f"{name}: planned {planned} copies, wrote {tr.copied} (source changed?)")
        fault.point(f"after_copy:{pid}:{name}")
        if tr.source_rows or tr.copied:
            say(f"split: {pid} {name}: {tr.copied:,} copied, {tr.source_rows:,} in the source")
        with report.timed("verify"):
            cl.check_table(conn, table, cols, pid, seg, run_id, result, tr, fresh)
    result.status = "copied" if any(t.copied for t in result.tables.values()) else "up to date"


def _remap_file(conn: sqlite3.Connection, present: dict[str, set[str]], report: SplitReport, say: Say) -> None:
    """--remap: drop copies whose source the new mapping gives to another plugin (unless the bot changed them)."""
    segments = conn.execute(f"SELECT seg, table_name, plugin_id FROM dst.{cl.SEGMENTS} ORDER BY seg").fetchall()
    for seg, name, pid in segments:
        if name not in present:
            continue
        table = TABLE_BY_NAME[name]
        removed, detached = cl.drop_stale_copies(conn, table, cl.columns_for(conn, table, present[name]), pid, seg)
        tr = report.plugins.setdefault(pid, cl.PluginResult(pid, "(remap)")).tables.setdefault(name, cl.TableResult())
        tr.remap_removed, tr.remap_detached = removed, detached
        if removed or detached:
            say(f"split: --remap {pid} {name}: {removed} stale copies removed, {detached} kept (changed)")


# --- dry run ---------------------------------------------------------------------------------------------


def preflight(conn: sqlite3.Connection, config: StoreConfig, groups: dict[Path, list[str]], present: Present,
              report: SplitReport) -> None:
    """--dry-run: what would be copied and what would go wrong; reads only and creates no file."""
    for path, members in groups.items():
        exists = cl.check_regular_file(path)
        if exists:
            cl.attach(conn, path, "dst", cl.READ)
        try:
            for pid in members:
                report.plugins[pid] = _preview_plugin(conn, pid, str(path), present, exists)
        finally:
            if exists:
                conn.execute("DETACH DATABASE dst")
    for r in report.plugins.values():
        report.problems.extend(f"{r.plugin_id}: would be refused: {p}" for p in r.problems)
    report.preflight = {
        "foreign_key_problems": dict(conn.execute(
            "SELECT [table], count(*) FROM pragma_foreign_key_check(NULL, 'src') GROUP BY 1").fetchall()),
        "disk": _disk_check(config.shared_db, list(groups), report),
        "writable": _permission_check(list(groups), report),
    }


def _preview_plugin(conn: sqlite3.Connection, pid: str, path: str, present: Present, exists: bool) -> cl.PluginResult:
    result = cl.PluginResult(pid, path, status="would copy")
    for name in ATTRIBUTION_ORDER:
        if name not in present:
            continue
        table, tr = TABLE_BY_NAME[name], result.tables.setdefault(name, cl.TableResult())
        tr.source_rows = int(conn.execute(f"SELECT count(*) FROM {attribution.owner_table(name)} "
                                          "WHERE plugin_id = ?", (pid,)).fetchone()[0])
        seg = cl.segment(conn, "dst", table, pid) if exists else None
        tr.copied = cl.unledgered_count(conn, table, pid, seg) if seg is not None else tr.source_rows
        tr.earlier = tr.source_rows - tr.copied
        if exists and cl.has_table(conn, "dst", name):
            result.problems += [f"{name}: {c}" for c in cl.key_collisions(conn, table, pid, seg)]
    if not any(t.copied for t in result.tables.values()):
        result.status = "up to date"
    return result


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _disk_check(source: Path, targets: list[Path], report: SplitReport) -> list[dict[str, Any]]:
    """Free space of each target folder's file system against the source's size (copies are about as big)."""
    size = sum(os.stat(p).st_size for p in (source, Path(f"{source}-wal")) if p.exists())
    checks = []
    for folder in sorted({_existing_ancestor(t.parent) for t in targets}):
        free = shutil.disk_usage(folder).free
        checks.append({"folder": str(folder), "free_bytes": free, "source_bytes": size, "ok": free >= size})
        if free < size:
            report.problems.append(f"{folder}: {free:,} bytes free, the source holds {size:,}")
    return checks


def _permission_check(targets: list[Path], report: SplitReport) -> list[dict[str, Any]]:
    checks = []
    for target in targets:
        where = target if target.exists() else _existing_ancestor(target.parent)
        ok = os.access(where, os.W_OK | (os.X_OK if where.is_dir() else 0))
        checks.append({"path": str(where), "ok": ok})
        if not ok:
            report.problems.append(f"{where}: not writable (needed for {target})")
    return checks


# --- prune -----------------------------------------------------------------------------------------------


def prune_shared(conn: sqlite3.Connection, config: StoreConfig, selected: Sequence[str], present: dict[str, set[str]],
                 say: Say) -> dict[str, Any]:
    """Delete from the shared file the rows every owner holds a verified copy of, after a backup.

    A row is deleted only if one of its owners is among `selected` and every owner is an isolated plugin
    (not the default id, not use_shared) whose file holds a copy equal to it. Each isolated file's check and
    the deletes run in one write transaction on the shared file, so a row changed meanwhile is kept.
    """
    files = _prunable_files(config)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS zx_selected (plugin_id TEXT PRIMARY KEY)")
    conn.executemany("INSERT OR IGNORE INTO temp.zx_selected VALUES (?)", [(p,) for p in selected])
    result: dict[str, Any] = {"backup": None, "deleted": {}, "ledger_marked": 0}
    if not sum(_prune_pass(conn, files, present, delete=False).values()):
        result["ledger_marked"] = _mark_pruned(conn, files, present)
        return result
    result["backup"] = str(backup_file(config.shared_db, config.backup_dir, "pre-prune",
                                           identity=identity_of(config, config.shared_db)))
    fault.point("after_prune_backup")
    conn.execute("DETACH DATABASE src")
    with translated_errors(config.shared_db):
        cl.attach(conn, config.shared_db, "src", "rw")
    result["deleted"] = _prune_pass(conn, files, present, delete=True)
    fault.point("after_prune_commit")
    say(f"split: pruned {sum(result['deleted'].values()):,} rows from {config.shared_db}")
    result["ledger_marked"] = _mark_pruned(conn, files, present)
    return result


def prune_preview(conn: sqlite3.Connection, config: StoreConfig, selected: Sequence[str],
                  present: Present) -> dict[str, int]:
    """Rows --prune would delete now, per table (read-only: existing copies only)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS zx_selected (plugin_id TEXT PRIMARY KEY)")
    conn.executemany("INSERT OR IGNORE INTO temp.zx_selected VALUES (?)", [(p,) for p in selected])
    return _prune_pass(conn, _prunable_files(config), present, delete=False)


def _prunable_files(config: StoreConfig) -> dict[Path, list[str]]:
    files: dict[Path, list[str]] = {}
    for pid, plugin in sorted(config.plugins.items()):
        path = plugin.isolated_db
        if not plugin.use_shared and path is not None and pid != config.default_plugin_id \
                and cl.check_regular_file(path):
            files.setdefault(path, []).append(pid)
    return files


def _prune_pass(conn: sqlite3.Connection, files: dict[Path, list[str]], present: dict[str, set[str]],
                delete: bool) -> dict[str, int]:
    """Collect verified copies file by file; with `delete`, delete fully verified rows in the same transaction."""
    conn.execute("DROP TABLE IF EXISTS temp.zx_verified")
    conn.execute("CREATE TEMP TABLE zx_verified (table_name TEXT, src_rowid INTEGER, plugin_id TEXT, "
                 "PRIMARY KEY (table_name, src_rowid, plugin_id)) WITHOUT ROWID")
    counts = dict.fromkeys(present, 0)
    for path, pids in files.items():
        cl.attach(conn, path, "dst", cl.READ)
        try:
            if not cl.has_table(conn, "dst", cl.LEDGER):
                continue
            with translated_errors(path), transaction(conn):
                for pid in pids:
                    for name, cols in present.items():
                        table = TABLE_BY_NAME[name]
                        seg = cl.segment(conn, "dst", table, pid)
                        if seg is not None:
                            cl.collect_verified(conn, table, cl.columns_for(conn, table, cols), pid, seg)
                for name in reversed(ATTRIBUTION_ORDER):
                    if name in present:
                        counts[name] += cl.delete_verified(conn, TABLE_BY_NAME[name], delete)
                fault.point("before_prune_commit" if delete else "prune_preview")
        finally:
            conn.execute("DETACH DATABASE dst")
    return counts


def _mark_pruned(conn: sqlite3.Connection, files: dict[Path, list[str]], present: dict[str, set[str]]) -> int:
    """Flag ledger entries whose source row is gone, so merge knows a rowid there may be reused."""
    marked = 0
    for path in files:
        cl.attach(conn, path, "dst", "rw")
        try:
            if cl.has_table(conn, "dst", cl.LEDGER):
                with translated_errors(path), transaction(conn):
                    fault.point(f"before_mark_pruned:{path.name}")
                    marked += sum(cl.mark_pruned(conn, TABLE_BY_NAME[name]) for name in present)
        finally:
            conn.execute("DETACH DATABASE dst")
    return marked


# --- command line ------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="ID",
                        help="split only this plugin (repeatable; default: every plugin with use_shared false)")
    parser.add_argument("--dry-run", action="store_true",
                        help="preflight only: report what would be copied and every problem; write nothing")
    parser.add_argument("--prune", action="store_true",
                        help="after verifying, back up the shared file and delete the rows every owner has a "
                             "verified copy of")
    parser.add_argument("--remap", action="store_true",
                        help="accept a mapping that changed since the last split: re-attribute the copies")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    progress = Progress(enabled=not args.quiet)
    report = split(config, args.plugin, dry_run=args.dry_run, prune=args.prune, remap=args.remap,
                   progress=progress)
    return emit_report("split", report, args.json, print_report)


def print_report(report: SplitReport) -> None:
    """The human form of the report: per-plugin table, attribution buckets, anomalies."""
    mode = "dry run (nothing written)" if report.dry_run else "split"
    print(f"{mode}: {report.shared_db}")
    rows = [(p.plugin_id, name, t.source_rows, t.copied, t.earlier + t.linked, t.renumbered, p.status)
            for p in report.plugins.values() for name, t in p.tables.items()
            if t.source_rows or t.copied or t.earlier or t.linked]
    empty = [p.plugin_id for p in report.plugins.values() if not any(
        t.source_rows or t.earlier or t.linked for t in p.tables.values())]
    if rows:
        print_table(["plugin", "table", "source", "copied" if not report.dry_run else "to copy", "earlier",
                     "renumbered", "status"], rows)
    if empty:
        print("no rows in the source for: " + ", ".join(empty))
    for path, status in report.files.items():
        print(f"file {path}: {status}")
    if report.files and set(report.files.values()) == {"up to date"}:
        print("nothing to do: every file is up to date")
    money = [(p.plugin_id, col, s, c) for p in report.plugins.values() for col, (s, c) in p.money.items()
             if p.tables.get("trades", cl.TableResult()).copied]
    if money:
        print()
        print_table(["plugin", "money", "source total", "copy total"], money)
    _print_attribution(report)
    _print_preflight(report.preflight)
    for key, value in report.prune.items():
        print(f"prune {key.replace('_', ' ')}: {human(value)}")


def _print_attribution(report: SplitReport) -> None:
    print()
    # Rows per plugin are in the table above (and in --json): here only where each source row went.
    print_table(["table", "source rows", "one owner", "orphans", "shared rows", "shared copies", "total"],
                [(t, b.source_rows, sum(b.by_plugin.values()), b.orphans, b.shared_rows,
                  sum(b.shared_copies.values()), b.bucket_total) for t, b in report.buckets.items()])
    if report.attribution is not None:
        print("\n".join(report.attribution.lines()))
    if report.absent_tables:
        print("absent tables: " + ", ".join(report.absent_tables))
    for table, cols in report.absent_columns.items():
        print(f"absent columns in {table} (copies get the default): {', '.join(cols)}")
    for table, cols in report.extra_columns.items():
        print(f"extra columns in {table} (not copied): {', '.join(cols)}")


def _print_preflight(preflight: dict[str, Any]) -> None:
    """The dry run's checks in words: foreign keys, free disk per folder, write permission per path (each once)."""
    if "foreign_key_problems" in preflight:
        problems = preflight["foreign_key_problems"]
        print("preflight foreign keys: " + (", ".join(f"{t}: {n:,} rows reference a missing parent"
                                                       for t, n in problems.items()) or "no dangling references"))
    for disk in preflight.get("disk", []):
        print(f"preflight disk: {disk['folder']}: {disk['free_bytes']:,} bytes free, the copies need about "
              f"{disk['source_bytes']:,} ({'ok' if disk['ok'] else 'NOT ENOUGH'})")
    seen: dict[str, bool] = {}
    for place in preflight.get("writable", []):
        seen[place["path"]] = seen.get(place["path"], True) and place["ok"]
    for path, ok in seen.items():
        print(f"preflight writable: {path}: {'ok' if ok else 'NOT WRITABLE'}")


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("split", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
