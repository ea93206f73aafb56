"""Reads on read-only media and on a full disk (issue 18; FAULT_PLAN D5, B-series).

A WAL file with no -wal/-shm in a folder the process cannot write: nobody can be writing it, so it is read as
immutable by stats, by Store's reads and by the facade's, as verify already did. On a full disk a read-only
command that must create a -shm names the full disk instead of saying "disk I/O error" (stats exits 3; verify
reports it as the failed integrity check of that file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import (
    Project,
    byte_checksum,
    copy_database,
    files_under,
    mounted_tmpfs,
    no_dac,
    one_line,
    privileged,
    run_cli,
    run_python,
)
from zepix_store.legacy_data import build_legacy_db

PLUGIN = "v6-logic-01-1min"  # isolated (its own WAL file); LOGIC1 trades are mapped to it
SHARED = "v6-logic-02-5min"  # read in the shared file
DB = "trading_bot.db"

READS = """
import asyncio, json, sys
from datetime import date
from zepix_store import Store
from zepix_store.compat import TradeDatabase

configs, plugin, shared = sys.argv[1:4]

async def store_reads():
    async with Store.open(configs) as store:
        out = {"all": await store.get_all_plugin_statistics()}
        for p in (plugin, shared):
            db = store.for_plugin(p)
            out[p] = [await db.get_trades(100000), await db.get_open_trades(), await db.get_statistics(),
                      await db.get_all_system_state()]
        out["legacy"] = await store.unattributed().get_statistics()
        return out

out = {"store": asyncio.run(store_reads()), "facade": {}}
for p in (plugin, shared):
    with TradeDatabase(p, configs) as db:
        out["facade"][p] = [db.get_trade_history(100000), db.get_open_trades(), db.get_chain_statistics(),
                            db.get_system_state("trading_paused", "unset")]
print(json.dumps(out, default=str, sort_keys=True))
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / DB
    build_legacy_db(path, trades=300, seed=11)
    return path


def adopted(template: Path, root: Path) -> Project:
    """Migrated shared file, PLUGIN in its isolated file: both in WAL mode with nothing beside them."""
    project = Project(root)
    copy_database(template, project.shared_db)
    store = project.configs / "store.yaml"
    store.write_text(store.read_text().replace("LOGIC1: v3-logic-01-5min", f"LOGIC1: {PLUGIN}"))
    project.set_all_shared(True)
    assert run_cli("migrate", "-q", config=project).rc == 0
    assert run_cli("flip", PLUGIN, "--to", "isolated", "-q", config=project).rc == 0
    return project


@privileged
def test_reads_work_in_a_read_only_folder(template: Path, tmp_path: Path) -> None:
    project = adopted(template, tmp_path / "proj")
    expected = run_python(READS, project.configs, PLUGIN, SHARED)
    stats_expected = run_cli("stats", "--json", config=project)
    assert expected.rc == 0 and stats_expected.rc == 0, expected.stderr + stats_expected.stderr
    assert json.loads(expected.stdout)["store"][PLUGIN][0], "the plugin has trades to read"
    files = [project.shared_db, project.isolated_db(PLUGIN)]
    assert not [p for p in files_under(project.data) if p.endswith(("-wal", "-shm"))]
    digests, before = [byte_checksum(p) for p in files], files_under(project.root)
    os.chmod(project.data, 0o555)
    try:
        reads = run_python(READS, project.configs, PLUGIN, SHARED, prefix=no_dac())
        stats = run_cli("stats", "--json", config=project, prefix=no_dac())
        verify = run_cli("verify", "-q", config=project, prefix=no_dac())
    finally:
        os.chmod(project.data, 0o700)
    assert reads.rc == 0, reads.stderr  # was StoreIOError "read-only folder"
    assert json.loads(reads.stdout) == json.loads(expected.stdout)
    assert stats.rc == 0, stats.stderr  # was exit 3
    assert json.loads(stats.stdout) == json.loads(stats_expected.stdout)
    assert verify.rc == 0, verify.stdout + verify.stderr
    assert [byte_checksum(p) for p in files] == digests
    assert files_under(project.root) == before


@privileged
def test_read_only_commands_on_a_full_disk_name_the_full_disk(template: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    with mounted_tmpfs("4m", mnt) as fs:
        project = Project(fs.view(mnt / "proj"))
        project.set_all_shared(True)
        db, configs = mnt / "proj" / "data" / DB, mnt / "proj" / "configs"
        fs.install(template, db)
        assert run_cli("migrate", "-q", config=configs, prefix=fs.prefix).rc == 0
        fs.python("import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA journal_mode=WAL')", db)
        assert not fs.view(Path(f"{db}-shm")).exists()
        digest = byte_checksum(fs.view(db))
        fs.fill(fs.view(mnt / "ballast"), 0)
        one_line(run_cli("stats", "-q", config=configs, prefix=fs.prefix), 3, str(db), "disk full")
        verify = run_cli("verify", config=configs, prefix=fs.prefix)  # a failed check of its own, named
        unwrapped = " ".join(verify.stdout.split())  # a long detail wraps under its check
        assert verify.rc == 1 and f"{db}: disk full" in unwrapped, verify.stdout + verify.stderr
        assert byte_checksum(fs.view(db)) == digest  # (SQLite may leave the -shm it could not grow: not ours)
