"""Moving a plugin and back as an operator does: split, the bot writes, flip, the bot writes, flip back.

Every scenario runs the real commands in subprocesses on real files; "the bot" writes with SQL into the file
its plugin is routed to (triggers see any writer), "an old bot" writes into the shared file behind our back.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Project, copy_database
from zepix_store.legacy_data import build_legacy_db

PLUGIN = "v6-logic-01-1min"  # a file of its own; LOGIC1 trades are mapped to it below
OTHER = "v3-logic-02-15min"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "trading_bot.db"
    build_legacy_db(path, trades=300, seed=11)
    return path


@pytest.fixture
def legacy(template: Path, project: Project) -> Project:
    copy_database(template, project.shared_db)
    store = project.configs / "store.yaml"
    store.write_text(store.read_text().replace("LOGIC1: v3-logic-01-5min", f"LOGIC1: {PLUGIN}"))
    project.set_all_shared(True)
    return project


def cli(project: Project, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ZEPIX_FAULT"}
    return subprocess.run([sys.executable, "-m", f"zepix_store.{command}", "--config", str(project.configs), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env, check=False)


def ok(project: Project, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = cli(project, command, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def sql(path: Path, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def trades(path: Path, plugin: str | None = None) -> list[tuple[object, ...]]:
    """(trade_id, status, pnl) of every trade row of `plugin` (all rows when the file has no plugin_id)."""
    cols = {r[1] for r in sql(path, "PRAGMA table_info(trades)")}
    where = "WHERE plugin_id = ?" if plugin and "plugin_id" in cols else ""
    return sorted(sql(path, f"SELECT trade_id, status, pnl FROM trades {where}", (plugin,) if where else ()),
                  key=repr)


def first_open(path: Path, plugin: str) -> str:
    cols = {r[1] for r in sql(path, "PRAGMA table_info(trades)")}
    if "plugin_id" in cols:
        rows = sql(path, "SELECT trade_id FROM trades WHERE plugin_id = ? AND status = 'open' ORDER BY id", (plugin,))
    else:
        rows = sql(path, "SELECT trade_id FROM trades WHERE strategy = 'LOGIC1' AND status = 'open' ORDER BY id")
    return str(rows[0][0])


def close(path: Path, trade_id: str, pnl: float) -> None:
    sql(path, "UPDATE trades SET status = 'closed', pnl = ? WHERE trade_id = ?", (pnl, trade_id))


def stats(project: Project, plugin: str) -> dict[str, object]:
    doc = json.loads(ok(project, "stats", "--plugin", plugin, "--json").stdout)
    row = doc["plugins"][0] if isinstance(doc.get("plugins"), list) else doc["plugins"][plugin]
    return {k: row[k] for k in ("total_trades", "total_pnl")}


def test_the_whole_lifecycle_keeps_every_row_once_at_its_latest_state(legacy: Project) -> None:
    ok(legacy, "migrate")  # flip and merge refuse a never-migrated shared file
    iso = legacy.isolated_db(PLUGIN)
    ok(legacy, "flip", PLUGIN, "--to", "isolated")
    one = first_open(iso, PLUGIN)
    close(iso, one, 11.5)                          # the bot closes a legacy trade while isolated
    sql(iso, "INSERT INTO trades (trade_id, symbol, status, pnl, plugin_id) VALUES ('ISO-NEW', 'EURUSD', 'closed', "
             "2.5, ?)", (PLUGIN,))
    sql(iso, "INSERT INTO system_state (key, value, plugin_id) VALUES ('lifetime_loss', '0', ?)", (PLUGIN,))
    sql(iso, "INSERT INTO reentry_chains (chain_id, symbol, plugin_id) VALUES ('ISO-CHAIN', 'EURUSD', ?)", (PLUGIN,))
    isolated_view = trades(iso, PLUGIN)
    isolated_stats = stats(legacy, PLUGIN)

    ok(legacy, "flip", PLUGIN, "--to", "shared")
    assert trades(legacy.shared_db, PLUGIN) == isolated_view  # the close updated in place, nothing twice
    assert stats(legacy, PLUGIN) == isolated_stats
    two = first_open(legacy.shared_db, PLUGIN)
    close(legacy.shared_db, two, -3.25)            # the bot closes another one while shared
    sql(legacy.shared_db, "UPDATE system_state SET value = '7' WHERE key = 'lifetime_loss' AND plugin_id = ?",
        (PLUGIN,))
    shared_view = trades(legacy.shared_db, PLUGIN)

    back = ok(legacy, "flip", PLUGIN, "--to", "isolated")  # no "natural key collision" with the round-tripped rows
    assert "refused" not in back.stdout + back.stderr
    assert trades(iso, PLUGIN) == shared_view
    assert sql(iso, "SELECT value FROM system_state WHERE key = 'lifetime_loss'") == [("7",)]
    assert sql(iso, "SELECT count(*) FROM reentry_chains WHERE chain_id = 'ISO-CHAIN'") == [(1,)]
    assert ok(legacy, "verify").returncode == 0


def test_an_old_bot_closing_a_trade_in_the_shared_file_is_carried_to_the_copy(legacy: Project) -> None:
    legacy.set_use_shared(PLUGIN, False)
    ok(legacy, "split")
    iso = legacy.isolated_db(PLUGIN)
    trade = first_open(iso, PLUGIN)
    close(legacy.shared_db, trade, 4.75)           # an old bot, still writing to the shared file
    failed = cli(legacy, "verify")
    assert failed.returncode == 1 and trade in failed.stdout + failed.stderr  # named, not silent
    again = ok(legacy, "split", "--json")
    doc = json.loads(again.stdout)
    assert doc["plugins"][PLUGIN]["tables"]["trades"]["updated"] == 1
    assert any(trade in w for w in doc["warnings"])  # written on the other side: reported by name
    assert sql(iso, "SELECT status, pnl FROM trades WHERE trade_id = ?", (trade,)) == [("closed", 4.75)]
    ok(legacy, "verify")


def test_a_copy_the_bot_closed_is_not_a_verify_failure_and_is_kept(legacy: Project) -> None:
    legacy.set_use_shared(PLUGIN, False)
    ok(legacy, "split")
    iso = legacy.isolated_db(PLUGIN)
    trade = first_open(iso, PLUGIN)
    close(iso, trade, 9.0)
    ok(legacy, "verify")
    done = json.loads(ok(legacy, "split", "--json").stdout)
    assert done["plugins"][PLUGIN]["tables"]["trades"]["kept"] == 1
    assert sql(iso, "SELECT status, pnl FROM trades WHERE trade_id = ?", (trade,)) == [("closed", 9.0)]


def test_a_row_changed_in_both_places_is_refused_by_name_until_prefer(legacy: Project) -> None:
    legacy.set_use_shared(PLUGIN, False)
    ok(legacy, "split")
    iso = legacy.isolated_db(PLUGIN)
    trade = first_open(iso, PLUGIN)
    close(iso, trade, 1.0)
    close(legacy.shared_db, trade, 2.0)
    before = trades(iso, PLUGIN)
    refused = cli(legacy, "split")
    assert refused.returncode == 1
    assert trade in refused.stderr and "pnl" in refused.stderr and PLUGIN in refused.stderr
    assert trades(iso, PLUGIN) == before          # nothing of the plugin written
    ok(legacy, "split", "--prefer", "source")
    assert sql(iso, "SELECT pnl FROM trades WHERE trade_id = ?", (trade,)) == [(2.0,)]


def test_merge_dry_run_writes_nothing_and_a_rerun_leaves_no_new_backup(legacy: Project) -> None:
    ok(legacy, "migrate")  # flip and merge refuse a never-migrated shared file
    ok(legacy, "flip", PLUGIN, "--to", "isolated")
    iso = legacy.isolated_db(PLUGIN)
    close(iso, first_open(iso, PLUGIN), 5.0)
    legacy.set_use_shared(PLUGIN, True)
    before = trades(legacy.shared_db)
    plan = ok(legacy, "merge", "--plugin", PLUGIN, "--dry-run", "--json")
    assert json.loads(plan.stdout)["plugins"][PLUGIN]["tables"]["trades"]["updated"] == 1
    assert trades(legacy.shared_db) == before
    ok(legacy, "merge", "--plugin", PLUGIN)
    backups = sorted((legacy.data / "backups").glob("*pre-merge*")) if (legacy.data / "backups").exists() else []
    ok(legacy, "merge", "--plugin", PLUGIN)
    after = sorted((legacy.data / "backups").glob("*pre-merge*")) if (legacy.data / "backups").exists() else []
    assert after == backups                        # nothing to change: no new pre-merge backup


def test_flip_rewrites_only_use_shared_in_the_config(legacy: Project) -> None:
    path = legacy.plugin_config_path(PLUGIN)
    text = path.read_text().replace("{", "{   ", 1)  # the user's own spacing
    path.write_text(text)
    ok(legacy, "flip", PLUGIN, "--to", "isolated")
    assert path.read_text() == text.replace('"use_shared": true', '"use_shared": false')


def test_prune_then_restore_of_the_pre_prune_backup_then_back_leaves_no_duplicate(legacy: Project) -> None:
    ok(legacy, "migrate")  # flip and merge refuse a never-migrated shared file
    before = len(trades(legacy.shared_db))
    ok(legacy, "flip", PLUGIN, "--to", "isolated", "--prune")
    assert len(trades(legacy.shared_db)) < before  # the plugin's rows left the shared file
    iso = legacy.isolated_db(PLUGIN)
    close(iso, first_open(iso, PLUGIN), 6.5)
    (backup,) = sorted((legacy.data / "backups").glob("trading_bot.db*pre-prune*"))
    ok(legacy, "restore", str(backup), "--force")
    ok(legacy, "flip", PLUGIN, "--to", "shared")
    # The restored rows are found again through the kept pairs: each once, at the bot's latest state.
    assert trades(legacy.shared_db, PLUGIN) == trades(iso, PLUGIN)


def test_bot_shaped_history_makes_the_round_trip_with_equal_figures(project: Project, tmp_path: Path) -> None:
    """The real bot's history (logic in strategy, re-entries on their chains, open snapshots superseded by closed
    rows, naive local times): flip out, the bot closes a trade, flip back and out again; figures equal each time."""
    from zepix_store._sample.bot_history import build_bot_history

    plugin = "v3-logic-01-5min"
    build_bot_history(project.shared_db, trades=600, seed=11)
    project.set_all_shared(True)
    ok(project, "migrate")
    in_shared = stats(project, plugin)
    ok(project, "flip", plugin, "--to", "isolated")
    iso = project.isolated_db(plugin)
    assert stats(project, plugin) == in_shared
    (trade,) = sql(iso, "SELECT trade_id FROM trades WHERE plugin_id = ? AND status = 'open' ORDER BY id LIMIT 1",
                   (plugin,))[0]
    sql(iso, "UPDATE trades SET status = 'closed', pnl = 3.5 WHERE trade_id = ? AND status = 'open'", (trade,))
    closed = stats(project, plugin)
    assert closed["total_trades"] == in_shared["total_trades"] + 1
    ok(project, "flip", plugin, "--to", "shared")
    assert stats(project, plugin) == closed
    assert trades(project.shared_db, plugin) == trades(iso, plugin)
    ok(project, "flip", plugin, "--to", "isolated")
    assert stats(project, plugin) == closed
    assert trades(iso, plugin) == trades(project.shared_db, plugin)


def test_flip_bad_input_exits_2_with_one_line_and_writes_nothing(legacy: Project) -> None:
    before = trades(legacy.shared_db)
    config = legacy.plugin_config_path(PLUGIN).read_text()
    for args, named in ((["no-such-plugin", "--to", "isolated"], "no-such-plugin"),
                        ([PLUGIN, "--to", "sideways"], "--to")):
        done = cli(legacy, "flip", *args)
        assert done.returncode == 2, done.stderr
        last = done.stderr.strip().splitlines()[-1]  # argparse's usage may come first, as for every command
        assert last.startswith("zepix-store flip: error: ") and named in last, done.stderr
    assert trades(legacy.shared_db) == before
    assert legacy.plugin_config_path(PLUGIN).read_text() == config
    assert not legacy.isolated_db(PLUGIN).exists()
