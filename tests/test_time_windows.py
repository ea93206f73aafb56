"""Time as the bot wrote it (SPEC 3 `timezone`, SPEC 4): windows and days read every stored form as its instant.

The project's timezone is America/Bogota (-05:00, no DST): a naive local time misread as UTC is five hours off,
so the 29 days 23 hours case falls out of the 30-day window when it is misread.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import Project, query, run_cli
from zepix_store import Store
from zepix_store._bench.reads import captured_sql, explain
from zepix_store.compat import TradeDatabase
from zepix_store.errors import ConfigError
from zepix_store.schema import CLOSE_INDEX, SCHEMA_VERSION

ZONE_NAME = "America/Bogota"
ZONE = ZoneInfo(ZONE_NAME)
PLUGIN = "v6-logic-01-1min"
IST = timezone(timedelta(hours=5, minutes=30))

FORMS = {  # how a close time may be stored, each an instant written its own way
    "naive-local": lambda t: t.astimezone(ZONE).replace(tzinfo=None).isoformat(),
    "z": lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    "offset": lambda t: t.astimezone(IST).isoformat(),
    "epoch-ms": lambda t: int(t.timestamp() * 1000),
    "store-utc": lambda t: t.strftime("%Y-%m-%d %H:%M:%S"),
}


def set_zone(project: Project, name: str = ZONE_NAME) -> None:
    path = project.configs / "store.yaml"
    path.write_text(path.read_text().replace("timezone: local", f"timezone: {name}"))


def closed(trade_id: str, when: object, pnl: float = 1.0) -> dict[str, object]:
    return {"trade_id": trade_id, "status": "closed", "pnl": pnl, "close_time": when}


async def save(project: Project, trades: list[dict[str, object]], plugin: str = PLUGIN) -> None:
    async with Store.open(project.configs) as store:
        await store.for_plugin(plugin).save_trades(trades)


async def call(project: Project, method: str, *args: Any, plugin: str = PLUGIN) -> list[dict[str, Any]]:
    async with Store.open(project.configs) as store:
        result: list[dict[str, Any]] = await getattr(store.for_plugin(plugin), method)(*args)
        return result


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_30_day_window_counts_29d23h_and_not_30d1h(project: Project, form: str) -> None:
    set_zone(project)
    now = datetime.now(UTC)
    write = FORMS[form]
    asyncio.run(save(project, [closed("in", write(now - timedelta(days=29, hours=23)), 2.0),
                               closed("out", write(now - timedelta(days=30, hours=1)), 4.0),
                               closed("recent", write(now - timedelta(hours=3)), 8.0)]))
    rows = asyncio.run(call(project, "get_trades", 30))
    assert [r["trade_id"] for r in rows] == ["recent", "in"]  # newest first
    done = run_cli("stats", "--json", "--plugin", PLUGIN, "--days", "30", config=project)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)["plugins"][0]
    assert (got["total_trades"], got["total_pnl"]) == (2, 10.0)


def test_mixed_forms_order_by_their_instants(project: Project) -> None:
    set_zone(project)
    now = datetime.now(UTC).replace(microsecond=0)
    trades = [closed(f"{form}-{h}", FORMS[form](now - timedelta(hours=h))) for h, form in
              enumerate(["offset", "naive-local", "store-utc", "epoch-ms", "z", "naive-local", "offset"], start=1)]
    asyncio.run(save(project, trades[::-1]))
    rows = asyncio.run(call(project, "get_trades", 1))
    assert [r["trade_id"] for r in rows] == [t["trade_id"] for t in trades]


def test_days_are_calendar_days_of_the_zone(project: Project) -> None:
    set_zone(project)
    day = date(2025, 3, 10)
    late, early = datetime(2025, 3, 10, 23, 30), datetime(2025, 3, 11, 0, 30)  # Bogota wall times
    trades = [closed("late-naive", late.isoformat(timespec="microseconds")),
              closed("early-naive", early.isoformat(timespec="microseconds")),
              closed("late-utc", "2025-03-11 04:30:00"),        # 23:30 in Bogota: still the 10th there
              closed("early-utc", "2025-03-10 04:30:00"),       # 23:30 on the 9th in Bogota
              closed("late-z", "2025-03-11T04:59:59Z"), closed("next-z", "2025-03-11T05:00:00Z")]
    asyncio.run(save(project, trades))
    rows = asyncio.run(call(project, "get_trades_by_date", day))
    assert [r["trade_id"] for r in rows] == ["late-naive", "late-utc", "late-z"]
    in_utc = asyncio.run(call(project, "get_trades_by_date", day, UTC))  # a call may pass its zone
    assert [r["trade_id"] for r in in_utc] == ["early-utc"]
    done = run_cli("stats", "--json", "--plugin", PLUGIN, "--since", "2025-03-10", "--until", "2025-03-10", config=project)
    doc = json.loads(done.stdout)
    assert doc["window"]["since"] == "2025-03-10 05:00:00" and doc["plugins"][0]["total_trades"] == 3


def test_sessions_by_date_use_the_zone_too(project: Project) -> None:
    set_zone(project)

    async def run() -> list[str]:
        async with Store.open(project.configs) as store:
            db = store.for_plugin(PLUGIN)
            for sid, start in (("evening", "2025-03-10T23:10:00.000001"), ("utc-evening", "2025-03-11 04:00:00"),
                               ("next", "2025-03-11T00:10:00.000001")):
                await db.create_session({"session_id": sid, "symbol": "EURUSD", "direction": "buy",
                                         "start_time": start})
            return [s["session_id"] for s in await db.get_sessions_by_date(date(2025, 3, 10))]

    assert asyncio.run(run()) == ["utc-evening", "evening"]  # 23:00 and 23:10 in Bogota


def _rewrite_close_times(project: Project, times: dict[str, object]) -> None:
    """Legacy values the API would refuse, written as an old bot or another tool left them."""
    path = project.data / "zepix_v6_logic_01_1min.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("UPDATE trades SET close_time = ? WHERE trade_id = ?", [(v, k) for k, v in times.items()])
    conn.close()


def test_legacy_spellings_fall_in_their_window_and_no_time_is_named_not_a_traceback(project: Project) -> None:
    set_zone(project)
    asyncio.run(save(project, [closed("iso", "2026-01-20T10:00:00", 1.0), closed("slashes", "2026-01-20T10:00:00", 2.0),
                               closed("dots", "2026-01-20T10:00:00", 4.0), closed("offset", "2026-01-20T10:00:00", 8.0),
                               closed("word", "2026-01-20T10:00:00", 16.0), closed("ambiguous", "2026-01-20", 32.0)]))
    _rewrite_close_times(project, {"slashes": "2026/01/20 11:00:00", "dots": "20.01.2026 23:59",
                                   "offset": "2026-01-20T11:00:00+0200",  # no colon: neither reader takes it
                                   "word": "n/a", "ambiguous": "01/20/2026"})
    window = ("--plugin", PLUGIN, "--since", "2026-01-20", "--until", "2026-01-20")
    done = run_cli("stats", "--json", *window, config=project)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    got = doc["plugins"][0]
    assert (got["total_trades"], got["total_pnl"], got["untimed_trades"]) == (3, 7.0, 3)
    assert doc["untimed_values"] == {PLUGIN: ["'01/20/2026'", "'2026-01-20T11:00:00+0200'", "'n/a'"]}
    assert doc["notes"] == [f"{PLUGIN}: 3 closed trades whose close_time is no time (such as '01/20/2026', "
                            "'2026-01-20T11:00:00+0200', 'n/a'): in no time window, counted only in all-time figures"]
    human = run_cli("stats", *window, config=project)
    assert human.returncode == 0, human.stderr
    assert f"note: {doc['notes'][0]}" in human.stdout
    everything = json.loads(run_cli("stats", "--json", "--plugin", PLUGIN, config=project).stdout)["plugins"][0]
    assert (everything["total_trades"], everything["untimed_trades"]) == (6, 3)  # all time: every trade counts
    rows = asyncio.run(call(project, "get_trades_by_date", date(2026, 1, 20)))
    assert [r["trade_id"] for r in rows] == ["iso", "slashes", "dots"]
    next_day_in_utc = asyncio.run(call(project, "get_trades_by_date", "2026-01-21", "UTC"))  # a zone by its name
    assert [r["trade_id"] for r in next_day_in_utc] == ["dots"]  # 23:59 in Bogota is 04:59 UTC on the 21st
    with TradeDatabase(PLUGIN, project.configs) as db:
        assert [r["trade_id"] for r in db.get_trades_by_date(date(2026, 1, 21), "UTC")] == ["dots"]
        assert [r["trade_id"] for r in db.get_trades_by_date(date(2026, 1, 21), ZoneInfo("UTC"))] == ["dots"]
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Base'"):
        asyncio.run(call(project, "get_trades_by_date", "2026-01-21", "Mars/Base"))


# --- the index: every window is answered from it --------------------------------------------------------------


def _migrated(project: Project, trades: int = 400) -> Path:
    from zepix_store._sample.bot_history import build_bot_history

    build_bot_history(project.shared_db, trades=trades, seed=2)
    project.set_all_shared(True)
    assert run_cli("migrate", "-q", config=project).returncode == 0
    return project.shared_db


def test_windows_search_the_close_time_index(project: Project) -> None:
    path = _migrated(project)

    async def plans() -> list[list[str]]:
        async with Store.open(project.configs) as store:
            db = store.for_plugin("v3-logic-01-5min")
            with captured_sql() as calls:
                await db.get_trades(30)
                await db.get_trades_by_date(date.today())
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return [explain(conn, "q", path.name, c).lines for c in calls]
        finally:
            conn.close()

    for lines in asyncio.run(plans()):
        assert not any(line.startswith("SCAN trades") for line in lines), lines
        assert sum(f"USING INDEX {CLOSE_INDEX}" in line for line in lines) == 2, lines  # one range per band


OLD_KEY = ("(CASE WHEN typeof(close_time) IN ('integer', 'real') THEN datetime(close_time, 'unixepoch') "
           "ELSE replace(close_time, 'T', ' ') END)")


def test_a_version_1_file_is_reindexed_in_place_after_a_backup(project: Project) -> None:
    path = _migrated(project)
    conn = sqlite3.connect(path)  # what version 1 left: the one-band key
    conn.execute(f"DROP INDEX {CLOSE_INDEX}")
    conn.execute(f"CREATE INDEX {CLOSE_INDEX} ON trades (plugin_id, {OLD_KEY})")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    rows = query(path, "SELECT * FROM trades ORDER BY id")

    done = run_cli("migrate", "--json", "-q", config=project)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["status"], doc["from_version"], doc["to_version"]) == ("migrated", 1, SCHEMA_VERSION)
    assert doc["reindexed"] == [CLOSE_INDEX] and Path(doc["backup"]).exists()
    assert query(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    (sql,) = query(path, "SELECT sql FROM sqlite_master WHERE name = ?", (CLOSE_INDEX,))[0]
    assert "'U' ||" in str(sql) and "'L' ||" in str(sql)
    assert query(path, "SELECT * FROM trades ORDER BY id") == rows  # no row touched
    assert run_cli("verify", config=project).returncode == 0
