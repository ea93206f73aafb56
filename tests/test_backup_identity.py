"""A backup knows what it is a backup of: names unique per file, restore refuses another file, undo works anywhere.

Through the commands, as an operator would meet them: backup, backup --keep, restore (with and without --force),
the printed undo line run from another folder; plus the durability order of a backup (its .tmp is fsynced
before it gets its final name) and the stale -wal/-shm a restore must remove and name.
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    REPO,
    Project,
    cli_json,
    copy_database,
    final_backups,
    logical_checksum,
    make_store_file,
    one_line,
    run_cli,
    scalar,
)
from zepix_store._sample.legacy import build_legacy_db
from zepix_store.backup_identity import IDENTITY_TABLE, identity_of
from zepix_store.config import load_config
from zepix_store.ops import backup as backup_module
from zepix_store.schema import SCHEMA_VERSION

V6_A, V6_B, V3 = "v6-logic-01-1min", "v6-logic-02-5min", "v3-logic-01-5min"


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    build_legacy_db(path, trades=600, seed=3)
    return path


def set_isolated_db(project: Project, plugin_id: str, relative: str) -> Path:
    """Route `plugin_id` to its own file `data/<relative>`; return that path."""
    path = project.plugin_config_path(plugin_id)
    doc = json.loads(path.read_text())
    doc["database"].update(use_shared=False, isolated_db=f"data/{relative}")
    path.write_text(json.dumps(doc, indent=2))
    return project.data / relative


def backup(project: Project, *args: str) -> Path:
    done = run_cli("backup", *args, config=project.configs)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.splitlines()[0])


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


# --- names and retention ---------------------------------------------------------------------------------------


def test_keep_never_counts_or_deletes_the_backups_of_another_file_with_the_same_name(project: Project) -> None:
    a = set_isolated_db(project, V6_A, "a/store.db")
    b = set_isolated_db(project, V6_B, "b/store.db")
    for path in (a, b):
        path.parent.mkdir(mode=0o700)
        make_store_file(path)
    b_backups = [backup(project, "--plugin", V6_B) for _ in range(2)]
    a_backups = [backup(project, "--plugin", V6_A) for _ in range(3)]

    done = run_cli("backup", "--plugin", V6_A, "--keep", "1", config=project.configs)

    assert done.returncode == 0, done.stderr
    made, *deleted = done.stdout.splitlines()
    assert deleted == [f"deleted {p}" for p in sorted(a_backups, reverse=True)]  # named, newest first
    remaining = final_backups(project.data / "backups")
    assert remaining == sorted([Path(made), *b_backups])  # b's two backups untouched
    assert all(p.name.startswith(f"a~store.db-isolated-v{SCHEMA_VERSION}-") for p in [Path(made), *a_backups])
    assert all(p.name.startswith(f"b~store.db-isolated-v{SCHEMA_VERSION}-") for p in b_backups)


def test_a_backup_records_its_file_and_restore_puts_back_the_source_as_it_was(project: Project,
                                                                          legacy: Path) -> None:
    copy_database(legacy, project.shared_db)
    project.set_all_shared(False)
    project.set_use_shared(V6_A, True)
    before = logical_checksum(project.shared_db)

    made = backup(project)

    assert made.name.startswith("trading_bot.db-shared-v0-") and made.name.endswith("Z.db")
    record = dict(sqlite3.connect(made).execute(f"SELECT key, value FROM {IDENTITY_TABLE}").fetchall())
    assert (record["role"], record["path"], json.loads(record["plugins"]), record["schema_version"]) == (
        "shared", "trading_bot.db", [V6_A], "0")
    assert record["source"] == str(project.shared_db)
    conn = sqlite3.connect(project.shared_db)
    conn.execute("DELETE FROM trades")
    conn.commit()
    conn.close()

    doc = cli_json("restore", project, str(made))

    assert doc["backup_of"] == {"role": "shared", "path": "trading_bot.db", "plugins": [V6_A], "schema_version": 0}
    assert IDENTITY_TABLE not in tables(project.shared_db)
    assert logical_checksum(project.shared_db) == before


# --- restore refuses another file ------------------------------------------------------------------------------


def _prepare_files(project: Project, legacy: Path) -> dict[str, Path]:
    """The shared file (legacy), a group file (v3) and two single-plugin files, each with a backup."""
    copy_database(legacy, project.shared_db)
    project.set_all_shared(False)
    for plugin in (V6_A, V6_B, V3):
        make_store_file(project.isolated_db(plugin))
    return {"shared": backup(project), V6_A: backup(project, "--plugin", V6_A),
            V6_B: backup(project, "--plugin", V6_B), "group": backup(project, "--plugin", V3)}


@pytest.mark.parametrize("backup_of,target_args,target_plugin", [
    (V6_A, [], None),                              # a plugin's backup with no --plugin: onto the shared file
    (V6_A, ["--plugin", V6_B], V6_B),              # one plugin's backup onto another plugin's file
    ("group", ["--plugin", V6_A], V6_A),           # a group file's backup onto a single plugin's file
    ("shared", ["--plugin", V6_B], V6_B),          # the shared (pre-migrate) file's backup onto a plugin file
], ids=["plugin-onto-shared", "plugin-onto-other-plugin", "group-onto-single", "shared-onto-plugin"])
def test_restore_refuses_a_backup_of_another_file_unless_forced(project: Project, legacy: Path, backup_of: str,
                                                               target_args: list[str],
                                                               target_plugin: str | None) -> None:
    made = _prepare_files(project, legacy)
    target = project.isolated_db(target_plugin) if target_plugin else project.shared_db
    before, backups = logical_checksum(target), final_backups(project.data / "backups")

    refused = run_cli("restore", str(made[backup_of]), *target_args, config=project.configs)

    line = one_line(refused, 2, str(made[backup_of]), str(target), "--force", "nothing was restored")
    assert "it is a backup of the " in line and f"but the target {target} is the " in line
    assert logical_checksum(target) == before
    assert final_backups(project.data / "backups") == backups  # not even a pre-restore copy was made

    forced = cli_json("restore", project, str(made[backup_of]), *target_args, "--force")

    assert forced["forced"] is True and forced["target"] == str(target)
    assert logical_checksum(target) == logical_checksum(made[backup_of])


def test_restore_of_a_backup_that_records_no_file_needs_force(project: Project, legacy: Path) -> None:
    copy_database(legacy, project.shared_db)
    older = copy_database(legacy, project.data / "backups" / "trading_bot-20200101T000000000000Z.db")

    refused = run_cli("restore", str(older), config=project.configs)

    one_line(refused, 2, str(older), "no recorded file", "--force")
    assert cli_json("restore", project, str(older), "--force")["backup_of"] is None


def test_the_printed_undo_line_is_a_complete_command_that_works_from_another_folder(
        project: Project, legacy: Path, tmp_path: Path) -> None:
    copy_database(legacy, project.shared_db)
    made = backup(project)
    conn = sqlite3.connect(project.shared_db)
    conn.execute("INSERT INTO system_state (key, value) VALUES ('after-backup', 'y')")
    conn.commit()
    conn.close()
    replaced = logical_checksum(project.shared_db)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    done = run_cli("restore", str(made), config=project.configs)

    assert done.returncode == 0, done.stderr
    (undo,) = [line for line in done.stdout.splitlines() if line.startswith("undo: ")]
    argv = shlex.split(undo.removeprefix("undo: "))
    assert argv[:2] == ["zepix-store", "restore"] and "--config" in argv
    again = subprocess.run([sys.executable, "-m", "zepix_store", *argv[1:]], cwd=elsewhere, capture_output=True,
                           text=True, timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert again.returncode == 0, again.stderr
    assert logical_checksum(project.shared_db) == replaced


# --- what a restore removes, what a backup syncs ----------------------------------------------------------------

KILLED_WRITER = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("PRAGMA wal_autocheckpoint = 0")
conn.execute("INSERT INTO system_state (key, value) VALUES ('from-the-wal', 'x')")
os._exit(0)  # killed: its -wal and -shm stay behind
"""


def test_restore_removes_a_stale_wal_and_shm_and_names_both(project: Project, legacy: Path) -> None:
    copy_database(legacy, project.shared_db)
    made = backup(project)
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(project.shared_db)], check=True, timeout=60)
    wal, shm = Path(f"{project.shared_db}-wal"), Path(f"{project.shared_db}-shm")
    assert wal.exists() and shm.exists()

    doc = cli_json("restore", project, str(made))

    assert sorted(doc["removed"]) == sorted([str(wal), str(shm)])
    assert not wal.exists() and not shm.exists()
    assert logical_checksum(project.shared_db) == logical_checksum(made)
    assert scalar(Path(doc["kept"]), "SELECT count(*) FROM system_state WHERE key = 'from-the-wal'") == 1


def test_a_backup_fsyncs_its_tmp_before_linking_it_under_its_final_name(project: Project, legacy: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    copy_database(legacy, project.shared_db)
    config = load_config(project.configs)
    synced: list[str] = []
    links: list[tuple[str, str, list[str]]] = []
    real_fsync, real_link = os.fsync, os.link

    def spy_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def spy_link(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        links.append((str(src), str(dst), list(synced)))
        real_link(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "link", spy_link)

    result = backup_module.back_up(config.shared_db, config.backup_dir,
                                   identity=identity_of(config, config.shared_db))

    ((tmp, final, synced_before_link),) = links
    assert final == str(result.backup) and tmp == f"{result.backup}.tmp"
    assert tmp in synced_before_link  # the copy's data is on disk before it has a name that says it is whole
    assert synced[-1] == str(config.backup_dir)  # and the folder after, so the name survives a crash too
