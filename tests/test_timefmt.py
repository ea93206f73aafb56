"""timefmt: every stored time form read as its instant, by SQLite's index key and by Python alike; zone bounds."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from zepix_store import timefmt
from zepix_store.errors import ConfigError

BOGOTA = ZoneInfo("America/Bogota")  # -05:00 all year: a naive time misread as UTC is five hours off
NEW_YORK = ZoneInfo("America/New_York")

# (stored value, the instant it means when naive times are in Bogota), written out by hand
CASES: list[tuple[object, datetime | None]] = [
    ("2025-10-07 19:52:47", datetime(2025, 10, 7, 19, 52, 47, tzinfo=UTC)),               # the store's own: UTC
    ("2025-10-07T19:52:47.285408", datetime(2025, 10, 8, 0, 52, 47, 285408, tzinfo=UTC)),  # the bot's isoformat()
    ("2025-10-07T19:52:47", datetime(2025, 10, 8, 0, 52, 47, tzinfo=UTC)),
    ("2025-10-07 19:52:47.250000", datetime(2025, 10, 8, 0, 52, 47, 250000, tzinfo=UTC)),  # str(datetime.now())
    ("2025-10-07", datetime(2025, 10, 7, 5, 0, tzinfo=UTC)),                               # a date: its midnight
    ("2025-10-07T19:52:47Z", datetime(2025, 10, 7, 19, 52, 47, tzinfo=UTC)),
    ("2025-10-07T19:52:47.5z", datetime(2025, 10, 7, 19, 52, 47, 500000, tzinfo=UTC)),
    ("2025-10-07T19:52:47+05:30", datetime(2025, 10, 7, 14, 22, 47, tzinfo=UTC)),
    ("2025-10-07 19:52:47-04:00", datetime(2025, 10, 7, 23, 52, 47, tzinfo=UTC)),
    (1759866767, datetime(2025, 10, 7, 19, 52, 47, tzinfo=UTC)),                          # epoch seconds
    (1759866767.0, datetime(2025, 10, 7, 19, 52, 47, tzinfo=UTC)),
    (1759866767285, datetime(2025, 10, 7, 19, 52, 47, 285000, tzinfo=UTC)),               # epoch milliseconds
    ("n/a", None), ("", None), (None, None), (b"\x00", None), ("19:52", None),
    # legacy spellings: year-first slashes and day-first dots are unambiguous, naive local like the bot's
    ("2025/10/07 19:52:47", datetime(2025, 10, 8, 0, 52, 47, tzinfo=UTC)),
    ("2025/10/07", datetime(2025, 10, 7, 5, 0, tzinfo=UTC)),
    ("2025/10/07T19:52:47.5", datetime(2025, 10, 8, 0, 52, 47, 500000, tzinfo=UTC)),
    ("07.10.2025 19:52", datetime(2025, 10, 8, 0, 52, tzinfo=UTC)),
    ("07.10.2025 19:52:47", datetime(2025, 10, 8, 0, 52, 47, tzinfo=UTC)),
    ("07.10.2025", datetime(2025, 10, 7, 5, 0, tzinfo=UTC)),
    ("2025-10-07T19:52", datetime(2025, 10, 8, 0, 52, tzinfo=UTC)),
    ("2025/10/07 19:52:47+05:30", datetime(2025, 10, 7, 14, 22, 47, tzinfo=UTC)),
    ("2025-10-07T19:52:47.1234567Z", datetime(2025, 10, 7, 19, 52, 47, 123456, tzinfo=UTC)),
    # no time: ambiguous or malformed, read as no time by both readers
    ("10/07/2025 19:52", None), ("07/10/2025", None), ("2025-10-07T19:52:47+0530", None),
    ("2025-10-07 19:52:47 extra", None), ("2025-10-07T19", None), ("2025-10-07x", None), ("2025-13-45", None),
    ("2025/10/07 19:52:47.", None), ("1759866767.", None), ("1.2.3", None), ("-1759866767", None),
]
# numeric text, as a legacy TEXT column keeps it (a DATETIME column's affinity turns it into a number)
TEXT_CASES: list[tuple[object, datetime | None]] = [
    ("1759866767", datetime(2025, 10, 7, 19, 52, 47, tzinfo=UTC)),
    ("1759866767.5", datetime(2025, 10, 7, 19, 52, 47, 500000, tzinfo=UTC)),
    ("1759866767285", datetime(2025, 10, 7, 19, 52, 47, 285000, tzinfo=UTC)),
    *CASES,
]


def stored_and_key(value: object, declared: str = "DATETIME") -> tuple[object, str | None]:
    """The value as a column declared `declared` keeps it (its affinity may turn text into a number), and its key."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(f"CREATE TABLE t (close_time {declared})")
        conn.execute("INSERT INTO t VALUES (?)", (value,))
        stored, key = conn.execute(f"SELECT close_time, {timefmt.time_key_sql('close_time')} FROM t").fetchone()
        return stored, key
    finally:
        conn.close()


def sql_key(value: object, declared: str = "DATETIME") -> str | None:
    return stored_and_key(value, declared)[1]


def key_instant(key: str | None, zone: ZoneInfo) -> datetime | None:
    """What an index key says, read back: 'U' + UTC text, 'L' + wall-clock text in `zone`."""
    if key is None:
        return None
    moment = datetime.fromisoformat(key[1:])
    return moment.replace(tzinfo=UTC) if key[0] == "U" else moment.replace(tzinfo=zone).astimezone(UTC)


@pytest.mark.parametrize("declared", ["DATETIME", "TEXT"])
@pytest.mark.parametrize(("value", "meant"), TEXT_CASES, ids=[repr(v)[:30] for v, _ in TEXT_CASES])
def test_python_and_the_index_key_read_the_same_instant(value: object, meant: datetime | None, declared: str) -> None:
    assert timefmt.instant(value, BOGOTA) == meant
    stored, key = stored_and_key(value, declared)
    read = timefmt.instant(stored, BOGOTA)  # a DATETIME column may keep numeric text as a number
    from_key = key_instant(key, BOGOTA)
    if read is None:
        assert from_key is None
    else:  # SQLite's datetime() keeps whole seconds of the forms it converts
        assert from_key is not None and abs(from_key - read) < timedelta(seconds=1)
    if stored == value:
        assert read == meant


def test_bands_keep_naive_times_apart_from_utc_ones() -> None:
    assert sql_key("2025-10-07 19:52:47") == "U2025-10-07 19:52:47"
    assert sql_key("2025-10-07T19:52:47.285408") == "L2025-10-07 19:52:47.285408"
    assert sql_key(1759866767285) == "U2025-10-07 19:52:47"
    assert sql_key("2025/10/07 19:52:47") == "L2025-10-07 19:52:47"  # slashes: never the store's UTC form
    assert sql_key("07.10.2025 19:52") == "L2025-10-07 19:52:00"  # whole seconds: a bound at 19:52:00 takes it
    assert sql_key("1759866767", "TEXT") == "U2025-10-07 19:52:47"


def test_window_bounds_convert_each_band() -> None:
    since = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
    assert timefmt.band_bounds(since, None, BOGOTA) == ("U2025-10-01 12:00:00", "V", "L2025-10-01 07:00:00", "M")
    lo_u, hi_u, lo_l, hi_l = timefmt.band_bounds(None, since, BOGOTA)
    assert (lo_u, hi_u, lo_l, hi_l) == ("U", "U2025-10-01 12:00:00", "L", "L2025-10-01 07:00:00")


def test_the_lower_bound_in_a_repeated_hour_is_exact() -> None:
    """New York, 2024-11-03: 01:00-02:00 happens twice; a naive 01:30 reads as its first pass (05:30 UTC)."""
    for moment in (datetime(2024, 11, 3, h, m, tzinfo=UTC) for h in (4, 5, 6, 7) for m in (0, 30, 59)):
        bound = timefmt.wall_lower_bound(moment, NEW_YORK)
        wall = datetime(2024, 11, 2, 23, 0)
        while wall < datetime(2024, 11, 3, 4, 0):
            assert (wall >= bound) == (timefmt.to_utc(wall, NEW_YORK) >= moment), (moment, wall, bound)
            wall += timedelta(minutes=1)


def test_utc_order_across_bands_follows_the_zone_rules() -> None:
    shifts = timefmt.zone_shifts(NEW_YORK, datetime(2024, 1, 1), datetime(2025, 1, 1))
    assert [s for s, _ in shifts] == ["", "2024-03-10 02:00:00", "2024-11-03 02:00:00"]
    sql = timefmt.utc_text_sql("?1", 2, len(shifts))
    conn = sqlite3.connect(":memory:")
    try:
        for wall in ("2024-01-15 12:00:00", "2024-03-10 01:59:00", "2024-03-10 03:00:00", "2024-07-01 00:00:00",
                     "2024-11-03 01:30:00", "2024-11-03 02:30:00", "2024-12-31 23:59:59"):
            got = conn.execute(f"SELECT {sql}", ("L" + wall, *timefmt.shift_params(shifts))).fetchone()[0]
            want = timefmt.to_utc(datetime.fromisoformat(wall), NEW_YORK).strftime("%Y-%m-%d %H:%M:%S")
            assert got == want, wall
        assert conn.execute(f"SELECT {sql}", ("U2024-06-01 10:00:00", *timefmt.shift_params(shifts))).fetchone() \
            == ("2024-06-01 10:00:00",)
    finally:
        conn.close()


def test_day_bounds_are_midnights_of_the_zone() -> None:
    start, end = timefmt.day_bounds(datetime(2024, 11, 3).date(), NEW_YORK)
    assert (start, end) == (datetime(2024, 11, 3, 4, tzinfo=UTC), datetime(2024, 11, 4, 5, tzinfo=UTC))  # 25 hours


def test_zone_names() -> None:
    assert timefmt.resolve_zone("UTC") is UTC
    assert timefmt.resolve_zone("America/Bogota") == BOGOTA
    local = timefmt.resolve_zone("local")
    assert local.utcoffset(datetime(2025, 1, 1)) == datetime(2025, 1, 1).astimezone().utcoffset()
    for bad in ("Mars/Base", "../etc/passwd", ""):
        with pytest.raises(ValueError, match="unknown time zone"):
            timefmt.resolve_zone(bad)


def test_a_zone_is_a_name_or_a_tzinfo_and_a_bad_one_is_a_config_error() -> None:
    assert timefmt.as_zone("UTC", BOGOTA) is UTC
    assert timefmt.as_zone("America/New_York", BOGOTA) == NEW_YORK
    assert timefmt.as_zone(NEW_YORK, BOGOTA) is NEW_YORK
    assert timefmt.as_zone(None, BOGOTA) is BOGOTA
    for bad in ("Mars/Base", 5, b"UTC"):
        with pytest.raises(ConfigError, match="zone: "):
            timefmt.as_zone(bad, BOGOTA)  # type: ignore[arg-type]
