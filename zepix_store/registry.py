"""Store: routes each plugin to the shared file or its isolated file, and owns every connection it opens."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys
import warnings
from collections.abc import Callable, Generator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from . import upgrade
from ._routing import MoveGate, RoutedDatabase
from .config import StoreConfig, load_config
from .db import Database, transaction, translated_errors
from .errors import IsolationError
from .plugin_store import PluginStore
from .readonly import open_reader, read_only_here
from .rows import Row
from .schema import create_schema_sql

__all__ = [
    'HOW_TO_CLOSE',
    'Store',
    'load_lenient_config',
    'prepare_file',
    'wants_backup',
]

if TYPE_CHECKING:
    from .ops.flip import FlipReport

T = TypeVar("T")
log = logging.getLogger("zepix_store")
HOW_TO_CLOSE = "use `async with Store.open(...) as store:`, or call `await store.aclose()` when done"


class Store:
    """All plugin stores of one config folder. Use `async with Store.open("configs") as store:`."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._databases: dict[Path, Database] = {}
        self._opening: dict[Path, asyncio.Lock] = {}
        self._handles: dict[str, PluginStore] = {}
        self._gates: dict[str, MoveGate] = {}
        self._unattributed: PluginStore | None = None
        self._no_file = _EmptyFile()
        self.zone = config.zone
        self._closed = False
        self.upgrades: list[tuple[Path, Path | None, upgrade.UpgradeReport]] = []  # (file, its backup, report)

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
        # At interpreter exit db.py's hook has named the unclosed files already.
        if not self._closed and self._databases and not sys.is_finalizing():
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

            async def route() -> Database:  # where the config routes the plugin now (move_plugin changes it)
                return await self._database(self.config.plugin(plugin_id).db_path)

            async def read_route() -> Database:
                return await self._reader(self.config.plugin(plugin_id).db_path)

            routed = RoutedDatabase(route, gate, read_route)

            async def database() -> Database:
                return routed

            handle = PluginStore(plugin_id, database, zone=self.zone)
            self._handles[plugin_id] = handle
        return handle

    async def move_plugin(self, plugin_id: str, to: str, *, prune: bool = False) -> FlipReport:
        """Move a plugin to "isolated" or "shared" while the bot runs: `zepix-store flip` from inside the process.

        That plugin's calls wait (those in flight finish first); every other plugin's go on. The rows are
        synchronised and verified, config.json rewritten, and the handle routed to the new place; a refused or
        failed move leaves the old route (the report says why). Raises what flip raises for bad input.
        """
        self.for_plugin(plugin_id)
        from .ops.flip import flip  # the commands' machinery, only when a move is asked for

        async with self._gates[plugin_id].closed():
            report = await asyncio.to_thread(flip, str(self.config.config_dir), plugin_id, to, prune=prune)
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
        """Where a read of `path` goes: its connection once open; nothing but an empty schema while the file does
        not exist (a read creates no file); a short read-only connection per read where we cannot write (a
        read-only folder or mount); else the file opened as for a write."""
        db = self._databases.get(path)
        if db is not None:
            return db
        if self._closed:
            raise RuntimeError("Store is closed")
        if not os.path.lexists(path):
            return self._no_file
        if read_only_here(path):
            return _FileReader(path)
        return await self._database(path)

    async def _database(self, path: Path) -> Database:
        db = self._databases.get(path)
        if db is not None:
            return db
        if self._closed:
            raise RuntimeError("Store is closed")
        async with self._opening.setdefault(path, asyncio.Lock()):
            db = self._databases.get(path)
            if db is None:
                db = await Database.open(path, data_dir=self.config.data_dir)
                try:
                    # not the bound method: the worker thread keeps its last call, which must not keep
                    # the Store alive (a dropped, unclosed Store is then collected and says so)
                    await db.read(prepare_file, path, self.config, self.upgrades)
                except BaseException:
                    await db.close()
                    raise
                self._databases[path] = db
        return db

    def _prepare_file(self, conn: sqlite3.Connection, path: Path) -> None:
        """Create the schema in a new file, or back up then upgrade an older one (runs on the worker thread)."""
        prepare_file(conn, path, self.config, self.upgrades)

    async def aclose(self) -> None:
        """Close every connection this store opened (safe to call twice, and to cancel)."""
        self._closed = True
        self._no_file.close_now()
        databases, self._databases = list(self._databases.values()), {}
        first: BaseException | None = None
        for db in databases:
            # Keep closing after a cancellation or an error: a connection left open keeps its aiosqlite
            # worker thread alive, and that thread hangs the process at exit.
            try:
                await db.close()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, once every connection is closed
                first = first or exc
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

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._inner.read(fn, *args)

    async def write(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        raise IsolationError(f"{self.path}: the rows of {self._owner!r} (not attributed to any plugin) are read-only; "
                             "give them an owner through store.yaml's mapping and migrate again")

    async def close(self) -> None:
        """The Store closes the connection it wraps."""


class _EmptyFile(Database):
    """The reads of a file that does not exist yet: the current schema, empty, in memory. Never written."""

    def __init__(self) -> None:  # noqa: D107 - no super().__init__: no file behind it
        self.path = Path()
        self._memory: sqlite3.Connection | None = None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._memory is None:
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            for sql in create_schema_sql():
                conn.execute(sql)
            self._memory = conn
        return fn(self._memory, *args)  # in memory, empty: no need to leave the event loop

    async def write(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        raise AssertionError("writes are routed to the file, never to _EmptyFile")

    async def close(self) -> None:
        self.close_now()

    def close_now(self) -> None:
        if self._memory is not None:
            self._memory.close()
            self._memory = None


class _FileReader(Database):
    """Reads of a file we cannot write (readonly.read_only_here): one short read-only connection per read."""

    def __init__(self, path: Path) -> None:  # noqa: D107 - no super().__init__: no lasting connection
        self.path = path

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(_read_once, self.path, fn, args)

    async def write(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        raise AssertionError("writes are routed to the file, never to _FileReader")

    async def close(self) -> None:
        """Nothing stays open."""


def _read_once(path: Path, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    conn = open_reader(path)
    try:
        with translated_errors(path):
            return fn(conn, *args)
    finally:
        conn.close()


def prepare_file(conn: sqlite3.Connection, path: Path, config: StoreConfig,
                 upgrades: list[tuple[Path, Path | None, upgrade.UpgradeReport]]) -> None:
    """Create the schema in a new file, or back up then upgrade an older one, noting it in `upgrades`."""
    if upgrade.is_empty(conn):
        with transaction(conn):
            upgrade.initialise(conn)
    elif upgrade.needs_upgrade(conn, path):
        # Imported here, not at the top: `python -m zepix_store.backup` warns if the package imported it first.
        from .backup import backup_connection
        from .backup_identity import identity_of

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
