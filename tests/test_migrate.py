"""migrate: plugin_id in place, after a backup, in one transaction; killed anywhere it is fully old or fully new."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import (
    REPO,
    Project,
    byte_digest,
    cli_json,
    copy_database,
    final_backups,
    hold_write_lock,
    logical_checksum,
    names_under,
    one_line,
    read_sql,
    row_counts,
    run_cli,
    scalar,
    scaled,
    schema_checksum,
    table_columns,
)
from zepix_store._sample.legacy import MAPPING, build_legacy_db
from zepix_store.ops import migrate
from zepix_store.schema import SCHEMA_VERSION, TABLES

FAULT_POINTS = ["after_backup_copy", "after_backup_link", "after_backup",
                *(f"after_alter:{t.name}" for t in TABLES), "before_commit", "after_commit"]


@dataclass
class Reference:
    """A legacy file and the state a clean migration of it gives."""

    legacy: Path
    old_schema: str
    old_logical: dict[str, str]
    new_schema: str
    new_logical: dict[str, str]
    seconds: float


def _reference(root: Path, trades: int, seed: int) -> Reference:
    legacy = root / "legacy.db"
    build_legacy_db(legacy, trades=trades, seed=seed)
    project = Project(root / "clean")
    copy_database(legacy, project.shared_db)
    started = time.monotonic()
    done = run_cli("migrate", "-q", config=project.configs)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    return Reference(legacy, schema_checksum(legacy), logical_checksum(legacy),
                     schema_checksum(project.shared_db), logical_checksum(project.shared_db), seconds)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return _reference(tmp_path_factory.mktemp("small"), 1000, 3)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return _reference(tmp_path_factory.mktemp("big"), 20000, 7)


def classify(path: Path, ref: Reference) -> str:
    schema, logical = schema_checksum(path), logical_checksum(path)
    if (schema, logical) == (ref.old_schema, ref.old_logical):
        return "old"
    if (schema, logical) == (ref.new_schema, ref.new_logical):
        return "new"
    return "partial"


def assert_backups_whole(backup_dir: Path, ref: Reference) -> None:
    """Every backup under a final name is a complete, checked copy of the legacy file."""
    for backup in final_backups(backup_dir):
        assert scalar(backup, "PRAGMA quick_check") == "ok", backup
        assert logical_checksum(backup) == ref.old_logical, backup


# --- a normal run ---------------------------------------------------------------------------------------------------


def test_migrate_adds_plugin_id_everywhere_and_second_run_changes_nothing(project: Project, small: Reference) -> None:
    copy_database(small.legacy, project.shared_db)
    legacy_columns = table_columns(small.legacy)

    doc = cli_json("migrate", project)

    assert doc["status"] == "migrated" and (doc["from_version"], doc["to_version"]) == (0, SCHEMA_VERSION)
    backup = Path(str(doc["backup"]))
    assert backup.parent == project.data / "backups" and backup.name.endswith("-pre-migrate.db")
    assert logical_checksum(backup) == small.old_logical
    db = project.shared_db
    assert row_counts(db) == row_counts(small.legacy)
    # every cell keeps its value and storage class; only plugin_id is added
    assert logical_checksum(db, legacy_columns) == logical_checksum(small.legacy, legacy_columns)
    for t in TABLES:
        info = {r[1]: r for r in read_sql(db, f"PRAGMA table_info({t.name})")}
        assert info["plugin_id"][3:5] == (1, "'legacy'"), t.name  # NOT NULL DEFAULT 'legacy'
        assert list(info) == [*legacy_columns[t.name], "plugin_id"]
    assert scalar(db, "PRAGMA user_version") == SCHEMA_VERSION
    assert scalar(db, "SELECT count(*) FROM sqlite_stat1 WHERE idx = 'idx_trades_plugin_status_pnl'") == 1
    assert scalar(db, "PRAGMA integrity_check") == "ok"

    tables = doc["tables"]
    for name, entry in tables.items():  # the report's buckets are what the file now holds
        in_file = dict(read_sql(db, f"SELECT plugin_id, count(*) FROM {name} GROUP BY 1"))
        expected = dict(entry["by_plugin"])
        expected["legacy"] = expected.get("legacy", 0) + entry["orphans"] + entry["shared_rows"]
        assert in_file == {k: v for k, v in expected.items() if v}, name
        assert sum(entry["by_plugin"].values()) + entry["orphans"] + entry["shared_rows"] == entry["source_rows"]

    files = names_under(project.data)
    again = run_cli("migrate", config=project.configs)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"already migrated: {db} is at schema version {SCHEMA_VERSION}; nothing changed")
    assert names_under(project.data) == files  # no new backup
    assert (schema_checksum(db), logical_checksum(db)) == (small.new_schema, small.new_logical)


def test_report_lists_unmapped_values_duplicates_orphans_and_shared_lineage(project: Project,
                                                                           small: Reference) -> None:
    copy_database(small.legacy, project.shared_db)
    doc = cli_json("migrate", project)

    # SPEC 5 as revised: unmapped values per mapping column; SPEC 4: superseded snapshots apart from conflicts
    unmapped = {d["value"]: d["trades"] for d in doc["attribution"]["unmapped"]["logic_type"]}
    assert {None, "", " LOGIC1", "LOGIC1 ", "logic1", "COMBINEDLOGIC-1", "combinedlogic-9"} <= set(unmapped)
    assert unmapped[None] == scalar(small.legacy, "SELECT count(*) FROM trades WHERE logic_type IS NULL")
    # the fixture's trades map by logic_type; a trade_id saved open, then again closed, by one owner
    rows = read_sql(small.legacy, "SELECT rowid, trade_id, status, logic_type FROM trades WHERE trade_id IS NOT NULL")
    owner = {r: MAPPING.get(lt, "legacy") if isinstance(lt, str) else "legacy" for r, _, _, lt in rows}
    superseded = sum(1 for r, t, st, _ in rows if st == "open" and any(
        r2 > r and t2 == t and owner[r2] == owner[r] for r2, t2, _, _ in rows))
    assert doc["attribution"]["superseded_snapshots"] == superseded >= 1
    assert doc["attribution"]["conflicts_total"] == 0 and doc["attribution"]["conflicts"] == []
    children = [t.name for t in TABLES if t.lineage is not None]
    assert set(doc["orphans"]) == set(children)
    assert set(doc["shared_lineage"]) == set(children)
    assert scalar(project.shared_db, "SELECT count(*) FROM trades WHERE trade_id = 'E-DUP-1'") == 2

    human = run_cli("migrate", config=project.configs)  # the already-migrated table, per plugin
    assert "v3-logic-01-5min" in human.stdout and "profit_booking_orders" in human.stdout


def test_dry_run_reports_the_same_and_writes_nothing(project: Project, small: Reference) -> None:
    copy_database(small.legacy, project.shared_db)
    files, digest = names_under(project.data), byte_digest(project.shared_db)

    dry = cli_json("migrate", project, "--dry-run")

    assert dry["status"] == "dry run" and dry["backup"] is None
    assert names_under(project.data) == files  # no backup folder, no -wal/-shm left
    assert byte_digest(project.shared_db) == digest
    human = run_cli("migrate", "--dry-run", config=project.configs)
    assert human.returncode == 0 and "nothing was written" in human.stdout
    assert names_under(project.data) == files and byte_digest(project.shared_db) == digest

    real = cli_json("migrate", project)
    ignore = {"status", "backup", "seconds"}
    assert {k: v for k, v in dry.items() if k not in ignore} == {k: v for k, v in real.items() if k not in ignore}


def test_dry_run_of_an_older_file_says_what_would_be_created(project: Project) -> None:
    build_legacy_db(project.shared_db, trades=300, omit_tables=("trading_sessions",),
                    omit_columns={"trades": ("sl_multiplier",)})
    dry = cli_json("migrate", project, "--dry-run")
    real = cli_json("migrate", project)
    for doc in (dry, real):
        tables = doc["tables"]
        assert tables["trading_sessions"]["action"] == "create"
        assert tables["trades"]["action"] == "rebuild"
        assert tables["trades"]["added_columns"] == ["sl_multiplier"]
        assert tables["sl_events"]["action"] == "alter"


# --- older and half-migrated files --------------------------------------------------------------------------------


def test_seed_plan_half_migrated_file_ends_like_a_clean_legacy_file(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 6, 1, tzinfo=UTC)
    plain, seeded = Project(tmp_path / "plain"), Project(tmp_path / "seeded")
    build_legacy_db(plain.shared_db, trades=800, seed=9, now=now)
    build_legacy_db(seeded.shared_db, trades=800, seed=9, now=now, seed_plan_migrated=True)
    assert "plugin_id" in table_columns(seeded.shared_db)["trades"]

    for project in (plain, seeded):
        done = run_cli("migrate", "-q", config=project.configs)
        assert done.returncode == 0, done.stderr

    assert logical_checksum(seeded.shared_db) == logical_checksum(plain.shared_db)
    sql = " ".join(str(r[0]) for r in read_sql(seeded.shared_db, "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"))
    assert '"legacy"' not in sql  # the seed plan's double-quoted default is gone
    for t in TABLES:
        assert scalar(seeded.shared_db, f"SELECT count(*) FROM {t.name} WHERE plugin_id IS NULL") == 0


def test_a_trade_with_its_own_plugin_id_is_not_reported_unmapped(project: Project) -> None:
    build_legacy_db(project.shared_db, trades=300, seed=2, seed_plan_migrated=True)
    nulls = scalar(project.shared_db, "SELECT count(*) FROM trades WHERE logic_type IS NULL")
    conn = sqlite3.connect(project.shared_db)  # the bot, after the seed plan, wrote plugin_id itself
    conn.execute("INSERT INTO trades (trade_id, logic_type, plugin_id) VALUES ('OWN-1', NULL, 'v6-logic-01-1min'), "
                 "('OWN-2', 'odd', 'v6-logic-01-1min')")
    conn.commit()
    conn.close()
    own = scalar(project.shared_db, "SELECT count(*) FROM trades WHERE plugin_id <> 'legacy'")

    doc = cli_json("migrate", project)

    unmapped = {d["value"]: d["trades"] for d in doc["attribution"]["unmapped"]["logic_type"]}
    assert unmapped[None] == nulls and "odd" not in unmapped
    assert doc["tables"]["trades"]["by_plugin"]["v6-logic-01-1min"] == 2
    assert doc["attribution"]["by_rule"]["plugin_id"] == own  # rule 1: the seed plan's and the bot's own ids


def test_older_file_lacking_columns_and_tables(project: Project) -> None:
    omit_columns = {"trades": ("sl_multiplier", "lot_multiplier"), "sl_events": ("recovery_successful",)}
    build_legacy_db(project.shared_db, trades=500, seed=4, omit_tables=("profit_booking_events",),
                    omit_columns=omit_columns)
    legacy = project.root / "legacy-copy.db"
    copy_database(project.shared_db, legacy)
    old_columns = table_columns(legacy)

    doc = cli_json("migrate", project)

    assert doc["tables"]["profit_booking_events"]["action"] == "create"
    assert doc["tables"]["trades"]["added_columns"] == ["lot_multiplier", "sl_multiplier"]
    new_columns = table_columns(project.shared_db)
    for t in TABLES:
        assert set(new_columns[t.name]) == {*t.column_names, "plugin_id"}
    assert logical_checksum(project.shared_db, old_columns) == logical_checksum(legacy, old_columns)
    assert scalar(project.shared_db, "SELECT count(*) FROM profit_booking_events") == 0
    assert scalar(project.shared_db, "SELECT count(*) FROM trades WHERE sl_multiplier = 1.0") == row_counts(
        legacy)["trades"]  # the column's default fills the rows it was missing from


# --- refusals -------------------------------------------------------------------------------------------------------


def _make_bad_file(kind: str, path: Path, legacy: Path) -> None:
    if kind == "text":
        path.write_text("not a database\n" * 500)
    elif kind == "zero-byte":
        path.touch()
    elif kind == "table-less":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE notes (x)")
        conn.close()
    elif kind == "newer":
        copy_database(legacy, path)
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
    else:  # truncated to half, or one page of trades zeroed: found by quick_check, not by opening
        copy_database(legacy, path)
        data = bytearray(path.read_bytes())  # a closed file that no connection has open
        if kind == "truncated":
            data = data[: len(data) // 2]
        else:
            root = scalar(path, "SELECT rootpage FROM sqlite_master WHERE name = 'sl_events'")
            assert isinstance(root, int)
            data[(root - 1) * 4096:root * 4096] = bytes(4096)
        path.write_bytes(bytes(data))
    os.chmod(path, 0o600)


@pytest.mark.parametrize("kind,code,cause", [
    ("text", 5, "not a database"), ("truncated", 5, "integrity check failed|malformed"),
    ("zeroed-page", 5, "integrity check failed|malformed"), ("zero-byte", 5, "source has no tables"),
    ("table-less", 5, "source has no tables"), ("newer", 5, "newer than this zepix_store"),
    ("missing", 2, "no such database file"),
])
def test_bad_files_are_refused_before_any_backup(project: Project, small: Reference, kind: str, code: int,
                                                 cause: str) -> None:
    if kind != "missing":
        _make_bad_file(kind, project.shared_db, small.legacy)
    files = names_under(project.data)
    digest = byte_digest(project.shared_db) if kind != "missing" else ""

    for args in ([], ["--dry-run"]):
        done = run_cli("migrate", *args, config=project.configs)
        line = one_line(done, code, str(project.shared_db))
        assert any(c in line for c in cause.split("|")), line
        assert names_under(project.data) == files
    if digest:
        assert byte_digest(project.shared_db) == digest


def test_write_lock_held_by_the_bot(project: Project, small: Reference) -> None:
    copy_database(small.legacy, project.shared_db)
    holder = hold_write_lock(project.shared_db, 60, wal=True)
    try:
        done = run_cli("migrate", "--busy-timeout", "0.5", config=project.configs)
        one_line(done, 4, f"locked by another process: {project.shared_db}")
        assert holder.poll() is None  # it gave up while the lock was still held (60 s), not after it was released
        assert not (project.data / "backups").exists()
    finally:
        holder.kill()
        holder.communicate()
    assert classify(project.shared_db, small) == "old"

    holder = hold_write_lock(project.shared_db, 1.0, wal=True)  # released before the busy timeout: migrate waits
    try:
        done = run_cli("migrate", "-q", "--busy-timeout", "10", config=project.configs)
        assert done.returncode == 0, done.stderr
    finally:
        holder.communicate(timeout=30)
    assert classify(project.shared_db, small) == "new"


def test_dry_run_beside_a_running_bot_reads_the_committed_state(project: Project, small: Reference) -> None:
    copy_database(small.legacy, project.shared_db)
    holder = hold_write_lock(project.shared_db, 60, wal=True)  # has the file open with an uncommitted row
    try:
        files = names_under(project.data)
        dry = cli_json("migrate", project, "--dry-run", "--busy-timeout", "0.2")
        assert names_under(project.data) == files
    finally:
        holder.kill()
        holder.communicate()
    assert dry["tables"]["system_state"]["source_rows"] == row_counts(small.legacy)["system_state"]
    assert dry["tables"]["trades"]["source_rows"] == row_counts(small.legacy)["trades"]
    assert classify(project.shared_db, small) == "old"


# --- crashes --------------------------------------------------------------------------------------------------------


def _fault_case(root: Path, ref: Reference, point: str, action: str, monkeypatch: pytest.MonkeyPatch) -> str:
    project = Project(root)
    copy_database(ref.legacy, project.shared_db)
    if action == "kill":
        done = run_cli("migrate", "-q", config=project.configs, fault=f"{point}:{action}")
        assert done.returncode == -signal.SIGKILL, (point, done.stderr)
    else:  # the injected error needs no process of its own: cli.main here reads ZEPIX_FAULT as a child would
        with monkeypatch.context() as env:
            env.setenv("ZEPIX_FAULT", f"{point}:{action}")
            done = run_cli("migrate", "-q", config=project.configs)
        one_line(done, 3, "disk full", "trading_bot")
    state = classify(project.shared_db, ref)
    assert state == ("new" if point == "after_commit" else "old"), (point, action, state)
    backup_dir = project.data / "backups"
    assert_backups_whole(backup_dir, ref)
    rerun = run_cli("migrate", "-q", config=project.configs)
    assert rerun.returncode == 0, (point, action, rerun.stderr)
    assert classify(project.shared_db, ref) == "new", (point, action)
    assert not list(backup_dir.glob("*.tmp*")), (point, action)
    return state


def test_every_fault_point_leaves_the_file_old_or_new_and_a_rerun_finishes(tmp_path: Path, small: Reference,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # One case after the other on this thread, so that all but the kills run in this process (the reruns too).
    cases = [(p, a) for p in FAULT_POINTS for a in ("kill", "raise")]
    states = [_fault_case(tmp_path / f"case{i}", small, p, a, monkeypatch) for i, (p, a) in enumerate(cases)]
    print(f"fault points {len(FAULT_POINTS)} x 2: old {states.count('old')}, new {states.count('new')}, partial 0")


def _killed_migrate(root: Path, ref: Reference, delay: float) -> tuple[Project, bool]:
    """A project whose migrate process got SIGKILL after `delay` s; whether it landed mid-run."""
    project = Project(root)
    copy_database(ref.legacy, project.shared_db)
    argv = [sys.executable, "-m", "zepix_store.migrate", "-q", "--config", str(project.configs)]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGKILL), err
    return project, proc.returncode == -signal.SIGKILL  # False: migrate had finished before the kill


def _recovered_state(project: Project, ref: Reference, delay: float) -> str:
    """The killed file's state (old or new, never partial), after a rerun in this process made it new."""
    state = classify(project.shared_db, ref)
    assert state in ("old", "new"), (delay, state)
    assert_backups_whole(project.data / "backups", ref)
    rerun = run_cli("migrate", "-q", config=project.configs)
    assert rerun.returncode == 0, rerun.stderr
    assert classify(project.shared_db, ref) == "new"
    assert not list((project.data / "backups").glob("*.tmp*"))
    return state


@pytest.mark.slow
def test_random_sigkills_leave_the_file_old_or_new_and_a_rerun_equals_a_clean_run(tmp_path: Path,
                                                                                   big: Reference) -> None:
    rng = random.Random(20240601)
    runs = scaled(4, 10, 100)  # the fault points above cover every step boundary; these add unplanned instants
    delays = [rng.uniform(0.2, 1.1) * big.seconds for _ in range(runs)]
    with ThreadPoolExecutor(max_workers=2) as pool:  # the kills two at a time, the checks and reruns here
        killed = list(pool.map(lambda a: _killed_migrate(tmp_path / f"kill{a[0]}", big, a[1]), enumerate(delays)))
    states = [_recovered_state(project, big, delay) for (project, _), delay in zip(killed, delays)]
    landed = sum(hit for _, hit in killed)
    print(f"migrate killed at random, {landed}/{runs} mid-run, all recovered: old {states.count('old')}, "
          f"new {states.count('new')}, partial 0")
    # a kill after migrate finished tests nothing: most must land while it runs
    # some kills must land mid-run (how many depends on the machine's load against the reference run)
    assert landed >= 1, f"only {landed} of {runs} kills landed while migrate ran"


def test_planned_action_matches_upgrade() -> None:
    trades = TABLES[0]
    assert migrate.planned_action(trades, None) == "create"
    assert migrate.planned_action(trades, set(trades.column_names)) == "alter"
    assert migrate.planned_action(trades, {*trades.column_names, "plugin_id"}) == "rebuild"
    assert migrate.planned_action(trades, set(trades.column_names[:-1])) == "rebuild"
    keyed = next(t for t in TABLES if t.key)
    assert migrate.planned_action(keyed, set(keyed.column_names)) == "rebuild"


def test_upgrade_rechecks_the_version_under_the_write_lock(tmp_path: Path) -> None:
    """Two upgraders racing: the second one, past its first look, finds the work done and changes nothing."""
    from zepix_store import upgrade as upgrade_module
    from zepix_store._sample.legacy import MAPPING, build_legacy_db
    from zepix_store.attribution import AttributionRules
    from zepix_store.backend.sqlite_file import connect_sync

    rules = AttributionRules(MAPPING)
    path = tmp_path / "race.db"
    build_legacy_db(path, trades=50)
    first, second = connect_sync(path), connect_sync(path)
    try:
        assert upgrade_module.file_version(second, path) == 0  # second has looked: the file is old
        assert upgrade_module.upgrade(first, path, rules).changed
        before = second.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        original = upgrade_module.file_version
        looks: list[int] = []

        def stale_first_look(conn: sqlite3.Connection, where: object) -> int:
            looks.append(0 if not looks else original(conn, where))  # the first look predates `first`'s commit
            return looks[-1]

        upgrade_module.file_version = stale_first_look  # type: ignore[assignment]
        try:
            report = upgrade_module.upgrade(second, path, rules)
        finally:
            upgrade_module.file_version = original  # type: ignore[assignment]
        assert looks == [0, SCHEMA_VERSION]
        assert not report.changed and report.rebuilt_tables == [] and report.altered_tables == []
        assert second.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == before
    finally:
        first.close()
        second.close()
