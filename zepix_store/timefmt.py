"""Which instant a stored time means, and time windows answered from an index (SPEC 3 `timezone`, SPEC 4).

A stored value is never rewritten; its form alone says how to read it:
- UTC: the store's own 'YYYY-MM-DD HH:MM:SS' (exactly that form: it is also SQLite's CURRENT_TIMESTAMP); text
  ending in 'Z' or in a '+hh:mm' / '-hh:mm' offset (converted to UTC); a number: epoch seconds, or epoch
  milliseconds from EPOCH_MS_FROM on (1e11: 5138 as seconds, 1973-03-03 as milliseconds).
- naive local: any other date text ('T' separator, fractional seconds, a date alone meaning its midnight), as
  the bot's `datetime.now().isoformat()` wrote it: a wall-clock time in store.yaml's `timezone`.

No zone conversion can live in an index: SQLite's 'localtime'/'utc' modifiers are non-deterministic, and an
application-defined function in a schema object would break every connection that lacks it (the bot's own).
So the index key time_key_sql() keeps the kinds in two bands, 'U' + UTC text and 'L' + wall-clock text, and a
window is one range per band (window_sql), its bounds converted here with zoneinfo (band_bounds).
"""

from __future__ import annotations

import functools
import math
import os
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "EPOCH_MS_FROM",
    "LOCAL",
    "STORE_FORMAT",
    "band_bounds",
    "day_bounds",
    "instant",
    "local_now",
    "resolve_zone",
    "shift_params",
    "time_key_sql",
    "to_utc",
    "utc_text_sql",
    "wall_lower_bound",
    "window_sql",
    "zone_shifts",
]

LOCAL = "local"
EPOCH_MS_FROM = 100_000_000_000
STORE_FORMAT = "%Y-%m-%d %H:%M:%S"
UTC_BAND, LOCAL_BAND = "U", "L"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_D4, _D2 = "[0-9][0-9][0-9][0-9]", "[0-9][0-9]"
_STORE_GLOB = f"{_D4}-{_D2}-{_D2} {_D2}:{_D2}:{_D2}"
_DATE_GLOB = f"{_D4}-{_D2}-{_D2}"
_STORE_FORM = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_WITH_ZONE = re.compile(r"(?:[+-]\d{2}:\d{2}|[Zz])\Z")
_DATED = re.compile(r"\d{4}-\d{2}-\d{2}[T ]")


# --- zones ------------------------------------------------------------------------------------------------------


def resolve_zone(name: str) -> tzinfo:
    """The tzinfo of a store.yaml `timezone`: 'local' (this machine's), 'UTC' or an IANA name.

    Raises:
        ValueError: an unknown zone name.
    """
    if name == "UTC":
        return UTC
    if name == LOCAL:
        return _local_zone(os.environ.get("TZ"))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r} (use local, UTC or an IANA name such as Europe/Berlin)") \
            from None


@functools.lru_cache(maxsize=8)
def _local_zone(tz_variable: str | None) -> tzinfo:
    """This machine's zone, as the C library reads it for datetime.now(): TZ, else /etc/localtime."""
    if tz_variable:
        try:
            return ZoneInfo(tz_variable.lstrip(":"))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass  # a POSIX rule such as 'EST5EDT,M3.2.0,M11.1.0': fall back to today's offset below
    else:
        try:
            with open("/etc/localtime", "rb") as handle:
                return ZoneInfo.from_file(handle, key=LOCAL)
        except (OSError, ValueError):
            pass
    offset = datetime.now().astimezone().tzinfo
    return offset if offset is not None else UTC


def local_now(zone: tzinfo) -> datetime:
    """Now as a naive wall-clock time in `zone` (how the bot stamped its rows)."""
    return datetime.now(UTC).astimezone(zone).replace(tzinfo=None)


def to_utc(wall: datetime, zone: tzinfo) -> datetime:
    """The UTC instant of a naive wall-clock time in `zone` (a repeated hour reads as its first pass)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


# --- reading one value ------------------------------------------------------------------------------------------


def instant(value: object, zone: tzinfo) -> datetime | None:
    """The aware UTC instant a stored time value means, or None when it is no time (as time_key_sql reads it)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _epoch(value)
    if not isinstance(value, str):
        return None
    try:
        if _STORE_FORM.fullmatch(value):
            return datetime.strptime(value, STORE_FORMAT).replace(tzinfo=UTC)
        if _WITH_ZONE.search(value):
            aware = value[:-1] + "+00:00" if value[-1] in "Zz" else value  # SQLite takes a lower-case z too
            return datetime.fromisoformat(aware).astimezone(UTC)
        if _DATE_ONLY.fullmatch(value):
            return to_utc(datetime.combine(date.fromisoformat(value), time()), zone)
        if _DATED.match(value):
            return to_utc(datetime.fromisoformat(value), zone)
    except (ValueError, OverflowError):
        return None
    return None


def _epoch(value: float) -> datetime | None:
    if not math.isfinite(value):
        return None
    seconds = value / 1000 if abs(value) >= EPOCH_MS_FROM else value
    try:
        return _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None


def time_key_sql(column: str) -> str:
    """SQL of the index key of a DATETIME column: 'U' + UTC text or 'L' + wall-clock text, NULL for no time.

    Deterministic built-in functions only, so it can be indexed; instant() reads a value the same way.
    """
    return (
        f"(CASE WHEN typeof({column}) IN ('integer', 'real') THEN '{UTC_BAND}' || datetime(CASE WHEN "
        f"abs({column}) >= {EPOCH_MS_FROM} THEN {column} / 1000.0 ELSE {column} END, 'unixepoch') "
        f"WHEN typeof({column}) <> 'text' THEN NULL "
        f"WHEN {column} GLOB '{_STORE_GLOB}' THEN '{UTC_BAND}' || {column} "
        f"WHEN {column} GLOB '*[+-]{_D2}:{_D2}' OR {column} GLOB '*[Zz]' THEN '{UTC_BAND}' || datetime({column}) "
        f"WHEN {column} GLOB '{_DATE_GLOB}' THEN '{LOCAL_BAND}' || {column} || ' 00:00:00' "
        f"WHEN {column} GLOB '{_DATE_GLOB}[T ]*' THEN '{LOCAL_BAND}' || replace({column}, 'T', ' ') END)"
    )


# --- windows ----------------------------------------------------------------------------------------------------


def window_sql(key: str, first: int | None = None) -> str:
    """`key` (a time_key_sql expression) in a window: one range per band, four parameters (band_bounds).

    With `first`, the parameters are numbered ?first to ?first+3 (for statements that number theirs).
    """
    marks = [f"?{first + i}" if first else "?" for i in range(4)]
    return f"(({key} >= {marks[0]} AND {key} < {marks[1]}) OR ({key} >= {marks[2]} AND {key} < {marks[3]}))"


def band_bounds(since: datetime | None, before: datetime | None, zone: tzinfo) -> tuple[str, str, str, str]:
    """The parameters of window_sql for instants `since` (inclusive) to `before` (exclusive); None is open."""
    u_lo = UTC_BAND + _text(since.astimezone(UTC)) if since else UTC_BAND
    u_hi = UTC_BAND + _text(before.astimezone(UTC)) if before else chr(ord(UTC_BAND) + 1)
    l_lo = LOCAL_BAND + _text(wall_lower_bound(since, zone)) if since else LOCAL_BAND
    l_hi = LOCAL_BAND + _text(wall_lower_bound(before, zone)) if before else chr(ord(LOCAL_BAND) + 1)
    return u_lo, u_hi, l_lo, l_hi


def _text(moment: datetime) -> str:
    """Key text of a bound: whole seconds as stored, a fraction only when there is one."""
    plain = moment.replace(tzinfo=None)
    return plain.strftime(STORE_FORMAT + (".%f" if plain.microsecond else ""))


def wall_lower_bound(moment: datetime, zone: tzinfo) -> datetime:
    """The earliest naive wall-clock time in `zone` that reads (to_utc) as `moment` or later."""
    wall = moment.astimezone(zone).replace(tzinfo=None)
    behind = moment - to_utc(wall, zone)
    if behind <= timedelta(0):
        return wall
    # `moment` is in the second pass of a repeated hour, whose wall times read as the first pass: the bound is
    # the first wall time after the repeat, between `wall` (too early) and `wall + behind` (late enough)
    lo, hi = 0, int(behind / timedelta(microseconds=1))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if to_utc(wall + timedelta(microseconds=mid), zone) >= moment:
            hi = mid
        else:
            lo = mid
    return wall + timedelta(microseconds=hi)


def day_bounds(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The instants where calendar day `day` in `zone` starts and where the next one starts."""
    start = datetime.combine(day, time(), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


# --- ordering across bands --------------------------------------------------------------------------------------


def utc_text_sql(key: str, first: int, shifts: int) -> str:
    """SQL turning a time key into UTC 'YYYY-MM-DD HH:MM:SS' (to order across bands), NULL for no time.

    A naive local time is shifted by the modifier of the offset in force at it: parameters ?first on are
    shift_params() of `shifts` zone_shifts() entries (a CASE, not json_each: a read-only connection's
    authorizer refuses the virtual table).
    """
    wall = f"substr({key}, 2)"
    cases = " ".join(f"WHEN {wall} < ?{first + 2 * i + 1} THEN ?{first + 2 * i}" for i in range(shifts - 1))
    modifier = f"CASE {cases} ELSE ?{first + 2 * (shifts - 1)} END" if cases else f"?{first}"
    return f"(CASE WHEN {key} >= '{UTC_BAND}' THEN {wall} ELSE datetime({wall}, {modifier}) END)"


def shift_params(shifts: list[tuple[str, str]]) -> list[str]:
    """The parameters of utc_text_sql: each offset's modifier, then the wall time the next one starts at."""
    params = [shifts[0][1]]
    for start, modifier in shifts[1:]:
        params += [start, modifier]
    return params


def zone_shifts(zone: tzinfo, first: datetime | None = None, last: datetime | None = None) -> list[tuple[str, str]]:
    """(wall time from, modifier to UTC) of each offset `zone` uses between wall times `first` and `last`."""
    first = first or datetime(1970, 1, 1)
    last = max(last or first, first)
    shifts = [("", _modifier(to_utc(first, zone), zone))]
    probe = first
    while probe < last:  # a week apart: no zone changes its offset twice within a week
        step = min(probe + timedelta(days=7), last)
        lo, hi = to_utc(probe, zone), to_utc(step, zone)
        if _offset(lo, zone) != _offset(hi, zone):
            change = _first_change(lo, hi, zone)
            # to_utc reads a repeated hour as its first pass: the old offset holds until its own wall clock
            # reaches the change
            wall = change.replace(tzinfo=None) + _offset(lo, zone)
            shifts.append((wall.strftime(STORE_FORMAT), _modifier(change, zone)))
        probe = step
    return shifts


def _offset(moment: datetime, zone: tzinfo) -> timedelta:
    return moment.astimezone(zone).utcoffset() or timedelta(0)


def _modifier(moment: datetime, zone: tzinfo) -> str:
    return f"{-int(_offset(moment, zone).total_seconds()):+d} seconds"


def _first_change(lo: datetime, hi: datetime, zone: tzinfo) -> datetime:
    """The instant after `lo` (at most `hi`) where the offset of `lo` ends; offsets change on whole seconds."""
    before = _offset(lo, zone)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if _offset(mid, zone) == before:
            lo = mid
        else:
            hi = mid
    return lo.replace(microsecond=0) + timedelta(seconds=1)
