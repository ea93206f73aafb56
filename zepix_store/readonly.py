"""Reading a database file without writing it and without leaving files beside it.

A `mode=ro` connection to a WAL database creates `-wal` and `-shm` files when they are missing, and being
read-only it cannot remove them: they stay behind, owned by whoever ran the command (a root-run command can
leave a `-shm` the bot's user cannot open). So when no `-wal`/`-shm` exist (nobody has the file open in WAL
mode) a reader opens it read-write under an authorizer that denies every write to it; as the last connection
it then removes the empty `-wal`/`-shm` on close. When they exist, another process owns them: read with `ro`.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import urllib.parse
from pathlib import Path

from .db import BUSY_TIMEOUT_MS, check_wal_pairing, translated_errors
from .errors import StoreIOError

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


def reader_uri(path: Path, *, immutable_when_unwritable: bool = False) -> str:
    """The URI a guarded reader opens `path` with: `rw` when nothing is beside it (see the module doc), else `ro`.

    In a folder we cannot write, a WAL file with no `-shm` cannot be opened at all, but nobody can be writing
    it either (a writer needs a `-wal`/`-shm` or `-journal` there): with `immutable_when_unwritable` it is then
    read as immutable; without, the open fails and names the read-only folder.
    """
    mode = "rw"  # also lets SQLite roll back a hot -journal a crashed writer left, as any opener would
    if any(Path(f"{path}{s}").exists() for s in ("-wal", "-shm")):
        mode = "ro"
    elif (immutable_when_unwritable and not os.access(Path(path).parent, os.W_OK)
          and not Path(f"{path}-journal").exists()):
        mode = "ro&immutable=1"
    return f"file:{urllib.parse.quote(str(Path(path).absolute()))}?mode={mode}"


def open_reader(path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """Open `path` to read it: nothing is written to it and no file is left beside it."""
    with translated_errors(path):
        st = os.stat(path)  # FileNotFoundError -> "No such file or directory"
        if not stat.S_ISREG(st.st_mode):
            raise StoreIOError(f"{path}: not a regular file")
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
