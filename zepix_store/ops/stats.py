"""Per-plugin performance figures, each plugin read where its config routes it (SPEC 7 `stats`).

SQLite computes every figure: per plugin one statement gives the aggregates and one the max drawdown (window
sums over the close-time order), so no plugin's trades are loaded into Python; only the equity curve for a plot
is fetched, downsampled in SQL. Every statement filters `plugin_id = ?` bound to the plugin's id as its first
parameter (PluginStore._all binds it, and so does the legacy reader below).

Rules: closed trades are `status = 'closed'` (as `get_statistics`). A pnl that is not a finite number (NULL, text
left in the REAL column, a BLOB, +-infinity) counts as a trade (`unpriced_trades`) but in no money figure and not
in the win rate. A pnl of exactly 0 is neither a win nor a loss. profit_factor = gross profit / gross loss; with
no losing trade it is `inf` when there is a profit and None when there is none. max_drawdown is the largest fall
of cumulative PnL below its running peak (equity starts at 0), trades ordered by the UTC instant of their close
time (every stored form read as timefmt reads it, naive local ones in store.yaml's timezone), then id.
A closed trade whose close time is no time (NULL, a word, an ambiguous 'MM/DD/YYYY') falls in no window: it is
counted (`untimed_trades`, whatever the window) and its values are named in the report's notes, never dropped
silently. open_trades counts open positions: open rows that no later row of the same trade_id supersedes. The
default id's trades (no plugin owns them) are a row of their own when the shared file holds any, and a window's
dates and naive times are in store.yaml's timezone.

stats writes no database. Store would back up and upgrade a file older than the schema, so such a file (the
legacy shared file before `migrate`) is read through a read-only connection instead, its owners decided by
attribution.build_owners exactly as migrate and split decide them. A missing or empty file means zero trades and
is not created.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from .. import timefmt
from ..attribution_report import AttributionReport
from ..config import StoreConfig
from ..errors import ConfigError
from ..queries.plugin import NUMERIC_PNL
from ..schema import CLOSE_KEY_SQL, OPEN_POSITION_SQL
from ..words import count
from ._trade_source import TradeSource, TradeSources

__all__ = ["CURVE_LIMIT", "PluginStats", "StatsReport", "TIME_FORMAT", "UNTIMED_NAMED", "Window", "collect_stats",
           "equity_curve", "plugin_stats", "select_plugins", "untimed_values"]

CURVE_LIMIT = 10_000
UNTIMED_NAMED = 3  # distinct values named per plugin
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
MONEY_FIELDS = frozenset({"total_pnl", "avg_pnl", "best_trade", "worst_trade", "gross_profit", "gross_loss",
                          "max_drawdown"})
RATIO_PLACES = {"win_rate": 2, "profit_factor": 4}

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
        now = now or datetime.now(UTC)
        try:
            return cls(since=(now - timedelta(days=days)).strftime(TIME_FORMAT), days=days)
        except OverflowError:
            raise ConfigError(f"--days: {days} days reaches before year 1") from None

    @classmethod
    def between(cls, since: str | None = None, until: str | None = None, zone: tzinfo = UTC) -> Window:
        """From `since` to `until`, both inclusive; a date alone means the whole day, in `zone` as naive times."""
        start = _parse_bound("--since", since, zone, end=False)
        before = _parse_bound("--until", until, zone, end=True)
        if start is not None and before is not None and start >= before:
            raise ConfigError(f"--since {since} is after --until {until}: the window is empty")
        return cls(since=start, before=before)

    def describe(self) -> str:
        """The window in words, for a table's title and a plot's."""
        if self.days is not None:
            return f"trades closed in the last {self.days} days (since {self.since} UTC)"
        if self.since is None and self.before is None:
            return "all closed trades"
        since = f" from {self.since}" if self.since else ""
        until = f" until {self.until()}" if self.before else ""
        return f"trades closed{since}{until} (UTC)"

    def until(self) -> str | None:
        """The window's last second, as --until means it (inclusive); the window itself keeps the exclusive end."""
        if self.before is None:
            return None
        return (datetime.strptime(self.before, TIME_FORMAT) - timedelta(seconds=1)).strftime(TIME_FORMAT)

    def sql(self, zone: tzinfo) -> tuple[str, list[str]]:
        """The WHERE terms of this window (numbered parameters from ?2 on) and their parameters."""
        if self.since is None and self.before is None:
            return "", []
        since, before = (None if t is None else datetime.strptime(t, TIME_FORMAT).replace(tzinfo=UTC)
                         for t in (self.since, self.before))
        return f" AND {timefmt.window_sql(CLOSE_KEY_SQL, first=2)}", list(timefmt.band_bounds(since, before, zone))


def _parse_bound(option: str, text: str | None, zone: tzinfo, *, end: bool) -> str | None:
    """A --since/--until value as UTC text; an end bound is made exclusive (next day, or one second later)."""
    if text is None:
        return None
    value = text.strip()
    try:
        if _DATE_ONLY.fullmatch(value):
            day = date.fromisoformat(value)
            start, next_day = timefmt.day_bounds(day, zone)
            moment = next_day if end else start
        else:
            moment = datetime.fromisoformat(value)
            moment = timefmt.to_utc(moment, zone) if moment.tzinfo is None else moment.astimezone(UTC)
            moment += timedelta(seconds=1 if end else 0)
        return moment.strftime(TIME_FORMAT)
    except (ValueError, OverflowError):
        raise ConfigError(f"{option}: {text!r} is not a date (YYYY-MM-DD) or a time (YYYY-MM-DD HH:MM:SS, "
                          "in store.yaml's timezone unless it ends in Z or +hh:mm)") from None


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
    open_trades: int = 0  # open positions (superseded open snapshots left out)
    untimed_trades: int = 0  # closed trades whose close time is no time: in no window (see untimed_values)
    attributed: bool = True  # False for the default id's row: trades no plugin owns

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def numbers(self) -> dict[str, Any]:
        """The figures as JSON and CSV carry them: money rounded to cents, ratios to a few places, never inf or NaN."""
        return {name: _number(name, value) for name, value in self.as_dict().items()}


def _number(name: str, value: Any) -> Any:
    if not isinstance(value, float):
        return value
    if not math.isfinite(value):
        return None  # PF with no loss: JSON has no infinity, and a string would not be a number
    places = 2 if name in MONEY_FIELDS else RATIO_PLACES.get(name)
    return value if places is None else round(value, places) + 0.0  # + 0.0: no -0.0


@dataclass(slots=True)
class StatsReport:
    window: Window
    plugins: list[PluginStats] = field(default_factory=list)
    curves: dict[str, list[CurvePoint]] = field(default_factory=dict)  # only when asked for
    attribution: dict[str, AttributionReport] = field(default_factory=dict)  # per unmigrated file read
    untimed_values: dict[str, list[str]] = field(default_factory=dict)  # plugin -> close times that are no time

    def notes(self) -> list[str]:
        """What the figures leave out, in words (the human report's and --json's notes)."""
        notes = []
        for s in self.plugins:
            if s.untimed_trades:
                named = ", ".join(self.untimed_values.get(s.plugin_id, []))
                notes.append(f"{s.plugin_id}: {count(s.untimed_trades, 'closed trade')} whose close_time is no time "
                             f"(such as {named}): in no time window, counted only in all-time figures")
        return notes

    def to_json(self, plot_path: Path | str | None = None, currency: str | None = None) -> dict[str, Any]:
        """The report as one JSON document (numbers only; see PluginStats.numbers)."""
        w = self.window
        return {
            "window": {"since": w.since, "until": w.until(), "days": w.days},
            "currency": currency,
            "plugins": [s.numbers() for s in self.plugins],
            "plot": None if plot_path is None else str(plot_path),
            "attribution": {path: a.to_json() for path, a in self.attribution.items()},
            "notes": self.notes(),
            "untimed_values": self.untimed_values,
        }


PRICED = NUMERIC_PNL


def _plugin_rows(trades: str) -> str:
    """FROM/WHERE of the plugin's trade rows: `plugin_id = ?1` is the statement's first parameter."""
    return f"FROM {trades} WHERE plugin_id = ?1"


def _closed_filter(trades: str, window: str) -> str:
    """FROM/WHERE of the plugin's closed trades (in the window)."""
    return f"{_plugin_rows(trades)} AND status = 'closed'{window}"


def _stats_sql(trades: str, window: str) -> str:
    # Needs no close time without a window, so the (plugin_id, status, pnl) index answers it alone.
    return f"""SELECT count(*) AS total_trades,
       count(CASE WHEN {PRICED} AND pnl > 0 THEN 1 END) AS winning_trades,
       count(CASE WHEN {PRICED} AND pnl < 0 THEN 1 END) AS losing_trades,
       count(*) - count(CASE WHEN {PRICED} THEN 1 END) AS unpriced_trades,
       total(CASE WHEN {PRICED} THEN pnl END) AS total_pnl,
       avg(CASE WHEN {PRICED} THEN pnl END) AS avg_pnl,
       max(CASE WHEN {PRICED} THEN pnl END) AS best_trade,
       min(CASE WHEN {PRICED} THEN pnl END) AS worst_trade,
       total(CASE WHEN {PRICED} AND pnl > 0 THEN pnl END) AS gross_profit,
       0.0 - total(CASE WHEN {PRICED} AND pnl < 0 THEN pnl END) AS gross_loss
{_closed_filter(trades, window)}"""


def _equity_sql(trades: str, window: str, first: int, shifts: int) -> str:
    """CTE `equity(t, id, equity, rn)`: cumulative PnL after each priced closed trade, by UTC close time then id.

    Parameters ?first on take naive local close times to UTC (timefmt.utc_text_sql of `shifts` zone shifts).
    """
    t = timefmt.utc_text_sql("k", first, shifts)
    return (f"equity AS (SELECT t, id, sum(pnl) OVER w AS equity, row_number() OVER w AS rn FROM "
            f"(SELECT id, {t} AS t, pnl FROM (SELECT id, {CLOSE_KEY_SQL} AS k, pnl "
            f"{_closed_filter(trades, window)} AND {PRICED} LIMIT -1 OFFSET 0)) "
            "WINDOW w AS (ORDER BY t, id ROWS UNBOUNDED PRECEDING))")


def _open_sql(trades: str) -> str:
    """Open positions of the plugin: through the (plugin_id, trade_id) index, or one window over a legacy file."""
    if trades == "trades":
        return f"SELECT count(*) AS open_trades FROM trades WHERE plugin_id = ?1 AND {OPEN_POSITION_SQL}"
    return ("SELECT count(*) AS open_trades FROM (SELECT status, trade_id, row_number() OVER (PARTITION BY "
            f"trade_id ORDER BY id DESC) AS newest {_plugin_rows(trades)}) "
            "WHERE status = 'open' AND (trade_id IS NULL OR newest = 1)")


async def _shifts(source: TradeSource, window: str, params: Sequence[str]) -> list[tuple[str, str]]:
    """timefmt.zone_shifts() over the wall-clock range of the plugin's naive local close times in the window."""
    band = f"{_closed_filter(source.trades, window)} AND {CLOSE_KEY_SQL} >= 'L' AND {CLOSE_KEY_SQL} < 'M'"
    assert source.read is not None
    ends: list[datetime] = []
    for order in ("ASC", "DESC"):
        for row in await source.read(f"SELECT {CLOSE_KEY_SQL} AS k {band} ORDER BY 1 {order} LIMIT 1", *params):
            wall = timefmt.key_wall(str(row["k"]))
            if wall is not None:
                ends.append(wall)
    return timefmt.zone_shifts(source.zone, min(ends), max(ends)) if ends else timefmt.zone_shifts(source.zone)


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


def _untimed_sql(trades: str) -> str:
    return f"{_closed_filter(trades, '')} AND {CLOSE_KEY_SQL} IS NULL"


async def untimed_values(source: TradeSource, limit: int = UNTIMED_NAMED) -> list[str]:
    """The most frequent close times of closed trades that are no time, as SQL writes them (NULL, 'text')."""
    if source.read is None:
        return []
    rows = await source.read(f"SELECT quote(close_time) AS v, count(*) AS n {_untimed_sql(source.trades)} "
                             f"GROUP BY close_time ORDER BY n DESC, v LIMIT {int(limit)}")
    return [str(r["v"]) for r in rows]


async def plugin_stats(source: TradeSource, plugin_id: str, window: Window) -> PluginStats:
    """The figures of `plugin_id` from `source` (all zero when the file does not exist yet)."""
    stats = PluginStats(plugin_id, str(source.path), source.kind)
    if source.read is None:
        return stats
    terms, params = window.sql(source.zone)
    rows = await source.read(_stats_sql(source.trades, terms), *params)
    shifts = await _shifts(source, terms, params)
    equity = _equity_sql(source.trades, terms, len(params) + 2, len(shifts))
    rows += await source.read(f"WITH {equity}{DRAWDOWN_SELECT}", *params, *timefmt.shift_params(shifts))
    rows += await source.read(_open_sql(source.trades))
    rows += await source.read(f"SELECT count(*) AS untimed_trades {_untimed_sql(source.trades)}")
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
    terms, params = window.sql(source.zone)
    if priced is None:
        stats = await plugin_stats(source, "", window)
        priced = stats.total_trades - stats.unpriced_trades
    shifts = await _shifts(source, terms, params)
    equity = _equity_sql(source.trades, terms, len(params) + 2, len(shifts))
    zone = timefmt.shift_params(shifts)
    if priced <= limit:
        rows = await source.read(f"WITH {equity}{CURVE_SELECT}", *params, *zone)
    else:
        rows = await source.read(f"WITH {equity}{CURVE_DOWNSAMPLED_SELECT}", *params, *zone, (limit - 1) // 3,
                                 priced)
    return [(r["t"], float(r["equity"])) for r in rows]


def select_plugins(config: StoreConfig, plugin_ids: Sequence[str] | None) -> list[str]:
    """The requested plugin ids in order, each checked (UnknownPluginError), or every configured plugin.

    The default id may be asked for too: its row is the trades no plugin owns.
    """
    if not plugin_ids:
        return list(config.plugins)
    default = config.default_plugin_id
    return [p if p == default else config.plugin(p).plugin_id for p in dict.fromkeys(plugin_ids)]


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
    default = config.default_plugin_id
    async with TradeSources(config) as sources:
        for plugin_id in ids if plugin_ids else [*ids, default]:
            source = await sources.get(plugin_id)
            if plugin_id == default and not plugin_ids and not await _holds_trades(source):
                continue  # the default id's row appears only when it holds trades (or is asked for)
            stats = await plugin_stats(source, plugin_id, window)
            stats.attributed = plugin_id != default
            report.plugins.append(stats)
            if stats.untimed_trades:
                report.untimed_values[plugin_id] = await untimed_values(source)
            if curves:
                priced = stats.total_trades - stats.unpriced_trades
                report.curves[plugin_id] = await equity_curve(source, window, curve_limit, priced)
        report.attribution = dict(sources.attribution)
    return report


async def _holds_trades(source: TradeSource) -> bool:
    if source.read is None:
        return False
    return bool(await source.read(f"SELECT 1 AS found {_plugin_rows(source.trades)} LIMIT 1"))
