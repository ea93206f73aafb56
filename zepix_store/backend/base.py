"""The small interface the runtime core needs from a database engine, as Django's backends/base draws it.

`Backend` opens the database a plugin is routed to (async for `Store`, sync for the compat facade), prepares
it (schema created or upgraded), and turns the driver's errors into StoreErrors. `Database` runs a whole read
or a whole write transaction as one call. `Operations` holds the few SQL spellings that differ between engines
(placeholder, insert returning its id, upsert, a list parameter), `Features` what an engine can do. The
statements themselves live in queries/ and are built through `Operations` where the dialects differ.

Statements are written once, with `?` (or `?N` numbered) parameters and SQL both engines read; what differs
goes through `Operations`: time windows (SQLite's index key of timefmt vs PostgreSQL's `timestamptz`
companions), truth tests of legacy flag columns, insertion order, the values written (PostgreSQL fills each time
column's companion and zx_raw), the ids of a batch. The PostgreSQL connection turns `?` into psycopg's `%s`.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from .. import timefmt

if TYPE_CHECKING:
    from ..config import StoreConfig

__all__ = [
    "Backend",
    "CommitGate",
    "Connection",
    "Cursor",
    "Database",
    "EmptyDatabase",
    "Features",
    "Operations",
    "Upgrades",
]

T = TypeVar("T")
# (file, its backup, the upgrade's report) of each older database upgraded when first opened
Upgrades = list[tuple[Path, Path | None, Any]]


class Cursor(Protocol):
    """What the core reads from a statement's result (a DB-API cursor)."""

    @property
    def description(self) -> Any: ...
    @property
    def rowcount(self) -> int: ...
    @property
    def lastrowid(self) -> int | None: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the core's statements call on a connection (a DB-API connection that executes directly)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Features:
    """What an engine can do, where the core's statements take a different path because of it."""

    # Rows inserted by one executemany in one writer's transaction get consecutive ids ending at the last
    # inserted one, so a batch's ids need no RETURNING (SQLite without AUTOINCREMENT).
    consecutive_batch_ids: bool = False
    # A batch of new rows goes in as one bulk load (`Operations.insert_batch`, e.g. COPY) and its ids are read back
    # by key: every row needs a key, as each trade_id is new and unique in the batch.
    bulk_insert_by_key: bool = False


class Operations:
    """The SQL spellings that differ between engines; table and column names come from schema.py only."""

    features: ClassVar[Features] = Features()
    # the driver's constraint-violation exception(s): a duplicate key or a missing parent becomes a RowError
    integrity_error: tuple[type[Exception], ...] = ()
    placeholder: ClassVar[str] = "?"

    def placeholders(self, count: int) -> str:
        """`?, ?, ?`: `count` parameters in the engine's style."""
        return ", ".join([self.placeholder] * count)

    def insert_sql(self, table: str, columns: Sequence[str]) -> str:
        """An INSERT of `columns` whose execution `inserted_id` reads the new row's id from."""
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({self.placeholders(len(columns))})"

    def upsert_sql(self, table: str, columns: Sequence[str], key: Sequence[str], updates: Sequence[str]) -> str:
        """Insert, or on a duplicate `key` set `updates` from the new row (nothing when `updates` is empty)."""
        sets = ", ".join(f"{c} = excluded.{c}" for c in updates)
        action = f"DO UPDATE SET {sets}" if updates else "DO NOTHING"
        return f"{self.insert_sql(table, columns)} ON CONFLICT ({', '.join(key)}) {action}"

    def inserted_id(self, cursor: Cursor) -> int:
        """The id of the row the statement of `insert_sql` inserted."""
        raise NotImplementedError

    def in_list(self, expression: str) -> str:
        """`expression` is one of the values of ONE parameter holding a list (`list_parameter`)."""
        raise NotImplementedError

    def list_parameter(self, values: Sequence[str]) -> Any:
        """The parameter `in_list` reads its values from."""
        raise NotImplementedError

    # -- rows written: the columns and values of a checked row (a backend may add columns it maintains) ----------
    def write_values(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """The columns and values one checked row (plugin_id included) is stored as."""
        return dict(row)

    def insert(self, table: str, row: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """(statement, parameters) inserting `row` (plugin_id included); `inserted_id` reads its id."""
        values = self.write_values(table, row)
        return self.insert_sql(table, list(values)), list(values.values())

    def upsert(self, table: str, row: Mapping[str, Any], key: Sequence[str]) -> tuple[str, list[Any]]:
        """(statement, parameters) inserting `row`, or on a duplicate `key` updating the columns `row` gives."""
        values = self.write_values(table, row)
        return self.upsert_sql(table, list(values), key, [c for c in values if c not in key]), list(values.values())

    def assignments(self, table: str, row: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """(`a = ?, b = ?` of an UPDATE's SET, its parameters) writing the columns of `row`."""
        values = self.write_values(table, row)
        return ", ".join(f"{c} = {self.placeholder}" for c in values), list(values.values())

    def lock_key(self, conn: Connection, *key: str) -> None:
        """Serialise the writers of one key (e.g. a trade_id) until the transaction ends, where the engine's write
        transaction does not already (SQLite's BEGIN IMMEDIATE does)."""

    def lock_keys(self, conn: Connection, scope: Sequence[str], keys: Sequence[str]) -> None:
        """lock_key(conn, *scope, key) for every key, taken in one fixed order so that two batches never deadlock
        (a no-op where the engine's write transaction already serialises the writers)."""

    def insert_batch(self, conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                     key: str) -> list[int]:
        """Insert `rows` (values in `columns` order, each `key` new and unique) in one bulk load; their new ids,
        in row order, read back by `key` (features.bulk_insert_by_key only)."""
        raise NotImplementedError

    def batch_ids(self, conn: Connection, count: int) -> list[int]:
        """The ids of the `count` rows the last executemany inserted (features.consecutive_batch_ids only)."""
        raise NotImplementedError

    # -- reads --------------------------------------------------------------------------------------------------
    def window(self, column: str, first: int | None = None) -> str:
        """DATETIME `column` is an instant in a window, bound by `window_bounds` (numbered from ?first if given)."""
        return timefmt.window_sql(timefmt.time_key_sql(column), first)

    def window_bounds(self, since: datetime | None, before: datetime | None, zone: tzinfo) -> tuple[Any, ...]:
        """The parameters of `window` for instants `since` (inclusive) to `before` (exclusive); None is open."""
        return timefmt.band_bounds(since, before, zone)

    def is_true(self, column: str) -> str:
        """A flag column (INTEGER/BOOLEAN) holds a true value, as SQLite's `CASE WHEN column` reads it."""
        return column

    def is_true_value(self, column: str) -> str:
        """A flag column holds one of the true spellings legacy files hold (1, '1', 'true', 'True', 'TRUE')."""
        return f"{column} IN (1, '1', 'true', 'True', 'TRUE')"

    def insertion_order(self, table: str) -> str:
        """ORDER BY terms listing a table's rows in the order they were first inserted."""
        return "rowid"


class CommitGate:
    """Decides, once and atomically, whether a transaction commits or its caller's cancellation wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "pending"

    def enter_commit(self) -> bool:
        with self._lock:
            if self._state == "cancelled":
                return False
            self._state = "committing"
            return True

    def cancel(self) -> bool:
        with self._lock:
            if self._state == "committing":
                return False
            self._state = "cancelled"
            return True

    @property
    def cancelled(self) -> bool:
        return self._state == "cancelled"


class Database(abc.ABC):
    """One open database a plugin is routed to; every call is a whole unit of work on it.

    `fn` is called as `fn(connection, *args)` (a `Connection`), in the backend's own thread or task.
    """

    path: Path
    operations: Operations

    @abc.abstractmethod
    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` and return its result (one consistent read)."""

    @abc.abstractmethod
    async def write(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        """Run `fn` in one write transaction: all of it is committed, or none (`inline`: a small write)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection (safe to call twice)."""

    def as_plugin(self, plugin_id: str) -> Database:
        """This database as one plugin's calls use it (PostgreSQL: under the plugin's role once pg-setup ran)."""
        return self


class Backend(abc.ABC):
    """An engine the store runs on: how to open, prepare and transact, and how its errors read."""

    name: ClassVar[str]
    operations: Operations

    @abc.abstractmethod
    async def open_database(self, path: Path, config: StoreConfig, upgrades: Upgrades) -> Database:
        """Open (creating if needed) and prepare the database at `path`, noting any upgrade in `upgrades`."""

    @abc.abstractmethod
    def connect(self, path: Path, config: StoreConfig, upgrades: Upgrades, *, create: bool,
                plugin_id: str | None = None) -> Connection | None:
        """A synchronous connection to the prepared database, or None if it does not exist and not `create`
        (`plugin_id`: whose calls it runs, for an engine that runs them under the plugin's own rights)."""

    @abc.abstractmethod
    def empty(self) -> Connection:
        """A synchronous connection to an empty schema: what reads see before the database exists."""

    @abc.abstractmethod
    def exists(self, path: Path) -> bool:
        """Whether the database at `path` exists (a read of one that does not must create nothing)."""

    @abc.abstractmethod
    def read_only(self, path: Path) -> Database | None:
        """Reads of `path` where it cannot be written (a read-only folder or mount), or None where it can."""

    @abc.abstractmethod
    def read_only_snapshot(self, path: Path) -> AbstractContextManager[Connection] | None:
        """One consistent read of `path` on a short connection where it cannot be written, or None where it can."""

    @abc.abstractmethod
    def transaction(self, conn: Connection) -> AbstractContextManager[Connection]:
        """One write transaction on a synchronous connection: commit at the end, roll back on any exception."""

    @abc.abstractmethod
    def translated_errors(self, where: object) -> AbstractContextManager[None]:
        """Re-raise the driver's errors on `where` as typed StoreErrors."""

    def run_sync(self, conn: Connection, fn: Callable[[Connection], T], *, write: bool) -> T:
        """Run `fn(conn)` as one transaction on a synchronous connection (an engine may retry a read)."""
        with self.transaction(conn):
            return fn(conn)

    def close(self) -> None:  # noqa: B027 - most engines hold nothing beyond their databases
        """Release what the backend holds beyond its databases (a connection pool); safe to call twice."""


class EmptyDatabase(Database):
    """The reads of a database that does not exist yet: the current schema, empty (Backend.empty). Never written."""

    def __init__(self, backend: Backend) -> None:  # noqa: D107 - no super().__init__: no file behind it
        self.path = Path()
        self.operations = backend.operations
        self._backend = backend
        self._conn: Connection | None = None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._conn is None:
            self._conn = self._backend.empty()
        return fn(self._conn, *args)  # empty: no need to leave the event loop

    async def write(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        raise AssertionError("writes are routed to the database, never to EmptyDatabase")

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
