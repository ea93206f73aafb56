"""The bot's calls from 4 threads and from inside a running event loop at once: no lost write, no lock error (on
SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime

from zepix_store.compat import TradeDatabase

from .helpers import Backed

P = "v6-logic-01-1min"
PER_WORKER = 40


def _work(db: TradeDatabase, name: str) -> None:
    db.create_session(f"S-{name}", "EURUSD", "buy", "sig")
    for i in range(PER_WORKER):
        db.save_trade({"trade_id": f"{name}-{i}", "status": "open", "session_id": f"S-{name}"})
        db.save_trade({"trade_id": f"{name}-{i}", "status": "closed", "pnl": 1.0,
                       "close_time": datetime.now().isoformat()})
        db.save_sl_event(f"{name}-{i}", "EURUSD", 1.0, 1.0, True, i % 2 == 0)
        db.get_sl_recovery_stats()
        db.update_session_stats(f"S-{name}")


def test_threads_and_the_event_loop_share_one_facade_without_losing_a_write(backend: Backed) -> None:
    errors: list[BaseException] = []
    query = backend.rows
    db = TradeDatabase(P, backend.configs)
    start = threading.Barrier(5)

    def thread(name: str) -> None:
        try:
            start.wait()
            _work(db, name)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    async def in_loop() -> None:
        async def task(name: str) -> None:
            for i in range(PER_WORKER):  # called without await, as the bot's async code does
                db.save_trade({"trade_id": f"{name}-{i}", "status": "closed", "pnl": 2.0})
                db.set_system_state(f"{name}-{i}", i)
                await asyncio.sleep(0)
        await asyncio.to_thread(start.wait)
        await asyncio.gather(*(task(f"loop{n}") for n in range(3)))

    threads = [threading.Thread(target=thread, args=(f"t{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    asyncio.run(in_loop())
    for t in threads:
        t.join(60)
    db.close()
    assert errors == []
    assert query(db.path, "SELECT count(*), count(DISTINCT trade_id) FROM trades") == [(7 * PER_WORKER,) * 2]
    assert query(db.path, "SELECT count(*) FROM sl_events") == [(4 * PER_WORKER,)]
    assert query(db.path, "SELECT count(*) FROM system_state") == [(3 * PER_WORKER,)]
    assert query(db.path, "SELECT coalesce(sum(total_trades), 0.0), coalesce(sum(total_pnl), 0.0) FROM trading_sessions") == \
        [(4.0 * PER_WORKER, 4.0 * PER_WORKER)]


def test_two_facades_of_one_file_in_threads_never_hit_database_is_locked(backend: Backed) -> None:
    errors: list[BaseException] = []
    query = backend.rows
    handles = [TradeDatabase(p, backend.configs) for p in ("v3-logic-01-5min", "v3-logic-02-15min")] * 2

    def thread(db: TradeDatabase, n: int) -> None:
        try:
            for i in range(PER_WORKER):
                db.save_profit_chain({"chain_id": f"C{n}-{i}", "symbol": "X", "direction": "buy", "base_lot": 1.0})
                db.save_profit_booking_order(f"O{n}-{i}", f"C{n}-{i}", 1, 5.0, 0, "OPEN")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(db, n)) for n, db in enumerate(handles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for db in handles:
        db.close()
    assert errors == []
    assert query(handles[0].path, "SELECT plugin_id, count(*) FROM profit_booking_orders GROUP BY 1 ORDER BY 1") \
        == [("v3-logic-01-5min", 2 * PER_WORKER), ("v3-logic-02-15min", 2 * PER_WORKER)]
