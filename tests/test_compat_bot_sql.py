"""The bot's own SQL, moved onto the facade (BOT_INTERFACE.md section 1, last paragraph).

The bot ran five statements on the raw connection: INSERTs into tp_reentry_events and reversal_exit_events, the
reversal exit handler's 30-day summary, the risk manager's closed PnL of today, and a read of a session's metadata.
Each is a facade method now, scoped to its plugin. Rows are written as the bot wrote them (naive local ISO times with
a `T` and microseconds) and in the legacy forms a shared file holds, next to another plugin's rows that must not
count. Expected values are worked out by hand from the rows, not from our code.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from zepix_store import Store, timefmt
from zepix_store.compat import TradeDatabase

from .conftest import Project, query

P, OTHER = "v6-logic-01-1min", "v6-logic-02-5min"
GROUP_A, GROUP_B = "v3-logic-01-5min", "v3-logic-02-15min"  # two plugins of one group file
BOT_TIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?"  # isoformat() drops a .000000


def shared_project(project: Project, zone: str = "local") -> Project:
    """P and OTHER both in the shared file (the file a migrated bot left), naive times read in `zone`."""
    project.set_use_shared(P, True)
    project.set_use_shared(OTHER, True)
    store_yaml = project.configs / "store.yaml"
    store_yaml.write_text(store_yaml.read_text().replace("timezone: local", f"timezone: {zone}"))
    with TradeDatabase(OTHER, project.configs) as other:
        other.create_session("create-the-file", "EURUSD", "buy", "sig")
    return project


def insert(path: Path, table: str, rows: list[dict[str, Any]]) -> None:
    """Rows as the bot's own statements left them in the file (raw, no checks)."""
    conn = sqlite3.connect(path)
    with conn:
        for row in rows:
            conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         tuple(row.values()))
    conn.close()


def test_tp_reentry_and_reversal_exit_inserts_take_the_bots_values_in_its_order(project: Project) -> None:
    with TradeDatabase(GROUP_A, project.configs) as a, TradeDatabase(GROUP_B, project.configs) as b:
        # the bot's TP continuation: chain_id, symbol, tp_level, tp_price (it passed chain.total_profit there),
        # reentry_price, sl_reduction_percent, pnl 0
        first = a.save_tp_reentry_event("RC1", "EURUSD", 2, 35.0, 1.1012, 30.0, 0)
        second = a.save_tp_reentry_event("RC1", "EURUSD", 3, 50.0, 1.1030, 51.0)  # pnl defaults to 0.0
        b.save_tp_reentry_event("RC1", "EURUSD", 2, 9.0, 1.2, 30.0, 0)
        # the reversal exit handler: trade.trade_id (an int ticket), symbol, exit_price, exit_reason, pnl
        exit_id = a.save_reversal_exit_event(50260728, "EURUSD", 1.0995, "REVERSAL_BEARISH", -12.5)
        assert isinstance(first, int) and second > first and isinstance(exit_id, int)
        tp_rows = query(a.path, "SELECT id, chain_id, symbol, tp_level, tp_price, reentry_price, "
                                "sl_reduction_percent, pnl, plugin_id FROM tp_reentry_events ORDER BY id")
        assert tp_rows == [(first, "RC1", "EURUSD", 2, 35.0, 1.1012, 30.0, 0.0, GROUP_A),
                           (second, "RC1", "EURUSD", 3, 50.0, 1.1030, 51.0, 0.0, GROUP_A),
                           (tp_rows[2][0], "RC1", "EURUSD", 2, 9.0, 1.2, 30.0, 0.0, GROUP_B)]
        assert query(a.path, "SELECT id, trade_id, symbol, exit_price, exit_signal, pnl, plugin_id "
                             "FROM reversal_exit_events") == \
            [(exit_id, "50260728", "EURUSD", 1.0995, "REVERSAL_BEARISH", -12.5, GROUP_A)]
        stamps = [r[0] for r in query(a.path, "SELECT timestamp FROM tp_reentry_events UNION ALL "
                                              "SELECT timestamp FROM reversal_exit_events")]
        assert len(stamps) == 4
        for stamp in stamps:  # the bot's "now": naive local ISO, microseconds included
            assert isinstance(stamp, str) and re.fullmatch(BOT_TIME, stamp)
            assert abs(datetime.fromisoformat(stamp) - datetime.now()) < timedelta(minutes=2)
        # each plugin's figures are its own rows
        assert a.get_tp_reentry_stats()["total_tp_reentries"] == 2
        assert b.get_tp_reentry_stats()["total_tp_reentries"] == 1
        assert a.get_reversal_exit_stats()["total_reversal_exits"] == 1
        assert b.get_reversal_exit_stats()["total_reversal_exits"] == 0


def test_reversal_summary_covers_30_days_of_the_plugins_rows_in_every_stored_form(project: Project) -> None:
    shared_project(project)
    with TradeDatabase(P, project.configs) as db:
        assert db.get_reversal_exit_stats() == {"total_reversal_exits": 0, "profitable_exits": None,
                                                "total_reversal_pnl": None, "avg_reversal_pnl": None}
        now, utc_now = datetime.now(), datetime.now(UTC)
        rows = [
            (10.0, (now - timedelta(days=1)).isoformat()),  # as the bot's raw INSERT stamped it
            (-4.0, (now - timedelta(days=29, hours=20)).isoformat()),  # hours clear of the edge (a DST shift)
            (6.0, (utc_now - timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S")),  # the store's UTC form
            (0.0, int((utc_now - timedelta(days=3)).timestamp())),  # epoch seconds
            (100.0, (now - timedelta(days=30, hours=4)).isoformat()),  # older than 30 days
            (200.0, (utc_now - timedelta(days=45)).strftime("%Y-%m-%d %H:%M:%S")),
        ]
        insert(db.path, "reversal_exit_events",
               [{"trade_id": str(i), "symbol": "EURUSD", "exit_price": 1.1, "exit_signal": "REVERSAL_BULLISH",
                 "pnl": pnl, "timestamp": when, "plugin_id": P} for i, (pnl, when) in enumerate(rows)])
        insert(db.path, "reversal_exit_events", [{"trade_id": "9", "pnl": 1000.0, "timestamp": now.isoformat(),
                                                  "plugin_id": OTHER}])  # another plugin's, in the same file
        assert db.get_reversal_exit_stats() == {"total_reversal_exits": 4, "profitable_exits": 2,
                                                "total_reversal_pnl": 12.0, "avg_reversal_pnl": 3.0}


TOKYO_NOW = datetime(2026, 3, 9, 15, 30, tzinfo=UTC)  # 00:30 on March 10 in Tokyo, still March 9 in UTC
TODAY_ROWS: list[tuple[object, float | None, str]] = [  # close time, pnl, status
    ("2026-03-10T00:10:00.123456", 10.0, "closed"),  # the bot's naive local form: Tokyo today
    ("2026-03-09 15:05:00", -4.0, "closed"),  # UTC form, 00:05 in Tokyo: today, though its text says the 9th
    ("2026-03-10T09:00:00+09:00", 2.5, "closed"),
    (int(datetime(2026, 3, 9, 20, tzinfo=UTC).timestamp()), -1.5, "closed"),  # epoch: 05:00 in Tokyo
    ("2026/03/10 08:00:00", 1.0, "closed"),
    ("10.03.2026 12:00", 0.0, "closed"),  # a trade, no money
    ("2026-03-10T23:59:59.999999", None, "closed"),  # a trade without a pnl: counted, no money
    ("2026-03-09T23:59:59.999999", 100.0, "closed"),  # yesterday in Tokyo
    ("2026-03-09 14:59:59", 100.0, "closed"),  # UTC: 23:59:59 yesterday in Tokyo
    ("2026-03-10T15:00:00Z", 100.0, "closed"),  # midnight of tomorrow in Tokyo
    ("2026-03-11T00:00:00", 100.0, "closed"),
    ("2026-03-10T01:00:00", 100.0, "open"),  # an open snapshot is no closed trade
    (None, None, "open"),
]


def frozen_now(moment: datetime) -> Any:
    return lambda zone: moment.astimezone(zone).replace(tzinfo=None)


def test_todays_performance_is_the_calendar_day_in_the_configured_zone(project: Project,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    shared_project(project, "Asia/Tokyo")
    monkeypatch.setattr(timefmt, "local_now", frozen_now(TOKYO_NOW))
    with TradeDatabase(P, project.configs) as db:
        assert db.get_todays_performance() == {"profit": 0.0, "loss": 0.0, "net": 0.0, "trade_count": 0}
        insert(db.path, "trades", [{"trade_id": str(i), "close_time": when, "pnl": pnl, "status": status,
                                    "plugin_id": P} for i, (when, pnl, status) in enumerate(TODAY_ROWS)])
        insert(db.path, "trades", [{"trade_id": "1", "close_time": "2026-03-10T00:10:00", "pnl": 1000.0,
                                    "status": "closed", "plugin_id": OTHER}])  # another plugin's
        today = db.get_todays_performance()
        assert today == {"profit": 13.5, "loss": -5.5, "net": 8.0, "trade_count": 7}
        assert all(type(today[k]) is float for k in ("profit", "loss", "net"))
        # the same rows, the day asked for in UTC (March 9 there): naive times are still Tokyo's
        assert db.get_todays_performance("UTC") == {"profit": 211.0, "loss": -5.5, "net": 205.5,
                                                    "trade_count": 6}


async def test_plugin_store_has_the_same_three_reads(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    shared_project(project, "Asia/Tokyo")
    monkeypatch.setattr(timefmt, "local_now", frozen_now(TOKYO_NOW))
    insert(project.shared_db, "trades", [{"trade_id": str(i), "close_time": when, "pnl": pnl, "status": status,
                                          "plugin_id": P} for i, (when, pnl, status) in enumerate(TODAY_ROWS)])
    # the 30-day window is the real clock's (the frozen one only says which day is today)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    insert(project.shared_db, "reversal_exit_events",
           [{"trade_id": "1", "pnl": 5.0, "timestamp": yesterday, "plugin_id": P},
            {"trade_id": "2", "pnl": -3.0, "timestamp": "2020-01-01 00:00:00", "plugin_id": P},
            {"trade_id": "3", "pnl": 7.0, "timestamp": yesterday, "plugin_id": OTHER}])
    async with Store.open(project.configs) as store:
        mine = store.for_plugin(P)
        await mine.create_session({"session_id": "S1", "symbol": "EURUSD", "direction": "buy",
                                   "metadata": json.dumps({"logic_stats": {}})})
        assert await mine.get_todays_performance() == {"profit": 13.5, "loss": -5.5, "net": 8.0,
                                                       "trade_count": 7}
        assert await store.for_plugin(OTHER).get_todays_performance() == {"profit": 0.0, "loss": 0.0, "net": 0.0,
                                                                          "trade_count": 0}
        assert await mine.get_reversal_exit_stats() == {"total_reversal_exits": 1, "profitable_exits": 1,
                                                         "total_reversal_pnl": 5.0, "avg_reversal_pnl": 5.0}
        assert await mine.get_session_metadata("S1") == {"logic_stats": {}}
        assert await store.for_plugin(OTHER).get_session_metadata("S1") is None


def test_session_metadata_reads_back_what_was_stored_for_the_plugins_session(project: Project) -> None:
    with TradeDatabase(GROUP_A, project.configs) as a, TradeDatabase(GROUP_B, project.configs) as b:
        assert a.get_session_metadata("S1") is None  # no file yet: nothing, and no file made
        assert list(project.data.iterdir()) == []
        for handle in (a, b):
            handle.create_session("S1", "EURUSD", "buy", "sig")
        assert a.get_session_metadata("S1") is None  # a session without metadata
        stats = {"logic_stats": {"LOGIC1": {"trades": 2, "wins": 1, "losses": 1, "pnl": 6.0}}}
        assert a.update_session_metadata("S1", stats) is True
        assert a.get_session_metadata("S1") == stats
        assert b.get_session_metadata("S1") is None  # same session id, other plugin: its own row
        # the bot's own write: json.dumps text through its raw UPDATE; and text that is not JSON
        conn = sqlite3.connect(a.path)
        with conn:
            conn.execute("UPDATE trading_sessions SET metadata = ? WHERE plugin_id = ?",
                         (json.dumps({"logic_stats": {}}), GROUP_B))
        conn.close()
        assert b.get_session_metadata("S1") == {"logic_stats": {}}
        assert a.update_session_metadata("S1", "plain note") is True
        assert a.get_session_metadata("S1") == "plain note"
        assert a.get_session_metadata("nope") is None
