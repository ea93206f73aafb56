"""Adversary: the bot's tickets are ints (MT5's), stored as text; a lookup by the int must find the trade on both
backends. SQLite compares its TEXT column with an int as text; PostgreSQL refused `text = integer`, so a bot
moved to PostgreSQL could not find a position it manages by its ticket (its close, its SL events, its reversal)."""

from __future__ import annotations

from datetime import datetime

from zepix_store import Store
from zepix_store.compat import TradeDatabase

from ..helpers import Backed

PID = "v6-logic-01-1min"
TICKET = 50260728


async def test_an_int_ticket_finds_what_was_saved_under_it_on_both_backends(backend: Backed) -> None:
    with TradeDatabase(PID, backend.configs) as bot:
        bot.save_trade({"trade_id": TICKET, "symbol": "EURUSD", "status": "closed", "pnl": -12.5,
                        "close_time": datetime.now().isoformat()})
        bot.save_sl_event(TICKET, "EURUSD", 1.0849, 1.0861)  # the bot passes its int ticket
        bot.save_reversal_exit_event(TICKET, "EURUSD", 1.0855, "reversal", -12.5)
    async with Store.open(backend.configs) as store:
        db = store.for_plugin(PID)
        by_int, by_text = await db.get_trade(TICKET), await db.get_trade(str(TICKET))
        assert by_int is not None and by_int == by_text and by_int["pnl"] == -12.5
        assert [e["trade_id"] for e in await db.get_sl_events(TICKET)] == [str(TICKET)]
        assert [e["pnl"] for e in await db.get_reversal_exit_events(TICKET)] == [-12.5]
        assert await db.get_trade(TICKET + 1) is None
