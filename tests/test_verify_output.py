"""verify ends with one summary line and keeps each detail readable: long lists cut, with a count."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests.helpers import Project, copy_database, run_cli
from zepix_store._sample.legacy import build_legacy_db

GROUP_FILE = "zepix_v3_logic_combined.db"
SUMMARY = re.compile(r"verify: (\d+) checks: (\d+) ok, (\d+) warned, (\d+) failed, (\d+) skipped")


@pytest.fixture
def damaged(project: Project, tmp_path: Path) -> Project:
    """Split, then every index of the group file dropped: one check with a long list of missing indexes."""
    legacy = tmp_path / "legacy.db"
    build_legacy_db(legacy, trades=500, seed=8)
    copy_database(legacy, project.shared_db)
    assert run_cli("split", "-q", config=project).returncode == 0
    conn = sqlite3.connect(project.data / GROUP_FILE)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").fetchall():
        conn.execute(f'DROP INDEX "{name}"')
    conn.commit()
    conn.close()
    return project


def test_verify_ends_with_one_summary_line_and_cuts_long_lists(damaged: Project) -> None:
    done = run_cli("verify", "-q", config=damaged)

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    summary = SUMMARY.fullmatch(lines[-1])
    assert summary, lines[-1]
    total, ok, warned, failed, skipped = map(int, summary.groups())
    assert total == ok + warned + failed + skipped == len(lines) - 3  # header, rule, one row per check
    assert failed == 1 and warned >= 1
    (indexes,) = [line for line in lines if line.startswith(f"indexes:{GROUP_FILE}")]
    assert re.search(r"missing (\S+, ){5}and \d+ more$", indexes), indexes
    assert max(len(line) for line in lines) <= 260
    doc = json.loads(run_cli("verify", "--json", "-q", config=damaged).stdout)
    assert doc["counts"] == {"ok": ok, "warned": warned, "failed": failed, "skipped": skipped}


def test_a_detail_longer_than_the_table_allows_is_cut_with_a_count() -> None:
    from zepix_store.verify import _cut  # the command's cell cutter

    detail = "x" * 1000
    cut = _cut(detail)
    assert len(cut) <= 240 and cut.endswith("(840 more characters in --json)")
    assert _cut("short") == "short"
