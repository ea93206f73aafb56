"""Put a backup back in place of a database file, keeping the file it replaces.

Order: the backup is integrity-checked first (a bad one leaves the target untouched); the target is locked
exclusively, which fails at once if any other process has it open; the file being replaced is kept as a backup
of its own in backup_dir (label `pre-restore`); then the backup is written INTO the target through SQLite's
backup API in one transaction (killed half-way, the rollback journal returns the old content). Switching the
target out of WAL mode under the lock checkpoints and removes its `-wal`/`-shm`, so no stale `-wal` can replay
over the restored copy. A backup of another file than the target (as its recorded identity says) is refused
unless forced.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import fault, upgrade
from .._fs import fsync_path, make_private_dir
from ..backend.sqlite_backup import backup_connection, table_count
from ..backend.sqlite_file import check_wal_pairing, quick_check, translated_errors
from ..backup_identity import (
    ISOLATED,
    SHARED,
    FileIdentity,
    fallback_identity,
    identity_of,
    read_identity,
    strip_identity,
)
from ..config import StoreConfig
from ..errors import ConfigError, CorruptDatabaseError, SchemaError, StoreBusyError
from ..readonly import open_reader

__all__ = ["RestoreReport", "resolve_target", "restore", "restore_file"]

log = logging.getLogger("zepix_store.restore")
_OPEN_ELSEWHERE = ("database is locked", "database table is locked")


@dataclass
class RestoreReport:
    """What restore did: the file kept in its place, stale side files removed, what each file is."""

    backup: Path
    target: Path
    kept: Path | None = None   # the replaced file, kept in backup_dir (None: there was no file)
    kept_corrupt: bool = False
    removed: list[Path] = field(default_factory=list)  # stale -wal/-shm removed under the lock
    seconds: float = 0.0
    backup_of: FileIdentity | None = None  # what the backup records (None: nothing, an older backup)
    target_is: FileIdentity | None = None
    forced: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"backup": str(self.backup), "target": str(self.target),
                "kept": str(self.kept) if self.kept else None, "kept_corrupt": self.kept_corrupt,
                "removed": [str(p) for p in self.removed], "seconds": round(self.seconds, 3),
                "backup_of": _identity_json(self.backup_of), "target_is": _identity_json(self.target_is),
                "forced": self.forced}


def _identity_json(identity: FileIdentity | None) -> dict[str, Any] | None:
    if identity is None:
        return None
    return {"role": identity.role, "path": identity.path, "plugins": list(identity.plugins),
            "schema_version": identity.schema_version}


def restore_file(backup: Path, target: Path, backup_dir: Path, *, config: StoreConfig | None = None,
                 force: bool = False) -> RestoreReport:
    """Check `backup`, keep `target` in `backup_dir`, then write `backup` into `target` under an exclusive lock.

    Raises:
        ConfigError: the backup is of another file than `target` (as `config` names it), or records no
            identity, and `force` is not set; nothing is touched.
    """
    started = time.monotonic()
    report = RestoreReport(backup, target, forced=force)
    _check_paths(backup, target)
    src = _open_backup(backup, target)
    try:
        report.backup_of = read_identity(src)
        report.target_is = identity_of(config, target) if config is not None else fallback_identity(target)
        if not force:
            _check_identity(report, config)
        stale = _side_files(target)
        with _exclusive(target) as (conn, created):
            # Leaving WAL mode under the lock folds a stale -wal into the file (kept below) and deletes it;
            # what it leaves, the -shm, is removed here. Both count as removed.
            unlinked = _remove_side_files(target)
            report.removed = [p for p in stale if not p.exists()] + [p for p in unlinked if p not in stale]
            if not created:
                report.kept, report.kept_corrupt = _keep(conn, target, backup_dir, report.target_is)
            fault.point("before_restore_copy")
            with translated_errors(target):
                src.backup(conn)  # one transaction in rollback-journal mode: all of it or none
                fault.point("after_restore_copy")
                strip_identity(conn)  # killed before this, the file only carries its own backup's record
                quick_check(conn, target)
                conn.execute("PRAGMA journal_mode = WAL")  # as the bot and the store run it
    finally:
        src.close()
    report.seconds = time.monotonic() - started
    return report


def _check_identity(report: RestoreReport, config: StoreConfig | None) -> None:
    """Refuse a backup of another file (or of nothing it can name) unless forced: exit 2, both named."""
    backup_of, target_is = report.backup_of, report.target_is
    assert target_is is not None
    if backup_of is not None and backup_of.same_file(target_is):
        return
    what = (backup_of.describe() if backup_of is not None
            else "no recorded file (made by an older zepix_store, or not by zepix_store)")
    hint = _where_it_belongs(backup_of, config) if backup_of is not None else None
    right = f"restore it where it belongs ({hint}), or " if hint else ""
    raise ConfigError(f"{report.backup}: refusing to restore: it is a backup of {what}, but the target "
                      f"{report.target} is {target_is.describe()}; nothing was restored. {right.capitalize()}"
                      "add --force to restore it onto this file anyway", path=report.backup)


def _where_it_belongs(backup_of: FileIdentity, config: StoreConfig | None) -> str | None:
    """The restore option that names the file a backup is of, when the config still has that file."""
    if config is None:
        return None
    files = [config.shared_db, *(p.isolated_db for p in config.plugins.values() if p.isolated_db is not None)]
    for path in dict.fromkeys(files):
        if identity_of(config, path).same_file(backup_of):
            if backup_of.role == SHARED:
                return "no --plugin or --target: the shared file is the default"
            if backup_of.role == ISOLATED and backup_of.plugins:
                return f"--plugin {backup_of.plugins[0]}"
            return f"--target {path}"
    return None


def _check_paths(backup: Path, target: Path) -> None:
    if not backup.is_file():
        raise ConfigError(f"{backup}: no such backup file", path=backup)
    if target.exists() and os.path.samefile(backup, target):
        raise ConfigError(f"{backup}: the backup and the target are the same file", path=backup)


def _open_backup(backup: Path, target: Path) -> sqlite3.Connection:
    """Open and fully check the backup; a bad one leaves the target untouched."""
    untouched = f"; nothing was restored, {target} is unchanged"
    try:
        with translated_errors(backup):
            conn = open_reader(backup)
            try:
                _check_backup(conn, backup)
            except BaseException:
                conn.close()
                raise
    except (CorruptDatabaseError, SchemaError) as exc:
        raise type(exc)(f"{exc}{untouched}", path=exc.path or backup) from exc
    return conn


def _check_backup(conn: sqlite3.Connection, backup: Path) -> None:
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    if rows != ["ok"]:
        raise CorruptDatabaseError(f"{backup}: backup fails its integrity check: {'; '.join(map(str, rows[:3]))}",
                                   path=backup)
    if table_count(conn) == 0:
        raise CorruptDatabaseError(f"{backup}: backup has no tables (an empty file)", path=backup)
    upgrade.file_version(conn, backup)  # refuses a file from a newer zepix_store


@contextmanager
def _exclusive(target: Path) -> Iterator[tuple[sqlite3.Connection, bool]]:
    """A connection holding the target's EXCLUSIVE lock in rollback-journal mode; (connection, created)."""
    check_wal_pairing(target)  # journal_mode = DELETE below would replay a foreign log into the file it keeps
    created = _create_if_missing(target)
    uri = f"file:{urllib.parse.quote(str(target.absolute()))}?mode=rw"
    with translated_errors(target):
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=0)
    try:
        _lock(conn, target)
        yield conn, created
    except BaseException:
        conn.close()
        if created:  # the file this run made holds nothing to keep
            for leftover in (target, Path(f"{target}-journal")):
                leftover.unlink(missing_ok=True)
        raise
    finally:
        conn.close()


def _create_if_missing(target: Path) -> bool:
    if target.exists() or target.is_symlink():
        return False
    with translated_errors(target):
        make_private_dir(target.parent, tighten=True)
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        fsync_path(target.parent, directory=True)
    return True


def _lock(conn: sqlite3.Connection, target: Path) -> None:
    """Take and keep the exclusive lock (busy timeout 0): any other connection to a WAL file prevents it.

    In WAL mode every open connection holds a shared lock on the file, so leaving WAL mode fails while
    another process has it open, idle or writing. Leaving WAL mode also checkpoints and deletes the -wal.
    """
    try:
        with translated_errors(target):
            conn.execute("PRAGMA locking_mode = EXCLUSIVE")
            mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("COMMIT")  # in EXCLUSIVE locking mode the lock stays after COMMIT
    except StoreBusyError:
        raise _busy(target) from None
    except CorruptDatabaseError as exc:
        raise CorruptDatabaseError(f"{exc}: the file to replace is not a readable database; move it aside "
                                   "and run restore again; nothing was restored", path=target) from exc
    if str(mode).lower() != "delete":
        raise _busy(target)


def _busy(target: Path) -> StoreBusyError:
    return StoreBusyError(f"in use by another process: {target} is open elsewhere (stop the bot first); "
                          "nothing was restored")


def _side_files(target: Path) -> list[Path]:
    """The -wal/-shm beside the target now."""
    sides = (Path(f"{target}{suffix}") for suffix in ("-wal", "-shm"))
    return [side for side in sides if side.exists() or side.is_symlink()]


def _remove_side_files(target: Path) -> list[Path]:
    """Remove -wal/-shm left beside the target: under our exclusive lock nobody can be using them."""
    removed = _side_files(target)
    for side in removed:
        side.unlink()
    return removed


def _keep(conn: sqlite3.Connection, target: Path, backup_dir: Path, identity: FileIdentity) -> tuple[Path, bool]:
    """Back up the file about to be replaced; a corrupt one is kept too (unchecked), so nothing is lost."""
    try:
        with translated_errors(target):
            quick_check(conn, target)
    except CorruptDatabaseError:
        log.warning("%s fails its integrity check; keeping it anyway as pre-restore-corrupt", target)
        return backup_connection(conn, target, backup_dir, "pre-restore-corrupt", check=False,
                                 identity=identity), True
    return backup_connection(conn, target, backup_dir, "pre-restore", identity=identity), False


# --- where ------------------------------------------------------------------------------------------------


def resolve_target(config: StoreConfig, plugin: str | None, target: str | None) -> Path:
    """The file to restore into: `--target` (inside data_dir), the plugin's file, or the shared file."""
    if plugin is not None:
        return config.plugin(plugin).db_path
    if target is None:
        return config.shared_db
    raw = Path(target)
    if raw.is_symlink():
        raise ConfigError(f"--target: {target} is a symlink; name the real file")
    real = Path(os.path.realpath(raw.parent)) / raw.name
    data = os.path.realpath(config.data_dir)
    if os.path.commonpath([str(real), data]) != data or str(real) == data:
        raise ConfigError(f"--target: {target} escapes data dir {data} (it resolves to {real})")
    backups = os.path.realpath(config.backup_dir)
    if os.path.commonpath([str(real), backups]) == backups:
        raise ConfigError(f"--target: {target} is inside backup_dir {backups}; restore into a database file")
    if real.is_dir():
        raise ConfigError(f"--target: {target} is a folder, not a database file")
    return real


def restore(config: StoreConfig, backup: Path, *, plugin: str | None = None, target: str | None = None,
            force: bool = False) -> RestoreReport:
    """Restore `backup` into the file `resolve_target` names (see restore_file)."""
    return restore_file(backup, resolve_target(config, plugin, target), config.backup_dir, config=config,
                        force=force)
