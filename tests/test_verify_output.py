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
CHECK = re.compile(r"(ok|warn|FAIL|skip) +\S")  # a check's first line; its detail wraps under it
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
    done = run_cli("verify", "-v", "-q", config=damaged)

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    summary = SUMMARY.fullmatch(lines[-1])
    assert summary, lines[-1]
    total, ok, warned, failed, skipped = map(int, summary.groups())
    assert total == ok + warned + failed + skipped == len([line for line in lines if CHECK.match(line)])
    assert failed == 1 and warned >= 1
    indexes = " ".join(done.stdout.split(f"FAIL  indexes:{GROUP_FILE}: ")[1].split("\n      "))
    assert re.match(r"missing (\S+, ){5}and \d+ more\n", indexes), indexes
    assert max(len(line) for line in lines) <= 110
    doc = json.loads(run_cli("verify", "--json", "-q", config=damaged).stdout)
    assert doc["counts"] == {"ok": ok, "warned": warned, "failed": failed, "skipped": skipped}


def test_by_default_verify_prints_the_failure_in_full_and_one_line_per_kind_of_pass(damaged: Project) -> None:
    done = run_cli("verify", config=damaged)

    assert done.returncode == 1
    checks = [line for line in done.stdout.splitlines() if CHECK.match(line)]
    passed = [line.split(":")[0].split()[1] for line in checks if line.startswith("ok ")]
    assert len(passed) == len(set(passed)), checks  # one line per kind: `ok    integrity: 6 files passed`
    assert f"FAIL  indexes:{GROUP_FILE}: missing " in done.stdout
    assert f"zepix-store verify: error: 1 check failed: indexes:{GROUP_FILE}" in done.stderr  # not "1 checks"
    assert done.stdout.splitlines()[-1].endswith("; -v lists every check")
    assert len(done.stdout.splitlines()) < 30, done.stdout


def test_verify_q_prints_only_what_did_not_pass_and_the_summary(damaged: Project) -> None:
    done = run_cli("verify", "-q", config=damaged)

    assert done.returncode == 1
    checks = [line for line in done.stdout.splitlines() if CHECK.match(line)]
    assert checks and not any(line.startswith("ok ") for line in checks), checks
    assert SUMMARY.match(done.stdout.splitlines()[-1])


def test_a_detail_longer_than_six_lines_is_cut_with_a_count() -> None:
    from zepix_store.verify import _cut  # the command's detail cutter

    detail = "x" * 1000
    cut = _cut(detail)
    assert len(cut) <= 640 and cut.endswith("(440 more characters in --json)")
    assert _cut("short") == "short"
