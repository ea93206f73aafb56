"""Store: routes each plugin to the shared file or its isolated file, and owns every connection it opens.

The Store picks its backend from store.yaml's `backend` (backend_for: SQLite files, or the PostgreSQL server of
backend/postgresql/) and otherwise talks to backend/base.py's interface. It never imports the tooling:
`move_plugin` runs the Mover the package installed (flip's).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import warnings
from collections.abc import Callable, Generator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from ._routing import MoveGate, RoutedDatabase
from .backend.base import Backend, Database, EmptyDatabase, Upgrades
from .backend.sqlite import SQLITE
from .config import StoreConfig, load_config
from .errors import IsolationError, StoreError
from .plugin_store import PluginStore
from .route_follow import RouteFollower
from .rows import Row

__all__ = [
    'HOW_TO_CLOSE',
    'MoveReport',
    'Mover',
    'Store',
    'backend_for',
    'install_mover',
    'load_lenient_config',
]

T = TypeVar("T")
log = logging.getLogger("zepix_store")
HOW_TO_CLOSE = "use `async with Store.open(...) as store:`, or call `await store.aclose()` when done"


class MoveReport(Protocol):
    """What a move of a plugin reports (flip's FlipReport): the Store reroutes only when it is ok."""

    @property
    def ok(self) -> bool: ...


class Mover(Protocol):
    """Moves a plugin's rows and rewrites its config (blocking; the Store runs it on a thread)."""

    def __call__(self, config_dir: str, plugin_id: str, to: str, *, prune: bool = False) -> MoveReport: ...


# How Store.move_plugin moves the rows: the file tooling's flip, installed by the package (zepix_store/__init__.py)
# so that the core never imports the tooling.
_MOVERS: dict[str, Mover] = {}


def install_mover(mover: Mover) -> None:
    """Make `mover` what Store.move_plugin runs (the package installs flip's when it is imported)."""
    _MOVERS["mover"] = mover


class Store:
    """All plugin stores of one config folder. Use `async with Store.open("configs") as store:`."""

    def __init__(self, config: StoreConfig, *, backend: Backend | None = None) -> None:
        self.config = config
        self.backend = backend if backend is not None else backend_for(config)
        self._databases: dict[Path, Database] = {}
        self._opening: dict[Path, asyncio.Lock] = {}
        self._handles: dict[str, PluginStore] = {}
        self._gates: dict[str, MoveGate] = {}
        self._follows: dict[str, RouteFollower] = {}  # each plugin's route as its config.json says now
        self._unattributed: PluginStore | None = None
        self._no_file = EmptyDatabase(self.backend)
        self.zone = config.zone
        self._closed = False
        self.upgrades: Upgrades = []  # (file, its backup, report)

    @classmethod
    def open(cls, config_dir: str | os.PathLike[str] = "configs", *, strict: bool = False) -> Store:
        """Load and validate the configs (no database is touched until a plugin uses its store).

        Not a coroutine: `async with Store.open("configs") as store:` closes every connection at the end.
        A plugin whose own config.json is invalid is disabled alone (a warning now; `for_plugin` of it raises
        its ConfigError); `strict=True` refuses every bad config, as the commands do.
        """
        return cls(load_lenient_config(config_dir, strict=strict))

    def __await__(self) -> Generator[Any, None, Self]:
        raise TypeError(f"Store.open() returns the store itself, it is not awaited: {HOW_TO_CLOSE}")

    def __del__(self) -> None:
        # At interpreter exit backend/sqlite.py's hook has named the unclosed files already.
        # getattr: __init__ may have refused the config before setting anything
        if not getattr(self, "_closed", True) and self._databases and not sys.is_finalizing():
            message = (f"a Store with {len(self._databases)} open database connection(s) was never closed: "
                       f"{HOW_TO_CLOSE}")
            warnings.warn(message, ResourceWarning, source=self, stacklevel=2)
            log.warning("zepix_store: %s", message)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def for_plugin(self, plugin_id: str) -> PluginStore:
        """The handle of `plugin_id`, routed where its config.json says (UnknownPluginError if none)."""
        self.config.plugin(plugin_id)
        handle = self._handles.get(plugin_id)
        if handle is None:
            gate = self._gates.setdefault(plugin_id, MoveGate())
            follow = self._follows[plugin_id] = RouteFollower(self.config, plugin_id)

            async def route() -> Database:  # where the config routes the plugin now (a flip changes it)
                return (await self._database(follow.plugin().db_path)).as_plugin(plugin_id)

            async def read_route() -> Database:
                return (await self._reader(follow.plugin().db_path)).as_plugin(plugin_id)

            # the writers' lock coordinates with a flip of the SQLite files (no file tooling moves server rows yet)
            hold = follow.writers.hold_async if self.backend.name == "sqlite" else None
            routed = RoutedDatabase(route, gate, self.backend.operations, read_route, hold)

            async def database() -> Database:
                return routed

            handle = PluginStore(plugin_id, database, zone=self.zone)
            self._handles[plugin_id] = handle
        return handle

    async def move_plugin(self, plugin_id: str, to: str, *, prune: bool = False) -> MoveReport:
        """Move a plugin to "isolated" or "shared" while the bot runs: `zepix-store flip` from inside the process.

        That plugin's calls wait (those in flight finish first); every other plugin's go on. The rows are
        synchronised and verified, config.json rewritten, and the handle routed to the new place; a refused or
        failed move leaves the old route (the report says why). Raises what flip raises for bad input.
        """
        self.for_plugin(plugin_id)
        if self.backend.name != "sqlite":
            raise StoreError(f"{self.config.config_dir}: move_plugin moves rows between SQLite files; on "
                             f"{self.backend.name} it is not available yet (the plugin keeps its route)")
        mover = _MOVERS.get("mover")
        if mover is None:
            raise StoreError(f"{self.config.config_dir}: no mover installed; import zepix_store to install flip's")
        async with self._gates[plugin_id].closed():
            report = await asyncio.to_thread(mover, str(self.config.config_dir), plugin_id, to, prune=prune)
            if report.ok:
                moved = load_config(self.config.config_dir).plugin(plugin_id)
                self.config.plugins[plugin_id] = moved
        return report

    def unattributed(self) -> PluginStore:
        """A read-only handle on the shared file's rows no plugin owns (the default id's): every write refuses.

        Its first use opens the shared file as any shared plugin's would (an older file is backed up, then
        upgraded).
        """
        if self._unattributed is None:
            async def database() -> Database:
                return _ReadOnly(await self._reader(self.config.shared_db), self.config.default_plugin_id)
            self._unattributed = PluginStore(self.config.default_plugin_id, database, zone=self.zone)
        return self._unattributed

    async def _reader(self, path: Path) -> Database:
        """Where a read of `path` goes: its connection once open; nothing but an empty schema while the database
        does not exist (a read creates no file); the backend's read-only view where it cannot be written (a
        read-only folder or mount); else the database opened as for a write."""
        db = self._databases.get(path)
        if db is not None:
            return db
        if self._closed:
            raise RuntimeError("Store is closed")
        if not self.backend.exists(path):
            return self._no_file
        return self.backend.read_only(path) or await self._database(path)

    async def _database(self, path: Path) -> Database:
        db = self._databases.get(path)
        if db is not None:
            return db
        if self._closed:
            raise RuntimeError("Store is closed")
        async with self._opening.setdefault(path, asyncio.Lock()):
            db = self._databases.get(path)
            if db is None:
                # created if new, else backed up and upgraded if older, inside data_dir; the backend's worker
                # thread keeps its last call, so it is given the config and the list, never the Store (a dropped,
                # unclosed Store is then collected and says so)
                db = await self.backend.open_database(path, self.config, self.upgrades)
                self._databases[path] = db
        return db

    async def aclose(self) -> None:
        """Close every connection this store opened (safe to call twice, and to cancel)."""
        self._closed = True
        for follow in self._follows.values():
            follow.close()
        databases, self._databases = [self._no_file, *self._databases.values()], {}
        first: BaseException | None = None
        for db in databases:
            # Keep closing after a cancellation or an error: a connection left open keeps its aiosqlite
            # worker thread alive, and that thread hangs the process at exit.
            try:
                await db.close()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, once every connection is closed
                first = first or exc
        self.backend.close()
        if first is not None:
            raise first

    async def get_trades_by_plugin(self, plugin_id: str, days: int = 30) -> list[Row]:
        return await self.for_plugin(plugin_id).get_trades(days)

    async def get_plugin_statistics(self, plugin_id: str) -> Row:
        return await self.for_plugin(plugin_id).get_statistics()

    async def get_all_plugin_statistics(self) -> dict[str, Row]:
        """Statistics of every configured plugin, each read where its config routes it."""
        ids = list(self.config.plugins)
        results = await asyncio.gather(*(self.get_plugin_statistics(i) for i in ids))
        return dict(zip(ids, results, strict=True))


def backend_for(config: StoreConfig, *, connections: int | None = None) -> Backend:
    """The backend store.yaml names: the SQLite files (default), or a PostgreSQL backend of its own (its pool of at
    most `connections` connections, default 4).

    psycopg is imported only here, when store.yaml names PostgreSQL (an optional extra).
    """
    if config.backend == "postgresql":
        from .backend.postgresql import require_driver

        require_driver()
        from .backend.postgresql.store import PostgresBackend

        return PostgresBackend(config, connections=connections)
    return SQLITE


def load_lenient_config(config_dir: str | os.PathLike[str], *, strict: bool = False) -> StoreConfig:
    """load_config for a running bot: a plugin's own bad config.json disables that plugin, logged as a warning."""
    config = load_config(config_dir, strict=strict)
    for error in config.disabled.values():
        log.warning("zepix_store: plugin disabled: %s", error)
    return config


class _ReadOnly(Database):
    """A Database whose writes all refuse: reads go to the shared connection it wraps."""

    def __init__(self, inner: Database, owner: str) -> None:  # noqa: D107 - no super().__init__: a view of `inner`
        self._inner = inner
        self._owner = owner
        self.path = inner.path
        self.operations = inner.operations

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._inner.read(fn, *args)

    async def write(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        raise IsolationError(f"{self.path}: the rows of {self._owner!r} (not attributed to any plugin) are read-only; "
                             "give them an owner through store.yaml's mapping and migrate again")

    async def close(self) -> None:
        """The Store closes the connection it wraps."""
