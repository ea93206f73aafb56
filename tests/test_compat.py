"""compat.TradeDatabase called as the bot calls it, with bot-shaped models (BOT_INTERFACE.md sections 1, 2), on
SQLite files and on PostgreSQL (the `backend` fixture).

The expected values are written from BOT_INTERFACE.md (what the bot's own class returns), not from our code.
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from zepix_store import RowError, UnknownPluginError
from zepix_store.compat import TradeDatabase

from .conftest import Project
from .helpers import Backed

P = "v6-logic-01-1min"


class BotModel:
    """pydantic-like (extra = "allow"): fields by attribute, model_dump() by name or by alias."""

    ALIASES: dict[str, str] = {}

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def model_dump(self, by_alias: bool = False) -> dict[str, Any]:
        data = dict(self.__dict__)
        return {self.ALIASES.get(k, k): v for k, v in data.items()} if by_alias else data


class BotTrade(BotModel):
    ALIASES = {"entry": "entryPrice"}


def bot_trade(ticket: int | None, **extra: Any) -> BotTrade:
    fields: dict[str, Any] = {
        "symbol": "EURUSD", "entry": 1.1, "sl": 1.09, "tp": 1.12, "lot_size": 0.1, "direction": "buy",
        "strategy": "combinedlogic-1", "status": "open", "trade_id": ticket,
        "open_time": datetime.now().isoformat(), "close_time": None, "pnl": None, "chain_id": None,
        "chain_level": 1, "original_entry": 1.1, "original_sl_distance": 0.01, "is_re_entry": False,
        "parent_trade_id": None, "order_type": "TP_TRAIL", "profit_chain_id": None, "profit_level": 0,
        "session_id": None, "logic_type": None, "base_lot_size": None, "final_lot_size": None,
        "lot_multiplier": 1.0, "sl_multiplier": 1.0, "base_sl_pips": 0.0, "final_sl_pips": 0.0,
        "v3_metadata": {"x": 1}}
    fields.update(extra)
    return BotTrade(**fields)


def close(trade: BotTrade, pnl: float, when: datetime | None = None) -> BotTrade:
    trade.status, trade.pnl = "closed", pnl
    trade.close_time = (when or datetime.now()).isoformat()
    trade.close_price = 1.105  # an extra the bot sets later
    return trade


@pytest.fixture
def db(backend: Backed) -> Any:
    with TradeDatabase(P, backend.configs) as handle:
        yield handle


def test_reads_before_any_write_return_the_bots_empty_values_and_create_no_file(backend: Backed) -> None:
    project = backend.project
    with TradeDatabase(P, project.configs) as db:
        assert db.get_trade_history() == [] and db.get_trades_by_date(date.today()) == []
        assert db.get_open_trades() == [] and db.get_active_profit_chains() == []
        assert db.get_chain_statistics() == {"total_chains": 0, "avg_max_level": None, "total_chain_profit": None,
                                             "completed_chains": 0, "profitable_chains": 0}
        assert db.get_sl_recovery_stats() == {"total_sl_hits": 0, "recovery_attempts": 0,
                                              "successful_recoveries": 0}
        assert db.get_sl_hunt_reentry_stats() == {"total_sl_hunt_reentries": 0, "sl_hunt_attempts": 0}
        assert db.get_tp_reentry_stats() == {"total_tp_reentries": 0, "total_tp_reentry_pnl": None,
                                             "avg_tp_reentry_pnl": None, "profitable_tp_reentries": 0}
        assert db.get_profit_chain_stats() == {"total_chains": 0, "completed_chains": 0, "active_chains": 0,
                                               "avg_level": None, "total_profit": None,
                                               "avg_profit_per_chain": None}
        assert db.get_active_session() == {} and db.get_active_session("EURUSD") == {}
        assert db.get_session_details("nope") == {} and db.get_sessions_by_date(date.today()) == []
        assert db.test_connection() is True
    assert list(project.data.iterdir()) == []


def test_trade_saved_at_open_and_at_close_is_one_row_read_back_as_the_bot_wrote_it(db: TradeDatabase) -> None:
    trade = bot_trade(50260728)
    db.save_trade(trade)
    assert [t["trade_id"] for t in db.get_open_trades()] == ["50260728"]
    db.save_trade(close(trade, 12.5))
    assert db.get_open_trades() == []
    [row] = db.get_trade_history()
    assert (row["trade_id"], row["entry_price"], row["sl_price"], row["tp_price"], row["exit_price"]) == \
        ("50260728", 1.1, 1.09, 1.12, 1.105)
    assert (row["status"], row["pnl"], row["strategy"], row["plugin_id"]) == ("closed", 12.5, "combinedlogic-1", P)
    assert (row["base_lot_size"], row["final_lot_size"], row["commission"], row["swap"]) == (0.1, 0.1, 0.0, 0.0)
    assert db.get_trade_history(days=30) == db.get_trade_history()


def test_history_window_and_date_read_the_bots_naive_local_times(db: TradeDatabase) -> None:
    now = datetime.now()
    for ticket, age in ((1, timedelta(days=29, hours=23)), (2, timedelta(days=30, hours=1)), (3, timedelta())):
        db.save_trade(close(bot_trade(ticket), 1.0, now - age))
    assert [t["trade_id"] for t in db.get_trade_history()] == ["3", "1"]  # newest first, 30 days
    assert [t["trade_id"] for t in db.get_trade_history(31)] == ["3", "1", "2"]
    db.save_trade(bot_trade(4))  # open: no close time, on no date
    assert [t["trade_id"] for t in db.get_trades_by_date(now.date())] == ["3"]
    assert [t["trade_id"] for t in db.get_trades_by_date(now.date() - timedelta(days=40))] == []
    assert db.get_trades_by_date("not a date") == []  # the bot's class returns [] on error


def test_chains_sl_events_and_their_stats(db: TradeDatabase, backend: Backed) -> None:
    chain = BotModel(chain_id="RC1", symbol="EURUSD", direction="buy", original_entry=1.1,
                     original_sl_distance=0.01, current_level=2, max_level=5, total_profit=30.0, status="active",
                     created_at=datetime.now().isoformat(), trades=[1, 2])
    db.save_chain(chain)
    chain.status, chain.current_level = "completed", 3
    db.save_chain(chain)
    db.save_chain(BotModel(chain_id="RC2", symbol="GBPUSD", direction="sell", original_entry=1.3,
                           original_sl_distance=0.02, current_level=1, total_profit=-5.0, status="active",
                           created_at=datetime.now().isoformat()))
    assert db.get_chain_statistics() == {"total_chains": 2, "avg_max_level": 2.0, "total_chain_profit": 25.0,
                                         "completed_chains": 1, "profitable_chains": 1}
    [(completed_at,)] = backend.rows(db.path, "SELECT completed_at FROM reentry_chains WHERE chain_id = 'RC1'")
    assert isinstance(completed_at, str) and "T" in completed_at
    db.save_sl_event("T1", "EURUSD", 1.09, 1.1)
    db.save_sl_event("T2", "EURUSD", 1.09, 1.1, True)
    db.save_sl_event("T3", "EURUSD", 1.09, 1.1, True, True)
    assert db.get_sl_recovery_stats() == {"total_sl_hits": 3, "recovery_attempts": 2, "successful_recoveries": 1}
    assert db.get_sl_hunt_reentry_stats() == {"total_sl_hunt_reentries": 1, "sl_hunt_attempts": 2}


def test_tp_reentry_stats_cover_30_days_of_the_bots_raw_rows(project: Project) -> None:
    """The bot's own rows, written by its SQL into the SQLite file (on PostgreSQL every row comes through the store)."""
    db = TradeDatabase(P, project.configs)
    db.save_sl_event("T0", "EURUSD", 1.0, 1.0)  # creates the file
    conn = sqlite3.connect(db.path)
    with conn:
        for pnl, age in ((10.0, 1), (-4.0, 2), (100.0, 31)):
            conn.execute("INSERT INTO tp_reentry_events (chain_id, pnl, timestamp, plugin_id) VALUES (?, ?, ?, ?)",
                         ("RC1", pnl, (datetime.now() - timedelta(days=age)).isoformat(), P))
        conn.execute("INSERT INTO tp_reentry_events (chain_id, pnl, timestamp, plugin_id) VALUES ('X', 7, ?, "
                     "'v6-logic-02-5min')", (datetime.now().isoformat(),))
    conn.close()
    with db:
        assert db.get_tp_reentry_stats() == {"total_tp_reentries": 2, "total_tp_reentry_pnl": 6.0,
                                             "avg_tp_reentry_pnl": 3.0, "profitable_tp_reentries": 1}


def test_profit_booking_positional_calls_and_stats(db: TradeDatabase, backend: Backed) -> None:
    chain = BotModel(chain_id="PB1", symbol="EURUSD", direction="buy", base_lot=0.1, current_level=1,
                     total_profit=0.0, status="ACTIVE", created_at=datetime.now().isoformat(),
                     updated_at=datetime.now().isoformat(), metadata={"a": 1}, max_level=4, multipliers=[1, 2],
                     profit_targets=[10], sl_reductions=[0], active_orders=["O1"])
    db.save_profit_chain(chain)
    db.save_profit_booking_order("O1", "PB1", 1, 10.0, 0, "OPEN")
    db.save_profit_booking_order("O1", "PB1", 1, 10.0, 0, "CLOSED")  # an upsert by order_id
    db.save_profit_booking_event("PB1", 1, 10.0, 1, 2)
    assert [c["chain_id"] for c in db.get_active_profit_chains()] == ["PB1"]
    chain.status, chain.total_profit, chain.current_level = "COMPLETED", 20.0, 3
    db.save_profit_chain(chain)
    assert db.get_active_profit_chains() == []
    assert db.get_profit_chain_stats() == {"total_chains": 1, "completed_chains": 1, "active_chains": 0,
                                           "avg_level": 3.0, "total_profit": 20.0, "avg_profit_per_chain": 20.0}
    assert backend.rows(db.path, "SELECT status FROM profit_booking_orders") == [("CLOSED",)]
    with pytest.raises(RowError, match=r"profit_booking_orders \(order_id='O2', chain_id='NOPE'\)"):
        db.save_profit_booking_order("O2", "NOPE", 1, 10.0, 0, "OPEN")


def test_sessions_as_the_bot_runs_them(db: TradeDatabase, backend: Backed) -> None:
    db.create_session("S1", "EURUSD", "buy", "signal-1")
    assert db.get_active_session("EURUSD")["session_id"] == "S1" and db.get_active_session("GBPUSD") == {}
    a = close(bot_trade(11, session_id="S1", order_type="TP_TRAIL", chain_id="RC1"), 10.0)
    b = close(bot_trade(12, session_id="S1", order_type="PROFIT_TRAIL", profit_chain_id="PB1"), -4.0)
    for trade in (a, b):
        db.save_trade(trade)
    db.save_trade(bot_trade(13, session_id="S1"))  # still open: not in the session's figures
    db.update_session_stats("S1")
    db.update_session_stats("S1")  # the bot calls it more than once: recomputed, never added twice
    db.close_session("S1", "TP_HIT")
    details = db.get_session_details("S1")
    assert (details["status"], details["exit_reason"], details["total_trades"], details["total_pnl"]) == \
        ("COMPLETED", "TP_HIT", 2, 6.0)
    assert details["end_time"] is not None
    assert details["breakdown"] == {"wins": 1, "losses": 1, "total_profit": 10.0, "total_loss": -4.0,
                                    "dual_orders": 0, "profit_chains": 1, "reentries": 0}
    assert db.get_active_session() == {}
    assert [s["session_id"] for s in db.get_sessions_by_date(date.today())] == ["S1"]
    assert db.update_session_metadata("S1", {"note": "ok"}) is True
    assert backend.rows(db.path, "SELECT metadata FROM trading_sessions") == [('{"note": "ok"}',)]
    with pytest.raises(RowError, match=r"trading_sessions \(session_id='S1'\)"):
        db.create_session("S1", "EURUSD", "buy", "again")


# final_sl_pips as the bot's TradeDatabase.save_trade stored it: 0.0, or |entry - sl| x 100 (JPY) / x 10000,
# whatever the model's own final_sl_pips says (written out by hand from the bot's class, not from our code)
SL_PIPS = [
    ("EURUSD", 1.1, 1.09, 0.0, abs(1.1 - 1.09) * 10000),
    ("USDJPY", 150.25, 149.75, 42.0, abs(150.25 - 149.75) * 100),  # the model's 42.0 is not what the bot stored
    ("XAUUSD", 2030.5, 2025.0, None, abs(2030.5 - 2025.0) * 10000),
    ("EURUSD", 1.1, None, 7.0, 0.0),  # no SL: 0.0
    ("EURUSD", 1.1, 0.0, 7.0, 0.0),  # an SL of 0 is no SL to the bot either
    ("EURUSD", None, 1.09, 7.0, 0.0),
]


@pytest.mark.parametrize(("symbol", "entry", "sl", "own", "want"), SL_PIPS)
def test_final_sl_pips_is_computed_as_the_bots_class_computed_it(db: TradeDatabase, backend: Backed, symbol: str,
                                                                 entry: float | None, sl: float | None,
                                                                 own: float | None, want: float) -> None:
    trade = bot_trade(77, symbol=symbol, entry=entry, sl=sl, final_sl_pips=own)
    db.save_trade(trade)
    db.save_trade(close(trade, 1.0))  # the close save computes it again, from the same entry and SL
    assert backend.rows(db.path, "SELECT final_sl_pips FROM trades") == [(want,)]


def test_a_model_without_final_sl_pips_gets_the_bots_value(db: TradeDatabase, backend: Backed) -> None:
    trade = bot_trade(78)
    del trade.final_sl_pips
    db.save_trade(trade)
    assert backend.rows(db.path, "SELECT final_sl_pips FROM trades") == [(abs(1.1 - 1.09) * 10000,)]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), b"raw", object(), {"pnl": float("-inf")},
                                 {"blob": b"x"}, {"when": datetime(2026, 1, 20)}, [{1, 2}]],
                         ids=["nan", "inf", "bytes", "object", "inf-inside", "bytes-inside", "datetime", "set"])
def test_session_metadata_is_checked_like_every_write(db: TradeDatabase, backend: Backed, bad: object) -> None:
    db.create_session("S1", "EURUSD", "buy", "signal-1")
    assert db.update_session_metadata("S1", {"note": "ok"}) is True
    with pytest.raises(RowError, match=r"^trading_sessions\.metadata: .* refused"):
        db.update_session_metadata("S1", bad)
    assert backend.rows(db.path, "SELECT metadata FROM trading_sessions") == [('{"note": "ok"}',)]  # left as it was


def test_system_state_round_trips_and_clear_lifetime_losses_writes_text_zero(db: TradeDatabase) -> None:
    for key, value in (("paused", False), ("on", True), ("n", 3), ("x", 2.5), ("s", "text"), ("none", None),
                       ("list", [1, "a"]), ("dict", {"a": [1]}), ("mark", "\ue000odd")):
        db.set_system_state(key, value)
        assert db.get_system_state(key) == value and type(db.get_system_state(key)) is type(value)
    assert not db.get_system_state("paused")
    db.clear_lifetime_losses()
    assert db.get_system_state("lifetime_loss") == "0"
    with pytest.raises(RowError, match="system_state"):
        db.set_system_state("bad", float("nan"))


def test_unknown_plugin_is_refused(backend: Backed) -> None:
    with pytest.raises(UnknownPluginError):
        TradeDatabase("v9-nobody", backend.configs)


def test_two_plugins_in_one_group_file_with_colliding_ids_stay_apart(backend: Backed) -> None:
    project = backend.project
    a, b = TradeDatabase("v3-logic-01-5min", project.configs), TradeDatabase("v3-logic-02-15min", project.configs)
    with a, b:
        assert a.path == b.path
        for handle, pnl in ((a, 10.0), (b, -3.0)):
            handle.save_trade(close(bot_trade(777, session_id="S"), pnl))
            handle.create_session("S", "EURUSD", "buy", "sig")
            handle.update_session_stats("S")
            handle.save_chain(BotModel(chain_id="C", symbol="X", direction="buy", original_entry=1.0,
                                       original_sl_distance=0.1, current_level=1, total_profit=pnl,
                                       status="active", created_at=datetime.now().isoformat()))
            handle.set_system_state("paused", handle is a)
        a.close_session("S", "done")
        assert [t["pnl"] for t in a.get_trade_history()] == [10.0]
        assert [t["pnl"] for t in b.get_trade_history()] == [-3.0]
        assert b.get_active_session()["session_id"] == "S" and a.get_active_session() == {}
        assert (a.get_session_details("S")["total_pnl"], b.get_session_details("S")["total_pnl"]) == (10.0, -3.0)
        assert (a.get_chain_statistics()["total_chain_profit"], b.get_chain_statistics()["total_chain_profit"]) \
            == (10.0, -3.0)
        assert (a.get_system_state("paused"), b.get_system_state("paused")) == (True, False)
        with pytest.raises(RowError, match="belongs to plugin"):
            a.save_trade({"trade_id": "x", "plugin_id": "v3-logic-02-15min"})
        assert backend.rows(a.path, "SELECT plugin_id, count(*) FROM trades GROUP BY plugin_id ORDER BY 1") == \
            [("v3-logic-01-5min", 1), ("v3-logic-02-15min", 1)]


def test_a_shared_plugin_reads_only_its_rows_of_the_shared_file(backend: Backed) -> None:
    project = backend.project
    project.set_use_shared(P, True)
    project.set_use_shared("v6-logic-02-5min", True)
    with TradeDatabase(P, project.configs) as mine, TradeDatabase("v6-logic-02-5min", project.configs) as other:
        other.save_trade(close(bot_trade(1), 5.0))
        other.save_sl_event("1", "EURUSD", 1.0, 1.0, True, True)
        assert mine.path == project.shared_db.resolve() == other.path
        assert mine.get_trade_history() == [] and mine.get_sl_recovery_stats()["total_sl_hits"] == 0
        assert len(other.get_trade_history()) == 1
