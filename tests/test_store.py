"""Store and PluginStore: routing, isolation, upserts, time windows, concurrency; on SQLite files and, where the
test is about the API, on PostgreSQL too (the `backend` fixture)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from zepix_store import IsolationError, RowError, SchemaError, Store, Trade, UnknownPluginError
from zepix_store.schema import SCHEMA_VERSION

from .conftest import Project, query
from .helpers import Backed

A, B, C = "v3-logic-01-5min", "v3-logic-02-15min", "v6-logic-01-1min"


def ago(**kw: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(**kw)


def ts(moment: datetime, sep: str = " ") -> str:
    return moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S")


@pytest.mark.parametrize("use_shared", [True, False], ids=["shared", "isolated"])
async def test_routing_follows_use_shared(backend: Backed, use_shared: bool) -> None:
    project = backend.project
    project.set_use_shared(C, use_shared)
    async with Store.open(project.configs) as store:
        await store.for_plugin(C).save_trade(Trade(trade_id="T1", symbol="EURUSD", status="open"))
    target = project.shared_db if use_shared else project.isolated_db(C)
    other = project.isolated_db(C) if use_shared else project.shared_db
    assert backend.rows(target, "SELECT trade_id, plugin_id FROM trades") == [("T1", C)]
    if backend.is_pg:  # every schema of the layout is made at first use, in one transaction
        assert backend.rows(other, "SELECT count(*) FROM trades") == [(0,)]
    else:
        assert not other.exists()
        assert query(target, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_unknown_plugin_is_refused(backend: Backed) -> None:
    async with Store.open(backend.configs) as store:
        with pytest.raises(UnknownPluginError, match="nope"):
            store.for_plugin("nope")


async def test_save_trade_twice_keeps_one_row(backend: Backed) -> None:
    async with Store.open(backend.configs) as store:
        db = store.for_plugin(A)
        first = await db.save_trade(Trade(trade_id="T1", pnl=1.0, status="open"))
        second = await db.save_trade({"trade_id": "T1", "pnl": 2.5, "status": "closed"})
        assert first == second
        assert (await db.get_trade("T1"))["pnl"] == 2.5
    assert backend.rows(backend.project.isolated_db(A), "SELECT count(*), max(pnl) FROM trades") == [(1, 2.5)]


async def test_legacy_duplicates_are_kept_and_newest_is_updated(backend: Backed) -> None:
    async with Store.open(backend.configs) as store:
        await store.for_plugin(A).save_trade(Trade(trade_id="seed"))
    path = backend.project.isolated_db(A)
    backend.write(path, "INSERT INTO trades (trade_id, pnl, plugin_id) VALUES (?, ?, ?), (?, ?, ?)",
                  ["DUP", 1.0, A, "DUP", 2.0, A])
    async with Store.open(backend.configs) as store:
        await store.for_plugin(A).save_trade({"trade_id": "DUP", "pnl": 9.0})
    assert backend.rows(path, "SELECT pnl FROM trades WHERE trade_id = 'DUP' ORDER BY id") == [(1.0,), (9.0,)]


async def test_row_of_another_plugin_is_refused(backend: Backed) -> None:
    async with Store.open(backend.configs) as store:
        db = store.for_plugin(A)
        with pytest.raises(IsolationError, match=B):
            await db.save_trade(Trade(trade_id="X", plugin_id=B))
        with pytest.raises(IsolationError):
            await db.save_reentry_chain({"chain_id": "c", "plugin_id": B})
        with pytest.raises(RowError, match="bogus"):
            await db.save_trade({"trade_id": "X", "bogus": 1})
        assert await db.get_trade("X") is None


@pytest.mark.parametrize("sep", [" ", "T"], ids=["space", "T"])
async def test_thirty_day_window_counts_edge_trade(backend: Backed, sep: str) -> None:
    async with Store.open(backend.configs) as store:
        db = store.for_plugin(A)
        await db.save_trade(Trade(trade_id="in", status="closed", close_time=ts(ago(days=29, hours=23), sep)))
        await db.save_trade(Trade(trade_id="out", status="closed", close_time=ts(ago(days=30, hours=1), sep)))
        await db.save_trade(Trade(trade_id="new", status="closed", close_time=ts(ago(hours=1), sep)))
        got = [t["trade_id"] for t in await db.get_trades(days=30)]
    assert got == ["new", "in"]


async def test_statistics_count_closed_numeric_trades(backend: Backed) -> None:
    async with Store.open(backend.configs) as store:
        db = store.for_plugin(A)
        for i, pnl in enumerate([10.0, -4.0, 0.0, 6.5]):
            await db.save_trade(Trade(trade_id=f"t{i}", pnl=pnl, status="closed"))
        await db.save_trade(Trade(trade_id="open", pnl=100.0, status="open"))
        await store.for_plugin(B).save_trade(Trade(trade_id="t0", pnl=1000.0, status="closed"))
        stats = await store.get_plugin_statistics(A)
        every = await store.get_all_plugin_statistics()
    assert stats == {"total_trades": 4, "winning_trades": 2, "losing_trades": 1, "total_pnl": 12.5,
                     "avg_pnl": 3.125, "best_trade": 10.0, "worst_trade": -4.0}
    assert every[A] == stats and every[B]["total_pnl"] == 1000.0 and every[C]["total_trades"] == 0
    assert set(every) == set(store.config.plugins)


async def test_newer_schema_version_is_refused(backend: Backed) -> None:
    project = backend.project
    if backend.is_pg:  # the registry records each schema's version
        async with Store.open(project.configs) as store:
            await store.for_plugin(A).get_statistics()
        backend.write(project.shared_db, f"UPDATE {backend.prefix}shared.zx_registry SET schema_version = "
                      "schema_version + 1 WHERE schema_name = ?", [backend.schema_of(project.isolated_db(A))])
    else:
        import sqlite3

        project.shared_db.parent.mkdir(exist_ok=True)
        conn = sqlite3.connect(project.isolated_db(A))
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.execute("CREATE TABLE trades (id INTEGER PRIMARY KEY)")
        conn.commit()
        conn.close()
    async with Store.open(project.configs) as store:
        with pytest.raises(SchemaError, match="newer"):
            await store.for_plugin(A).get_statistics()
    if not backend.is_pg:
        assert query(project.isolated_db(A), "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]


async def test_cancelled_write_is_rolled_back(backend: Backed) -> None:
    async with Store.open(backend.configs) as store:
        db = store.for_plugin(A)
        await db.save_trade(Trade(trade_id="warm"))
        cancelled_count = 0
        for i in range(50):
            # a read in flight keeps the connection busy, so the write is queued on the worker, where it can
            # be cancelled mid-way (on an idle connection it would finish before the cancel could land)
            reader = asyncio.create_task(db.get_open_trades())
            await asyncio.sleep(0)
            task = asyncio.create_task(db.save_trade(Trade(trade_id=f"c{i}")))
            await asyncio.sleep(0)
            task.cancel()
            await reader
            await db.save_trade(Trade(trade_id=f"ok{i}"))
            cancelled = task.cancelled()
            cancelled_count += cancelled
            row = await db.get_trade(f"c{i}")
            assert (row is None) == cancelled, f"save of c{i}: cancelled={cancelled} but row={row is not None}"
    assert cancelled_count > 0
    rows = backend.rows(backend.project.isolated_db(A), "SELECT count(*) FROM trades WHERE trade_id LIKE 'ok%'")
    assert rows == [(50,)]


WRITER = textwrap.dedent("""
    import asyncio, sys
    from zepix_store import Store, Trade
    async def main():
        async with Store.open(sys.argv[1]) as store:
            db = store.for_plugin(sys.argv[2])
            for i in range(int(sys.argv[3])):
                await db.save_trade(Trade(trade_id=f"proc-{i}", status="closed", pnl=1.0))
    asyncio.run(main())
""")


async def test_many_plugins_and_a_second_process_lose_nothing(backend: Backed) -> None:
    project = backend.project
    project.set_all_shared(True)
    plugins = sorted(p.name for p in (project.configs / "plugins").iterdir())
    assert len(plugins) == 8
    # a PostgreSQL save is a few round trips on a loaded 2-core machine: fewer rows prove the same thing
    each, other = (500, 250) if backend.is_pg else (2000, 1000)
    async with Store.open(project.configs) as store:
        await store.for_plugin(plugins[0]).get_statistics()  # create the file before the race
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, str(project.configs), plugins[1], str(other),
            stderr=subprocess.PIPE, cwd=Path(__file__).parent.parent)

        async def write(plugin: str) -> None:
            db = store.for_plugin(plugin)
            for i in range(each):
                await db.save_trade(Trade(trade_id=f"{plugin}-{i}", status="closed", pnl=1.0))

        await asyncio.gather(*(write(p) for p in plugins))
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        counts = {p: (await store.get_plugin_statistics(p))["total_trades"] for p in plugins}
    assert counts == {p: each + other if p == plugins[1] else each for p in plugins}
    assert backend.rows(project.shared_db, "SELECT count(*) FROM trades") == [(8 * each + other,)]
    if not backend.is_pg:
        assert query(project.shared_db, "PRAGMA integrity_check") == [("ok",)]


LEAKY = textwrap.dedent("""
    import asyncio, sys
    from zepix_store import Store, Trade
    STORE = None
    async def main():
        global STORE
        STORE = Store.open(sys.argv[1])  # never closed: the process must still exit
        await STORE.for_plugin(sys.argv[2]).save_trade(Trade(trade_id="leak"))
    asyncio.run(main())
""")


def test_a_store_never_closed_does_not_hang_the_process(backend: Backed) -> None:
    result = subprocess.run([sys.executable, "-c", LEAKY, str(backend.configs), A], capture_output=True,
                            text=True, timeout=30, cwd=Path(__file__).parent.parent)
    assert result.returncode == 0, result.stderr
    assert backend.rows(backend.project.isolated_db(A), "SELECT trade_id FROM trades") == [("leak",)]


async def test_a_legacy_shared_file_is_backed_up_then_upgraded_on_first_use(project: Project) -> None:
    from zepix_store.legacy_data import build_legacy_db

    build_legacy_db(project.shared_db, trades=300)
    closed_l1 = query(project.shared_db, "SELECT count(*) FROM trades WHERE status = 'closed' "
                      "AND logic_type IN ('LOGIC1', 'combinedlogic-1')")[0][0]
    project.set_use_shared(A, True)
    async with Store.open(project.configs) as store:
        stats = await store.for_plugin(A).get_statistics()
        [(path, backup, report)] = store.upgrades
    assert stats["total_trades"] == closed_l1 > 0
    assert (path, report.from_version, report.to_version) == (project.shared_db, 0, SCHEMA_VERSION)
    assert backup.parent == project.data / "backups" and backup.stat().st_mode & 0o777 == 0o600
    assert query(backup, "PRAGMA user_version") == [(0,)]
    assert query(backup, "SELECT count(*) FROM trades") == query(project.shared_db, "SELECT count(*) FROM trades")
    assert query(project.shared_db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_datetimes_are_stored_as_utc_text(backend: Backed) -> None:
    from datetime import timedelta as td

    eastern = timezone(td(hours=-5))
    async with Store.open(backend.configs) as store:
        db = store.for_plugin(A)
        await db.save_trade(Trade(trade_id="dt", status="closed",
                                  close_time=datetime(2026, 3, 1, 7, 30, tzinfo=eastern)))  # type: ignore[arg-type]
        assert (await db.get_trade("dt"))["close_time"] == "2026-03-01 12:30:00"


async def test_batch_checks_every_row_as_save_trade_does(backend: Backed) -> None:
    """save_trades checks later rows at batch speed; none may carry what save_trade would refuse."""
    path = backend.project.isolated_db(A)
    query = backend.rows
    async with Store.open(backend.configs) as store:
        db = store.for_plugin(A)
        # a later row swaps a store-owned key for an unknown one: same key count, still refused
        with pytest.raises(RowError, match="bogus"):
            await db.save_trades([{"trade_id": "b1", "id": 5}, {"trade_id": "b2", "bogus": 5}])
        with pytest.raises(IsolationError, match=B):
            await db.save_trades([Trade(trade_id="b1"), Trade(trade_id="b2", plugin_id=B)])
        with pytest.raises(IsolationError, match=B):
            await db.save_trades([{"trade_id": "b1", "plugin_id": A}, {"trade_id": "b2", "plugin_id": B}])
        # a mapping that invents missing keys must not let a later row's unknown key or foreign owner through
        invented = defaultdict(lambda: None, {"trade_id": "b1", "symbol": "EURUSD", "pnl": 1.0})
        with pytest.raises(RowError, match="bogus"):
            await db.save_trades([invented, defaultdict(lambda: None, {"trade_id": "b2", "symbol": "X", "bogus": 1})])
        with pytest.raises(IsolationError, match=B):
            await db.save_trades([invented, defaultdict(lambda: None, {"trade_id": "b2", "symbol": "X",
                                                                      "plugin_id": B})])
        assert query(path, "SELECT count(*) FROM trades") == [(0,)]
        mixed = [Trade(trade_id="m1", pnl=1.0), {"trade_id": "m2", "pnl": 2.0}, {"pnl": 3.0, "trade_id": "m3"},
                 {"trade_id": "m4"}, {"trade_id": "m1", "pnl": 4.0, "id": 99, "plugin_id": A},
                 {"trade_id": "m5", "close_time": datetime(2026, 3, 1, 7, 30, tzinfo=timezone.utc)}]
        ids = await db.save_trades(mixed)
        assert ids[0] == ids[4] != 99  # m1 saved then updated by trade_id; the given id is ignored
        eastern = timezone(timedelta(hours=-5))
        same_keys = [{"trade_id": "u1", "close_time": datetime(2026, 3, 1, 7, 30, tzinfo=eastern)},
                     {"trade_id": "u2", "close_time": "2026-03-02T00:00:00"}]
        assert await db.save_trades(same_keys) == [ids[-1] + 1, ids[-1] + 2]
    assert query(path, "SELECT trade_id, pnl, close_time, plugin_id FROM trades ORDER BY id") == [
        ("m1", 4.0, None, A), ("m2", 2.0, None, A), ("m3", 3.0, None, A), ("m4", None, None, A),
        ("m5", None, "2026-03-01 07:30:00", A), ("u1", None, "2026-03-01 12:30:00", A),
        ("u2", None, "2026-03-02T00:00:00", A)]


async def test_a_bad_row_deep_in_a_large_batch_leaves_nothing_written(backend: Backed) -> None:
    """Large batches are checked on a helper thread in chunks; a bad row in a late chunk still refuses them all."""
    path = backend.project.isolated_db(A)
    query = backend.rows

    def batch(n: int = 5000) -> list[dict[str, object]]:
        return [{"trade_id": f"L{k}", "pnl": float(k), "status": "closed"} for k in range(n)]

    async with Store.open(backend.configs) as store:
        db = store.for_plugin(A)
        foreign = [{**row, "plugin_id": A} for row in batch()]
        foreign[4500]["plugin_id"] = B  # same keys as the rest: found by the helper thread, not row by row
        with pytest.raises(IsolationError, match=B):
            await db.save_trades(foreign)
        unknown = batch()
        unknown[4999] = {"trade_id": "L4999", "pnl": 1.0, "bogus": 1}
        with pytest.raises(RowError, match="bogus"):
            await db.save_trades(unknown)
        assert query(path, "SELECT count(*) FROM trades") == [(0,)]
        fewer_keys = batch()
        fewer_keys[3000] = {"trade_id": "L3000"}  # valid, but not the shape of the others: saved row by row
        ids = await db.save_trades(fewer_keys)
    assert len(set(ids)) == 5000
    assert query(path, "SELECT count(*), count(DISTINCT trade_id), coalesce(sum(pnl), 0.0) FROM trades") == [
        (5000, 5000, sum(range(5000)) - 3000)]
    assert query(path, "SELECT pnl, status FROM trades WHERE trade_id = 'L3000'") == [(None, None)]
