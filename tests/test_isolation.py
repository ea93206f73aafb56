"""Random operations from several plugins on one file (or one schema on PostgreSQL): each handle sees exactly its own
writes, through every method."""

from __future__ import annotations

import random
from typing import Any

import pytest

from zepix_store import Store, Trade

from .helpers import Backed

# Two plugins of the v3 group file plus one more: all three land in one file in both layouts.
PLUGINS = ("v3-logic-01-5min", "v3-logic-02-15min", "v3-logic-combined")
KEYS = ("K1", "K2", "K3")  # few keys, so plugins collide on every natural key


class Model:
    """What one plugin should see: the pure-Python twin of its store."""

    def __init__(self) -> None:
        self.trades: dict[str, dict[str, Any]] = {}
        self.chains: dict[str, dict[str, Any]] = {}
        self.state: dict[str, str] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.pb_chains: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, str] = {}
        self.sl_events: list[str] = []
        self.tp_events: list[str] = []
        self.reversals: list[str] = []
        self.pb_events: list[str] = []


async def apply(db: Any, model: Model, rng: random.Random, step: int) -> None:
    key = rng.choice(KEYS)
    op = rng.randrange(9)
    if op == 0:
        pnl = rng.choice([-5.0, 0.0, 2.5, 10.0])
        await db.save_trade(Trade(trade_id=key, pnl=pnl, status="closed", symbol="EURUSD"))
        model.trades[key] = {"pnl": pnl}
    elif op == 1:
        await db.save_reentry_chain({"chain_id": key, "status": "active", "total_profit": float(step)})
        model.chains[key] = {"total_profit": float(step)}
    elif op == 2:
        await db.set_system_state(key, f"v{step}")
        model.state[key] = f"v{step}"
    elif op == 3:
        if key not in model.sessions:
            await db.create_session({"session_id": key, "symbol": "EURUSD", "direction": "buy"})
            model.sessions[key] = {"total_pnl": 0.0, "total_trades": 0, "status": "ACTIVE"}
        else:
            assert await db.update_session_stats(key, 1.5) is True
            model.sessions[key]["total_pnl"] += 1.5
            model.sessions[key]["total_trades"] += 1
    elif op == 4:
        await db.save_profit_booking_chain({"chain_id": key, "symbol": "X", "direction": "buy", "base_lot": 0.1})
        model.pb_chains[key] = {"base_lot": 0.1}
        order = f"O{key}"
        await db.save_profit_booking_order({"order_id": order, "chain_id": key, "level": step})
        model.orders[order] = key
    elif op == 5:
        await db.save_sl_event({"trade_id": key, "symbol": "EURUSD", "recovery_attempted": 1})
        model.sl_events.append(key)
    elif op == 6:
        await db.save_tp_reentry_event({"chain_id": key, "pnl": 1.0})
        model.tp_events.append(key)
    elif op == 7:
        await db.save_reversal_exit_event({"trade_id": key, "pnl": 2.0})
        model.reversals.append(key)
    else:
        if key in model.sessions:
            assert await db.close_session(key, "done") is True
            model.sessions[key]["status"] = "CLOSED"
        else:
            assert await db.close_session(key, "done") is False


async def check(db: Any, model: Model, plugin: str) -> None:
    for key in KEYS:
        trade = await db.get_trade(key)
        assert (trade is None) == (key not in model.trades)
        if trade is not None:
            assert (trade["pnl"], trade["plugin_id"]) == (model.trades[key]["pnl"], plugin)
        chain = await db.get_reentry_chain(key)
        assert (None if chain is None else chain["total_profit"]) == model.chains.get(key, {}).get("total_profit")
        assert await db.get_system_state(key) == model.state.get(key)
        session = await db.get_session_details(key)
        expected = model.sessions.get(key)
        assert (session is None) == (expected is None)
        if session is not None and expected is not None:
            assert {k: session[k] for k in expected} == expected
            assert [t["trade_id"] for t in session["trades"]] == []
        assert (await db.get_profit_booking_chain(key) is None) == (key not in model.pb_chains)
        orders = await db.get_profit_booking_orders(key)
        assert sorted(o["order_id"] for o in orders) == sorted(o for o, c in model.orders.items() if c == key)
        assert len(await db.get_sl_events(key)) == model.sl_events.count(key)
        assert len(await db.get_tp_reentry_events(key)) == model.tp_events.count(key)
        assert len(await db.get_reversal_exit_events(key)) == model.reversals.count(key)
    stats = await db.get_statistics()
    pnls = [t["pnl"] for t in model.trades.values()]
    assert stats["total_trades"] == len(pnls)
    assert stats["winning_trades"] == sum(p > 0 for p in pnls)
    assert stats["total_pnl"] == sum(pnls)
    assert (await db.get_sl_recovery_stats())["total_sl_hits"] == len(model.sl_events)
    assert (await db.get_tp_reentry_stats())["total_tp_reentries"] == len(model.tp_events)
    assert (await db.get_reentry_chain_statistics())["total_chains"] == len(model.chains)
    assert (await db.get_profit_booking_stats())["total_chains"] == len(model.pb_chains)
    assert await db.get_all_system_state() == dict(sorted(model.state.items()))
    assert len(await db.get_trades(days=3650)) == 0  # no close_time was written
    assert all(t["plugin_id"] == plugin for t in await db.get_open_trades())


@pytest.mark.parametrize("layout", ["shared", "group"])
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_operations_stay_isolated(backend: Backed, layout: str, seed: int) -> None:
    project = backend.project
    project.set_all_shared(layout == "shared")
    rng = random.Random(seed)
    models = {p: Model() for p in PLUGINS}
    async with Store.open(project.configs) as store:
        handles = {p: store.for_plugin(p) for p in PLUGINS}
        for step in range(150):
            plugin = rng.choice(PLUGINS)
            await apply(handles[plugin], models[plugin], rng, step)
            if step % 50 == 49:
                for p in PLUGINS:
                    await check(handles[p], models[p], p)
        for p in PLUGINS:
            await check(handles[p], models[p], p)


async def test_order_cannot_attach_to_another_plugins_chain(backend: Backed) -> None:
    from zepix_store import RowError

    async with Store.open(backend.configs) as store:
        a, b = (store.for_plugin(p) for p in PLUGINS[:2])
        await a.save_profit_booking_chain({"chain_id": "P", "symbol": "X", "direction": "buy", "base_lot": 1.0})
        with pytest.raises(RowError, match=r"profit_booking_orders \(order_id='O', chain_id='P'\).*names no "
                           r"profit-booking chain of this plugin"):
            await b.save_profit_booking_order({"order_id": "O", "chain_id": "P"})
        assert await a.get_profit_booking_orders("P") == []
