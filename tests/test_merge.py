"""merge: the way back. Split then merge gives the shared file its logical content back, even after --prune."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.helpers import (
    build_template,
    connect_ro,
    logical_checksums,
    typed,
)
from tests.helpers import (
    split_install as install,
)
from tests.helpers import (
    split_ORDER as ORDER,
)
from tests.helpers import (
    split_run_cli as run_cli,
)
from tests.helpers import (
    split_table_columns as table_columns,
)
from tests.helpers import (
    split_V3 as V3,
)
from zepix_store.schema import SCHEMA_VERSION, TABLE_BY_NAME


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory)


@pytest.fixture
def legacy(template: Path, project: Project) -> Project:
    install(template, project)
    return project


def legacy_content(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows (rowid and the legacy columns, type-tagged), whatever else the file has."""
    conn = connect_ro(path)
    try:
        out = {}
        for table in ORDER:
            cols = ", ".join(TABLE_BY_NAME[table].column_names)
            out[table] = [tuple(map(typed, r)) for r in conn.execute(f"SELECT rowid, {cols} FROM {table} ORDER BY rowid")]
        return out
    finally:
        conn.close()


def flip_to_shared(project: Project, plugins: tuple[str, ...] = V3) -> None:
    for plugin in plugins:
        project.set_use_shared(plugin, True)


def merge_args(plugins: tuple[str, ...] = V3) -> list[str]:
    return [arg for p in plugins for arg in ("--plugin", p)]


def test_split_prune_merge_gives_the_shared_file_back(legacy: Project) -> None:
    assert run_cli("migrate", legacy).returncode == 0  # merge never migrates: it refuses a version-0 file
    original = legacy_content(legacy.shared_db)
    pruned = run_cli("split", legacy, "--prune", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["prune"]["deleted"]["trades"] > 0
    assert legacy_content(legacy.shared_db)["trades"] != original["trades"]
    flip_to_shared(legacy)
    done = run_cli("merge", legacy, *merge_args(), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["upgraded_from"] is None and Path(report["backup"]).exists()
    assert legacy_content(legacy.shared_db) == original  # ids, values and storage classes
    conn = connect_ro(legacy.shared_db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        owned = dict(conn.execute("SELECT trade_id, plugin_id FROM trades WHERE trade_id IN ('E-L1-001', 'E-L2-001')"))
        assert owned == {"E-L1-001": V3[0], "E-L2-001": V3[1]}
    finally:
        conn.close()
    again = run_cli("merge", legacy, *merge_args(), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["rows_merged"] == 0
    assert legacy_content(legacy.shared_db) == original


def test_merge_without_prune_finds_every_row_already_there(legacy: Project) -> None:
    assert run_cli("migrate", legacy).returncode == 0  # merge never migrates: it refuses a version-0 file
    original = legacy_content(legacy.shared_db)
    assert run_cli("split", legacy).returncode == 0
    flip_to_shared(legacy)
    done = run_cli("merge", legacy, *merge_args(), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows_merged"] == 0
    trades = report["plugins"][V3[0]]["tables"]["trades"]
    assert trades["unchanged"] == trades["source_rows"] > 0
    assert legacy_content(legacy.shared_db) == original


async def _in_isolated_file(project: Project) -> None:
    from zepix_store import Store

    async with Store.open(project.configs) as store:
        db = store.for_plugin(V3[1])
        await db.save_trade({"trade_id": "E-OPEN-RECENT", "status": "closed", "pnl": 12.5, "exit_price": 1.1})
        for n in range(3):
            await db.save_trade({"trade_id": f"NEW-{n}", "symbol": "EURUSD", "pnl": float(n), "status": "closed"})


def test_merge_adds_new_rows_once_and_updates_changed_ones_in_place(legacy: Project) -> None:
    assert run_cli("migrate", legacy).returncode == 0  # merge never migrates: it refuses a version-0 file
    assert run_cli("split", legacy).returncode == 0
    asyncio.run(_in_isolated_file(legacy))  # the plugin runs isolated: closes a legacy trade, opens new ones
    before = connect_ro(legacy.shared_db)
    try:
        rowid, status = before.execute("SELECT rowid, status FROM trades WHERE trade_id = 'E-OPEN-RECENT'").fetchone()
        total = before.execute("SELECT count(*) FROM trades").fetchone()[0]
    finally:
        before.close()
    assert status == "open"
    flip_to_shared(legacy, (V3[1],))
    done = run_cli("merge", legacy, "--plugin", V3[1], "--json")
    assert done.returncode == 0, done.stderr
    trades = json.loads(done.stdout)["plugins"][V3[1]]["tables"]["trades"]
    assert (trades["copied"], trades["updated"]) == (3, 1)
    assert run_cli("merge", legacy, "--plugin", V3[1]).returncode == 0  # rerun: nothing twice
    conn = connect_ro(legacy.shared_db)
    try:
        assert conn.execute("SELECT rowid, status, pnl, plugin_id FROM trades WHERE trade_id = 'E-OPEN-RECENT'"
                            ).fetchall() == [(rowid, "closed", 12.5, V3[1])]
        assert conn.execute("SELECT count(*) FROM trades").fetchone() == (total + 3,)
        assert conn.execute("SELECT trade_id, typeof(pnl), plugin_id FROM trades WHERE trade_id LIKE 'NEW-%' "
                            "ORDER BY 1").fetchall() == [(f"NEW-{n}", "real", V3[1]) for n in range(3)]
    finally:
        conn.close()
    iso = connect_ro(legacy.isolated_db(V3[1]))
    try:  # every isolated row traced to its shared row, in the plugin's identity map
        pairs = iso.execute("SELECT count(*) FROM zx_sync_pairs JOIN zx_sync_segments USING (seg) "
                            "WHERE plugin_id = ? AND table_name = 'trades'", (V3[1],)).fetchone()[0]
        assert pairs == trades["source_rows"]
    finally:
        iso.close()


async def _chain(project: Project, plugin: str, chain_id: str) -> None:
    from zepix_store import Store

    async with Store.open(project.configs) as store:
        await store.for_plugin(plugin).save_reentry_chain({"chain_id": chain_id, "symbol": "EURUSD"})


def test_a_key_the_plugin_already_has_in_the_shared_file_refuses_it(legacy: Project) -> None:
    assert run_cli("split", legacy).returncode == 0
    asyncio.run(_chain(legacy, V3[0], "BOT-C"))  # written while isolated
    flip_to_shared(legacy, (V3[0], V3[1]))
    asyncio.run(_chain(legacy, V3[0], "BOT-C"))  # and again in the shared file after the flip
    before = logical_checksums([legacy.shared_db])
    done = run_cli("merge", legacy, "--plugin", V3[0], "--plugin", V3[1], "--json")
    assert done.returncode == 1
    assert "reentry_chains" in done.stderr and "BOT-C" in done.stderr and V3[0] in done.stderr
    report = json.loads(done.stdout)
    assert report["plugins"][V3[0]]["status"] == "refused"
    assert report["plugins"][V3[1]]["status"] in ("merged", "up to date")
    after = logical_checksums([legacy.shared_db])
    assert {k: v for k, v in after.items() if f"|{V3[0]}|" in k} == \
        {k: v for k, v in before.items() if f"|{V3[0]}|" in k}


def test_bad_input_exits_2_and_help_works(legacy: Project) -> None:
    assert run_cli("merge", legacy, "--help").returncode == 0
    assert run_cli("split", legacy).returncode == 0
    still_isolated = run_cli("merge", legacy, "--plugin", V3[0])
    assert still_isolated.returncode == 2 and "use_shared" in still_isolated.stderr
    assert run_cli("merge", legacy, "--plugin", "nope").returncode == 2
    assert run_cli("merge", legacy).returncode == 2  # --plugin is required
    legacy.set_use_shared("v6-logic-04-1h", True)
    legacy.isolated_db("v6-logic-04-1h").unlink()
    missing = run_cli("merge", legacy, "--plugin", "v6-logic-04-1h")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    conn = sqlite3.connect(f"file:{legacy.shared_db}?mode=ro", uri=True)
    try:
        assert "plugin_id" not in table_columns(conn, "trades")  # refused before anything was written
    finally:
        conn.close()


async def _trade(project: Project, plugin: str, trade_id: str) -> None:
    from zepix_store import Store

    async with Store.open(project.configs) as store:
        await store.for_plugin(plugin).save_trade({"trade_id": trade_id, "symbol": "EURUSD", "status": "closed"})


def test_round_trip_split_merge_split_duplicates_nothing(legacy: Project) -> None:
    assert run_cli("migrate", legacy).returncode == 0  # merge never migrates: it refuses a version-0 file
    assert run_cli("split", legacy, "--plugin", V3[0]).returncode == 0
    asyncio.run(_trade(legacy, V3[0], "ISO-1"))  # written while isolated
    flip_to_shared(legacy, (V3[0],))
    assert run_cli("merge", legacy, "--plugin", V3[0]).returncode == 0
    asyncio.run(_trade(legacy, V3[0], "SHARED-1"))  # written while shared
    legacy.set_use_shared(V3[0], False)
    done = run_cli("split", legacy, "--plugin", V3[0], "--json")
    assert done.returncode == 0, done.stderr
    trades = json.loads(done.stdout)["plugins"][V3[0]]["tables"]["trades"]
    assert (trades["copied"], trades["updated"]) == (1, 0)  # SHARED-1 copied, ISO-1 recognised as already here
    conn = connect_ro(legacy.isolated_db(V3[0]))
    try:
        assert conn.execute("SELECT count(*) - count(DISTINCT trade_id) FROM trades WHERE plugin_id = ? "
                            "AND trade_id NOT IN ('E-DUP-1', 'E-XPLUG-1')", (V3[0],)).fetchone() == (0,)
        assert conn.execute("SELECT trade_id FROM trades WHERE trade_id IN ('ISO-1', 'SHARED-1') ORDER BY 1"
                            ).fetchall() == [("ISO-1",), ("SHARED-1",)]
    finally:
        conn.close()
    checks = {c["name"]: c["status"] for c in json.loads(run_cli("verify", legacy, "--json").stdout)["checks"]}
    assert checks[f"copies:{V3[0]}"] == "ok"
