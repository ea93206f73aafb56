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
    ├── StoreBusyError          exit 4  another process holds the lock past the busy timeout
    └── StoreUnavailableError   exit 7  the database server cannot be reached, or the connection was lost

Each message names the file (and plugin, table or field) and says what to do; the same facts are on the error as
`path`, `plugin` and `table` (None where the raiser did not know them) for a caller that handles them.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BUSY",
    "EXIT_CHECK_FAILED",
    "EXIT_CODES",
    "EXIT_CORRUPT",
    "EXIT_INTERRUPTED",
    "EXIT_IO",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "ConfigError",
    "CorruptDatabaseError",
    "IsolationError",
    "RowError",
    "SchemaError",
    "StoreBusyError",
    "StoreError",
    "StoreFullError",
    "StoreIOError",
    "StoreUnavailableError",
    "UnknownPluginError",
    "VerifyError",
    "translate_sqlite_error",
]

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_IO = 3
EXIT_BUSY = 4
EXIT_CORRUPT = 5
EXIT_UNAVAILABLE = 7  # 6 left free: a code once documented keeps its meaning
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "done",
    EXIT_CHECK_FAILED: "a check failed",
    EXIT_BAD_INPUT: "bad input or config",
    EXIT_IO: "disk full or I/O error",
    EXIT_BUSY: "the database is busy (another process holds it)",
    EXIT_CORRUPT: "a database is corrupt or from a newer zepix_store",
    EXIT_UNAVAILABLE: "the database server is unreachable or the connection was lost",
    EXIT_INTERRUPTED: "interrupted",
}


class StoreError(Exception):
    """Root of every error zepix_store raises on purpose.

    Args:
        message: the one line the CLI prints; it names the file, plugin and table itself.
        path: the file or folder concerned, when known.
        plugin: the plugin id concerned, when known.
        table: the table concerned, when known.
    """

    exit_code = EXIT_CHECK_FAILED

    def __init__(self, message: str = "", *, path: object = None, plugin: str | None = None,
                 table: str | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.plugin = plugin
        self.table = table


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


class StoreUnavailableError(StoreError):
    """The database server cannot be reached or dropped the connection: a write may not have been applied.

    Check that the server runs and the DSN names it, then run again (reads are retried once before this).
    """

    exit_code = EXIT_UNAVAILABLE


def _on_read_only_fs(path: object) -> bool:
    """Whether the folder of `path` is on a file system mounted read-only."""
    try:
        return bool(os.statvfs(os.path.dirname(str(path)) or ".").f_flag & os.ST_RDONLY)
    except (OSError, ValueError):
        return False


_FULL_BELOW = 1 << 20  # free bytes under which an I/O error on a file is taken for the full disk it most likely is


def _on_full_disk(path: object) -> bool:
    """Whether the file system of `path`'s folder is (nearly) out of space or out of inodes.

    SQLite reports a -shm or -wal it cannot create or grow on a full disk as SQLITE_IOERR ("disk I/O error"),
    not SQLITE_FULL: a read-only command that only needed those files said "I/O error" on a full disk.
    """
    try:
        st = os.statvfs(os.path.dirname(str(path)) or ".")
    except (OSError, ValueError):
        return False
    return st.f_bavail * st.f_frsize < _FULL_BELOW or (st.f_files > 0 and st.f_favail == 0)


_DISK_FULL_IO = ("disk full: no room left on its file system for SQLite's -wal/-shm, which even a read of a WAL "
                 "file needs; free space and run again")
_READ_ONLY_FS = ("read-only file system: SQLite cannot write the file or create its -wal and -shm files, even to "
                 "read a WAL database; remount it read-write")
_READ_ONLY_DIR = ("read-only folder: SQLite must create its -wal and -shm files beside a WAL database, even to "
                  "read it; make the folder writable for this user")


@dataclass(frozen=True, slots=True)
class _Rule:
    """One row of the table: which sqlite3 errors become `error`, and what its message says."""

    codes: tuple[str, ...]  # prefixes of sqlite_errorname (an exact name when `exact`)
    words: tuple[str, ...]  # message text that matches too: errors raised without an error name
    error: type[StoreError]
    says: str
    exact: bool = False
    on_path: Callable[[object], bool] | None = None  # and only where this holds of the path

    def matches(self, code: str, text: str, path: object) -> bool:
        named = code in self.codes if self.exact else code.startswith(self.codes)
        if self.on_path is not None:
            return named and self.on_path(path)
        return named or any(word in text for word in self.words)


# First match wins: a read-only mount explains a CANTOPEN/IOERR better than "I/O error" does.
_SQLITE_RULES: tuple[_Rule, ...] = (
    _Rule(("SQLITE_FULL",), ("database or disk is full",), StoreFullError, "disk full"),
    _Rule(("SQLITE_BUSY", "SQLITE_LOCKED"), ("database is locked",), StoreBusyError, "locked by another process"),
    _Rule(("SQLITE_NOTADB", "SQLITE_CORRUPT"), ("not a database",), CorruptDatabaseError,
          "not a database or corrupt"),
    _Rule(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_IOERR"), (), StoreIOError, _READ_ONLY_FS,
          on_path=_on_read_only_fs),
    _Rule(("SQLITE_IOERR", "SQLITE_CANTOPEN"), (), StoreFullError, _DISK_FULL_IO, on_path=_on_full_disk),
    _Rule(("SQLITE_READONLY_DIRECTORY",), (), StoreIOError, _READ_ONLY_DIR, exact=True),
    _Rule(("SQLITE_READONLY",), ("readonly",), StoreIOError, "read-only"),
    _Rule(("SQLITE_IOERR", "SQLITE_CANTOPEN"), ("disk I/O error",), StoreIOError, "I/O error"),
)


def translate_sqlite_error(exc: BaseException, path: object) -> StoreError | None:
    """Return the typed error for a sqlite3/OS error on `path`, or None if it has none."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StoreFullError(f"{path}: disk full", path=path)
        return StoreIOError(f"{path}: {exc.strerror or exc}", path=path)
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    for rule in _SQLITE_RULES:
        if rule.matches(code, text, path):
            return rule.error(f"{path}: {rule.says} ({text})", path=path)
    return None
