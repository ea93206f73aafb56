"""restore: checks the backup first, refuses while the file is open elsewhere, keeps what it replaces, undoable."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    Project,
    byte_digest,
    cli_json,
    copy_database,
    final_backups,
    logical_checksum,
    mode,
    names_under,
    one_line,
    run_cli,
    scalar,
)
from zepix_store._sample.legacy import build_legacy_db, write_wal_only_trades


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    build_legacy_db(path, trades=1000, seed=21)
    return path


def backup_of(project: Project) -> Path:
    done = run_cli("backup", config=project.configs)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def test_restore_then_restore_the_kept_file_returns_the_original(project: Project, legacy: Path) -> None:
    copy_database(legacy, project.shared_db)
    migrated = run_cli("migrate", "--json", config=project.configs)
    assert migrated.returncode == 0, migrated.stderr
    pre_migrate = Path(json.loads(migrated.stdout)["backup"])
    original = logical_checksum(project.shared_db)  # the migrated file: the one restore will replace

    doc = cli_json("restore", project, str(pre_migrate))

    assert doc["target"] == str(project.shared_db)
    assert logical_checksum(project.shared_db) == logical_checksum(legacy)  # back to before migrate
    assert scalar(project.shared_db, "PRAGMA user_version") == 0
    assert scalar(project.shared_db, "PRAGMA journal_mode") == "wal"
    kept = Path(doc["kept"])
    assert kept.parent == project.data / "backups" and kept.name.endswith("-pre-restore.db")
    assert logical_checksum(kept) == original and mode(kept) == 0o600
    assert names_under(project.data) == sorted(["backups", "trading_bot.db", *(f"backups/{p.name}"
                                                                          for p in final_backups(kept.parent))])

    undo = cli_json("restore", project, str(kept))  # the undo the first restore printed

    assert logical_checksum(project.shared_db) == original
    assert logical_checksum(Path(undo["kept"])) == logical_checksum(legacy)
    human = run_cli("restore", str(kept), config=project.configs)
    assert human.returncode == 0 and "undo: zepix-store restore " in human.stdout


HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("SELECT count(*) FROM trades").fetchone()
if sys.argv[2] == "write":
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO system_state (key, value) VALUES ('held', 'x')")
print("ready", flush=True)
sys.stdin.readline()
"""


@pytest.mark.parametrize("holding", ["idle", "write"])
def test_restore_refuses_while_another_process_has_the_file_open(project: Project, legacy: Path,
                                                                 holding: str) -> None:
    copy_database(legacy, project.shared_db)
    backup = backup_of(project)
    conn = sqlite3.connect(project.shared_db, isolation_level=None)
    conn.execute("INSERT INTO system_state (key, value) VALUES ('after-backup', 'y')")
    conn.close()
    before, backups = logical_checksum(project.shared_db), final_backups(project.data / "backups")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(project.shared_db), holding],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        done = run_cli("restore", str(backup), config=project.configs)
        one_line(done, 4, f"in use by another process: {project.shared_db}", "stop the bot")
        assert final_backups(project.data / "backups") == backups  # nothing kept, nothing replaced
    finally:
        holder.communicate("\n", timeout=30)
    assert logical_checksum(project.shared_db) == before

    cli_json("restore", project, str(backup))  # once the other process is gone
    assert logical_checksum(project.shared_db) == logical_checksum(backup)


@pytest.mark.parametrize("kind", ["text", "truncated", "zeroed-page", "zero-byte", "newer"])
def test_a_bad_backup_is_refused_and_the_target_left_alone(project: Project, legacy: Path, kind: str) -> None:
    copy_database(legacy, project.shared_db)
    bad = project.root / f"bad-{kind}.db"
    if kind == "text":
        bad.write_text("garbage\n" * 1000)
    elif kind == "zero-byte":
        bad.touch()
    elif kind == "newer":
        copy_database(legacy, bad)
        conn = sqlite3.connect(bad)
        conn.execute("PRAGMA user_version = 7")
        conn.close()
    else:
        copy_database(legacy, bad)
        data = bytearray(bad.read_bytes())  # our own closed copy
        if kind == "truncated":
            data = data[: len(data) // 2]
        else:
            root = scalar(bad, "SELECT rootpage FROM sqlite_master WHERE name = 'trades'")
            assert isinstance(root, int)
            data[root * 4096:(root + 1) * 4096] = bytes(4096)  # the page after the root: a trades leaf
        bad.write_bytes(bytes(data))
    files, digest = names_under(project.data), byte_digest(project.shared_db)

    done = run_cli("restore", str(bad), config=project.configs)

    line = one_line(done, 5, str(bad), "nothing was restored")
    assert any(c in line for c in ("integrity", "not a database", "malformed", "no tables", "newer")), line
    assert names_under(project.data) == files
    assert byte_digest(project.shared_db) == digest


def test_a_stale_wal_never_replays_over_the_restored_copy(project: Project, legacy: Path) -> None:
    copy_database(legacy, project.shared_db)
    backup = backup_of(project)
    write_wal_only_trades(project.shared_db, 300)  # committed rows left only in the -wal by an exited writer
    assert Path(f"{project.shared_db}-wal").stat().st_size > 0

    doc = cli_json("restore", project, str(backup))

    assert not Path(f"{project.shared_db}-wal").exists()
    assert scalar(project.shared_db, "SELECT count(*) FROM trades WHERE trade_id LIKE 'WAL-%'") == 0
    assert logical_checksum(project.shared_db) == logical_checksum(backup)
    # the replaced file, -wal content included, is what restore kept
    assert scalar(Path(doc["kept"]), "SELECT count(*) FROM trades WHERE trade_id LIKE 'WAL-%'") == 300


def test_restore_into_a_new_file_and_into_a_plugin_file(project: Project, legacy: Path) -> None:
    copy_database(legacy, project.shared_db)
    backup = backup_of(project)

    target = project.data / "scratch" / "copy.db"
    doc = cli_json("restore", project, str(backup), "--target", str(target), "--force")  # not its own file
    assert doc["kept"] is None and mode(target) == 0o600 and mode(target.parent) == 0o700
    assert logical_checksum(target) == logical_checksum(backup)
    assert sorted(os.listdir(target.parent)) == ["copy.db"]

    project.set_use_shared("v6-logic-02-5min", False)
    doc = cli_json("restore", project, str(backup), "--plugin", "v6-logic-02-5min", "--force")
    assert doc["target"] == str(project.isolated_db("v6-logic-02-5min"))
    assert logical_checksum(project.isolated_db("v6-logic-02-5min")) == logical_checksum(backup)


@pytest.mark.parametrize("args,cause", [
    (["--target", "/tmp/elsewhere.db"], "escapes data dir"),
    (["--target", "{data}/../outside.db"], "escapes data dir"),
    (["--target", "{data}/backups/x.db"], "inside backup_dir"),
    (["--plugin", "no-such-plugin"], "no-such-plugin"),
    (["--missing-backup"], "no such backup file"),
])
def test_bad_input_exits_2_and_touches_nothing(project: Project, legacy: Path, args: list[str], cause: str) -> None:
    copy_database(legacy, project.shared_db)
    backup = backup_of(project)
    if args == ["--missing-backup"]:
        backup, args = project.root / "nope.db", []
    files = names_under(project.root)
    argv = [a.format(data=project.data) for a in args]

    done = run_cli("restore", str(backup), *argv, config=project.configs)

    one_line(done, 2, cause)
    assert names_under(project.root) == files
    assert not Path("/tmp/elsewhere.db").exists()
