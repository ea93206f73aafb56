"""Give the shared database `plugin_id` in place, after a backup: the bot keeps its one file, now per plugin.

Steps: a quick_check (a corrupt file is refused before anything is written), a WAL-safe backup labelled
`pre-migrate` in backup_dir, then ONE transaction (upgrade.upgrade): `plugin_id` on all ten tables, each row
given its owner, the per-plugin indexes, fresh statistics and the schema version. Killed at any instant, the file
is either fully old or fully new. A second run reports "already migrated" and changes nothing.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import attribution, fault, upgrade
from ..attribution import AttributionRules
from ..attribution_report import AttributionReport, attribution_report
from ..backend.sqlite_backup import backup_connection, clean_stale_tmp
from ..backend.sqlite_file import (
    BUSY_TIMEOUT_MS,
    connect_sync,
    quick_check,
    read_snapshot,
    translated_errors,
)
from ..backup_identity import FileIdentity, fallback_identity, identity_of
from ..change_tracking import tracked_tables
from ..config import StoreConfig
from ..errors import ConfigError, SchemaError, StoreBusyError, StoreIOError
from ..progress import NO_PROGRESS, ProgressSink
from ..readonly import open_reader
from ..schema import CLOSE_INDEX, SCHEMA_VERSION, TABLE_BY_NAME, TABLES, Table

__all__ = ["ALREADY", "DRY_RUN", "MIGRATED", "MigrateReport", "clean_backup_dir", "migrate_file", "migrate_shared",
           "planned_action", "rows_by_plugin"]

log = logging.getLogger("zepix_store.migrate")

MIGRATED = "migrated"
ALREADY = "already migrated"
DRY_RUN = "dry run"
ANALYSIS_LIMIT = 1000  # rows ANALYZE samples per index: plans need estimates, not exact counts
CACHE_KIB = 131072  # page cache per schema (main, temp): big table rebuilds and joins halve; memory stays bounded


@dataclass
class MigrateReport:
    """What migrate did (or, with dry_run, would do) to one file."""

    path: Path
    status: str = ""
    from_version: int = 0
    to_version: int = SCHEMA_VERSION
    backup: Path | None = None
    actions: dict[str, str] = field(default_factory=dict)  # table -> create | rebuild | alter
    added_columns: dict[str, list[str]] = field(default_factory=dict)
    buckets: dict[str, attribution.TableBuckets] = field(default_factory=dict)
    rows_by_plugin: dict[str, dict[str, int]] = field(default_factory=dict)  # already migrated: from plugin_id
    attribution: AttributionReport | None = None
    reindexed: list[str] = field(default_factory=list)  # from version 1: indexes rebuilt, no row attributed
    retriggered: list[str] = field(default_factory=list)  # from version 1 or 2: change-tracking triggers rewritten
    db_bytes: int = 0
    seconds: float = 0.0

    def to_json(self, default: str) -> dict[str, Any]:
        """The report as one JSON document (`default`: the default plugin id, owner of orphans)."""
        tables: dict[str, Any] = {}
        for t in TABLES:
            b = self.buckets.get(t.name)
            entry: dict[str, Any] = {"action": self.actions.get(t.name)}
            if b is not None:
                entry.update(source_rows=b.source_rows, by_plugin=dict(sorted(b.by_plugin.items())),
                             orphans=b.orphans, shared_rows=b.shared_rows,
                             shared_copies=dict(sorted(b.shared_copies.items())))
            if t.name in self.added_columns:
                entry["added_columns"] = self.added_columns[t.name]
            if t.name in self.rows_by_plugin:
                entry["rows_by_plugin"] = self.rows_by_plugin[t.name]
            tables[t.name] = entry
        return {
            "path": str(self.path), "status": self.status, "from_version": self.from_version,
            "to_version": self.to_version, "backup": str(self.backup) if self.backup else None,
            "default_plugin_id": default, "seconds": round(self.seconds, 3), "db_bytes": self.db_bytes,
            "tables": tables,
            "orphans": {n: b.orphans for n, b in self.buckets.items() if b.orphans},
            "shared_lineage": {n: {"rows": b.shared_rows, "plugins": sorted(b.shared_copies)}
                               for n, b in self.buckets.items() if b.shared_rows},
            "attribution": self.attribution.to_json() if self.attribution else None,
            "reindexed": self.reindexed,
            "retriggered": self.retriggered,
        }


def planned_action(table: Table, columns: set[str] | None) -> str:
    """What upgrade.upgrade does to `table` given its present columns (a test keeps the two in step)."""
    if columns is None:
        return "create"
    if table.key or "plugin_id" in columns or not set(table.column_names) <= columns:
        return "rebuild"
    return "alter"


def migrate_file(
    path: Path, rules: AttributionRules, backup_dir: Path, *,
    dry_run: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS, identity: FileIdentity | None = None,
    progress: ProgressSink = NO_PROGRESS,
) -> MigrateReport:
    """Migrate `path` in place (after a backup into `backup_dir`), or with `dry_run` only report.

    `identity` is what the pre-migrate backup records (backup_identity.identity_of); `progress` hears the
    backup and the upgrade.
    """
    started = time.monotonic()
    report = MigrateReport(path=path)
    if not path.exists() and not path.is_symlink():
        raise ConfigError(f"{path}: no such database file (shared_db in store.yaml)", path=path)
    with _busy_message(path, busy_timeout_ms), translated_errors(path):
        reader = open_reader(path, busy_timeout_ms)
        try:
            _preflight(reader, report)
            if report.status == ALREADY:
                report.rows_by_plugin = rows_by_plugin(reader)
            elif dry_run:
                report.status = DRY_RUN
                with read_snapshot(reader):  # the attribution and its counts from one committed state
                    _plan(reader, report, rules)
        finally:
            reader.close()
        if not report.status:
            _check_writable(path)
            _migrate(report, rules, backup_dir, busy_timeout_ms, identity or fallback_identity(path), progress)
    report.seconds = time.monotonic() - started
    return report


@contextmanager
def _busy_message(path: Path, busy_timeout_ms: int) -> Iterator[None]:
    try:
        yield
    except StoreBusyError as exc:
        raise StoreBusyError(
            f"locked by another process: {path} (waited {busy_timeout_ms / 1000:g} s for the write lock; "
            "stop the bot, or retry with a longer --busy-timeout); nothing was changed", path=path) from exc


def _preflight(conn: sqlite3.Connection, report: MigrateReport) -> None:
    """Refuse corrupt, empty and newer files before anything is written; spot an already migrated one."""
    quick_check(conn, report.path)
    report.from_version = upgrade.file_version(conn, report.path)
    names = {r[0] for r in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")}
    if not names & set(TABLE_BY_NAME):
        raise SchemaError(f"{report.path}: source has no tables of the trading bot (an empty or foreign file); "
                          "nothing to migrate", path=report.path)
    page_count, page_size = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))
    report.db_bytes = int(page_count) * int(page_size)
    if report.from_version == SCHEMA_VERSION:
        report.status = ALREADY


def rows_by_plugin(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Rows per plugin_id per table of a migrated file."""
    return {t.name: {str(p): n for p, n in conn.execute(
        f"SELECT plugin_id, count(*) FROM main.{t.name} GROUP BY plugin_id ORDER BY plugin_id")} for t in TABLES}


def _plan(conn: sqlite3.Connection, report: MigrateReport, rules: AttributionRules) -> None:
    """Attribute on the read-only connection (temp tables only) and say what upgrade would do."""
    if report.from_version >= 1:  # an upgrade in place: no row changes (see upgrade._upgrade_in_place)
        report.reindexed = [CLOSE_INDEX]
        report.retriggered = [t.name for t in tracked_tables(conn)]
        return
    present = attribution.build_owners(conn, "main", rules)
    report.attribution = attribution_report(conn, "main", rules, present)
    report.buckets = {t.name: attribution.count_buckets(conn, "main", t.name) for t in TABLES if t.name in present}
    for table in TABLES:
        cols = present.get(table.name)
        report.actions[table.name] = planned_action(table, cols)
        missing = [c for c in table.column_names if cols is not None and c not in cols]
        if missing:
            report.added_columns[table.name] = missing


def _migrate(report: MigrateReport, rules: AttributionRules, backup_dir: Path, busy_timeout_ms: int,
             identity: FileIdentity, progress: ProgressSink) -> None:
    path = report.path
    conn = connect_sync(path, synchronous="FULL", busy_timeout_ms=busy_timeout_ms)
    try:
        if not upgrade.needs_upgrade(conn, path):  # another run finished since the preflight
            report.status, report.rows_by_plugin = ALREADY, rows_by_plugin(conn)
            return
        _probe_write_lock(conn)
        log.info("backing up %s ...", path)
        report.backup = backup_connection(conn, path, backup_dir, "pre-migrate", identity=identity,
                                          progress=progress)
        fault.point("after_backup")
        log.info("backup %s; migrating in one transaction ...", report.backup)
        for pragma in (f"analysis_limit = {ANALYSIS_LIMIT}", f"main.cache_size = -{CACHE_KIB}",
                       f"temp.cache_size = -{CACHE_KIB}"):
            conn.execute(f"PRAGMA {pragma}")
        done = upgrade.upgrade(conn, path, rules, progress=progress)
        fault.point("after_commit")
    finally:
        conn.close()
    report.status = MIGRATED
    report.actions = {t: "create" for t in done.created_tables}
    report.actions.update({t: "rebuild" for t in done.rebuilt_tables})
    report.actions.update({t: "alter" for t in done.altered_tables})
    report.added_columns, report.buckets = done.added_columns, done.buckets
    report.attribution, report.reindexed, report.retriggered = done.attribution, done.reindexed, done.retriggered


def _check_writable(path: Path) -> None:
    """Refuse a file or folder this user cannot write before the backup (SQLite would open it read-only)."""
    if not os.access(path, os.W_OK):
        read_only_fs = os.statvfs(path).f_flag & os.ST_RDONLY
        why = "is on a read-only file system" if read_only_fs else "is not writable by this user"
        raise StoreIOError(f"read-only: {path} {why}; nothing was changed, no backup taken")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreIOError(f"read-only: {path.parent} (the folder of {path.name}) is not writable by this user, "
                           f"and SQLite must create {path.name}-wal there; nothing was changed, no backup taken")


def _probe_write_lock(conn: sqlite3.Connection) -> None:
    """Wait (busy timeout) for the write lock once before the backup, so a busy bot is refused early."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("ROLLBACK")


def clean_backup_dir(backup_dir: Path, identity: FileIdentity) -> None:
    """Remove the `.tmp` of a killed backup even when no new backup is taken."""
    with translated_errors(backup_dir):
        for tmp in clean_stale_tmp(backup_dir, identity):
            log.info("removed the unfinished backup %s of a killed run", tmp)


def migrate_shared(config: StoreConfig, *, dry_run: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS,
                   progress: ProgressSink = NO_PROGRESS) -> MigrateReport:
    """Migrate the shared file `config` names (see migrate_file), its backup recording what the file is.

    Raises:
        ConfigError: a negative busy timeout, or no shared file.
    """
    if busy_timeout_ms < 0:
        raise ConfigError(f"--busy-timeout: must be 0 or more, got {busy_timeout_ms / 1000:g}")
    identity = identity_of(config, config.shared_db)
    if not dry_run:
        clean_backup_dir(config.backup_dir, identity)
    return migrate_file(config.shared_db, config.rules, config.backup_dir, dry_run=dry_run,
                        busy_timeout_ms=busy_timeout_ms, identity=identity, progress=progress)
