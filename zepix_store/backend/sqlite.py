"""The SQLite backend: one aiosqlite connection per file, whole transactions on its worker thread.

`SQLiteDatabase.write(fn)` ships `fn` with its BEGIN IMMEDIATE ... COMMIT as ONE call to the connection's
worker thread (aiosqlite's private `_execute`, hence the <0.23 pin). That makes a transaction a single queue
item: two tasks can never interleave statements inside one transaction, a cancelled call rolls back instead of
being committed by the next task's COMMIT, and a write costs one thread hop instead of one per statement.

A file is prepared when first opened: the schema created in a new file, an older file backed up and upgraded
(upgrade.py, the SQLite-file tooling). Opening files, pragmas (WAL, busy timeout) and error translation are
sqlite_file.py's; read-only opening is readonly.py's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import aiosqlite

from .. import upgrade
from ..backup_identity import identity_of
from ..config import StoreConfig
from ..readonly import open_reader, read_only_here
from ..schema import create_schema_sql
from .base import Backend, CommitGate, Connection, Cursor, Database, Features, Operations, Upgrades
from .sqlite_backup import backup_connection
from .sqlite_file import BUSY_TIMEOUT_MS, connect_sync, read_snapshot, transaction, translated_errors

__all__ = [
    "OPERATIONS",
    "SQLITE",
    "SQLiteBackend",
    "SQLiteDatabase",
    "SQLiteOperations",
    "prepare_file",
    "wants_backup",
]

T = TypeVar("T")


class SQLiteOperations(Operations):
    """SQLite's spellings: `?` parameters, the new row's id from the cursor, a list parameter as JSON."""

    features: ClassVar[Features] = Features(consecutive_batch_ids=True)
    integrity_error: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)

    def inserted_id(self, cursor: Cursor) -> int:
        return int(cursor.lastrowid or 0)

    def in_list(self, expression: str) -> str:
        return f"{expression} IN (SELECT value FROM json_each({self.placeholder}))"

    def batch_ids(self, conn: Connection, count: int) -> list[int]:
        # One writer, no AUTOINCREMENT: the batch got consecutive rowids ending at the last one. (Asking for
        # max(rowid) first would read every plugin's rows; a handle reads only its own.)
        last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
        return list(range(last - count + 1, last + 1))

    def list_parameter(self, values: Sequence[str]) -> Any:
        return json.dumps(list(values))


OPERATIONS = SQLiteOperations()


class SQLiteDatabase(Database):
    """One aiosqlite connection to one file; every call is a whole statement group on its worker thread.

    A small write (`inline=True`) on an idle connection runs directly on the event-loop thread instead: the
    thread hop costs more than the write itself. It never waits there: the busy timeout is 0 for that call, and
    on SQLITE_BUSY nothing has changed, so the write is retried on the worker thread, which waits as usual.
    """

    def __init__(self, path: Path, conn: aiosqlite.Connection, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self.operations = OPERATIONS
        self._conn = conn
        self._busy_timeout_ms = busy_timeout_ms
        self._in_flight = 0  # calls queued on or running in the worker thread

    @classmethod
    async def open(cls, path: Path, *, create: bool = True, busy_timeout_ms: int = BUSY_TIMEOUT_MS,
                   data_dir: Path | None = None) -> SQLiteDatabase:
        """Open (creating owner-only if asked) `path` on a dedicated worker thread (inside `data_dir`, if given)."""

        def connector() -> sqlite3.Connection:
            return connect_sync(path, create=create, busy_timeout_ms=busy_timeout_ms, data_dir=data_dir)

        conn = aiosqlite.Connection(connector, iter_chunk_size=64)
        try:
            with translated_errors(path):
                await conn
        except BaseException:
            await _worker_stopped(conn)
            raise
        _OPEN_CONNECTIONS[conn] = path
        return cls(path, conn, busy_timeout_ms)

    def _submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue `fn(sqlite3_connection, *args)` on the worker; the future settles when the worker is done."""
        self._in_flight += 1
        inner: asyncio.Future[T] = asyncio.ensure_future(
            self._conn._execute(fn, self._conn._conn, *args))  # type: ignore[no-untyped-call]
        inner.add_done_callback(self._settled)
        return inner

    def _settled(self, fut: asyncio.Future[Any]) -> None:
        self._in_flight -= 1
        _consume_exception(fut)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(sqlite3_connection, *args)` on the worker thread and return its result."""
        with translated_errors(self.path):
            # shielded: a cancelled caller must not make the connection look idle while the worker still runs
            return await asyncio.shield(self._submit(fn, *args))

    async def write(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        """Run `fn(sqlite3_connection, *args)` inside BEGIN IMMEDIATE ... COMMIT, as one unit.

        Cancelled before its COMMIT starts, the transaction is rolled back and CancelledError propagates;
        cancelled once COMMIT has started, the call finishes and returns normally (the write is durable).
        """
        if inline and self._in_flight == 0:
            done, result = self._write_inline(fn, args)
            if done:
                return result  # type: ignore[no-any-return]
        gate = CommitGate()
        with translated_errors(self.path):
            inner: asyncio.Future[T] = self._submit(_run_transaction, gate, fn, args)
            try:
                return await asyncio.shield(inner)
            except asyncio.CancelledError:
                if gate.cancel():
                    raise
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                return await inner

    def _write_inline(self, fn: Callable[..., T], args: tuple[Any, ...]) -> tuple[bool, Any]:
        """Try the transaction on this thread without waiting for locks; (False, None) means retry on the worker."""
        conn = self._conn._conn
        with translated_errors(self.path):
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                with transaction(conn):
                    return True, fn(conn, *args)
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                    return False, None  # rolled back: nothing was written
                raise
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")

    async def close(self) -> None:
        """Close the connection and stop its worker thread (safe to call twice)."""
        await self._conn.close()
        _OPEN_CONNECTIONS.pop(self._conn, None)


_OPEN_CONNECTIONS: weakref.WeakKeyDictionary[aiosqlite.Connection, Path] = weakref.WeakKeyDictionary()


def _stop_leaked_workers() -> None:
    # A Store never closed leaves non-daemon aiosqlite workers that would block interpreter exit forever;
    # threading runs this hook before it joins them. Queued work still completes first.
    leaked = list(_OPEN_CONNECTIONS.items())
    if leaked:
        logging.getLogger("zepix_store").warning(
            "zepix_store: closing %d database connection(s) a Store never closed (%s): use `async with "
            "Store.open(...) as store:`, or call `await store.aclose()` when done",
            len(leaked), ", ".join(sorted({str(path) for _, path in leaked})))
    for conn, _ in leaked:
        conn.stop()


threading._register_atexit(_stop_leaked_workers)  # type: ignore[attr-defined]


async def _worker_stopped(conn: aiosqlite.Connection, timeout: float = 5.0) -> None:
    """Wait for the worker thread of a connection that failed to open.

    aiosqlite queues that worker's stop without awaiting it; a worker still running when the event loop closes
    dies with "Event loop is closed" on stderr (seen when a bot's first read of a damaged file is its last act).
    """
    thread = conn._thread  # private, like _execute (see module doc)
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        await asyncio.sleep(0.001)


class _Cancelled(Exception):
    """Raised on the worker thread to roll back a transaction whose caller was cancelled."""


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    # A cancelled caller no longer awaits the shielded future; reading its error keeps asyncio quiet.
    if not fut.cancelled():
        fut.exception()


def _run_transaction(conn: sqlite3.Connection, gate: CommitGate, fn: Callable[..., T],
                     args: tuple[Any, ...]) -> T:
    if gate.cancelled:
        raise _Cancelled()
    with transaction(conn):
        result = fn(conn, *args)
        if not gate.enter_commit():
            raise _Cancelled()
    return result


def prepare_file(conn: sqlite3.Connection, path: Path, config: StoreConfig, upgrades: Upgrades) -> None:
    """Create the schema in a new file, or back up then upgrade an older one, noting it in `upgrades`."""
    if upgrade.is_empty(conn):
        with transaction(conn):
            upgrade.initialise(conn)
    elif upgrade.needs_upgrade(conn, path):
        backup = None
        if wants_backup(config, path):
            backup = backup_connection(conn, path, config.backup_dir, "pre-upgrade",
                                       identity=identity_of(config, path))
        report = upgrade.upgrade(conn, path, config.rules)
        upgrades.append((path, backup, report))


def wants_backup(config: StoreConfig, path: Path) -> bool:
    """Whether automatic backups of `path` are on: always for the shared file, else unless every plugin routed
    there says `backup_enabled: false` (the bot template's key)."""
    if path == config.shared_db:
        return True
    owners = [p for p in config.plugins.values() if p.db_path == path]
    return not owners or any(p.backup_enabled for p in owners)


class _FileReader(Database):
    """Reads of a file we cannot write (readonly.read_only_here): one short read-only connection per read."""

    def __init__(self, path: Path, operations: Operations) -> None:  # noqa: D107 - no lasting connection
        self.path = path
        self.operations = operations

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(_read_once, self.path, fn, args)

    async def write(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        raise AssertionError("writes are routed to the file, never to _FileReader")

    async def close(self) -> None:
        """Nothing stays open."""


def _read_once(path: Path, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    with translated_errors(path), _snapshot_of(path) as conn:
        return fn(conn, *args)


@contextmanager
def _snapshot_of(path: Path) -> Iterator[Connection]:
    conn = open_reader(path)
    try:
        with read_snapshot(conn):
            yield conn
    finally:
        conn.close()


class SQLiteBackend(Backend):
    """SQLite files: the shared file and one file per isolated group, each on its own connection."""

    name: ClassVar[str] = "sqlite"
    operations = OPERATIONS

    async def open_database(self, path: Path, config: StoreConfig, upgrades: Upgrades) -> SQLiteDatabase:
        db = await SQLiteDatabase.open(path, data_dir=config.data_dir)
        try:
            await db.read(prepare_file, path, config, upgrades)
        except BaseException:
            await db.close()
            raise
        return db

    def connect(self, path: Path, config: StoreConfig, upgrades: Upgrades, *, create: bool,
                plugin_id: str | None = None) -> Connection | None:
        if not create and not os.path.lexists(path):
            return None
        conn = connect_sync(path, create=create, data_dir=config.data_dir)
        try:
            prepare_file(conn, path, config, upgrades)
        except BaseException:
            conn.close()
            raise
        return conn

    def empty(self) -> Connection:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        for sql in create_schema_sql():
            conn.execute(sql)
        return conn

    def exists(self, path: Path) -> bool:
        return os.path.lexists(path)

    def read_only(self, path: Path) -> Database | None:
        return _FileReader(path, self.operations) if read_only_here(path) else None

    def read_only_snapshot(self, path: Path) -> AbstractContextManager[Connection] | None:
        return _snapshot_of(path) if read_only_here(path) else None

    def transaction(self, conn: Connection) -> AbstractContextManager[Connection]:
        return transaction(conn)  # type: ignore[arg-type]  # the connections it gives out are sqlite3 ones

    def translated_errors(self, where: object) -> AbstractContextManager[None]:
        return translated_errors(where)


SQLITE = SQLiteBackend()
