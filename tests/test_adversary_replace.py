"""The bot's raw `INSERT OR REPLACE` of a key the last synchronisation paired, then the way back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.helpers import Project, cli_ok, copy_database, legacy_template, query, run_cli
from zepix_store.compat import TradeDatabase

PLUGIN = "v3-logic-02-15min"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return legacy_template(tmp_path_factory, trades=40, seed=11)


@pytest.mark.parametrize("updated_first", [False, True])
def test_raw_insert_or_replace_of_a_paired_key_moves_back(project: Project, template: Path,
                                                          updated_first: bool) -> None:
    copy_database(template, project.shared_db)
    project.set_all_shared(True)
    cli_ok("migrate", project)
    with TradeDatabase(PLUGIN, project.configs) as db:
        db.set_system_state("trading_paused", 0)
    cli_ok("flip", project, PLUGIN, "--to", "isolated")
    path = project.isolated_db(PLUGIN)
    if updated_first:  # the facade's upsert first: the trigger keeps the synced state in a base row
        with TradeDatabase(PLUGIN, project.configs) as db:
            db.set_system_state("trading_paused", 0.5)
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:  # the old bot's risk manager pauses trading with its own SQL
        conn.execute("INSERT OR REPLACE INTO system_state (key, value, plugin_id) VALUES ('trading_paused', '1', ?)",
                     (PLUGIN,))
    finally:
        conn.close()
    with TradeDatabase(PLUGIN, project.configs) as db:
        assert db.get_system_state("trading_paused") in (1, "1", True)
    # A carry-over run towards the isolated file keeps the bot's newer write there, once.
    cli_ok("split", project, "--plugin", PLUGIN)
    assert query(path, "SELECT value FROM system_state WHERE key = 'trading_paused'") == [("1",)]
    done = run_cli("flip", PLUGIN, "--to", "shared", config=project)
    assert done.rc == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert query(project.shared_db, "SELECT value FROM system_state WHERE key = 'trading_paused' AND plugin_id = ?",
                 (PLUGIN,)) == [("1",)]
    with TradeDatabase(PLUGIN, project.configs) as db:
        assert db.get_system_state("trading_paused") in (1, "1", True)
