"""Back up the shared database, a plugin's file or all of them, and the retention of old backups.

One backup is backend/sqlite_backup.py's `backup_connection` (SQLite's online backup API, verified, linked under
its final name only when complete). Retention counts only plain backups of the same file; labelled safety
copies (pre-migrate, pre-merge, pre-prune, pre-restore, pre-upgrade) are never rotated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._fs import fsync_path
from ..backend.sqlite_backup import backup_connection, table_count
from ..backend.sqlite_file import translated_errors
from ..backup_identity import FileIdentity, backups_pattern, fallback_identity, identity_of
from ..config import StoreConfig
from ..errors import ConfigError, SchemaError
from ..progress import NO_PROGRESS, ProgressSink
from ..readonly import open_reader
from ..words import size

__all__ = ["BackupReport", "BackupResult", "back_up", "back_up_files", "backup_sources", "list_backups",
           "prune_backups"]

log = logging.getLogger("zepix_store.backup")


# --- retention --------------------------------------------------------------------------------------------------


def list_backups(backup_dir: Path, identity: FileIdentity, label: str | None = "") -> list[Path]:
    """The backups of the file with exactly `label` ('' = plain `backup` runs, None = any), newest first.

    Only names of the current form count: an older `<stem>-<stamp>.db` cannot tell two files named alike apart.
    """
    if not backup_dir.is_dir():
        return []
    pattern = backups_pattern(identity, label)
    found = [(m.group(1), p) for p in backup_dir.iterdir() if (m := pattern.fullmatch(p.name)) and p.is_file()]
    return [p for _, p in sorted(found, reverse=True)]


def prune_backups(backup_dir: Path, identity: FileIdentity, keep: int) -> list[Path]:
    """Delete all but the `keep` newest plain backups of the file; labelled safety copies are never deleted."""
    if keep < 1:
        raise ConfigError(f"--keep: must be at least 1, got {keep}")
    old = list_backups(backup_dir, identity)[keep:]
    for path in old:
        path.unlink(missing_ok=True)
    if old:
        fsync_path(backup_dir, directory=True)
    return old


# --- several files ----------------------------------------------------------------------------------------------


@dataclass
class BackupResult:
    """One file backed up: where the backup is, its size, and the old backups --keep deleted."""

    source: Path
    backup: Path
    bytes: int
    seconds: float
    deleted: list[Path] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"source": str(self.source), "backup": str(self.backup), "bytes": self.bytes,
                "seconds": round(self.seconds, 3), "deleted": [str(p) for p in self.deleted]}


def backup_sources(config: StoreConfig, plugins: Sequence[str] = (), everything: bool = False) -> list[Path]:
    """The files to back up: `--all` every existing database file, `--plugin` theirs, else the shared one."""
    if everything:
        files = [config.shared_db, *(p.db_path for p in config.plugins.values())]
        return [f for f in dict.fromkeys(files) if f == config.shared_db or f.exists()]
    if plugins:
        return list(dict.fromkeys(config.plugin(p).db_path for p in plugins))
    return [config.shared_db]


def back_up(source: Path, backup_dir: Path, keep: int | None = None, *, identity: FileIdentity | None = None,
            progress: ProgressSink = NO_PROGRESS) -> BackupResult:
    """Back up one file, then apply the retention of `keep` (if given) to its plain backups."""
    if not source.exists() and not source.is_symlink():
        raise ConfigError(f"{source}: no such database file", path=source)
    identity = identity or fallback_identity(source)
    started = time.monotonic()
    src = open_reader(source)
    try:
        if table_count(src) == 0:  # rotating real backups out for copies of nothing would lose them
            raise SchemaError(f"{source}: source has no tables (an empty file); nothing backed up", path=source)
        path = backup_connection(src, source, backup_dir, identity=identity, progress=progress)
    finally:
        src.close()
    result = BackupResult(source, path, path.stat().st_size, time.monotonic() - started)
    if keep is not None:
        with translated_errors(backup_dir):
            result.deleted = prune_backups(backup_dir, identity, keep)
    return result


@dataclass
class BackupReport:
    """What `back_up_files` did, one result per file, in order."""

    results: list[BackupResult] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"backups": [r.to_json() for r in self.results]}


def back_up_files(config: StoreConfig, plugins: Sequence[str] = (), everything: bool = False,
                  keep: int | None = None, progress: ProgressSink = NO_PROGRESS) -> BackupReport:
    """Back up the files `backup_sources` names, each recording what it is, then apply `keep` to each.

    Raises:
        ConfigError: `keep` is below 1, a plugin is unknown or a source file is missing.
    """
    if keep is not None and keep < 1:
        raise ConfigError(f"--keep: must be at least 1, got {keep}")
    report = BackupReport()
    for source in backup_sources(config, plugins, everything):
        result = back_up(source, config.backup_dir, keep, identity=identity_of(config, source), progress=progress)
        log.info("backed up %s (%s, %.1f s)", source, size(result.bytes), result.seconds)
        report.results.append(result)
    return report
