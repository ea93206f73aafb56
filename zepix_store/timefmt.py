"""Which instant a stored time means, and time windows answered from an index (SPEC 3 `timezone`, SPEC 4).

A stored value is never rewritten; its form alone says how to read it:
- UTC: the store's own 'YYYY-MM-DD HH:MM:SS' (exactly that form: it is also SQLite's CURRENT_TIMESTAMP); a date
  and time ending in 'Z' or in a '+hh:mm' / '-hh:mm' offset (converted to UTC); a number, or text of digits with
  at most one '.' ('1768953600'): epoch seconds, or epoch milliseconds from EPOCH_MS_FROM on (1e11: 5138 as
  seconds, 1973-03-03 as milliseconds).
- naive local: any other date, or date and time ('T' or space, HH:MM, HH:MM:SS, a fraction), as the bot's
  `datetime.now().isoformat()` wrote it: a wall-clock time in store.yaml's `timezone` (a date alone is its
  midnight).
Dates are 'YYYY-MM-DD', or in the legacy spellings 'YYYY/MM/DD' and 'DD.MM.YYYY' (day first, as dotted dates
are written; 'MM/DD/YYYY' and 'DD/MM/YYYY' cannot be told apart and are no time). Anything else is no time: None
here and a NULL key, so every reader counts the same values as no time.

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

from .errors import ConfigError

__all__ = [
    "EPOCH_MS_FROM",
    "LOCAL",
    "STORE_FORMAT",
    "as_zone",
    "band_bounds",
    "day_bounds",
    "instant",
    "key_wall",
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
_OFFSET_GLOB = f"[+-]{_D2}:{_D2}"
_STORE_FORM = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_NUMERIC_TEXT = re.compile(r"\d+(?:\.\d+)?")
_SLASHED = re.compile(r"\d{4}/\d{2}/\d{2}")
_DOTTED = re.compile(r"\d{2}\.\d{2}\.\d{4}")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_WALL = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?")
_ZONED = re.compile(r"(?P<wall>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?P<zone>[Zz]|[+-]\d{2}:\d{2})")
_MAX_FRACTION = 6  # datetime keeps microseconds; SQLite reads any number of digits, Python 3.11 up to six


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


def as_zone(zone: str | tzinfo | None, default: tzinfo) -> tzinfo:
    """A zone a caller passes: a tzinfo (ZoneInfo, UTC, a fixed offset), a name as store.yaml takes it, or None
    for `default`.

    Raises:
        ConfigError: an unknown name, or something that is no zone.
    """
    if zone is None:
        return default
    if isinstance(zone, tzinfo):
        return zone
    if not isinstance(zone, str):
        raise ConfigError(f"zone: {zone!r} is no time zone (pass a ZoneInfo, or a name such as 'UTC' or "
                          "'Europe/Berlin')")
    try:
        return resolve_zone(zone)
    except ValueError as exc:
        raise ConfigError(f"zone: {exc}") from None


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
        if _NUMERIC_TEXT.fullmatch(value):
            return _epoch(float(value))
        text = _iso_date(value)
        zoned = _ZONED.fullmatch(text)
        if zoned:
            offset = "+00:00" if zoned["zone"] in "Zz" else zoned["zone"]
            return datetime.fromisoformat(_whole(zoned["wall"]) + offset).astimezone(UTC)
        if _DATE_ONLY.fullmatch(text):
            return to_utc(datetime.combine(date.fromisoformat(text), time()), zone)
        if _WALL.fullmatch(text):
            return to_utc(datetime.fromisoformat(_whole(text)), zone)
    except (ValueError, OverflowError):
        return None
    return None


def _iso_date(text: str) -> str:
    """`text` with a legacy 'YYYY/MM/DD' or 'DD.MM.YYYY' date at its start spelled 'YYYY-MM-DD'."""
    if _SLASHED.match(text):
        return f"{text[:4]}-{text[5:7]}-{text[8:10]}{text[10:]}"
    if _DOTTED.match(text):
        return f"{text[6:10]}-{text[3:5]}-{text[:2]}{text[10:]}"
    return text


def _whole(wall: str) -> str:
    """A wall time Python can parse: a fraction cut to microseconds (SQLite's datetime() keeps whole seconds)."""
    head, dot, fraction = wall.partition(".")
    return f"{head}.{fraction[:_MAX_FRACTION]}" if dot else head


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

    Deterministic built-in functions only, so it can be indexed; instant() reads a value the same way (a date or
    time Python refuses, such as Feb 30 or 24:00, is no time here either).
    """
    c = column
    iso = (f"(CASE WHEN {c} GLOB '{_D4}/{_D2}/{_D2}*' THEN substr({c}, 1, 4) || '-' || substr({c}, 6, 2) || '-' || "
           f"substr({c}, 9) WHEN {c} GLOB '{_D2}.{_D2}.{_D4}*' THEN substr({c}, 7, 4) || '-' || substr({c}, 4, 2) "
           f"|| '-' || substr({c}, 1, 2) || substr({c}, 11) ELSE {c} END)")
    day = f"date(substr({iso}, 1, 10), '+0 days') IS substr({iso}, 1, 10) AND substr({iso}, 1, 4) > '0000'"
    hm = f"substr({iso}, 12, 2) < '24' AND substr({iso}, 15, 2) < '60'"
    hms = f"{hm} AND substr({iso}, 18, 2) < '60'"
    wall = f"{_DATE_GLOB}[T ]{_D2}:{_D2}"
    digits_from_21 = f"substr({iso}, 21, length({iso}) - 20 - ?) NOT GLOB '*[^0-9]*'"  # ? = the zone's length
    offset = f"substr({iso}, -5, 2) < '24' AND substr({iso}, -2) < '60'"
    zoned = " OR ".join([
        f"{iso} GLOB '{wall}[Zz]' AND {hm}",
        f"{iso} GLOB '{wall}{_OFFSET_GLOB}' AND {hm} AND {offset}",
        f"{iso} GLOB '{wall}:{_D2}[Zz]' AND {hms}",
        f"{iso} GLOB '{wall}:{_D2}{_OFFSET_GLOB}' AND {hms} AND {offset}",
        f"{iso} GLOB '{wall}:{_D2}.[0-9]*[Zz]' AND {hms} AND {digits_from_21.replace('?', '1')}",
        f"{iso} GLOB '{wall}:{_D2}.[0-9]*{_OFFSET_GLOB}' AND {hms} AND {offset} AND {digits_from_21.replace('?', '6')}",
    ])
    local_fraction = f"{iso} GLOB '{wall}:{_D2}.[0-9]*' AND {hms} AND {digits_from_21.replace('?', '0')}"
    numeric = f"{c} GLOB '[0-9]*' AND {c} NOT GLOB '*[^0-9.]*' AND {c} NOT GLOB '*.*.*' AND {c} NOT GLOB '*.'"
    number = f"CAST({c} AS REAL)"
    return (
        f"(CASE WHEN typeof({c}) IN ('integer', 'real') THEN '{UTC_BAND}' || datetime(CASE WHEN "
        f"abs({c}) >= {EPOCH_MS_FROM} THEN {c} / 1000.0 ELSE {c} END, 'unixepoch') "
        f"WHEN typeof({c}) <> 'text' THEN NULL "
        f"WHEN {c} GLOB '{_STORE_GLOB}' THEN CASE WHEN {day} AND {hms} THEN '{UTC_BAND}' || {c} END "
        f"WHEN {numeric} THEN '{UTC_BAND}' || datetime(CASE WHEN {number} >= {EPOCH_MS_FROM} THEN {number} / 1000.0 "
        f"ELSE {number} END, 'unixepoch') "
        f"WHEN NOT ({day}) THEN NULL "
        f"WHEN {zoned} THEN '{UTC_BAND}' || datetime({iso}) "
        f"WHEN {iso} GLOB '{_DATE_GLOB}' THEN '{LOCAL_BAND}' || {iso} || ' 00:00:00' "
        f"WHEN {iso} GLOB '{wall}' AND {hm} THEN '{LOCAL_BAND}' || replace({iso}, 'T', ' ') || ':00' "
        f"WHEN {iso} GLOB '{wall}:{_D2}' AND {hms} OR {local_fraction} THEN '{LOCAL_BAND}' || replace({iso}, 'T', ' ') "
        "END)"
    )


def key_wall(key: str) -> datetime | None:
    """The naive wall-clock time of a local-band key ('L' + wall text), or None for a UTC-band key."""
    if not key.startswith(LOCAL_BAND):
        return None
    try:
        return datetime.fromisoformat(_whole(key[1:]))
    except ValueError:
        return None


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
