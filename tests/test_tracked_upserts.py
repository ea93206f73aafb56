"""The bot's own writes on files a synchronisation touched behave as on a file the store made itself.

A split, a flip or a merge leaves change-tracking triggers in the isolated file. The bot then upserts the same
keys again and again (risk flags, loss counters, chain totals): every write must land, from threads and tasks,
through the facade, `Store` and an old bot's raw SQL, and a later synchronisation must carry the latest values.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import Project, cli_ok, copy_database, legacy_template, query
from zepix_store import Store
from zepix_store.compat import TradeDatabase
from zepix_store.queries.state import encode_state

PLUGINS = {"single": "v6-logic-01-1min", "group": "v3-logic-02-15min"}
WORKERS, ROUNDS = 8, 10


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return legacy_template(tmp_path_factory, trades=60, seed=5)


def touched_project(project: Project, template: Path, touch: str, plugin: str) -> Path:
    """A project whose plugin is routed to its isolated file after `touch` synchronised it there."""
    copy_database(template, project.shared_db)
    store = project.configs / "store.yaml"
    store.write_text(store.read_text().replace("LOGIC1: v3-logic-01-5min", "LOGIC1: v6-logic-01-1min"))
    if touch == "split":
        cli_ok("split", project, "--plugin", plugin)
    else:
        project.set_all_shared(True)
        cli_ok("migrate", project)
        cli_ok("flip", project, plugin, "--to", "isolated")
        if touch == "merge":
            cli_ok("flip", project, plugin, "--to", "shared")
            cli_ok("flip", project, plugin, "--to", "isolated")
    path = project.isolated_db(plugin)
    assert query(path, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'")[0][0] > 0
    return path


def facade_rounds(db: TradeDatabase, name: str) -> None:
    db.create_session(f"S-{name}", "EURUSD", "buy", "sig")
    for i in range(1, ROUNDS + 1):
        db.set_system_state(f"paused-{name}", i)
        db.save_chain(SimpleNamespace(chain_id=f"C-{name}", symbol="EURUSD", direction="buy", original_entry=1.1,
                                      original_sl_distance=0.01, current_level=i, total_profit=float(i),
                                      status="active", created_at="2026-01-20 10:00:00"))
        db.save_profit_chain(SimpleNamespace(chain_id=f"P-{name}", symbol="EURUSD", direction="buy", base_lot=0.1,
                                             current_level=i, total_profit=float(i), status="ACTIVE"))
        db.save_profit_booking_order(f"O-{name}", f"P-{name}", i, float(i), i, "PENDING")
        db.save_trade({"trade_id": f"T-{name}", "status": "open" if i < ROUNDS else "closed", "pnl": float(i)})
        assert db.update_session_metadata(f"S-{name}", {"round": i})


async def store_rounds(store: Store, plugin: str, name: str) -> None:
    db = store.for_plugin(plugin)
    await db.create_session({"session_id": f"S-{name}", "symbol": "EURUSD", "direction": "buy",
                             "start_time": "2026-01-20 10:00:00"})
    for i in range(1, ROUNDS + 1):
        await db.set_system_state(f"paused-{name}", i)
        await db.save_reentry_chain({"chain_id": f"C-{name}", "max_level_reached": i, "total_profit": float(i)})
        await db.save_profit_booking_chain({"chain_id": f"P-{name}", "symbol": "EURUSD", "direction": "buy",
                                            "base_lot": 0.1, "current_level": i, "total_profit": float(i)})
        await db.save_profit_booking_order({"order_id": f"O-{name}", "chain_id": f"P-{name}", "level": i,
                                            "profit_target": float(i)})
        await db.save_trade({"trade_id": f"T-{name}", "status": "open" if i < ROUNDS else "closed", "pnl": float(i)})
        assert await db.update_session_stats(f"S-{name}", 1.0)


def raw_rounds(path: Path, plugin: str) -> None:
    """An old bot's SQL: INSERT OR REPLACE and an UPSERT of the same keys, on its own connection."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        for i in range(1, ROUNDS + 1):
            conn.execute("INSERT OR REPLACE INTO system_state (key, value, plugin_id) VALUES ('paused-zqraw', ?, ?)",
                         (str(i), plugin))
            conn.execute("INSERT INTO reentry_chains (chain_id, total_profit, plugin_id) VALUES ('C-zqraw', ?, ?) "
                         "ON CONFLICT (plugin_id, chain_id) DO UPDATE SET total_profit = excluded.total_profit",
                         (float(i), plugin))
    finally:
        conn.close()


def run_workers(project: Project, plugin: str, path: Path) -> list[BaseException]:
    errors: list[BaseException] = []
    db = TradeDatabase(plugin, project.configs)
    start = threading.Barrier(WORKERS)

    def thread(name: str) -> None:
        try:
            start.wait()
            facade_rounds(db, name)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(f"zqf{n}",)) for n in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    db.close()

    async def tasks() -> None:
        async with Store.open(project.configs) as store:
            results = await asyncio.gather(*(store_rounds(store, plugin, f"zqs{n}") for n in range(WORKERS)),
                                           return_exceptions=True)
        errors.extend(r for r in results if isinstance(r, BaseException))

    asyncio.run(tasks())
    raw_rounds(path, plugin)
    return errors


def latest_values(path: Path, plugin: str) -> dict[str, object]:
    """Every key this test wrote, with its latest value, read from `path` (each key must be there once)."""
    got: dict[str, object] = {}
    for table, key, value in (("system_state", "key", "value"), ("reentry_chains", "chain_id", "total_profit"),
                              ("profit_booking_chains", "chain_id", "total_profit"),
                              ("profit_booking_orders", "order_id", "profit_target"),
                              ("trades", "trade_id", "pnl"), ("trading_sessions", "session_id", "metadata"),
                              ("trading_sessions", "session_id", "total_pnl")):
        rows = query(path, f"SELECT {key}, {value}, count(*) OVER (PARTITION BY {key}) FROM {table} "
                           f"WHERE plugin_id = ? AND {key} LIKE '%-zq%'",
                     (plugin,))
        for k, v, n in rows:
            assert n == 1, (table, k, n)
            got[f"{table}.{value}:{k}"] = v
    return got


def expected_values() -> dict[str, object]:
    want: dict[str, object] = {"system_state.value:paused-zqraw": str(ROUNDS), "reentry_chains.total_profit:C-zqraw": 10.0}
    for kind in ("f", "s"):
        for n in range(WORKERS):
            name = f"zq{kind}{n}"
            want[f"system_state.value:paused-{name}"] = encode_state(f"paused-{name}", ROUNDS)
            for table, prefix in (("reentry_chains", "C"), ("profit_booking_chains", "P")):
                want[f"{table}.total_profit:{prefix}-{name}"] = float(ROUNDS)
            want[f"profit_booking_orders.profit_target:O-{name}"] = float(ROUNDS)
            want[f"trades.pnl:T-{name}"] = float(ROUNDS)
            want[f"trading_sessions.metadata:S-{name}"] = '{"round": 10}' if kind == "f" else None
            want[f"trading_sessions.total_pnl:S-{name}"] = 0.0 if kind == "f" else float(ROUNDS)
    return want


@pytest.mark.parametrize("kind", sorted(PLUGINS))
@pytest.mark.parametrize("touch", ["split", "flip", "merge"])
def test_repeated_upserts_on_a_synchronised_file_all_land_and_move_on(project: Project, template: Path, touch: str,
                                                                     kind: str) -> None:
    plugin = PLUGINS[kind]
    path = touched_project(project, template, touch, plugin)
    errors = run_workers(project, plugin, path)
    assert [repr(e) for e in errors] == []
    assert latest_values(path, plugin) == expected_values()
    # The triggers kept what the next synchronisation needs: the latest values move, each key once.
    if touch == "split":
        cli_ok("migrate", project)  # a merge needs plugin_id in the shared file
    cli_ok("flip", project, plugin, "--to", "shared")
    assert latest_values(project.shared_db, plugin) == expected_values()


def test_a_file_synchronised_by_an_older_version_has_its_triggers_rewritten_at_open(project: Project,
                                                                                   template: Path) -> None:
    plugin = PLUGINS["single"]
    path = touched_project(project, template, "split", plugin)
    old_body = ("BEGIN INSERT OR IGNORE INTO zx_sync_base_system_state (zx_rowid, key, value, updated_at) "
                "VALUES (OLD.rowid, OLD.key, OLD.value, OLD.updated_at); END")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER zx_sync_update_system_state")
        conn.execute(f"CREATE TRIGGER zx_sync_update_system_state AFTER UPDATE ON system_state {old_body}")
        conn.execute("PRAGMA user_version = 2")
    finally:
        conn.close()
    with TradeDatabase(plugin, project.configs) as db:
        for i in range(1, ROUNDS + 1):
            db.set_system_state("trading_paused", i)
        assert db.get_system_state("trading_paused") == ROUNDS
        assert [str(u[0]) for u in db.upgrades] == [str(path)]
    assert query(path, "PRAGMA user_version") == [(3,)]
    assert query(path, "SELECT count(*) FROM sqlite_master WHERE sql LIKE '%INSERT OR IGNORE INTO zx_sync_base%'") \
        == [(0,)]
