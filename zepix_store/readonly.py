"""Reading a database file without writing it and without leaving files beside it.

A `mode=ro` connection to a WAL database creates `-wal` and `-shm` files when they are missing, and being
read-only it cannot remove them: they stay behind, owned by whoever ran the command (a `-shm` another user
cannot write can lock the bot out). Two ways round it, both under an authorizer (WriteGuard) that denies every
write to the file read:
- a connection of its own (open_reader) opens a file nobody has open (no `-wal`/`-shm`) read-write; as the
  last connection it removes the `-wal`/`-shm` it made when it closes;
- a file attached to a connection that writes other files (split, merge, verify) is attached `ro`, since a
  write transaction would lock every file attached read-write; if that read created `-wal`/`-shm`, they are
  taken away after the connection closes, unless another process has the file open by then.
When `-wal`/`-shm` exist, another process owns them: the file is read with `ro` and they are left alone.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import urllib.parse
from pathlib import Path
from types import FrameType

from .backend.sqlite_file import BUSY_TIMEOUT_MS, check_wal_pairing, translated_errors
from .errors import StoreIOError

__all__ = [
    "WriteGuard",
    "attach_uri",
    "in_sqlite_callback",
    "open_reader",
    "read_only_here",
    "reader_uri",
    "remove_unused_side_files",
]

# CREATE/DROP of tables, indexes, views, triggers; INSERT, UPDATE, DELETE; REINDEX, ANALYZE; virtual tables
# (the 4th argument of the authorizer names the schema written)
_WRITE_ACTIONS = frozenset({1, 2, 7, 8, 9, 10, 11, 16, 17, 18, 23, 27, 28, 29, 30})
_ATTACH, _ALTER_TABLE, _PRAGMA = 24, 26, 19
_PRAGMAS_WITH_ARGUMENT = frozenset({
    "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list",
    "foreign_key_check", "quick_check", "integrity_check", "busy_timeout", "foreign_keys", "cache_size",
    "temp_store", "analysis_limit",
})
_PRAGMAS_DENIED = frozenset({"optimize", "wal_checkpoint", "incremental_vacuum", "shrink_memory"})
log = logging.getLogger("zepix_store.readonly")


class WriteGuard:
    """sqlite3 authorizer: no statement may write a schema named in `read_only`; temp tables stay free."""

    def __init__(self, *read_only: str, allow_attach: bool = False) -> None:
        self.read_only = set(read_only)
        self.allow_attach = allow_attach

    def __call__(self, action: int, arg1: str | None, arg2: str | None, dbname: str | None,
                 _source: str | None) -> int:
        if action == _ATTACH and not self.allow_attach:
            return sqlite3.SQLITE_DENY
        if action in _WRITE_ACTIONS and dbname in self.read_only:
            return sqlite3.SQLITE_DENY
        if action == _ALTER_TABLE and arg1 in self.read_only:  # its first argument is the schema
            return sqlite3.SQLITE_DENY
        if action == _PRAGMA:  # arg1 is its name, arg2 its argument
            name = (arg1 or "").lower()
            touches = dbname in self.read_only or (dbname is None and bool(self.read_only))
            if touches and (name in _PRAGMAS_DENIED or (arg2 is not None and name not in _PRAGMAS_WITH_ARGUMENT)):
                return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK


_GUARD_CODE = WriteGuard.__call__.__code__


def in_sqlite_callback(frame: FrameType | None) -> bool:
    """Whether `frame` runs inside a WriteGuard call, which SQLite makes into Python: the guard or a caller of it.

    sqlite3 turns any exception raised in such a callback into SQLITE_DENY and drops it, so a KeyboardInterrupt
    there became "not authorized to use function: count" and was lost; the CLI defers it (cli.py). The whole
    stack is searched: a second Ctrl-C can land while the CLI's handler, itself called inside the guard, is
    still starting its timer thread, several frames below the guard.
    """
    while frame is not None:
        if frame.f_code is _GUARD_CODE:
            return True
        frame = frame.f_back
    return False


def _uri(path: Path, mode: str) -> str:
    return f"file:{urllib.parse.quote(str(Path(path).absolute()))}?mode={mode}"


def _side_files_exist(path: Path) -> bool:
    return any(Path(f"{path}{s}").exists() for s in ("-wal", "-shm"))


def _writable(path: Path) -> bool:
    """Whether we may write `path` and create files beside it (a WAL reader's -wal/-shm)."""
    return os.access(path, os.W_OK) and os.access(Path(path).parent, os.W_OK)


def read_only_here(path: Path) -> bool:
    """Whether `path` exists but we cannot write it or create files beside it (a read-only folder or mount).

    A read-write connection cannot even read a WAL file there (no -wal/-shm can be made): read it with
    open_reader, one short connection per read (an immutable read must not outlive the moment it was checked).
    """
    return os.path.lexists(path) and not _writable(path)


def reader_uri(path: Path) -> str:
    """The URI open_reader uses: `rw` under its guard when nothing is beside `path` (see the module doc), else `ro`.

    Only for a connection that never opens a write transaction: BEGIN IMMEDIATE takes the write lock of every
    database a connection opened read-write, guarded or not.
    """
    if _side_files_exist(path):
        return _uri(path, "ro")
    if not _writable(path) and not Path(f"{path}-journal").exists():
        # rw would fall back to ro and leave -wal/-shm owned by us, or (a folder we cannot write) fail to create
        # them at all (see attach_uri)
        return _uri(path, "ro&immutable=1")
    return _uri(path, "rw")  # also lets SQLite roll back a hot -journal a crashed writer left, as any opener would


def attach_uri(path: Path) -> tuple[str, bool]:
    """The URI to ATTACH `path` to read it on a connection that also writes other files, and whether the read
    will create `-wal`/`-shm` that `remove_unused_side_files` should take away after closing.

    Plain `ro`, so that a write transaction on the connection never locks `path`. When we cannot write `path`
    or its folder and nothing is beside it, it is read as immutable: `ro` would create files we could not
    remove, owned by us, and nobody writing there can have it open (a writer needs a -wal/-shm or -journal).
    """
    if _side_files_exist(path):
        return _uri(path, "ro"), False
    if not _writable(path) and not Path(f"{path}-journal").exists():
        return _uri(path, "ro&immutable=1"), False
    return _uri(path, "ro"), True


def remove_unused_side_files(path: Path) -> None:
    """Open and close `path` read-write, guarded: if no other connection has it open, SQLite, closing the last
    one, removes its `-wal`/`-shm` (a checkpoint first, which leaves the content as it is). Best effort: a
    file that stays behind is only untidy, so an error here is logged, never raised."""
    if not _side_files_exist(path):
        return
    try:
        conn = sqlite3.connect(_uri(path, "rw"), uri=True, isolation_level=None)
        try:
            conn.set_authorizer(WriteGuard("main"))
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        log.debug("%s: -wal/-shm left in place: %s", path, exc)


def open_reader(path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """Open `path` to read it: nothing is written to it and no file is left beside it."""
    with translated_errors(path):
        st = os.stat(path)  # FileNotFoundError -> "No such file or directory"
        if not stat.S_ISREG(st.st_mode):
            raise StoreIOError(f"{path}: not a regular file", path=path)
        check_wal_pairing(path)
        conn = sqlite3.connect(reader_uri(path), uri=True, isolation_level=None, check_same_thread=False)
        try:
            conn.set_authorizer(WriteGuard("main"))
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # "not a database" fails here
        except BaseException:
            conn.close()
            raise
    return conn
