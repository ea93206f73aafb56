"""A handle follows its plugin's route when config.json changes under it (route_follow.py), in one process here;
tests/fault/test_follow_flip.py does it across processes with the real flip."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import Project, query
from zepix_store import Store
from zepix_store.compat import TradeDatabase
from zepix_store.config_edit import set_use_shared
from zepix_store.errors import ConfigError

P = "v6-logic-01-1min"


def trade_ids(project: Project, shared: bool) -> list[str]:
    path = project.shared_db if shared else project.isolated_db(P)
    return [r[0] for r in query(path, "SELECT trade_id FROM trades WHERE plugin_id = ? ORDER BY trade_id", (P,))]


def test_the_compat_facade_follows_a_rewritten_config(project: Project) -> None:
    project.set_use_shared(P, True)
    with TradeDatabase(P, project.configs) as db:
        db.save_trade({"trade_id": "T1", "status": "open"})
        set_use_shared(project.plugin_config_path(P), False)  # as flip does: atomic rename
        db.save_trade({"trade_id": "T2", "status": "open"})
        assert db.path == project.isolated_db(P)
        assert [t["trade_id"] for t in db.get_open_trades()] == ["T2"]
    assert (trade_ids(project, True), trade_ids(project, False)) == (["T1"], ["T2"])


def test_a_store_handle_follows_a_rewritten_config(project: Project) -> None:
    project.set_use_shared(P, True)

    async def run() -> None:
        async with Store.open(project.configs) as store:
            db = store.for_plugin(P)
            await db.save_trade({"trade_id": "T1", "status": "open"})
            set_use_shared(project.plugin_config_path(P), False)
            await db.save_trade({"trade_id": "T2", "status": "open"})
            assert store.config.plugin(P).use_shared is False
            assert [t["trade_id"] for t in await db.get_open_trades()] == ["T2"]

    asyncio.run(run())
    assert (trade_ids(project, True), trade_ids(project, False)) == (["T1"], ["T2"])


def test_a_config_that_no_longer_loads_fails_that_call_and_the_next_one_reads_it_again(project: Project) -> None:
    path = project.plugin_config_path(P)
    good = path.read_text()
    with TradeDatabase(P, project.configs) as db:
        db.save_trade({"trade_id": "T1", "status": "open"})
        path.write_text(good.replace('"use_shared"', '"use_shared": 1, "x"'))
        with pytest.raises(ConfigError, match="config.json"):
            db.save_trade({"trade_id": "T2", "status": "open"})
        path.write_text(good)
        db.save_trade({"trade_id": "T3", "status": "open"})
        assert sorted(t["trade_id"] for t in db.get_open_trades()) == ["T1", "T3"]
