"""WAL-safe online backups through SQLite's backup API, never a file copy.

A backup is written to `<name>.tmp`, integrity-checked, fsynced and only then linked under its final name
(link, not rename, so an existing backup is never overwritten); a partial backup never has a final name.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from . import fault
from .db import ensure_private_dir, quick_check, translated_errors


def backup_name(source: Path, label: str = "") -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{source.stem}-{stamp}{'-' + label if label else ''}.db"


def fsync_path(path: Path, directory: bool = False) -> None:
    # Only for our own closed temp files and folders: never a live database (closing drops SQLite locks).
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_connection(src: sqlite3.Connection, source: Path, backup_dir: Path, label: str = "") -> Path:
    """Back up the database open on `src` into `backup_dir`; return the verified backup's path."""
    ensure_private_dir(backup_dir)
    final = backup_dir / backup_name(source, label)
    tmp = final.with_name(final.name + ".tmp")
    with translated_errors(tmp):
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            dst = sqlite3.connect(tmp, isolation_level=None)
            try:
                src.backup(dst)
                fault.point("after_backup_copy")
                quick_check(dst, tmp)
                # A backup is a single self-contained file: no -wal beside it.
                dst.execute("PRAGMA journal_mode = DELETE")
            finally:
                dst.close()
            fsync_path(tmp)
            os.link(tmp, final)
            os.unlink(tmp)
            fsync_path(backup_dir, directory=True)
        except BaseException:
            for leftover in (tmp, Path(f"{tmp}-journal")):
                leftover.unlink(missing_ok=True)
            raise
    return final


def backup_file(source: Path, backup_dir: Path, label: str = "") -> Path:
    """Back up the database file `source` (read-only open) into `backup_dir`."""
    from .db import connect_sync

    src = connect_sync(source, readonly=True)
    try:
        return backup_connection(src, source, backup_dir, label)
    finally:
        src.close()
