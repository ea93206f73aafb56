"""Adversary: the PostgreSQL server restarts (an upgrade, a failover, a crash) while the bot is quiet.

Every pooled connection dies with it. The bot never retries a save (its SQLite TradeDatabase never failed this way),
so the first save after the restart must land: the close of a losing trade lost here is a loss the risk manager's
daily figure never sees. A write whose connection is found dead before its transaction began is safe to run again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from zepix_store import Store, StoreUnavailableError, Trade
from zepix_store.compat import TradeDatabase

from ..helpers import Backed
from ..pg_server import PgServer

PID = "v6-logic-01-1min"
PG = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _restart(server: PgServer) -> None:
    server.run("pg_ctl", "-D", str(server.data), "-m", "fast", "-w", "restart", "-l", str(server.log))


@PG
def test_the_facades_first_save_after_a_server_restart_lands(backend: Backed, pg_server: PgServer) -> None:
    now = datetime.now().isoformat()
    with TradeDatabase(PID, backend.configs) as db:
        db.save_trade({"trade_id": 50260728, "symbol": "EURUSD", "status": "open", "open_time": now})
        db.set_system_state("trading_paused", False)
        _restart(pg_server)
        db.save_trade({"trade_id": 50260728, "symbol": "EURUSD", "status": "closed", "pnl": -50.0,
                       "open_time": now, "close_time": datetime.now().isoformat()})
        _restart(pg_server)
        db.set_system_state("trading_paused", True)  # the risk manager's stop, right after a restart
        assert db.get_open_trades() == []
        assert db.get_todays_performance()["net"] == -50.0
        assert db.get_system_state("trading_paused") is True
    rows = backend.rows(backend.project.isolated_db(PID), "SELECT trade_id, status, pnl FROM trades")
    assert rows == [("50260728", "closed", -50.0)]


@PG
async def test_a_stores_first_save_after_a_server_restart_lands(backend: Backed, pg_server: PgServer) -> None:
    async with Store.open(backend.configs) as store:
        db = store.for_plugin(PID)
        await db.save_trade(Trade(trade_id="T1", status="open"))
        _restart(pg_server)
        await db.save_trade(Trade(trade_id="T1", status="closed", pnl=-20.0))
        assert (await db.get_trade("T1") or {})["pnl"] == -20.0
        assert (await db.get_statistics())["total_pnl"] == -20.0


@PG
def test_a_connection_lost_inside_a_write_is_reported_and_nothing_of_it_stays(backend: Backed) -> None:
    from zepix_store.backend.postgresql.store import PostgresBackend
    from zepix_store.config import load_config

    config = load_config(backend.configs)
    store = PostgresBackend(config)
    route = store.connect(config.plugin(PID).db_path, config, [], create=True, plugin_id=PID)
    calls = []

    def dies_half_way(conn: Any) -> None:
        calls.append(1)
        conn.execute("INSERT INTO trades (trade_id, status, plugin_id) VALUES ('T9', 'closed', ?)", [PID])
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    try:
        with pytest.raises(StoreUnavailableError, match="lost the connection"):
            store.run_sync(route, dies_half_way, write=True)
    finally:
        store.close()
    assert calls == [1]  # begun: never run a second time
    assert backend.rows(backend.project.isolated_db(PID), "SELECT trade_id FROM trades") == []
