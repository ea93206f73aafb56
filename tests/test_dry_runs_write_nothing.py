"""Read-only commands and dry runs write no byte and create no file; flip and merge onto a never-migrated shared
file refuse; a flip to where the plugin already is changes nothing (SPEC 4, issue 18).

Every command runs through the CLI on real files; digests are taken in a child process, on closed files.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.helpers import Project, byte_digest, copy_database, legacy_template, one_line, run_cli

PLUGIN = "v6-logic-01-1min"  # LOGIC1 trades are mapped to it below; a file of its own
OTHER = "v3-logic-02-15min"  # isolated, then set back to use_shared by hand: what `merge` is for
STILL_SHARED = "v6-logic-02-5min"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return legacy_template(tmp_path_factory, trades=300, seed=11)


def adopted(template: Path, root: Path, *, migrated: bool) -> Project:
    """A legacy shared file (migrated or not), PLUGIN and OTHER flipped to their isolated files."""
    project = Project(root)
    copy_database(template, project.shared_db)
    store = project.configs / "store.yaml"
    store.write_text(store.read_text().replace("LOGIC1: v3-logic-01-5min", f"LOGIC1: {PLUGIN}"))
    project.set_all_shared(True)
    if migrated:
        assert run_cli("migrate", "-q", config=project).rc == 0
    for plugin in (PLUGIN, OTHER):
        done = run_cli("flip", plugin, "--to", "isolated", "-q", config=project)
        assert done.rc == 0, done.stderr
    project.set_use_shared(OTHER, True)
    return project


def set_journal_mode(path: Path, mode: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert conn.execute(f"PRAGMA journal_mode = {mode}").fetchone()[0] == mode
    finally:
        conn.close()


def data_state(project: Project) -> dict[str, str]:
    """Every file beside the shared file (the backup folder aside): name -> sha256 (of a closed file)."""
    return {name: byte_digest(project.data / name) for name in sorted(os.listdir(project.data))
            if name != "backups"}


def backups(project: Project) -> list[str]:
    folder = project.data / "backups"
    return sorted(os.listdir(folder)) if folder.exists() else []


# (command, exit code on a migrated shared file, exit code on a never-migrated one)
READ_ONLY_COMMANDS = [
    (("stats",), 0, 0),
    (("stats", "--plugin", PLUGIN, "--json"), 0, 0),
    (("verify",), 0, 0),
    (("split", "--dry-run"), 0, 0),
    (("split", "--plugin", PLUGIN, "--dry-run"), 0, 0),
    (("merge", "--plugin", OTHER, "--dry-run"), 0, 2),
    (("flip", PLUGIN, "--to", "shared", "--dry-run"), 0, 2),
    (("flip", STILL_SHARED, "--to", "isolated", "--dry-run"), 0, 0),
    (("flip", PLUGIN, "--to", "isolated"), 0, 0),  # already there: changes nothing
    (("flip", PLUGIN, "--to", "isolated", "--dry-run"), 0, 0),
    (("migrate", "--dry-run"), 0, 0),
    (("backup",), 0, 0),  # writes backup_dir only
]


@pytest.mark.parametrize("journal", ["delete", "wal"])
@pytest.mark.parametrize("migrated", [True, False], ids=["migrated", "never-migrated"])
def test_read_only_commands_and_dry_runs_change_no_byte_and_create_no_file(
        template: Path, tmp_path: Path, journal: str, migrated: bool) -> None:
    project = adopted(template, tmp_path / "proj", migrated=migrated)
    set_journal_mode(project.shared_db, journal)
    before = data_state(project)
    assert not any(name.endswith(("-wal", "-shm", "-journal")) for name in before), before
    for command, rc_migrated, rc_legacy in READ_ONLY_COMMANDS:
        done = run_cli(*command, "-q", config=project)
        expected = rc_migrated if migrated else rc_legacy
        assert done.rc == expected, (command, done.rc, done.stdout[-1500:], done.stderr[-1500:])
        assert "Traceback" not in done.stderr, (command, done.stderr)
        assert data_state(project) == before, f"{' '.join(command)} changed or created a file beside the shared one"


def test_flip_and_merge_onto_a_never_migrated_shared_file_refuse_and_write_nothing(template: Path,
                                                                                     tmp_path: Path) -> None:
    project = adopted(template, tmp_path / "proj", migrated=False)
    config_before = project.plugin_config_path(PLUGIN).read_text()
    backups_before = backups(project)
    before = data_state(project)
    for command in (("flip", PLUGIN, "--to", "shared"), ("flip", PLUGIN, "--to", "shared", "--dry-run"),
                    ("merge", "--plugin", OTHER), ("merge", "--plugin", OTHER, "--dry-run")):
        line = one_line(run_cli(*command, "-q", config=project), 2, str(project.shared_db), "never migrated",
                        "zepix-store migrate", "adds plugin_id in place", "zepix_store.compat.TradeDatabase")
        assert "nothing written" in line, line
        assert data_state(project) == before, command
    assert project.plugin_config_path(PLUGIN).read_text() == config_before
    assert backups(project) == backups_before
    # the bot's old positional INSERT still fits the file (it breaks on a migrated one)
    conn = sqlite3.connect(project.shared_db)
    try:
        conn.execute("INSERT INTO sl_events VALUES (NULL, 'T-OLD', 'EURUSD', 1.1, 1.2, '2026-01-20 10:00:00', 0, 0)")
        conn.commit()
    finally:
        conn.close()
    # `migrate` first, as the message says: then the flip back works
    assert run_cli("migrate", "-q", config=project).rc == 0
    done = run_cli("flip", PLUGIN, "--to", "shared", "--json", config=project)
    assert done.rc == 0, done.stderr
    assert json.loads(done.stdout)["config_changed"] is True


@pytest.mark.parametrize("to", ["isolated", "shared"])
def test_a_flip_to_where_the_plugin_already_is_changes_nothing(template: Path, tmp_path: Path, to: str) -> None:
    project = adopted(template, tmp_path / "proj", migrated=True)
    if to == "shared":
        assert run_cli("flip", PLUGIN, "--to", "shared", "-q", config=project).rc == 0
    config_before = project.plugin_config_path(PLUGIN).read_text()
    backups_before = backups(project)
    before = data_state(project)
    done = run_cli("flip", PLUGIN, "--to", to, "--json", config=project)
    doc = json.loads(done.stdout)
    assert done.rc == 0, done.stderr
    assert doc["already_there"] is True and doc["config_changed"] is False and doc["backup"] is None, doc
    assert doc["syncs"] == [] and f"already {to}" in doc["note"], doc
    assert f"zepix-store {'split' if to == 'isolated' else 'merge'} --plugin {PLUGIN}" in doc["note"], doc
    human = run_cli("flip", PLUGIN, "--to", to, config=project)
    assert human.rc == 0 and f"already {to}" in human.stdout and "nothing changed" in human.stdout, human.stdout
    assert project.plugin_config_path(PLUGIN).read_text() == config_before
    assert backups(project) == backups_before
    assert data_state(project) == before


def test_a_flip_to_where_the_config_already_routes_still_carries_rows_left_behind(template: Path,
                                                                                     tmp_path: Path) -> None:
    """A killed flip's rerun (the config already rewritten) or an old bot's rows: the flip carries them over."""
    project = adopted(template, tmp_path / "proj", migrated=True)
    conn = sqlite3.connect(project.shared_db)  # an old bot writes the plugin's trade into the shared file
    try:
        conn.execute("INSERT INTO trades (trade_id, symbol, status, pnl, logic_type, plugin_id) "
                     "VALUES ('LATE-1', 'EURUSD', 'closed', 4.5, 'LOGIC1', ?)", (PLUGIN,))
        conn.commit()
    finally:
        conn.close()
    done = run_cli("flip", PLUGIN, "--to", "isolated", "--json", config=project)
    assert done.rc == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["already_there"] is False and doc["syncs"], doc
    iso = sqlite3.connect(f"file:{project.isolated_db(PLUGIN)}?mode=ro", uri=True)
    try:
        assert iso.execute("SELECT count(*) FROM trades WHERE trade_id = 'LATE-1'").fetchone()[0] == 1
    finally:
        iso.close()
