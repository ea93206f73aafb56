"""backup: online backups through SQLite's backup API, verified, owner-only, never a partial file under a final name.

Its helpers (CLI runner, logical and schema checksums, copies) are in tests/helpers.py.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import (
    REPO,
    Project,
    copy_database,
    final_backups,
    logical_checksum,
    make_store_file,
    mode,
    names_under,
    one_line,
    run_cli,
    scalar,
    scaled,
)
from zepix_store._sample.legacy import build_legacy_db, write_wal_only_trades
from zepix_store.schema import SCHEMA_VERSION

BACKUP_NAME = re.compile(r"trading_bot\.db-shared-v\d+-\d{8}T\d{12}Z(-[a-z-]+)?\.db")


@pytest.fixture(scope="module")
def legacy_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "small.db"
    build_legacy_db(path, trades=1500, seed=11)
    return path


# --- tests ----------------------------------------------------------------------------------------------------------


def test_backup_prints_path_of_verified_owner_only_copy(project: Project, legacy_small: Path) -> None:
    copy_database(legacy_small, project.shared_db)
    os.chmod(project.data, 0o755)  # the backup folder must be private even inside a readable data dir
    before = logical_checksum(project.shared_db)

    done = run_cli("backup", config=project.configs, umask=0o022)

    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip().splitlines()
    assert len(printed) == 1
    backup = Path(printed[0])
    backup_dir = project.data / "backups"
    assert backup.parent == backup_dir and BACKUP_NAME.fullmatch(backup.name)
    assert mode(backup_dir) == 0o700 and mode(backup) == 0o600
    assert names_under(backup_dir) == [backup.name]  # no -journal, -wal or .tmp beside it
    assert scalar(backup, "PRAGMA integrity_check") == "ok"
    assert scalar(backup, "PRAGMA journal_mode") == "delete"  # one self-contained file
    assert logical_checksum(backup) == before
    assert names_under(project.data) == ["backups", f"backups/{backup.name}", "trading_bot.db"]


def test_backup_holds_writes_that_live_only_in_the_wal(project: Project, legacy_small: Path, tmp_path: Path) -> None:
    copy_database(legacy_small, project.shared_db)
    write_wal_only_trades(project.shared_db, 500)  # the writer process has exited, its -wal stays
    assert Path(f"{project.shared_db}-wal").stat().st_size > 0

    done = run_cli("backup", "--json", config=project.configs)

    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)["backups"]
    assert entry["source"] == str(project.shared_db)
    backup = Path(entry["backup"])
    assert scalar(backup, "SELECT count(*) FROM trades WHERE trade_id LIKE 'WAL-%'") == 500
    # A plain copy of just the .db file (done only now that no process has it open) misses them.
    plain = tmp_path / "plain-copy.db"
    plain.write_bytes(project.shared_db.read_bytes())
    assert scalar(plain, "SELECT count(*) FROM trades WHERE trade_id LIKE 'WAL-%'") == 0
    assert logical_checksum(backup) == logical_checksum(project.shared_db)


def test_backup_of_one_plugin_and_of_all_files(project: Project, legacy_small: Path) -> None:
    copy_database(legacy_small, project.shared_db)
    project.set_use_shared("v6-logic-01-1min", False)
    project.set_use_shared("v6-logic-02-5min", False)
    project.set_use_shared("v6-logic-03-15min", False)
    one, two = project.isolated_db("v6-logic-01-1min"), project.isolated_db("v6-logic-02-5min")
    make_store_file(one)
    make_store_file(two)  # v6-logic-03-15min's file does not exist yet: --all skips it

    done = run_cli("backup", "--plugin", "v6-logic-01-1min", config=project.configs)
    assert done.returncode == 0, done.stderr
    (path,) = done.stdout.split()
    assert Path(path).name.startswith(one.name + f"-isolated-v{SCHEMA_VERSION}-")
    assert scalar(Path(path), "SELECT value FROM system_state") == one.name

    done = run_cli("backup", "--all", "--json", config=project.configs)
    assert done.returncode == 0, done.stderr
    sources = [e["source"] for e in json.loads(done.stdout)["backups"]]
    assert sorted(sources) == sorted(map(str, (project.shared_db, one, two)))
    for entry in json.loads(done.stdout)["backups"]:
        assert logical_checksum(Path(entry["backup"])) == logical_checksum(Path(entry["source"]))


def test_keep_deletes_only_older_plain_backups_of_that_source(project: Project, legacy_small: Path) -> None:
    copy_database(legacy_small, project.shared_db)
    project.set_use_shared("v6-logic-01-1min", False)
    other = project.isolated_db("v6-logic-01-1min")
    make_store_file(other)
    backup_dir = project.data / "backups"
    assert run_cli("backup", "--plugin", "v6-logic-01-1min", config=project.configs).returncode == 0
    labelled = backup_dir / "trading_bot-20200101T000000000000Z-pre-migrate.db"
    copy_database(legacy_small, labelled)
    foreign = backup_dir / "trading_bot-notes.db"
    copy_database(legacy_small, foreign)
    made = []
    for _ in range(4):
        done = run_cli("backup", "--keep", "2", config=project.configs)
        assert done.returncode == 0, done.stderr
        made.append(done.stdout.splitlines()[0])  # then a `deleted <path>` line per backup rotated out

    remaining = {str(p) for p in final_backups(backup_dir)}
    assert set(made[-2:]) <= remaining and not set(made[:2]) & remaining
    assert labelled.exists() and foreign.exists()
    assert any(p.name.startswith(other.stem) for p in final_backups(backup_dir))
    one_line(run_cli("backup", "--keep", "0", config=project.configs), 2, "--keep")


def test_killed_backup_leaves_no_final_name_and_next_run_cleans_tmp(project: Project, legacy_small: Path) -> None:
    copy_database(legacy_small, project.shared_db)
    backup_dir = project.data / "backups"

    killed = run_cli("backup", config=project.configs, fault="after_backup_copy:kill")
    assert killed.returncode == -signal.SIGKILL
    assert final_backups(backup_dir) == [] and list(backup_dir.glob("*.tmp"))

    failed = run_cli("backup", "-q", config=project.configs, fault="after_backup_copy:raise")
    one_line(failed, 3, "disk full")
    assert final_backups(backup_dir) == []

    done = run_cli("backup", config=project.configs)
    assert done.returncode == 0, done.stderr
    assert names_under(backup_dir) == [Path(done.stdout.strip()).name]


@pytest.mark.slow
def test_backup_killed_at_random_moments_is_complete_or_absent(project: Project, tmp_path: Path) -> None:
    build_legacy_db(project.shared_db, trades=20000, seed=5)
    source = logical_checksum(project.shared_db)
    backup_dir = project.data / "backups"
    rng = random.Random(1234)
    argv = [sys.executable, "-m", "zepix_store.backup", "--config", str(project.configs)]
    started = time.monotonic()
    assert subprocess.run(argv, cwd=REPO, capture_output=True, timeout=60, check=False).returncode == 0
    clean = time.monotonic() - started  # kill between interpreter start-up and a little past the end
    seen: set[Path] = set()
    for _ in range(scaled(3, 8, 50)):
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5 * clean, 1.05 * clean))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for backup in set(final_backups(backup_dir)) - seen:  # whatever has a final name is whole and verified
            assert scalar(backup, "PRAGMA quick_check") == "ok"
            assert logical_checksum(backup) == source
            seen.add(backup)
    done = run_cli("backup", config=project.configs)
    assert done.returncode == 0, done.stderr
    assert not list(backup_dir.glob("*.tmp*"))
    print(f"backups killed at random: finished before the kill {len(seen)}, partial 0")


LOCKER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_running_backup_keeps_its_tmp(project: Project, legacy_small: Path) -> None:
    copy_database(legacy_small, project.shared_db)
    backup_dir = project.data / "backups"
    backup_dir.mkdir(mode=0o700)
    live = backup_dir / "trading_bot.db-shared-v0-20990101T000000000000Z.db.tmp"
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(live)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        done = run_cli("backup", config=project.configs)
        assert done.returncode == 0, done.stderr
        assert live.exists()  # another run is still writing it
    finally:
        holder.kill()
        holder.communicate()
    assert run_cli("backup", config=project.configs).returncode == 0
    assert not live.exists()


@pytest.mark.parametrize("kind", ["missing", "text", "zero-byte", "missing-plugin-file", "unknown-plugin"])
def test_backup_failures_name_the_path_and_cause(project: Project, kind: str) -> None:
    args: list[str] = []
    if kind == "text":
        project.shared_db.write_text("these are not the trades you are looking for\n" * 200)
        code, needles = 5, [str(project.shared_db), "not a database"]
    elif kind == "missing":
        code, needles = 2, [str(project.shared_db), "no such database file"]
    elif kind == "zero-byte":
        project.shared_db.touch(mode=0o600)
        code, needles = 5, [str(project.shared_db), "source has no tables"]
    elif kind == "missing-plugin-file":
        project.set_use_shared("v6-logic-01-1min", False)
        args = ["--plugin", "v6-logic-01-1min"]
        code, needles = 2, [str(project.isolated_db("v6-logic-01-1min")), "no such database file"]
    else:
        args = ["--plugin", "nope"]
        code, needles = 2, ["nope"]
    before = names_under(project.data)
    one_line(run_cli("backup", *args, config=project.configs), code, *needles)
    assert names_under(project.data) == before


def test_modes_stay_owner_only_under_umask_022(project: Project, legacy_small: Path) -> None:
    copy_database(legacy_small, project.shared_db)
    backup_dir = project.data / "backups"

    migrated = run_cli("migrate", "-q", config=project.configs, umask=0o022)
    assert migrated.returncode == 0, migrated.stderr
    backed = run_cli("backup", config=project.configs, umask=0o022)
    assert backed.returncode == 0, backed.stderr
    new_target = project.data / "restored" / "copy.db"
    restored = run_cli("restore", backed.stdout.strip(), "--target", str(new_target), "--force",
                       config=project.configs, umask=0o022)  # a scratch copy: another file than its source
    assert restored.returncode == 0, restored.stderr
    again = run_cli("restore", backed.stdout.strip(), config=project.configs, umask=0o022)
    assert again.returncode == 0, again.stderr

    assert mode(backup_dir) == 0o700 and mode(new_target.parent) == 0o700
    files = [p for p in project.data.rglob("*") if p.is_file()]
    assert len(final_backups(backup_dir)) == 3  # pre-migrate, the backup, pre-restore
    assert {str(p): mode(p) for p in files} == {str(p): 0o600 for p in files}
