"""Where stats reads one plugin's trades: every file read-only (readonly.open_reader), a missing one never."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from types import TracebackType
from typing import Any

from .. import attribution, upgrade
from ..attribution_report import AttributionReport, attribution_report
from ..backend.sqlite_file import translated_errors
from ..config import StoreConfig
from ..queries.fetch import fetch_all
from ..readonly import open_reader
from ..rows import Row

__all__ = ["Reader", "TradeSource", "TradeSources"]

# (sql, *params) -> rows, with the plugin's id bound as the first parameter.
Reader = Callable[..., Awaitable[list[Row]]]


@dataclass(frozen=True, slots=True)
class TradeSource:
    """Where one plugin's trades are read (kind store, legacy or missing); `trades` is the table expression."""

    path: Path
    kind: str
    read: Reader | None = None
    trades: str = "trades"
    zone: tzinfo = UTC  # of naive local close times


class TradeSources:
    """Opens each routed file once, read-only, missing ones never.

    Not through Store: its connections are read-write, and opening one switches a rollback-journal file to WAL
    (stats writes no byte); nor could they read a file in a folder we cannot write.
    """

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._stack = AsyncExitStack()
        self._files: dict[Path, tuple[str, sqlite3.Connection | None]] = {}
        self.zone = config.zone
        self.attribution: dict[str, AttributionReport] = {}  # unmigrated file -> how its trades were attributed

    async def __aenter__(self) -> TradeSources:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stack.aclose()

    async def get(self, plugin_id: str) -> TradeSource:
        """Where `plugin_id` is read; the default id is read in the shared file."""
        default = plugin_id == self.config.default_plugin_id
        path = self.config.shared_db if default else self.config.plugin(plugin_id).db_path
        if path not in self._files:
            self._files[path] = await asyncio.to_thread(self._inspect, path)
            conn = self._files[path][1]
            if conn is not None:
                self._stack.callback(conn.close)
        kind, conn = self._files[path]
        if kind == "store":
            assert conn is not None
            return TradeSource(path, kind, _legacy_reader(conn, path, plugin_id), zone=self.zone)
        if conn is not None:
            return TradeSource(path, kind, _legacy_reader(conn, path, plugin_id), _legacy_trades(conn), self.zone)
        return TradeSource(path, kind, zone=self.zone)

    def _inspect(self, path: Path) -> tuple[str, sqlite3.Connection | None]:
        """Classify `path` without writing it; keep a read-only connection open to read it."""
        if not path.exists():
            return "missing", None
        conn = open_reader(path)  # leaves no -wal/-shm behind when nobody else had the file open
        try:
            with translated_errors(path):
                if upgrade.is_empty(conn):
                    conn.close()
                    return "missing", None
                if not upgrade.needs_upgrade(conn, path):
                    return "store", conn
                # Temp tables only: the connection cannot write the file.
                present = attribution.build_owners(conn, "main", self.config.rules)
                self.attribution[str(path)] = attribution_report(conn, "main", self.config.rules, present)
        except BaseException:
            conn.close()
            raise
        return "legacy", conn


def _legacy_reader(conn: sqlite3.Connection, path: Path, plugin_id: str) -> Reader:
    async def read(sql: str, *params: Any) -> list[Row]:
        with translated_errors(path):
            return await asyncio.to_thread(fetch_all, conn, sql, (plugin_id, *params))
    return read


def _legacy_trades(conn: sqlite3.Connection) -> str:
    """A legacy file's trades with the owner attribution decided, as a table expression for the SQL above."""
    cols = attribution.source_columns(conn, "main", "trades")
    if not cols:
        return ("(SELECT NULL AS id, NULL AS plugin_id, NULL AS trade_id, NULL AS status, NULL AS pnl, "
                "NULL AS close_time WHERE 0)")
    picked = ", ".join(f"x.{c}" if c in cols else f"NULL AS {c}" for c in ("trade_id", "status", "pnl", "close_time"))
    return (f"(SELECT x.rowid AS id, o.plugin_id AS plugin_id, {picked} FROM main.trades x "
            f"JOIN {attribution.owner_table('trades')} o ON o.src_rowid = x.rowid)")
