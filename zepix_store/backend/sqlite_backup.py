"""Back up one SQLite file through the online backup API into a private `.tmp`, checked, then linked under a name
that says what it is a backup of (the user-facing rules are the `backup` command's help, zepix_store/backup.py).

The SQLite backend backs a file up before upgrading it; the backup command and the file tooling (migrate,
merge, flip, restore) use the same function, so it lives here and not with the command.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .. import fault
from .._fs import fsync_path, make_private_dir
from ..backup_identity import STAMP, FileIdentity, backup_name, fallback_identity, name_prefix, write_identity
from ..errors import CorruptDatabaseError
from ..progress import NO_PROGRESS, ProgressSink, file_growth
from ..readonly import open_reader
from .sqlite_file import quick_check, translated_errors

__all__ = ["TMP_SUFFIX", "backup_connection", "backup_file", "clean_stale_tmp", "table_count", "utc_stamp"]

TMP_SUFFIX = ".tmp"
_SIDE_FILES = ("-journal", "-wal", "-shm")


def utc_stamp() -> str:
    """The UTC time in backup names: names of one file sort by time."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def table_count(conn: sqlite3.Connection, schema: str = "main") -> int:
    """How many tables `schema` holds (0: an empty file)."""
    assert schema in ("main", "src")
    return int(conn.execute(f"SELECT count(*) FROM {schema}.sqlite_master WHERE type = 'table'").fetchone()[0])


# --- temp files -------------------------------------------------------------------------------------------------


def _tmp_pattern(identity: FileIdentity) -> re.Pattern[str]:
    """`.tmp` names of this file's backups, also in the older `<stem>-<stamp>` form (left by an older version)."""
    current = f"{re.escape(name_prefix(identity))}-v\\d+"
    older = re.escape(Path(identity.path).stem)
    return re.compile(f"(?:{current}|{older})-{STAMP}(-[a-z0-9-]+)?\\.db\\{TMP_SUFFIX}")


def _remove_tmp(tmp: Path) -> None:
    for leftover in (tmp, *(Path(f"{tmp}{s}") for s in _SIDE_FILES)):
        leftover.unlink(missing_ok=True)


def clean_stale_tmp(backup_dir: Path, identity: FileIdentity) -> list[Path]:
    """Remove `.tmp` backups of the file left by killed runs (a running backup holds its flock: kept)."""
    removed: list[Path] = []
    if not backup_dir.is_dir():
        return removed
    pattern = _tmp_pattern(identity)
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
    src: sqlite3.Connection, source: Path, backup_dir: Path, label: str = "", *, check: bool = True,
    identity: FileIdentity | None = None, progress: ProgressSink = NO_PROGRESS,
) -> Path:
    """Back up the database open on `src` into `backup_dir`; return the verified backup's path.

    `identity` (backup_identity.identity_of) says what the file is; without it the backup records an unknown
    role and restore asks for --force. `check=False` skips the integrity check (only to keep a copy of a file
    already known to be corrupt).
    """
    identity = identity or fallback_identity(source)
    with translated_errors(backup_dir):
        make_private_dir(backup_dir, tighten=True, role="backup_dir")
        clean_stale_tmp(backup_dir, identity)
    stamp = utc_stamp()
    version = int(src.execute("PRAGMA user_version").fetchone()[0])
    tmp = backup_dir / (backup_name(identity, version, stamp, label) + TMP_SUFFIX)
    with translated_errors(tmp), _locked_tmp(tmp):
        facts = {"source": str(source), "label": label, "created_utc": stamp}
        version = _copy_into(src, source, tmp, check, identity, facts, progress)
        final = backup_dir / backup_name(identity, version, stamp, label)  # the version copied names it
        os.link(tmp, final)
        fault.point("after_backup_link")
        os.unlink(tmp)
        fsync_path(backup_dir, directory=True)
    return final


def _copy_into(src: sqlite3.Connection, source: Path, tmp: Path, check: bool, identity: FileIdentity,
               facts: dict[str, str], progress: ProgressSink) -> int:
    """Copy, then fsync the copy and integrity-check it at once: the flush waits on the disk, the check on the CPU.

    SQLite's own journal and syncs on the copy are switched off: `tmp` is ours alone and gets no final name
    unless the copy, the fsync and the check all succeed, so they would only pay twice for the one fsync here.
    Returns the schema version copied.
    """
    dst = sqlite3.connect(tmp, isolation_level=None)
    try:
        dst.execute("PRAGMA journal_mode = OFF")
        dst.execute("PRAGMA synchronous = OFF")
        pages, page_size = (int(src.execute(f"PRAGMA {p}").fetchone()[0]) for p in ("page_count", "page_size"))
        progress.start(f"backup {source.name}", pages * page_size, "bytes")
        with file_growth(progress, tmp):
            src.backup(dst)  # one step: a single consistent snapshot of the source, WAL content included
        progress.done()
        fault.point("after_backup_copy")
        version = int(dst.execute("PRAGMA user_version").fetchone()[0])
        write_identity(dst, identity.with_version(version), facts)
        # The copied header says WAL; a backup is one self-contained file with no -wal beside it.
        dst.execute("PRAGMA journal_mode = DELETE")
        with _fsync_in_background(tmp):
            if check:
                try:
                    with translated_errors(tmp):  # "malformed" while checking is corruption of the source too
                        quick_check(dst, tmp)
                except CorruptDatabaseError as exc:
                    raise CorruptDatabaseError(f"{source}: its backup fails the integrity check, the source is "
                                               f"probably corrupt (run verify): {exc}", path=source) from exc
    finally:
        dst.close()
    return version


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


def backup_file(source: Path, backup_dir: Path, label: str = "", *, identity: FileIdentity | None = None,
                progress: ProgressSink = NO_PROGRESS) -> Path:
    """Back up the database file `source` (opened read-only) into `backup_dir` (see backup_connection)."""
    src = open_reader(source)
    try:
        return backup_connection(src, source, backup_dir, label, identity=identity, progress=progress)
    finally:
        src.close()
