"""Typed errors and the exit code each one maps to.

    StoreError                  exit 1  a check failed (the root; catch this to catch everything)
    ├── VerifyError             exit 1  copies or checks disagree with their source
    ├── ConfigError             exit 2  bad config file or bad command-line input; nothing was touched
    │   └── UnknownPluginError  exit 2  no plugin config with that id
    ├── RowError                exit 2  a row has unknown columns or the wrong shape
    │   └── IsolationError      exit 2  a row names another plugin than the handle it was given to
    ├── SchemaError             exit 5  file from a newer zepix_store, or not a store the code can read
    ├── CorruptDatabaseError    exit 5  not a database, or integrity_check failed
    ├── StoreFullError          exit 3  disk full (SQLITE_FULL / ENOSPC)
    ├── StoreIOError            exit 3  I/O error, read-only file or folder
    └── StoreBusyError          exit 4  another process holds the lock past the busy timeout

Each message names the file (and plugin, table or field) and says what to do.
"""

from __future__ import annotations

import errno
import os
import sqlite3

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_IO = 3
EXIT_BUSY = 4
EXIT_CORRUPT = 5


class StoreError(Exception):
    """Root of every error zepix_store raises on purpose."""

    exit_code = EXIT_CHECK_FAILED


class VerifyError(StoreError):
    """A copy or a check disagrees with its source: do not delete the source."""


class ConfigError(StoreError):
    """A config file or argument is invalid: fix the named file and field."""

    exit_code = EXIT_BAD_INPUT


class UnknownPluginError(ConfigError):
    """No plugin config has this id: add configs/plugins/<id>/config.json."""


class RowError(StoreError, ValueError):
    """A row passed to the store has unknown columns or the wrong shape: fix the caller."""

    exit_code = EXIT_BAD_INPUT


class IsolationError(RowError):
    """A row carries a plugin_id other than the handle's: write it through its own handle."""


class SchemaError(StoreError):
    """The file's schema is newer than this code or unreadable: upgrade zepix_store."""

    exit_code = EXIT_CORRUPT


class CorruptDatabaseError(StoreError):
    """The file is not a SQLite database or fails its integrity check: restore a backup."""

    exit_code = EXIT_CORRUPT


class StoreFullError(StoreError):
    """The disk (or the database's page limit) is full: free space and run again."""

    exit_code = EXIT_IO


class StoreIOError(StoreError):
    """The operating system refused a read or write: check the path, permissions and device."""

    exit_code = EXIT_IO


class StoreBusyError(StoreError):
    """Another process holds the database lock: stop it or try again later."""

    exit_code = EXIT_BUSY


def _on_read_only_fs(path: object) -> bool:
    """Whether the folder of `path` is on a file system mounted read-only."""
    try:
        return bool(os.statvfs(os.path.dirname(str(path)) or ".").f_flag & os.ST_RDONLY)
    except (OSError, ValueError):
        return False


def translate_sqlite_error(exc: BaseException, path: object) -> StoreError | None:
    """Return the typed error for a sqlite3/OS error on `path`, or None if it has none."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return StoreFullError(f"{path}: disk full")
        return StoreIOError(f"{path}: {exc.strerror or exc}")
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if code.startswith("SQLITE_FULL") or "database or disk is full" in text:
        return StoreFullError(f"{path}: disk full ({text})")
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in text:
        return StoreBusyError(f"{path}: locked by another process ({text})")
    if code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in text:
        return CorruptDatabaseError(f"{path}: not a database or corrupt ({text})")
    if code.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_IOERR")) and _on_read_only_fs(path):
        return StoreIOError(f"{path}: read-only file system: SQLite cannot write the file or create its -wal and "
                            f"-shm files, even to read a WAL database; remount it read-write ({text})")
    if code == "SQLITE_READONLY_DIRECTORY":
        return StoreIOError(f"{path}: read-only folder: SQLite must create its -wal and -shm files beside a WAL "
                            f"database, even to read it; make the folder writable for this user ({text})")
    if code.startswith("SQLITE_READONLY") or "readonly" in text:
        return StoreIOError(f"{path}: read-only ({text})")
    if code.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")) or "disk I/O error" in text:
        return StoreIOError(f"{path}: I/O error ({text})")
    return None
