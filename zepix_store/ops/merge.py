"""merge: plugins' isolated rows back into the shared file, through the synchronisation.

The shared file is backed up first (only when the merge will change something) and brought to the current
schema if it is an older store file (or created when missing); then each isolated file is synchronised into it in
short committed chunks. A legacy shared file that was never migrated (schema version 0, no `plugin_id`) is
refused, dry run included: adding `plugin_id` in place breaks a bot still running its old code, so that step is
`zepix-store migrate`'s, taken on purpose once the bot uses the facade.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import attribution, fault, upgrade
from ..backend.sqlite_backup import backup_connection
from ..backend.sqlite_file import connect_sync, transaction, translated_errors
from ..backup_identity import identity_of
from ..config import StoreConfig
from ..errors import ConfigError
from ..plugin_lock import DEFAULT_LOCK_WAIT_S, plugin_locks, with_file_mates
from ..progress import NO_PROGRESS, ProgressSink
from ..readonly import open_reader
from ..schema import ATTRIBUTION_ORDER, SCHEMA_VERSION
from .sync import Direction, SyncJob, Unsettled, synchronise
from .sync.files import READ, check_regular_file
from .sync.preview import preview
from .sync.report import SyncReport
from .sync.shared import open_shared

__all__ = ['check_plugins', 'check_migrated', 'merge', 'MergeReport', 'prepare_shared', 'shared_columns']


@dataclass(kw_only=True)
class MergeReport(SyncReport):
    shared_db: str
    dry_run: bool = False
    backup: str | None = None
    upgraded_from: int | None = None

    def to_json(self) -> dict[str, Any]:
        doc = super().to_json()
        doc["rows_merged"] = self.rows_copied()
        return doc


def check_plugins(config: StoreConfig, plugin_ids: Sequence[str], routed: bool = True) -> dict[Path, list[str]]:
    """The isolated files to merge from and their plugins; each must have its file (and, if `routed`, be shared)."""
    if not plugin_ids:
        raise ConfigError("--plugin: name at least one plugin to merge back")
    groups: dict[Path, list[str]] = {}
    for pid in sorted(set(plugin_ids)):
        plugin = config.plugin(pid)
        if routed and not plugin.use_shared:
            raise ConfigError(f"{plugin.config_path}: database.use_shared: plugin {pid} is still isolated; set it "
                              "to true first, or use `zepix-store flip` (merge brings an isolated plugin's rows back "
                              "to the shared file)")
        if plugin.isolated_db is None or not check_regular_file(plugin.isolated_db):
            raise ConfigError(f"{plugin.config_path}: database.isolated_db: {plugin.isolated_db} does not exist, "
                              "nothing to merge")
        groups.setdefault(plugin.isolated_db, []).append(pid)
    return groups


def merge(config: StoreConfig, plugin_ids: Sequence[str], *, dry_run: bool = False, prefer: str | None = None,
          progress: ProgressSink = NO_PROGRESS, max_hold_ms: float = 100.0, routed: bool = True,
          say: Callable[[str], None] = lambda _line: None, lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
          backup: bool = True, unsettled: Unsettled = Unsettled.FAIL) -> MergeReport:
    """Synchronise the plugins' isolated rows into the shared file (see the module doc).

    `backup=False`: no backup of the shared file (flip's last round: its first pass made one). `unsettled`: what
    rows still changing after the last round mean.

    Raises:
        ConfigError: unknown plugin, a plugin still isolated (with `routed`), no isolated file, or a shared file
            never migrated (see check_migrated).
        StoreError: I/O, busy or corrupt files.
    """
    groups = check_plugins(config, plugin_ids, routed)
    locked = [p for members in groups.values() for p in members]
    with nullcontext() if dry_run else plugin_locks(config.data_dir, with_file_mates(config, locked), "merge",
                                                         lock_wait_s):
        report = MergeReport(direction=Direction.TO_SHARED.value, shared_db=str(config.shared_db), dry_run=dry_run)
        changes, migrate_first = True, check_migrated(config)
        if dry_run or backup and not migrate_first:
            planned = _preview(config, groups, prefer, report, migrate_first)
            if dry_run:
                return report
            changes = any(p.writes or p.conflicts for p in planned.values())
            report.plugins.clear()
            report.problems.clear()
        # A rerun that will change nothing leaves no new backup behind.
        report.backup, report.upgraded_from = prepare_shared(config, backup=backup and changes)
        conn = open_shared(config.shared_db, "rw")
        try:
            present = shared_columns(conn)
            for path, members in groups.items():
                job = SyncJob(config, path, members, Direction.TO_SHARED, present, prefer=prefer,
                              max_hold_ms=max_hold_ms, unsettled=unsettled, progress=progress, say=say)
                progress.start(f"merge {path.name}", None, "tables")
                synchronise(conn, job, report)
                progress.done()
                fault.point("after_merge_commit")
        finally:
            conn.close()
        return report


def shared_columns(conn: sqlite3.Connection) -> dict[str, set[str]]:
    """The columns each table has in the attached `sh` (tables it lacks left out)."""
    return {t: cols for t in ATTRIBUTION_ORDER if (cols := attribution.source_columns(conn, "sh", t))}


def check_migrated(config: StoreConfig) -> bool:
    """Whether the shared file must be created or brought to the current schema first; read without writing it.

    Raises:
        ConfigError: the shared file is a legacy one never migrated (version 0): only `migrate` adds `plugin_id`.
    """
    path = config.shared_db
    if not check_regular_file(path):
        return True
    conn = open_reader(path)  # never read-write: that alone would switch a rollback-journal file to WAL
    try:
        with translated_errors(path):
            if upgrade.is_empty(conn):
                return True
            version = upgrade.file_version(conn, path)
    finally:
        conn.close()
    if version == 0:
        raise ConfigError(
            f"{path}: the shared file was never migrated (schema version 0, no plugin_id); nothing written. Run "
            "`zepix-store migrate` first: it adds plugin_id in place, after a backup. A bot still running its old "
            "code breaks on a migrated file, so switch it to the facade (zepix_store.compat.TradeDatabase) first",
            path=path)
    return version < SCHEMA_VERSION


def _preview(config: StoreConfig, groups: dict[Path, list[str]], prefer: str | None, report: MergeReport,
             migrate_first: bool) -> dict[str, Any]:
    """Plan every file against the shared file as it is; the report shows what would change."""
    with tempfile.TemporaryDirectory(prefix="zepix-merge-plan-") as scratch:
        shared = config.shared_db
        if migrate_first:
            # Planned against what the merge would merge into: a private copy, brought to the current schema.
            report.warnings.append(f"{shared}: would be brought to the current schema first")
            shared = Path(scratch) / shared.name
            if check_regular_file(config.shared_db):
                src = open_reader(config.shared_db)
                dst = sqlite3.connect(shared)
                try:
                    src.backup(dst)
                finally:
                    dst.close()
                    src.close()
            own = connect_sync(shared, create=True)
            try:
                if upgrade.is_empty(own):
                    with transaction(own):
                        upgrade.initialise(own)
                else:
                    upgrade.upgrade(own, shared, config.rules)
            finally:
                own.close()
        return _plan_against(config, shared, groups, prefer, report)


def _plan_against(config: StoreConfig, shared: Path, groups: dict[Path, list[str]], prefer: str | None,
                  report: MergeReport) -> dict[str, Any]:
    conn = open_shared(shared, READ)
    planned: dict[str, Any] = {}
    try:
        present = shared_columns(conn)
        for path, members in groups.items():
            job = SyncJob(config, path, members, Direction.TO_SHARED, present, prefer=prefer, dry_run=True)
            planned.update(preview(conn, job))
    finally:
        conn.close()
    report.plugins.update(planned)
    report.problems.extend(f"{pid}: would be refused: {p}" for pid, r in planned.items() for p in r.problems)
    return planned


def prepare_shared(config: StoreConfig, backup: bool = True) -> tuple[str | None, int | None]:
    """Back up the shared file, then bring it to the current schema; return (backup, version upgraded from).

    A legacy file (version 0) is refused (check_migrated), before anything opens it read-write.
    """
    path = config.shared_db
    check_migrated(config)
    conn = connect_sync(path, create=True, synchronous="FULL", data_dir=config.data_dir)
    try:
        made = None
        if backup and not upgrade.is_empty(conn):
            made = str(backup_connection(conn, path, config.backup_dir, "pre-merge",
                                         identity=identity_of(config, path)))
            fault.point("after_merge_backup")
        version = upgrade.file_version(conn, path)
        if upgrade.needs_upgrade(conn, path):
            upgrade.upgrade(conn, path, config.rules)
            return made, version
        if upgrade.is_empty(conn):
            with translated_errors(path), transaction(conn):
                upgrade.initialise(conn)
        return made, None
    finally:
        conn.close()
