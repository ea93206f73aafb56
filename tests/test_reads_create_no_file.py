"""A read creates no file anywhere in the library: a plugin whose file does not exist reads as empty (issue 18).

Through Store (every read of PluginStore, the statistics of all plugins, the unattributed rows) and through the
bot's facade (compat.TradeDatabase), on a config whose files do not exist yet; then a write creates the file
and reads see it.
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

from tests.helpers import Project, listing
from zepix_store import Store
from zepix_store.compat import TradeDatabase

ISOLATED = "v6-logic-01-1min"
SHARED = "v6-logic-02-5min"


async def _store_reads(configs: Path) -> dict[str, Any]:
    async with Store.open(configs) as store:
        out: dict[str, Any] = {"all": await store.get_all_plugin_statistics()}
        for plugin in (ISOLATED, SHARED):
            db = store.for_plugin(plugin)
            out[plugin] = [
                await db.get_trades(), await db.get_open_trades(), await db.get_trade("T-1"),
                await db.get_trades_by_date(date(2026, 1, 20)), await db.get_statistics(),
                await db.get_system_state("trading_paused", "unset"), await db.get_all_system_state(),
                await db.get_active_reentry_chains(), await db.get_sl_events(), await db.get_active_session(),
                await db.get_profit_booking_stats(), await store.get_trades_by_plugin(plugin),
            ]
        out["legacy"] = await store.unattributed().get_statistics()
        return out


def _facade_reads(configs: Path, plugin: str) -> list[Any]:
    with TradeDatabase(plugin, configs) as db:
        return [db.get_trade_history(), db.get_open_trades(), db.get_trades_by_date(date(2026, 1, 20)),
                db.get_chain_statistics(), db.get_system_state("trading_paused", "unset"),
                db.get_sl_recovery_stats(), db.get_tp_reentry_stats(), db.test_connection()]


def test_reads_of_plugins_without_a_file_create_none_and_read_empty(project: Project) -> None:
    project.set_use_shared(SHARED, True)
    before = listing(project.root)
    store_reads = asyncio.run(_store_reads(project.configs))
    facade = {p: _facade_reads(project.configs, p) for p in (ISOLATED, SHARED)}
    assert listing(project.root) == before, "a read created a file"
    assert store_reads["all"][ISOLATED]["total_trades"] == 0 and len(store_reads["all"]) == 8
    for plugin in (ISOLATED, SHARED):
        trades, open_trades, one, by_day = store_reads[plugin][:4]
        assert (trades, open_trades, one, by_day) == ([], [], None, [])
        assert store_reads[plugin][5] == "unset"
        assert facade[plugin][:3] == [[], [], []] and facade[plugin][4] == "unset" and facade[plugin][-1] is True

    async def write_then_read() -> tuple[int, int]:
        async with Store.open(project.configs) as store:
            db = store.for_plugin(ISOLATED)
            await db.save_trade({"trade_id": "T-1", "symbol": "EURUSD", "status": "closed", "pnl": 2.5})
            stats = await store.get_all_plugin_statistics()
            return stats[ISOLATED]["total_trades"], stats[SHARED]["total_trades"]

    assert asyncio.run(write_then_read()) == (1, 0)
    assert project.isolated_db(ISOLATED).exists() and not project.shared_db.exists()
