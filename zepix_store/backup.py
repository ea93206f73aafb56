"""Back up the shared database, a plugin's file or all of them: SQLite's online backup API, never a file copy.

A backup is written to `<name>.tmp` (owner-only, locked with flock while it is written), integrity-checked,
fsynced and only then linked under its final name (link, not rename, so an existing backup is never
overwritten): a partial backup never has a final name, and the `.tmp` of a killed run is removed by the next.
The backup API reads one consistent snapshot, the committed content of the `-wal` included.

Examples:
  zepix-store backup                       # the shared database
  zepix-store backup --plugin v6-logic-01-1min
  zepix-store backup --all --keep 7        # every database file; keep the 7 newest plain backups of each
  zepix-store backup --json

Prints the path of each backup made, one per line (details go to stderr).
Exit codes: 0 done, 2 bad input or config, 3 disk full or I/O error, 4 busy, 5 the source is corrupt.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import logging
import os
import re
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import fault
from .config import StoreConfig, load_config
from .db import quick_check, translated_errors
from .errors import ConfigError, CorruptDatabaseError, SchemaError, StoreIOError
from .readonly import open_reader

log = logging.getLogger("zepix_store.backup")
TMP_SUFFIX = ".tmp"
_STAMP = r"\d{8}T\d{12}Z"
_SIDE_FILES = ("-journal", "-wal", "-shm")


def backup_name(source: Path, label: str = "") -> str:
    """`<stem>-<UTC stamp>[-label].db`: names sort by time within one source."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{source.stem}-{stamp}{'-' + label if label else ''}.db"


def fsync_path(path: Path, directory: bool = False) -> None:
    # Only for our own closed temp files and folders: never a live database (closing drops SQLite locks).
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(path: Path) -> None:
    """Create `path` and any missing parents 0700 whatever the umask; tighten `path` itself if it is ours."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        os.chmod(folder, 0o700)
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise StoreIOError(f"{path}: backup_dir is not a folder")
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.chmod(path, 0o700)


def table_count(conn: sqlite3.Connection, schema: str = "main") -> int:
    assert schema in ("main", "src")
    return int(conn.execute(f"SELECT count(*) FROM {schema}.sqlite_master WHERE type = 'table'").fetchone()[0])


# --- temp files -------------------------------------------------------------------------------------------------


def _tmp_pattern(source: Path) -> re.Pattern[str]:
    return re.compile(re.escape(source.stem) + f"-{_STAMP}(-[a-z0-9-]+)?\\.db\\{TMP_SUFFIX}")


def _remove_tmp(tmp: Path) -> None:
    for leftover in (tmp, *(Path(f"{tmp}{s}") for s in _SIDE_FILES)):
        leftover.unlink(missing_ok=True)


def clean_stale_tmp(backup_dir: Path, source: Path) -> list[Path]:
    """Remove `.tmp` backups of `source` left by killed runs (a running backup holds its flock: kept)."""
    removed: list[Path] = []
    if not backup_dir.is_dir():
        return removed
    pattern = _tmp_pattern(source)
    for tmp in sorted(backup_dir.iterdir()):
        if not pattern.fullmatch(tmp.name):
            continue
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            os.close(fd)
            continue
        _remove_tmp(tmp)  # unlinked while we hold the lock, so no new run can be using this name
        os.close(fd)
        removed.append(tmp)
    return removed


@contextmanager
def _locked_tmp(tmp: Path) -> Iterator[None]:
    """Create `tmp` owner-only and hold an flock on it: a concurrent clean_stale_tmp leaves it alone."""
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    except BaseException:
        _remove_tmp(tmp)
        raise
    finally:
        os.close(fd)


# --- one backup -------------------------------------------------------------------------------------------------


def backup_connection(
    src: sqlite3.Connection, source: Path, backup_dir: Path, label: str = "", *, check: bool = True
) -> Path:
    """Back up the database open on `src` into `backup_dir`; return the verified backup's path.

    `check=False` skips the integrity check (only to keep a copy of a file already known to be corrupt).
    """
    with translated_errors(backup_dir):
        make_private_dir(backup_dir)
        clean_stale_tmp(backup_dir, source)
    final = backup_dir / backup_name(source, label)
    tmp = final.with_name(final.name + TMP_SUFFIX)
    with translated_errors(tmp), _locked_tmp(tmp):
        _copy_into(src, source, tmp, check)
        os.link(tmp, final)
        fault.point("after_backup_link")
        os.unlink(tmp)
        fsync_path(backup_dir, directory=True)
    return final


def _copy_into(src: sqlite3.Connection, source: Path, tmp: Path, check: bool) -> None:
    """Copy, then fsync the copy and integrity-check it at once: the flush waits on the disk, the check on the CPU.

    SQLite's own journal and syncs on the copy are switched off: `tmp` is ours alone and gets no final name
    unless the copy, the fsync and the check all succeed, so they would only pay twice for the one fsync here.
    """
    dst = sqlite3.connect(tmp, isolation_level=None)
    try:
        dst.execute("PRAGMA journal_mode = OFF")
        dst.execute("PRAGMA synchronous = OFF")
        src.backup(dst)  # one step: a single consistent snapshot of the source, WAL content included
        fault.point("after_backup_copy")
        # The copied header says WAL; a backup is one self-contained file with no -wal beside it.
        dst.execute("PRAGMA journal_mode = DELETE")
        with _fsync_in_background(tmp):
            if check:
                try:
                    with translated_errors(tmp):  # "malformed" while checking is corruption of the source too
                        quick_check(dst, tmp)
                except CorruptDatabaseError as exc:
                    raise CorruptDatabaseError(f"{source}: its backup fails the integrity check, the source is "
                                               f"probably corrupt (run verify): {exc}") from exc
    finally:
        dst.close()


@contextmanager
def _fsync_in_background(path: Path) -> Iterator[None]:
    """fsync `path` on another thread while the block runs; its error, if any, is raised after the block."""
    errors: list[BaseException] = []

    def flush() -> None:
        try:
            fsync_path(path)
        except BaseException as exc:  # re-raised on the caller's thread below
            errors.append(exc)

    flusher = threading.Thread(target=flush, name="zepix-backup-fsync", daemon=True)
    flusher.start()
    try:
        yield
    finally:
        flusher.join()
    if errors:
        raise errors[0]


def backup_file(source: Path, backup_dir: Path, label: str = "") -> Path:
    """Back up the database file `source` (opened read-only) into `backup_dir`."""
    src = open_reader(source)
    try:
        return backup_connection(src, source, backup_dir, label)
    finally:
        src.close()


# --- retention --------------------------------------------------------------------------------------------------


def list_backups(backup_dir: Path, source: Path, label: str = "") -> list[Path]:
    """The backups of `source` with exactly `label` ('' = plain `backup` runs), newest first."""
    if not backup_dir.is_dir():
        return []
    suffix = f"-{re.escape(label)}" if label else ""
    pattern = re.compile(re.escape(source.stem) + f"-({_STAMP}){suffix}\\.db")
    found = [(m.group(1), p) for p in backup_dir.iterdir() if (m := pattern.fullmatch(p.name)) and p.is_file()]
    return [p for _, p in sorted(found, reverse=True)]


def prune_backups(backup_dir: Path, source: Path, keep: int) -> list[Path]:
    """Delete all but the `keep` newest plain backups of `source`; labelled safety copies are never deleted."""
    if keep < 1:
        raise ConfigError(f"--keep: must be at least 1, got {keep}")
    old = list_backups(backup_dir, source)[keep:]
    for path in old:
        path.unlink(missing_ok=True)
    if old:
        fsync_path(backup_dir, directory=True)
    return old


# --- the command ------------------------------------------------------------------------------------------------


@dataclass
class BackupResult:
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


def back_up(source: Path, backup_dir: Path, keep: int | None = None) -> BackupResult:
    """Back up one file, then apply the retention of `keep` (if given) to its plain backups."""
    if not source.exists() and not source.is_symlink():
        raise ConfigError(f"{source}: no such database file")
    started = time.monotonic()
    src = open_reader(source)
    try:
        if table_count(src) == 0:  # rotating real backups out for copies of nothing would lose them
            raise SchemaError(f"{source}: source has no tables (an empty file); nothing backed up")
        path = backup_connection(src, source, backup_dir)
    finally:
        src.close()
    result = BackupResult(source, path, path.stat().st_size, time.monotonic() - started)
    if keep is not None:
        with translated_errors(backup_dir):
            result.deleted = prune_backups(backup_dir, source, keep)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--plugin", action="append", default=[], metavar="ID",
                       help="back up this plugin's database file (repeatable)")
    which.add_argument("--all", action="store_true", help="back up the shared file and every plugin file")
    parser.add_argument("--keep", type=int, metavar="N",
                        help="then delete all but the N newest plain backups of each file "
                             "(labelled copies such as pre-migrate are never deleted)")


def run(args: argparse.Namespace) -> int:
    if args.keep is not None and args.keep < 1:
        raise ConfigError(f"--keep: must be at least 1, got {args.keep}")
    config = load_config(args.config)
    results = []
    for source in backup_sources(config, args.plugin, args.all):
        result = back_up(source, config.backup_dir, args.keep)
        log.info("backed up %s (%s bytes, %.1f s)%s", source, f"{result.bytes:,}", result.seconds,
                 f"; deleted {len(result.deleted)} older backup(s)" if result.deleted else "")
        results.append(result)
    if args.json:
        from ._output import print_json
        print_json({"backups": [r.to_json() for r in results]})
    else:
        for r in results:
            print(r.backup)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import command_main

    return command_main("backup", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
