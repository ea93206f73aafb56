"""Adversary: a config.json edited by hand on a PostgreSQL desk (use_shared flipped without a command).

A running facade follows config.json at its next call, so the bot's next writes go to the other schema while its
open positions and risk flags stay in the old one. On SQLite the next split/merge carries such rows over (named in
its report); on PostgreSQL no command moves server rows, so nothing ever brings them back together: the pause
flag reads unset, the position opened before the edit reads as never closed once the edit is undone.
"""

from __future__ import annotations

import pytest

from zepix_store.compat import TradeDatabase

from ..helpers import Backed

PID = "v6-logic-01-1min"


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.xfail(strict=True, reason="on PostgreSQL a hand-edited route splits a plugin's rows over two schemas "
                                       "and no command reunites them; refusing the change (or a server-side move) "
                                       "is a design decision")
def test_a_hand_edited_route_on_postgresql_keeps_the_plugins_flags_and_positions(backend: Backed) -> None:
    with TradeDatabase(PID, backend.configs) as bot:
        bot.set_system_state("trading_paused", True)
        bot.save_trade({"trade_id": 50260728, "symbol": "EURUSD", "status": "open"})
        backend.project.set_use_shared(PID, True)  # by hand, no flip
        paused = bot.get_system_state("trading_paused")
        bot.save_trade({"trade_id": 50260728, "symbol": "EURUSD", "status": "closed", "pnl": -40.0})
        backend.project.set_use_shared(PID, False)  # and back
        still_open = [t["trade_id"] for t in bot.get_open_trades()]
    assert (paused, still_open) == (True, [])
