"""Per-plugin performance figures, each plugin read where its config routes it (SPEC 7 `stats`).

SQLite computes every figure: per plugin one statement gives the aggregates and one the max drawdown (window
sums over the close-time order), so no plugin's trades are loaded into Python; only the equity curve for a plot
is fetched, downsampled in SQL. Every statement filters `plugin_id = ?` bound to the plugin's id as its first
parameter (PluginStore._all binds it, and so does the legacy reader below).

Rules: closed trades are `status = 'closed'` (as `get_statistics`). A pnl that is not a number (NULL, text left
in the REAL column, a BLOB) counts as a trade (`unpriced_trades`) but in no money figure and not in the win
rate. profit_factor = gross profit / gross loss; with no losing trade it is `inf` when there is a profit and None
when there is none. max_drawdown is the largest fall of cumulative PnL below its running peak (equity starts at
0), trades ordered by close time (legacy 'T' text and epoch numbers normalised by CLOSE_TIME_SQL), then id.

stats writes no database. Store would back up and upgrade a file older than the schema, so such a file (the
legacy shared file before `migrate`) is read through a read-only connection instead, its owners decided by
attribution.build_owners exactly as migrate and split decide them. A missing or empty file means zero trades and
is not created.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from . import attribution, db, upgrade
from .config import StoreConfig
from .errors import ConfigError
from .plugin_store import NUMERIC_PNL, fetch_all
from .readonly import open_reader
from .registry import Store
from .rows import Row
from .schema import CLOSE_TIME_SQL

CURVE_LIMIT = 10_000
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")

# (sql, *params) -> rows, with the plugin's id bound as the first parameter.
Reader = Callable[..., Awaitable[list[Row]]]
CurvePoint = tuple[str | None, float]


@dataclass(frozen=True, slots=True)
class Window:
    """Close-time window in UTC 'YYYY-MM-DD HH:MM:SS': `since` inclusive, `before` exclusive, None = open."""

    since: str | None = None
    before: str | None = None
    days: int | None = None

    @classmethod
    def last_days(cls, days: int, now: datetime | None = None) -> Window:
        """Trades closed in the last `days` days up to now."""
        if days < 1:
            raise ConfigError(f"--days: must be a whole number of days, 1 or more (got {days})")
        now = now or datetime.now(timezone.utc)
        try:
            return cls(since=(now - timedelta(days=days)).strftime(TIME_FORMAT), days=days)
        except OverflowError:
            raise ConfigError(f"--days: {days} days reaches before year 1") from None

    @classmethod
    def between(cls, since: str | None = None, until: str | None = None) -> Window:
        """From `since` to `until`, both inclusive; a date alone means the whole day."""
        start = _parse_bound("--since", since, end=False)
        before = _parse_bound("--until", until, end=True)
        if start is not None and before is not None and start >= before:
            raise ConfigError(f"--since {since} is after --until {until}: the window is empty")
        return cls(since=start, before=before)

    def sql(self) -> tuple[str, list[str]]:
        """The WHERE terms of this window and their parameters."""
        terms, params = "", []
        if self.since is not None:
            terms, params = f" AND {CLOSE_TIME_SQL} >= ?", [self.since]
        if self.before is not None:
            terms, params = terms + f" AND {CLOSE_TIME_SQL} < ?", [*params, self.before]
        return terms, params


def _parse_bound(option: str, text: str | None, *, end: bool) -> str | None:
    """A --since/--until value as UTC text; an end bound is made exclusive (next day, or one second later)."""
    if text is None:
        return None
    value = text.strip()
    try:
        if _DATE_ONLY.fullmatch(value):
            day = date.fromisoformat(value) + timedelta(days=1 if end else 0)
            return f"{day:%Y-%m-%d} 00:00:00"
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        return (moment + timedelta(seconds=1 if end else 0)).strftime(TIME_FORMAT)
    except (ValueError, OverflowError):
        raise ConfigError(f"{option}: {text!r} is not a date (YYYY-MM-DD) or a UTC time "
                          "(YYYY-MM-DD HH:MM:SS)") from None


@dataclass(slots=True)
class PluginStats:
    """One plugin's figures over its closed trades in the window (see the module doc for the rules)."""

    plugin_id: str
    database: str
    source: str  # "store"; "legacy": an unmigrated file read read-only; "missing": no file (or an empty one) yet
    total_trades: int = 0
    winning_trades: int = 0
    losing_trades: int = 0
    unpriced_trades: int = 0
    win_rate: float | None = None  # percent of the trades with a numeric pnl
    total_pnl: float = 0.0
    avg_pnl: float | None = None
    best_trade: float | None = None
    worst_trade: float | None = None
    gross_profit: float = 0.0
    gross_loss: float = 0.0
    profit_factor: float | None = None
    max_drawdown: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(slots=True)
class StatsReport:
    window: Window
    plugins: list[PluginStats] = field(default_factory=list)
    curves: dict[str, list[CurvePoint]] = field(default_factory=dict)  # only when asked for


PRICED = NUMERIC_PNL


def _closed_filter(trades: str, window: str) -> str:
    """FROM/WHERE of the plugin's closed trades: `plugin_id = ?` is the statement's first parameter."""
    return f"FROM {trades} WHERE plugin_id = ? AND status = 'closed'{window}"


def _stats_sql(trades: str, window: str) -> str:
    # Needs no close time without a window, so the (plugin_id, status, pnl) index answers it alone.
    return f"""SELECT count(*) AS total_trades,
       count(CASE WHEN {PRICED} AND pnl > 0 THEN 1 END) AS winning_trades,
       count(CASE WHEN {PRICED} AND pnl < 0 THEN 1 END) AS losing_trades,
       count(CASE WHEN NOT {PRICED} THEN 1 END) AS unpriced_trades,
       total(CASE WHEN {PRICED} THEN pnl END) AS total_pnl,
       avg(CASE WHEN {PRICED} THEN pnl END) AS avg_pnl,
       max(CASE WHEN {PRICED} THEN pnl END) AS best_trade,
       min(CASE WHEN {PRICED} THEN pnl END) AS worst_trade,
       total(CASE WHEN {PRICED} AND pnl > 0 THEN pnl END) AS gross_profit,
       0.0 - total(CASE WHEN {PRICED} AND pnl < 0 THEN pnl END) AS gross_loss
{_closed_filter(trades, window)}"""


def _equity_sql(trades: str, window: str) -> str:
    """CTE `equity(t, id, equity, rn)`: cumulative PnL after each priced closed trade, by close time then id.

    It reads the table directly (not a materialised CTE) so the (plugin_id, close time) index can deliver the
    rows already in window order: measured ~2x faster than sorting a materialised copy.
    """
    return (f"equity AS (SELECT t, id, sum(pnl) OVER w AS equity, row_number() OVER w AS rn FROM "
            f"(SELECT id, {CLOSE_TIME_SQL} AS t, pnl {_closed_filter(trades, window)} AND {PRICED}) "
            "WINDOW w AS (ORDER BY t, id ROWS UNBOUNDED PRECEDING))")


# Equity starts at 0, so a first losing trade is already a drawdown.
DRAWDOWN_SELECT = """
SELECT coalesce(max(max(0.0, peak) - equity), 0.0) AS max_drawdown
FROM (SELECT equity, max(equity) OVER (ORDER BY rn ROWS UNBOUNDED PRECEDING) AS peak FROM equity)"""

CURVE_SELECT = "\nSELECT t, equity FROM equity ORDER BY rn"

# Past the limit: per bucket of consecutive trades its first, lowest and highest point (so the peaks and troughs
# that make the drawdown survive), plus the last point. Bare columns follow the row of the min()/max().
CURVE_DOWNSAMPLED_SELECT = """,
pts AS (SELECT t, equity, rn, (rn - 1) * ? / ? AS bucket FROM equity)
SELECT t, equity FROM (
    SELECT min(rn) AS rn, t, equity FROM pts GROUP BY bucket
    UNION SELECT rn, t, min(equity) FROM pts GROUP BY bucket
    UNION SELECT rn, t, max(equity) FROM pts GROUP BY bucket
    UNION SELECT max(rn), t, equity FROM pts)
ORDER BY rn"""


@dataclass(frozen=True, slots=True)
class TradeSource:
    """Where one plugin's trades are read (kind store, legacy or missing); `trades` is the table expression."""

    path: Path
    kind: str
    read: Reader | None = None
    trades: str = "trades"


async def plugin_stats(source: TradeSource, plugin_id: str, window: Window) -> PluginStats:
    """The figures of `plugin_id` from `source` (all zero when the file does not exist yet)."""
    stats = PluginStats(plugin_id, str(source.path), source.kind)
    if source.read is None:
        return stats
    terms, params = window.sql()
    rows = await source.read(_stats_sql(source.trades, terms), *params)
    rows += await source.read(f"WITH {_equity_sql(source.trades, terms)}{DRAWDOWN_SELECT}", *params)
    for row in rows:
        for name, value in row.items():
            setattr(stats, name, value)
    priced = stats.total_trades - stats.unpriced_trades
    stats.win_rate = 100.0 * stats.winning_trades / priced if priced else None
    stats.profit_factor = _profit_factor(stats.gross_profit, stats.gross_loss)
    return stats


def _profit_factor(gross_profit: float, gross_loss: float) -> float | None:
    if gross_loss > 0:
        return gross_profit / gross_loss
    return float("inf") if gross_profit > 0 else None


async def equity_curve(source: TradeSource, window: Window, limit: int = CURVE_LIMIT,
                       priced: int | None = None) -> list[CurvePoint]:
    """(close time, cumulative PnL) after each priced closed trade, downsampled to at most `limit` points.

    `priced` is the number of such trades when known (from plugin_stats); it sizes the buckets.
    """
    if source.read is None:
        return []
    if limit < 4:
        raise ValueError("limit must be at least 4")
    terms, params = window.sql()
    if priced is None:
        stats = await plugin_stats(source, "", window)
        priced = stats.total_trades - stats.unpriced_trades
    equity = _equity_sql(source.trades, terms)
    if priced <= limit:
        rows = await source.read(f"WITH {equity}{CURVE_SELECT}", *params)
    else:
        rows = await source.read(f"WITH {equity}{CURVE_DOWNSAMPLED_SELECT}", *params, (limit - 1) // 3, priced)
    return [(r["t"], float(r["equity"])) for r in rows]


def select_plugins(config: StoreConfig, plugin_ids: Sequence[str] | None) -> list[str]:
    """The requested plugin ids in order, each checked (UnknownPluginError), or every configured plugin."""
    if not plugin_ids:
        return list(config.plugins)
    return [config.plugin(p).plugin_id for p in dict.fromkeys(plugin_ids)]


async def collect_stats(
    config: StoreConfig,
    plugin_ids: Sequence[str] | None = None,
    window: Window = Window(),
    *,
    curves: bool = False,
    curve_limit: int = CURVE_LIMIT,
) -> StatsReport:
    """Figures (and, if asked, equity curves) of each plugin, read where its config routes it.

    Raises:
        UnknownPluginError: a requested id has no plugin config.
        SchemaError: a routed file is newer than this code.
    """
    report = StatsReport(window)
    ids = select_plugins(config, plugin_ids)
    async with _Sources(config) as sources:
        for plugin_id in ids:
            source = await sources.get(plugin_id)
            stats = await plugin_stats(source, plugin_id, window)
            report.plugins.append(stats)
            if curves:
                priced = stats.total_trades - stats.unpriced_trades
                report.curves[plugin_id] = await equity_curve(source, window, curve_limit, priced)
    return report


class _Sources:
    """Opens each routed file once: current files through Store, older ones read-only, missing ones never."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._stack = AsyncExitStack()
        self._store = Store(config)
        self._files: dict[Path, tuple[str, sqlite3.Connection | None]] = {}

    async def __aenter__(self) -> _Sources:
        await self._stack.enter_async_context(self._store)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stack.aclose()

    async def get(self, plugin_id: str) -> TradeSource:
        path = self.config.plugin(plugin_id).db_path
        if path not in self._files:
            self._files[path] = await asyncio.to_thread(self._inspect, path)
            conn = self._files[path][1]
            if conn is not None:
                self._stack.callback(conn.close)
        kind, conn = self._files[path]
        if kind == "store":
            return TradeSource(path, kind, self._store.for_plugin(plugin_id)._all)  # noqa: SLF001 (scoped read)
        if conn is not None:
            return TradeSource(path, kind, _legacy_reader(conn, path, plugin_id), _legacy_trades(conn))
        return TradeSource(path, kind)

    def _inspect(self, path: Path) -> tuple[str, sqlite3.Connection | None]:
        """Classify `path` without writing it; keep a read-only connection open for an older file."""
        if not path.exists():
            return "missing", None
        conn = open_reader(path)  # leaves no -wal/-shm behind when nobody else had the file open
        try:
            with db.translated_errors(path):
                if upgrade.is_empty(conn):
                    conn.close()
                    return "missing", None
                if not upgrade.needs_upgrade(conn, path):
                    conn.close()
                    return "store", None
                # Temp tables only: the connection cannot write the file.
                attribution.build_owners(conn, "main", self.config.mapping, self.config.default_plugin_id)
        except BaseException:
            conn.close()
            raise
        return "legacy", conn


def _legacy_reader(conn: sqlite3.Connection, path: Path, plugin_id: str) -> Reader:
    async def read(sql: str, *params: Any) -> list[Row]:
        with db.translated_errors(path):
            return await asyncio.to_thread(fetch_all, conn, sql, (plugin_id, *params))
    return read


def _legacy_trades(conn: sqlite3.Connection) -> str:
    """A legacy file's trades with the owner attribution decided, as a table expression for the SQL above."""
    cols = attribution.source_columns(conn, "main", "trades")
    if not cols:
        return "(SELECT NULL AS id, NULL AS plugin_id, NULL AS status, NULL AS pnl, NULL AS close_time WHERE 0)"
    picked = ", ".join(f"x.{c}" if c in cols else f"NULL AS {c}" for c in ("status", "pnl", "close_time"))
    return (f"(SELECT x.rowid AS id, o.plugin_id AS plugin_id, {picked} FROM main.trades x "
            f"JOIN {attribution.owner_table('trades')} o ON o.src_rowid = x.rowid)")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m zepix_store.stats` / `zepix-store stats` (the command lives in stats_cli)."""
    from .stats_cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
