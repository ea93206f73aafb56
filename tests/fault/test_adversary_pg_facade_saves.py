"""Adversary: the bot's TradeDatabase on PostgreSQL, its first save of each ticket racing from several processes.

The bot runs more than one process on one store, and saves a trade as soon as MT5 returns its ticket (an int).
The facade's saves must be transactions: the per-trade_id lock a save takes is held to its COMMIT, so a second
process saving the same ticket updates the first one's row instead of adding a second (a trade counted twice in
the day's figures, an open snapshot left behind).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest

from zepix_store.compat import TradeDatabase

from ..helpers import REPO, Backed

PID = "v6-logic-01-1min"
PG = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
TRADES = int(os.environ.get("ZX_ADV_TRADES", "20"))

SAVER = textwrap.dedent("""
    import sys, time
    from zepix_store.compat import TradeDatabase
    configs, start, worker, trades = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    db = TradeDatabase("v6-logic-01-1min", configs)
    db.get_open_trades()  # connected, the schemas made, before the race
    time.sleep(max(0.0, start - time.time()))
    for n in range(trades):
        db.save_trade({"trade_id": 50260000 + n, "symbol": "EURUSD", "status": "open", "lot_size": 0.01})
    for n in range(trades):
        db.save_trade({"trade_id": 50260000 + n, "symbol": "EURUSD", "status": "closed", "pnl": float(n)})
    db.close()
""")


SLOW_INSERT = """
    CREATE FUNCTION "{schema}".zx_slow() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$;
    CREATE TRIGGER zx_slow BEFORE INSERT ON "{schema}".trades FOR EACH ROW EXECUTE FUNCTION "{schema}".zx_slow();
"""


@PG
def test_racing_first_saves_of_one_ticket_from_four_processes_leave_one_row(backend: Backed) -> None:
    with TradeDatabase(PID, backend.configs) as db:
        db.get_open_trades()  # the schemas made
    schema = backend.schema_of(backend.project.isolated_db(PID))
    with psycopg.connect(str(backend.dsn), autocommit=True) as conn:
        # a slow insert widens the race between a save's look-up and its insert to what a loaded server shows
        conn.execute(SLOW_INSERT.format(schema=schema))
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(backend.configs), str(start), str(w), str(TRADES)],
                              cwd=REPO, stderr=subprocess.PIPE, text=True) for w in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    rows = backend.rows(backend.project.isolated_db(PID), "SELECT trade_id, status, pnl FROM trades ORDER BY id")
    assert len(rows) == TRADES, f"{len(rows) - TRADES} extra rows"
    assert sorted(rows, key=lambda r: int(r[0])) == [(str(50260000 + n), "closed", float(n)) for n in range(TRADES)]
