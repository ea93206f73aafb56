"""Adversary: the bot shuts down (`async with Store` ends) while its last saves are still running.

On SQLite the calls made before the close run to their end; on PostgreSQL the pool was closed under them and most
failed with 'lost the connection to the server': the closes a bot saved on its way down were lost. Closing now
waits for the calls made before it; every save acknowledged is stored, and every save made before close is acked.
"""

from __future__ import annotations

import asyncio

from zepix_store import Store, Trade

from ..helpers import Backed

PID = "v6-logic-01-1min"
SAVES = 40


async def test_saves_made_before_close_all_land_on_both_backends(backend: Backed) -> None:
    store = Store.open(backend.configs)
    db = store.for_plugin(PID)
    await db.save_trade(Trade(trade_id="T0", status="open"))
    saves = [asyncio.ensure_future(db.save_trade(Trade(trade_id=f"T{n}", status="closed", pnl=-1.0)))
             for n in range(1, SAVES + 1)]
    await asyncio.sleep(0.005)
    await store.aclose()
    done = await asyncio.gather(*saves, return_exceptions=True)
    assert [d for d in done if isinstance(d, BaseException)] == []
    async with Store.open(backend.configs) as again:
        stats = await again.for_plugin(PID).get_statistics()
    assert (stats["total_trades"], stats["total_pnl"]) == (SAVES, -float(SAVES))
