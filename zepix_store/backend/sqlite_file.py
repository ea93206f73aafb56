"""Opening SQLite files safely, synchronously: the store's pragmas, its transactions, its error translation.

Used by the SQLite backend (backend/sqlite.py, whose worker threads run these connections) and by the
SQLite-file tooling (migrate, split, merge, flip, backup, restore, verify), which keeps using sqlite3 directly.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from .._fs import ensure_private_dir
from .._wal import check_wal_pairing
from ..errors import ConfigError, CorruptDatabaseError, StoreError, StoreIOError, translate_sqlite_error

__all__ = [
    "BUSY_TIMEOUT_MS",
    "check_inside",
    "check_wal_pairing",
    "connect_sync",
    "ensure_private_dir",
    "quick_check",
    "read_snapshot",
    "savepoint",
    "transaction",
    "translated_errors",
]

T = TypeVar("T")
BUSY_TIMEOUT_MS = 5000


def _check_file_kind(path: Path) -> bool:
    """Return whether `path` exists; refuse anything that is not a regular file, symlinks included."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        # Config paths arrive resolved; a symlink here appeared since and may lead out of data_dir.
        raise StoreIOError(f"{path}: is a symlink; refusing to follow it (name the real file in the config)", path=path)
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise StoreIOError(f"{path}: is {kind}, not a database file", path=path)
    return True


def check_inside(path: Path, data_dir: Path) -> None:
    """Refuse `path` when its folder, resolved now, is not inside `data_dir` (as resolved when the configs loaded).

    The configs checked every path once; a folder on the way swapped for a symlink since would otherwise be
    followed, and a file created outside data_dir.
    """
    folder = os.path.realpath(path.parent)
    root = str(data_dir)
    if os.path.commonpath([folder, root]) != root:
        raise ConfigError(f"{path}: its folder now resolves to {folder}, outside data_dir {root} (a folder was "
                          "replaced by a symlink since the configs were checked); refusing to open it", path=path)


def _create_private_file(path: Path) -> None:
    # The new file is empty and unopened, so closing this descriptor cannot drop anyone's SQLite lock.
    ensure_private_dir(path.parent)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


@contextmanager
def translated_errors(path: object) -> Iterator[None]:
    """Re-raise sqlite3 and OS errors on `path` as typed StoreErrors."""
    try:
        yield
    except StoreError:
        raise
    except (sqlite3.Error, OSError) as exc:
        typed = translate_sqlite_error(exc, path)
        if typed is None:
            raise
        raise typed from exc


def connect_sync(
    path: str | os.PathLike[str],
    *,
    readonly: bool = False,
    create: bool = False,
    synchronous: str = "NORMAL",
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    data_dir: Path | None = None,
) -> sqlite3.Connection:
    """Open `path` with the store's pragmas (WAL, foreign keys, busy timeout), autocommit mode.

    With `data_dir`, the file's folder must still resolve inside it (check_inside).
    """
    path = Path(path)
    if data_dir is not None:
        check_inside(path, data_dir)
    exists = _check_file_kind(path)
    if not exists and not create:
        raise StoreIOError(f"{path}: no such database file", path=path)
    check_wal_pairing(path)
    with translated_errors(path):
        if not exists:
            _create_private_file(path)
        mode = "ro" if readonly else "rw"
        uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode={mode}"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            _apply_pragmas(conn, readonly, synchronous, busy_timeout_ms)
        except BaseException:
            conn.close()
            raise
    return conn


def _apply_pragmas(conn: sqlite3.Connection, readonly: bool, synchronous: str, busy_timeout_ms: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")  # before anything that takes a lock
    # Reading the schema first turns "not a database" into an error here, not at first use.
    _retry_busy(lambda: conn.execute("SELECT count(*) FROM sqlite_master").fetchone(), busy_timeout_ms)
    if not readonly:
        mode = _retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0], busy_timeout_ms)
        if str(mode).lower() != "wal":
            raise StoreIOError(f"cannot switch to WAL mode (journal_mode={mode})")
    conn.execute("PRAGMA foreign_keys = ON")
    if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"bad synchronous level {synchronous!r}")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) \
        or "database is locked" in str(exc)


def _retry_busy(step: Callable[[], T], busy_timeout_ms: int) -> T:
    """Run `step`, retrying SQLITE_BUSY until the busy timeout has passed.

    Switching a new file to WAL reads its header, then upgrades that read lock to a write lock; SQLite calls no
    busy handler for such an upgrade (waiting there could deadlock two readers), so when two processes open a
    new file at the same moment one of them got "database is locked" at once. The failed statement has let its
    lock go, so trying again after a short sleep is safe, and the other process's switch is done by then.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.001
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str) -> Iterator[sqlite3.Connection]:
    conn.execute(begin)
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def transaction(conn: sqlite3.Connection) -> AbstractContextManager[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (KeyboardInterrupt included)."""
    return _transaction(conn, "BEGIN IMMEDIATE")


def read_snapshot(conn: sqlite3.Connection) -> AbstractContextManager[sqlite3.Connection]:
    """One read transaction (BEGIN DEFERRED): every statement inside sees the same committed state.

    In autocommit mode each statement reads its own snapshot, so a row the bot commits between two statements
    makes, for instance, an attribution and a count of the same table disagree. Temp tables may be written inside.
    """
    return _transaction(conn, "BEGIN")


@contextmanager
def savepoint(conn: sqlite3.Connection, name: str) -> Iterator[sqlite3.Connection]:
    """SAVEPOINT `name` ... RELEASE, or ROLLBACK TO and RELEASE on any exception: undo only the block's work.

    Inside a transaction this nests (the outer transaction goes on after an undone block); outside one it is
    a transaction of its own.
    """
    if not name.isidentifier():
        raise ValueError(f"bad savepoint name {name!r}")
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield conn
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


def quick_check(conn: sqlite3.Connection, path: object, schema: str = "main") -> None:
    """Raise CorruptDatabaseError unless PRAGMA quick_check says ok."""
    rows = [r[0] for r in conn.execute(f"PRAGMA {schema}.quick_check")]
    if rows != ["ok"]:
        raise CorruptDatabaseError(f"{path}: integrity check failed: {'; '.join(map(str, rows[:3]))}", path=path)
