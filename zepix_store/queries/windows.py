"""Rows of a time window or a calendar day: compared as instants (timefmt), whatever form each time was stored in."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, tzinfo

from .. import timefmt
from ..backend.base import Operations
from ..errors import ConfigError
from .fetch import Row

__all__ = ['as_day', 'by_time', 'sessions_started_in', 'trades_closed_in']


@functools.cache
def trades_closed_in(ops: Operations) -> str:
    """The plugin's trades (?1) whose close time is in a window (ops.window_bounds after it)."""
    return f"SELECT * FROM trades WHERE plugin_id = ? AND {ops.window('close_time')}"


@functools.cache
def sessions_started_in(ops: Operations) -> str:
    """The plugin's sessions whose start time is in a window (ops.window_bounds after the plugin id)."""
    return f"SELECT * FROM trading_sessions WHERE plugin_id = ? AND {ops.window('start_time')}"


def as_day(day: date | datetime | str) -> date:
    """A calendar day given as a date, a datetime (its own date) or text starting 'YYYY-MM-DD'."""
    if isinstance(day, datetime):
        return day.date()
    if isinstance(day, date):
        return day
    try:
        return date.fromisoformat(day[:10]) if isinstance(day, str) else _no_day(day)
    except ValueError:
        raise ConfigError(f"day: {day!r} is not a date (pass a date or 'YYYY-MM-DD')") from None


def _no_day(day: object) -> date:
    raise ValueError(day)


def by_time(rows: list[Row], column: str, zone: tzinfo, newest_first: bool = False) -> list[Row]:
    """Rows in time order, ties by id: the window's rows read as instants (naive local ones in `zone`)."""
    oldest = datetime.min.replace(tzinfo=UTC)
    rows.sort(key=lambda r: (timefmt.instant(r[column], zone) or oldest, r.get("id", 0)),
              reverse=newest_first)
    return rows
