"""A copy that differs from its source is caught, through the commands: split refuses it, verify names it.

A trigger in the target file alters each row as split copies it in (what a damaged or tampered file, or a
buggy copy, would do): the counts still agree, so a verification that only counts, or that leaves out the money
totals, lets it through. Checked by split's and verify's exit codes and messages, not by their internals.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.helpers import Project, copy_database, query, run_cli
from zepix_store._sample.legacy import build_legacy_db

PLUGIN, GROUP_FILE = "v3-logic-01-5min", "zepix_v3_logic_combined.db"  # LOGIC1 trades go to PLUGIN
NEW_TRADES = [("NEW-1", 12.5, "2024-05-01 10:00:00"), ("NEW-2", -3.5, "2024-05-02 10:00:00")]


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    build_legacy_db(path, trades=800, seed=4)
    return path


@pytest.fixture
def split_once(project: Project, legacy: Path) -> Project:
    """A project split once, then two new legacy trades of PLUGIN in the shared file: the next split copies them."""
    copy_database(legacy, project.shared_db)
    done = run_cli("split", "-q", config=project)
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(project.shared_db)
    conn.executemany("INSERT INTO trades (trade_id, symbol, logic_type, status, pnl, close_time) "
                     "VALUES (?, 'EURUSD', 'LOGIC1', 'closed', ?, ?)", NEW_TRADES)
    conn.commit()
    conn.close()
    return project


def alter_copies(project: Project, change: str) -> None:
    """A trigger in the target that changes every trade row right after it is inserted."""
    conn = sqlite3.connect(project.data / GROUP_FILE)
    conn.execute(f"CREATE TRIGGER test_alter_copy AFTER INSERT ON trades BEGIN UPDATE trades SET {change} "
                 "WHERE rowid = NEW.rowid; END")
    conn.commit()
    conn.close()


def new_copies(project: Project) -> list[tuple[object, ...]]:
    return query(project.data / GROUP_FILE, "SELECT trade_id, symbol, pnl FROM trades WHERE trade_id LIKE 'NEW-%'")


@pytest.mark.parametrize("change,named", [
    ("symbol = 'GBPUSD'", "trades"),  # a copy whose text differs: counts and money agree
    ("pnl = pnl + 0.01", "pnl"),      # a copy whose money differs: the pnl total is named
], ids=["value", "money"])
def test_split_refuses_copies_that_differ_from_their_source(split_once: Project, change: str, named: str) -> None:
    alter_copies(split_once, change)

    done = run_cli("split", "-q", config=split_once)

    assert done.returncode == 1, (done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("zepix-store split: error: ")]
    assert errors and all(PLUGIN in line for line in errors), done.stderr
    assert any(named in line and "trades" in line for line in errors), done.stderr
    assert new_copies(split_once) == []  # nothing of the failed copy was committed

    verified = run_cli("verify", "-q", config=split_once)

    assert verified.returncode == 1, verified.stdout
    assert f"copies:{PLUGIN}" in verified.stderr


def test_the_same_split_without_the_trigger_copies_exactly(split_once: Project) -> None:
    done = run_cli("split", "-q", config=split_once)

    assert done.returncode == 0, done.stderr
    assert sorted(new_copies(split_once)) == [("NEW-1", "EURUSD", 12.5), ("NEW-2", "EURUSD", -3.5)]
    assert run_cli("verify", "-q", config=split_once).returncode == 0
