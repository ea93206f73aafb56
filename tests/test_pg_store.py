"""The store on PostgreSQL (SPEC 9): what only a server shows. Saves of one trade_id from several processes, values
that round-trip as on SQLite, each plugin's calls under its own role after pg-setup, a lost connection.

The API behaviour both backends share is proven by the parametrised store, facade and isolation tests.
"""

from __future__ import annotations

import asyncio
import math
import struct
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from typing import Any

import psycopg
import pytest

from zepix_store import Store, Trade
from zepix_store.compat import TradeDatabase

from .helpers import REPO, Backed, cli_json

A, B = "v3-logic-01-5min", "v6-logic-01-1min"
PG = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

SAVER = textwrap.dedent("""
    import asyncio, sys, time
    from zepix_store import Store, Trade
    async def main():
        configs, plugin, rounds, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        async with Store.open(configs) as store:
            db = store.for_plugin(plugin)
            await db.get_statistics()  # connected and the schemas made before the race
            time.sleep(max(0.0, start - time.time()))
            for r in range(rounds):
                await db.save_trade(Trade(trade_id=f"R{r}", status="closed", pnl=float(r), comment=sys.argv[5]))
    asyncio.run(main())
""")


@PG
def test_concurrent_saves_of_one_trade_id_from_four_processes_leave_one_row(backend: Backed) -> None:
    rounds = 150
    with TradeDatabase(A, backend.configs) as db:
        db.get_open_trades()  # the schemas exist before the processes start
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(backend.configs), A, str(rounds), str(start),
                               f"p{n}"], cwd=REPO, stderr=subprocess.PIPE, text=True) for n in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    path = backend.project.isolated_db(A)
    assert backend.rows(path, "SELECT trade_id, count(*) FROM trades GROUP BY trade_id HAVING count(*) > 1") == []
    assert backend.rows(path, "SELECT count(*), count(DISTINCT trade_id), sum(pnl) FROM trades") == [
        (rounds, rounds, float(sum(range(rounds))))]


# What SQLite keeps exactly, and so must PostgreSQL: floats bit for bit (the smallest subnormal, the largest double),
# -0.0, 64-bit ints at both ends, any text. (Infinities are refused by the API on both: SPEC 4.)
VALUES: dict[str, Any] = {
    "trade_id": "ünïcode-€-𝄞-\u200b", "symbol": "日本円", "pnl": 0.1 + 0.2, "commission": -0.0,
    "swap": 1e-300, "lot_size": 5e-324, "entry_price": 1.7976931348623157e308, "exit_price": -2.5e-308,
    "chain_level": 2**63 - 1, "profit_level": -(2**63), "comment": "emoji 🚀 and a quote ' and a % and a ?",
    "close_time": "2026-01-05T10:00:00.123456+02:00",
}


def _bits(value: object) -> object:
    return struct.pack("<d", value) if isinstance(value, float) else value


async def test_values_round_trip_bit_for_bit_on_both_backends(backend: Backed) -> None:
    async with Store.open(backend.configs) as store:
        db = store.for_plugin(A)
        await db.save_trade(VALUES)
        got = await db.get_trade(VALUES["trade_id"])
        state = {"f": 0.1 + 0.2, "neg": -0.0, "big": 2**63 - 1, "text": "𝄞%?'", "nested": {"a": [1.5, None]}}
        await db.set_system_state("values", state)
        again = await db.get_system_state("values")
    assert got is not None
    expected = dict(VALUES)
    if not backend.is_pg:
        expected["commission"] = 0.0  # SQLite stores an integral REAL as an integer: -0.0 reads back as 0.0
    assert {k: _bits(got[k]) for k in VALUES} == {k: _bits(v) for k, v in expected.items()}
    assert {k: type(got[k]) for k in VALUES} == {k: type(v) for k, v in VALUES.items()}
    assert again == state and math.copysign(1.0, again["neg"]) == -1.0  # state is JSON text: the sign kept


def _pg_setup(backend: Backed) -> dict[str, Any]:
    return cli_json("pg-setup", backend.configs)


@PG
async def test_one_connection_serves_plugins_in_turn_each_under_its_own_role(backend: Backed,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A pooled connection keeps the role and schema of its last call: the next plugin's role is looked up as the
    connecting user (another plugin's role would find none) and then taken."""
    from zepix_store.backend.postgresql import store as pg_store

    monkeypatch.setattr(pg_store, "POOL_SIZE", 1)
    roles = {p["plugin_id"]: p["role"] for p in _pg_setup(backend)["plugins"]}
    async with Store.open(backend.configs) as store:
        seen = []
        for plugin in (A, B, A, "v6-logic-02-5min", B):
            db = await store.for_plugin(plugin)._database()
            seen.append(await db.read(lambda conn: tuple(conn.execute(
                "SELECT current_user, current_schema()").fetchone())))
    assert [user for user, _ in seen] == [roles[p] for p in (A, B, A, "v6-logic-02-5min", B)]
    assert [schema for _, schema in seen] == [
        backend.schema_of(backend.project.isolated_db(p)) for p in (A, B, A, "v6-logic-02-5min", B)]


@PG
async def test_each_plugins_calls_run_under_its_role_after_pg_setup(backend: Backed) -> None:
    async def current_user(plugin: str) -> str:
        db = await store.for_plugin(plugin)._database()
        return str(await db.read(lambda conn: conn.execute("SELECT current_user").fetchone()[0]))

    async with Store.open(backend.configs) as store:
        before = await current_user(A)
    report = _pg_setup(backend)
    roles = {p["plugin_id"]: p["role"] for p in report["plugins"]}
    async with Store.open(backend.configs) as store:
        assert (await current_user(A), await current_user(B)) == (roles[A], roles[B])
        assert before not in roles.values()
        # every call the bot makes works within the role's rights (RLS, identity ids, the advisory lock, the FK)
        db = store.for_plugin(A)
        first = await db.save_trade(Trade(trade_id="T1", pnl=1.0, status="open"))
        assert await db.save_trade(Trade(trade_id="T1", pnl=2.0, status="closed")) == first
        await db.save_profit_booking_chain({"chain_id": "C", "symbol": "X", "direction": "buy", "base_lot": 1.0})
        await db.save_profit_booking_order({"order_id": "O", "chain_id": "C", "level": 1})
        await db.create_session({"session_id": "S", "symbol": "EURUSD", "direction": "buy"})
        assert await db.close_session("S", "done") is True
        await db.set_system_state("risk", False)
        assert (await db.get_statistics())["total_pnl"] == 2.0
        assert await db.get_system_state("risk") is False
        assert [o["order_id"] for o in await db.get_profit_booking_orders("C")] == ["O"]
    with TradeDatabase(B, backend.configs) as facade:
        facade.save_trade({"trade_id": "F1", "status": "closed", "pnl": 3.0, "close_time": "2026-01-01 10:00:00"})
        assert [t["trade_id"] for t in facade.get_trade_history(days=36500)] == ["F1"]
        assert facade._run(lambda conn, pid: conn.execute("SELECT current_user").fetchone()[0]) == roles[B]


def _kill_store_connections(dsn: str) -> int:
    """Terminate every other connection to this database (the store's pool), as a server restart would."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                             "current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                             ).fetchall()
    time.sleep(0.2)  # the server closes them
    return len(rows)


@PG
async def test_a_lost_connection_retries_a_read_and_a_write_not_yet_begun(backend: Backed) -> None:
    dsn = str(backend.dsn)
    async with Store.open(backend.configs) as store:
        db = store.for_plugin(A)
        await db.save_trade(Trade(trade_id="T1", pnl=1.0, status="closed"))
        assert _kill_store_connections(dsn) >= 1
        assert (await db.get_statistics())["total_trades"] == 1  # retried once on a new connection
        assert _kill_store_connections(dsn) >= 1
        # found dead before its transaction began: run again (a loss inside one is reported:
        # tests/fault/test_adversary_pg_restart.py)
        await db.save_trade(Trade(trade_id="T2", pnl=2.0, status="closed"))
        assert (await db.get_trade("T2") or {})["pnl"] == 2.0
        await db.save_trade(Trade(trade_id="T3", pnl=3.0, status="closed"))  # the pool recovers
        assert [t["trade_id"] for t in await db.get_trades(days=1)] == []  # no close_time given
        assert (await db.get_statistics())["total_trades"] == 3


@PG
def test_the_facade_retries_a_read_and_a_write_after_a_lost_connection(backend: Backed) -> None:
    dsn = str(backend.dsn)
    with TradeDatabase(A, backend.configs) as db:
        db.save_trade({"trade_id": "T1", "status": "open"})
        assert _kill_store_connections(dsn) >= 1
        assert [t["trade_id"] for t in db.get_open_trades()] == ["T1"]
        assert _kill_store_connections(dsn) >= 1
        db.save_trade({"trade_id": "T2", "status": "open"})  # its connection was dead before it began
        assert sorted(t["trade_id"] for t in db.get_open_trades()) == ["T1", "T2"]



@PG
async def test_move_plugin_is_refused_on_postgresql_and_keeps_the_route(backend: Backed) -> None:
    from zepix_store import StoreError

    async with Store.open(backend.configs) as store:
        db = store.for_plugin(A)
        await db.save_trade(Trade(trade_id="T1"))
        with pytest.raises(StoreError, match="not available yet"):
            await store.move_plugin(A, "shared")
        assert (await db.get_trade("T1")) is not None
    assert backend.rows(backend.project.isolated_db(A), "SELECT trade_id FROM trades") == [("T1",)]


def _zone(backend: Backed, name: str) -> None:
    path = backend.configs / "store.yaml"
    path.write_text(path.read_text().replace("timezone: local", f"timezone: {name}"))


async def test_windows_and_days_read_every_stored_form_as_its_instant(backend: Backed) -> None:
    """The same instants fall in a day and a window on both backends (SQLite's time key, PostgreSQL's timestamptz
    companion), whatever form each time was written in; naive ones are in store.yaml's zone (Bogota, -05:00)."""
    _zone(backend, "America/Bogota")
    day = datetime(2025, 3, 10).date()
    trades = [("naive-late", "2025-03-10T23:30:00.250000"), ("naive-next", "2025-03-11T00:30:00"),
              ("utc-late", "2025-03-11 04:30:00"), ("utc-before", "2025-03-10 04:30:00"),
              ("z-late", "2025-03-11T04:59:59Z"), ("z-next", "2025-03-11T05:00:00Z"),
              ("offset", "2025-03-10T12:00:00+05:30"), ("epoch-ms", 1741640400000),  # 2025-03-10 21:00 UTC
              ("date-only", "2025-03-10")]
    async with Store.open(backend.configs) as store:
        db = store.for_plugin(B)
        await db.save_trades([{"trade_id": t, "status": "closed", "pnl": 1.0, "close_time": w} for t, w in trades])
        on_day = [r["trade_id"] for r in await db.get_trades_by_date(day)]
        in_utc = [r["trade_id"] for r in await db.get_trades_by_date(day, "UTC")]
        recent = [r["trade_id"] for r in await db.get_trades(days=30)]
        await db.create_session({"session_id": "S", "symbol": "X", "direction": "buy",
                                 "start_time": "2025-03-10T23:59:00"})
        sessions = [s["session_id"] for s in await db.get_sessions_by_date(day)]
    assert on_day == ["date-only", "offset", "epoch-ms", "utc-late", "naive-late", "z-late"]
    assert in_utc == ["utc-before", "date-only", "offset", "epoch-ms"]
    assert recent == [] and sessions == ["S"]
    with TradeDatabase(B, backend.configs) as facade:
        assert [r["trade_id"] for r in facade.get_trades_by_date(day)] == on_day[::-1]
        assert [s["session_id"] for s in facade.get_sessions_by_date(day)] == ["S"]


async def test_unattributed_rows_read_as_they_are_and_refuse_writes(backend: Backed) -> None:
    from zepix_store import IsolationError

    backend.project.set_use_shared(A, True)
    async with Store.open(backend.configs) as store:
        await store.for_plugin(A).save_trade({"trade_id": "L1", "status": "open"})  # the shared file exists
    backend.write(backend.project.shared_db, "INSERT INTO trades (trade_id, status, pnl) VALUES (?, ?, ?)",
                  ["L1", "closed", 4.5])  # plugin_id left to its default: the bot's row no plugin owns
    async with Store.open(backend.configs) as store:
        legacy = store.unattributed()
        assert [(t["trade_id"], t["plugin_id"]) for t in [await legacy.get_trade("L1")]] == [("L1", "legacy")]
        assert (await legacy.get_statistics())["total_pnl"] == 4.5
        assert (await store.for_plugin(A).get_trade("L1"))["status"] == "open"  # its own L1, not the legacy one
        with pytest.raises(IsolationError, match="read-only"):
            await legacy.save_trade({"trade_id": "L2"})
    assert backend.rows(backend.project.shared_db, "SELECT plugin_id, count(*) FROM trades GROUP BY 1 ORDER BY 1") \
        == [("legacy", 1), (A, 1)]


def test_the_facades_newer_bot_calls_give_the_same_answers_on_both_backends(backend: Backed) -> None:
    with TradeDatabase(A, backend.configs) as db:
        assert db.get_reversal_exit_stats() == {"total_reversal_exits": 0, "profitable_exits": None,
                                                "total_reversal_pnl": None, "avg_reversal_pnl": None}
        first = db.save_reversal_exit_event(50260728, "EURUSD", 1.1, "reversal", 12.5)
        assert db.save_reversal_exit_event("T2", "EURUSD", 1.2, "reversal", -2.5) == first + 1
        db.save_tp_reentry_event("C1", "EURUSD", 2, 1.12, 1.11, 50.0, 3.0)
        assert db.get_reversal_exit_stats() == {"total_reversal_exits": 2, "profitable_exits": 1,
                                                "total_reversal_pnl": 10.0, "avg_reversal_pnl": 5.0}
        assert db.get_tp_reentry_stats()["total_tp_reentries"] == 1
        now = datetime.now().isoformat()
        for ticket, pnl in (("W", 7.5), ("L", -2.0), ("N", None)):
            db.save_trade({"trade_id": ticket, "status": "closed", "pnl": pnl, "close_time": now})
        assert db.get_todays_performance() == {"profit": 7.5, "loss": -2.0, "net": 5.5, "trade_count": 3}
        db.create_session("S1", "EURUSD", "buy", "sig")
        assert db.update_session_metadata("S1", {"note": "ok", "n": [1, 2.5]}) is True
        assert db.get_session_metadata("S1") == {"note": "ok", "n": [1, 2.5]}
        assert db.get_session_metadata("nope") is None


@PG
async def test_a_large_batch_is_saved_whole_with_its_ids_in_order(backend: Backed) -> None:
    """One lock per trade_id would fill the server's lock table (max_locks_per_transaction x connections) and fail
    the batch with "out of shared memory": the locks are bounded per plugin, the rows go in by COPY."""
    count = 20_000
    trades = [{"trade_id": f"L{k:05d}", "status": "closed", "pnl": float(k % 97) - 40.0,
               "close_time": "2026-01-05 10:00:00"} for k in range(count)]
    async with Store.open(backend.configs) as store:
        db = store.for_plugin(A)
        ids = await db.save_trades(trades)
        stats = await db.get_statistics()
    path = backend.project.isolated_db(A)
    stored = dict(backend.rows(path, "SELECT trade_id, id FROM trades"))
    assert len(ids) == count == len(stored) and ids == [stored[t["trade_id"]] for t in trades]
    assert stats["total_trades"] == count and stats["total_pnl"] == sum(t["pnl"] for t in trades)
    day = backend.rows(path, "SELECT count(*) FROM trades WHERE close_time = '2026-01-05 10:00:00'")
    assert day == [(count,)]


@PG
async def test_batches_of_the_same_new_trades_at_once_leave_one_row_each(backend: Backed) -> None:
    """The trade_ids of a batch are locked before it looks for them: two batches cannot both find them new."""
    count = 400
    trades = [{"trade_id": f"P{k:04d}", "status": "open", "pnl": float(k)} for k in range(count)]
    stores = [Store.open(backend.configs) for _ in range(4)]
    try:
        handles = [s.for_plugin(A) for s in stores]
        for handle in handles:
            await handle.get_statistics()  # each connected, the schemas made, before the race
        results = await asyncio.gather(*(h.save_trades(trades) for h in handles))
    finally:
        for s in stores:
            await s.aclose()
    path = backend.project.isolated_db(A)
    stored = dict(backend.rows(path, "SELECT trade_id, id FROM trades"))
    assert backend.rows(path, "SELECT count(*) FROM trades") == [(count,)]
    assert all(r == [stored[t["trade_id"]] for t in trades] for r in results)
