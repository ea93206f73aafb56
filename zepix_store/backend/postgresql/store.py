"""The PostgreSQL backend (SPEC 9): one database per store, one schema per routed file, a pool of connections.

The query functions of queries/ are synchronous and shared by PluginStore and the compat facade, so one sync
`psycopg_pool.ConnectionPool` serves both: `PgDatabase.read`/`write` run the function on a pooled connection in
a thread (asyncio.to_thread), the facade on its own thread. Each call first points the pooled
connection's session at the file's schema (`search_path`, so the unqualified table names of queries/ are that
schema's) and, once `pg-setup` has recorded a role for the plugin, at that role (`SET ROLE`): the server then
enforces the plugin's isolation whatever the statement says. Before pg-setup the connecting user's own rights
apply. A write is one transaction; a read runs its statements as they come (READ COMMITTED gives each statement
its own snapshot inside a transaction too), so a read on a connection already pointed there is one round trip.

A lost connection: a read is retried once on another connection, and so is a write whose connection was found
dead before its transaction began (a server restart or an idle timeout while the bot was quiet: the bot never
retries a save, so reporting it would lose a trade's close). A connection lost inside a write's transaction raises
StoreUnavailableError (the server rolled back the transaction it never saw committed: nothing half-applied).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ...config import PostgresConfig, StoreConfig
from ...errors import ConfigError, StoreError, StoreUnavailableError
from ..base import Backend, CommitGate, Connection, Cursor, Database, Upgrades
from .connection import CONNECT_TIMEOUT, connect, translate_pg_error
from .ddl import ensure_schemas
from .names import find_plugin_role, layout_of
from .operations import PgConnection, PgOperations, configure_connection

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = ["PgDatabase", "PgRoute", "PostgresBackend"]

T = TypeVar("T")
CLOSE_WAIT_S = 60.0  # how long closing the store waits for the calls made before it (each waits 30 s at most)
POOL_SIZE = 4  # 8 writers through a pool of 4 beat one SQLite connection by about 2x (issue 19's measurement)


# what each pooled connection's session is pointed at: (schema, role or None); a new connection has no entry
_POINTED: weakref.WeakKeyDictionary[psycopg.Connection[Any], tuple[str, str | None]] = weakref.WeakKeyDictionary()


class _NotStarted(Exception):
    """The pooled connection was dead before a statement of the call reached the server (safe to run again)."""


class _Cancelled(Exception):
    """Raised in the worker thread to roll back a transaction whose caller was cancelled."""


class PgRoute:
    """Where one plugin's calls run: the schema of its file, and its role once pg-setup made one.

    It is the facade's Connection: each `execute` outside `PostgresBackend.run_sync` is a transaction of its own.
    """

    def __init__(self, backend: PostgresBackend, schema: str, plugin_id: str | None) -> None:
        self.backend = backend
        self.schema = schema
        self.plugin_id = plugin_id
        self._role: tuple[str | None] | None = None  # resolved at the first call
        self._lock = threading.Lock()

    @property
    def role_unknown(self) -> bool:
        return self._role is None

    def role(self, conn: psycopg.Connection[Any]) -> str | None:
        """The plugin's role, looked up on `conn` (as the connecting user) at the first call."""
        if self._role is None:
            with self._lock:
                if self._role is None:
                    self._role = (self.backend.role_of(conn, self.plugin_id),)
        return self._role[0]

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        return self.backend.run(self, lambda c: c.execute(sql, parameters), write=True)

    def executemany(self, sql: str, parameters: Any, /) -> Cursor:
        return self.backend.run(self, lambda c: c.executemany(sql, parameters), write=True)

    def close(self) -> None:
        """The backend's pool owns the connections."""


class PgDatabase(Database):
    """One schema (a routed file) of the store's database: each call on a pooled connection, a write one transaction."""

    def __init__(self, backend: PostgresBackend, path: Path, schema: str, plugin_id: str | None = None) -> None:
        self.path = path
        self.operations = backend.operations
        self._backend = backend
        self._route = PgRoute(backend, schema, plugin_id)
        self._views: dict[str, PgDatabase] = {}

    def as_plugin(self, plugin_id: str) -> Database:
        view = self._views.get(plugin_id)
        if view is None:
            view = self._views[plugin_id] = PgDatabase(self._backend, self.path, self._route.schema, plugin_id)
        return view

    def _tracked(self, call: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """`call` as a future the store's close waits for (a call made before close still runs, as on SQLite)."""
        future = asyncio.ensure_future(call)
        self._backend.in_flight.add(future)
        future.add_done_callback(self._backend.in_flight.discard)
        return future

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._tracked(asyncio.to_thread(
            self._backend.run, self._route, lambda c: fn(c, *args), write=False))

    async def write(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        """Run `fn` in one transaction; cancelled before its COMMIT starts, it is rolled back (as on SQLite)."""
        gate = CommitGate()
        inner = self._tracked(asyncio.to_thread(
            self._backend.run, self._route, lambda c: fn(c, *args), write=True, gate=gate))
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            if gate.cancel():
                inner.add_done_callback(_consume)
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            return await inner

    async def close(self) -> None:
        """Wait for the calls made before (the backend then closes the pool: a call still waiting for a
        connection then failed with 'lost the connection', a save the bot made before it shut down)."""
        loop = asyncio.get_running_loop()
        pending = {f for f in self._backend.in_flight if f.get_loop() is loop}
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_WAIT_S)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


class PostgresBackend(Backend):
    """The store's database on a PostgreSQL server; one per Store or facade (it owns the connection pool)."""

    name: ClassVar[str] = "postgresql"

    def __init__(self, config: StoreConfig, *, connections: int | None = None) -> None:
        if config.postgresql is None:
            raise ConfigError(f"{config.config_dir}: backend postgresql needs a postgresql block in store.yaml")
        self.config = config
        self.pg: PostgresConfig = config.postgresql
        self.operations = PgOperations(config.zone)
        self._connections = connections  # the pool's most (default POOL_SIZE)
        self._prefix = self.pg.schema_prefix
        self._schemas: dict[str, str] = {}  # file name relative to data_dir -> schema
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.in_flight: set[asyncio.Future[Any]] = set()  # the async calls running (PgDatabase._tracked)

    # -- layout ------------------------------------------------------------------------------------------------
    def _file_name(self, path: Path) -> str:
        return path.resolve().relative_to(self.config.data_dir.resolve()).as_posix()

    def schema_of(self, path: Path) -> str:
        """The schema of the file at `path`, every schema of the layout created (or upgraded) at first use."""
        import psycopg

        name = self._file_name(path)
        with self._lock:
            if name not in self._schemas:
                with connect(self.pg) as conn:
                    try:
                        self._schemas = ensure_schemas(conn, layout_of(self.config, self._prefix))
                    except psycopg.Error as exc:
                        raise translate_pg_error(exc, self.pg) from None
            if name not in self._schemas:
                raise ConfigError(f"{path}: no plugin config routes to this file")
            return self._schemas[name]

    def role_of(self, conn: psycopg.Connection[Any], plugin_id: str | None) -> str | None:
        """The role pg-setup made for `plugin_id` (one the connecting user may take), or None before it ran."""
        return None if plugin_id is None else find_plugin_role(conn, self._prefix, plugin_id)

    # -- running calls -----------------------------------------------------------------------------------------
    def _pool_of(self) -> ConnectionPool[psycopg.Connection[Any]]:
        from psycopg_pool import ConnectionPool

        with self._lock:
            if self._closed:
                raise StoreError("the PostgreSQL store is closed")
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.pg.dsn, min_size=1, max_size=self._connections or POOL_SIZE, open=True, name="zepix_store",
                    timeout=30, kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
                    configure=configure_connection)
            return self._pool

    def run(self, route: PgRoute, fn: Callable[[Connection], T], *, write: bool, gate: CommitGate | None = None) -> T:
        """Run `fn` on `route` (a write in one transaction); a read is retried once on a lost connection."""
        import psycopg
        from psycopg_pool import PoolTimeout

        if write and gate is None:  # the facade's calls: one transaction too (its key lock lasts to the COMMIT)
            gate = CommitGate()
        for attempt in (1, 2):
            try:
                return self._run_once(route, fn, gate)
            except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, _NotStarted) as exc:
                lost = exc.__cause__ if isinstance(exc, _NotStarted) else exc
                assert lost is not None
                # a write is retried only if the connection was found dead before its transaction began
                if (write and not isinstance(exc, _NotStarted)) or attempt == 2 or isinstance(exc, PoolTimeout):
                    raise self._unavailable(lost) from None
                self._pool_of().check()  # a server restart drops every pooled connection: retry on a live one
            except psycopg.Error as exc:
                raise translate_pg_error(exc, self.pg) from None
        raise AssertionError("unreachable")

    def _unavailable(self, exc: BaseException) -> StoreError:
        from psycopg_pool import PoolTimeout

        if isinstance(exc, PoolTimeout):
            return StoreUnavailableError(f"postgresql ({self.pg.source}): no connection to the server: {exc}")
        return translate_pg_error(exc, self.pg)

    def _run_once(self, route: PgRoute, fn: Callable[[Connection], T], gate: CommitGate | None) -> T:
        import psycopg

        with self._pool_of().connection() as conn, ExitStack() as transaction:
            try:
                self._point(conn, route)
                if gate is not None:
                    transaction.enter_context(conn.transaction())
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                # found dead (a server restart or an idle timeout since its last use): the server saw no statement
                raise _NotStarted() from exc
            if gate is None:  # a read: READ COMMITTED gives each statement its own snapshot, in a transaction or not
                return fn(PgConnection(conn))
            if gate.cancelled:
                raise _Cancelled()
            result = fn(PgConnection(conn))
            if not gate.enter_commit():
                raise _Cancelled()
            transaction.close()  # COMMIT (an exception above rolls back as the stack unwinds)
            return result

    def _point(self, conn: psycopg.Connection[Any], route: PgRoute) -> None:
        """Point the pooled connection's session at `route`: its schema first on search_path (the statements name
        tables without a schema) and, after pg-setup, the plugin's role.

        Set per session, outside any transaction, and only where the connection is not pointed there already
        (a read is then one round trip): a rolled-back transaction cannot undo it behind our back.
        """
        current = _POINTED.get(conn)
        if route.role_unknown and current is not None and current[1] is not None:
            conn.execute("RESET ROLE")  # the role lookup runs as the connecting user, never as another plugin
            current = _POINTED[conn] = (current[0], None)
        wanted = (route.schema, route.role(conn))
        if current != wanted:
            conn.execute("SELECT set_config('search_path', %s, false), set_config('role', %s, false)",
                         [f'"{route.schema}"', wanted[1] or "none"])
            _POINTED[conn] = wanted

    # -- the Backend interface ---------------------------------------------------------------------------------
    async def open_database(self, path: Path, config: StoreConfig, upgrades: Upgrades) -> PgDatabase:
        """The schema of `path` (the layout's schemas made at first use); `upgrades` stays empty: a schema is
        versioned in the registry (ddl.ensure_schemas), never backed up here."""
        schema = await asyncio.to_thread(self.schema_of, path)
        return PgDatabase(self, path, schema)

    def connect(self, path: Path, config: StoreConfig, upgrades: Upgrades, *, create: bool,
                plugin_id: str | None = None) -> Connection | None:
        return PgRoute(self, self.schema_of(path), plugin_id)

    def run_sync(self, conn: Connection, fn: Callable[[Connection], T], *, write: bool) -> T:
        assert isinstance(conn, PgRoute), conn
        return self.run(conn, fn, write=write)

    def empty(self) -> Connection:
        raise AssertionError("a PostgreSQL store creates its schemas at first use: reads never need an empty one")

    def exists(self, path: Path) -> bool:
        return True  # the schemas are created at first use, as one transaction, under the store's advisory lock

    def read_only(self, path: Path) -> Database | None:
        return None

    def read_only_snapshot(self, path: Path) -> AbstractContextManager[Connection] | None:
        return None

    def transaction(self, conn: Connection) -> AbstractContextManager[Connection]:
        raise AssertionError("PostgreSQL calls run through run_sync")

    def translated_errors(self, where: object) -> AbstractContextManager[None]:
        return self._translated()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            raise translate_pg_error(exc, self.pg) from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
