"""D2, D4, D5 from the command line: corrupt databases, -wal pairing, read-only files, folders and file systems.

Every refusal is checked for the plan's four things: the documented exit code, one stderr line naming the path
and the cause (no traceback), the source unchanged (byte checksum of the file and its -wal, taken in a child
process), and no new file under a final name. A read-only SQLite reader of a WAL database leaves an empty
`-wal` and a `-shm` beside it that it cannot remove; those are the only new files allowed, beside the source.

Exit codes (errors.py): 1 verify found a failed check, 3 I/O or read-only, 5 corrupt or not a database.
test_migrate.py already refuses a truncated and a zeroed-page file for migrate; this file covers every command.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    REPO,
    V3,
    Project,
    Result,
    byte_checksum,
    child_env,
    files_under,
    json_out,
    legacy_project,
    logical_checksum,
    mounted_tmpfs,
    no_dac,
    one_line,
    privileged,
    read_sql,
    run_cli,
    scaled,
    state,
    stray,
)
from zepix_store._sample.legacy import build_legacy_db, write_wal_only_trades
from zepix_store.plugin_lock import LOCK_DIR

DB = "trading_bot.db"
COMMANDS = ("migrate", "split", "verify", "backup", "stats")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    build_legacy_db(path, trades=scaled(1500, 4000), seed=31)
    return path


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another legacy database whose -wal (with its -shm) holds 50 committed trades, its writer gone."""
    path = tmp_path_factory.mktemp("foreign") / "other.db"
    build_legacy_db(path, trades=700, seed=99)
    write_wal_only_trades(path, 50)
    return path


def reading_project(root: Path, template: Path, command: str) -> Project:
    """A project whose plugins read the shared file for stats/verify (so they open it; no isolated file to miss)."""
    project = legacy_project(root, template)
    if command in ("stats", "verify"):
        project.set_all_shared(True)
    return project


# --- D2: corrupt databases ----------------------------------------------------------------------------------------


def corrupt(path: Path, kind: str) -> None:
    """Damage a closed database: cut it in half, zero a trades page in the middle, or overwrite its header."""
    if kind == "zeroed page":
        (page_size,), = read_sql(path, "PRAGMA page_size")
        leaves = [p for (p,) in read_sql(path, "SELECT pageno FROM dbstat WHERE name = 'trades' AND pagetype = 'leaf' "
                                             "ORDER BY pageno")]
        page = leaves[len(leaves) // 2]
    data = bytearray(path.read_bytes())  # a closed file no connection has open
    if kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "zeroed page":
        data[(page - 1) * page_size: page * page_size] = bytes(page_size)
    else:
        data[:16] = b"NotSQLiteFormat\x00"
    path.write_bytes(bytes(data))


# (command, kind) -> (exit code, what the line must say); verify reports a failed check (exit 1), the rest refuse.
D2_CASES = [(c, k) for c in COMMANDS for k in ("truncated", "zeroed page", "bad header")
            if not (c == "migrate" and k in ("truncated", "zeroed page"))]  # those two: test_migrate.py


@pytest.mark.parametrize(("command", "kind"), D2_CASES, ids=[f"{c}-{k.replace(' ', '-')}" for c, k in D2_CASES])
def test_corrupt_database_is_refused_before_anything_is_written(tmp_path: Path, template: Path, command: str,
                                                                kind: str, figures) -> None:
    project = reading_project(tmp_path / "proj", template, command)
    corrupt(project.shared_db, kind)
    digest, before = byte_checksum(project.shared_db), files_under(project.root)

    done = run_cli(command, "-q", config=project)

    if command == "verify":
        line = one_line(done, 1, f"integrity:{DB}")
        detail = json.loads(run_cli("verify", "--json", "-q", config=project).stdout)
        assert "integrity:" + DB in detail["failed"]
    else:
        line = one_line(done, 5, str(project.shared_db))
        assert any(c in line for c in ("not a database or corrupt", "integrity check failed")), line
    assert byte_checksum(project.shared_db) == digest
    assert set(stray(before, files_under(project.root))) <= {"data/backups"}
    assert not [p for p in files_under(project.data) if p.startswith("backups/")], "a backup of a corrupt file"
    cause = line.split(" error: ", 1)[1].replace(f"{project.shared_db}: ", "").split(" (run verify)")[0]
    figures("D2 corrupt DB", f"{command} / {kind}: refused, exit {done.rc} ({cause[:70]}); file unchanged, "
            "nothing written")


# --- D4: -wal pairing -------------------------------------------------------------------------------------------


def test_backup_holds_the_rows_that_live_only_in_the_wal(tmp_path: Path, template: Path, figures) -> None:
    project = legacy_project(tmp_path / "proj", template)
    write_wal_only_trades(project.shared_db, 500)
    assert Path(f"{project.shared_db}-wal").stat().st_size > 0
    live, digest = logical_checksum(project.shared_db), byte_checksum(project.shared_db)

    doc = json_out(run_cli("backup", "--json", "-q", config=project))

    backup = Path(doc["backups"][0]["backup"])
    (wal_rows,), = read_sql(backup, "SELECT count(*) FROM trades WHERE trade_id LIKE 'WAL-%'")
    assert wal_rows == 500
    assert logical_checksum(backup) == live
    assert byte_checksum(project.shared_db) == digest  # read, never checkpointed by the backup
    figures("D4a backup of WAL-only rows", f"WAL-only rows in backup {wal_rows}/500; backup == live view: yes")


KILLED_WRITER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA wal_autocheckpoint = 0")  # the rows stay in the -wal, as in a busy bot between checkpoints
for i in range(100000):
    conn.execute("INSERT INTO trades (trade_id, symbol, status, pnl) VALUES (?, 'EURUSD', 'closed', 1.0)",
                 (f"KILLED-{i}",))
    print(f"KILLED-{i}", flush=True)
"""


def test_restore_over_a_stale_wal_left_by_kill_9_equals_the_backup(tmp_path: Path, template: Path,
                                                                   figures) -> None:
    project = legacy_project(tmp_path / "proj", template)
    backup = Path(run_cli("backup", "-q", config=project).stdout.strip())
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(project.shared_db)], cwd=REPO,
                              env=child_env(), stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    acked = [writer.stdout.readline().strip() for _ in range(200)]
    writer.send_signal(signal.SIGKILL)
    writer.communicate(timeout=30)
    assert Path(f"{project.shared_db}-wal").stat().st_size > 0 and Path(f"{project.shared_db}-shm").exists()

    doc = json_out(run_cli("restore", str(backup), "--json", "-q", config=project))

    assert not Path(f"{project.shared_db}-wal").exists()
    assert logical_checksum(project.shared_db) == logical_checksum(backup)
    kept = Path(str(doc["kept"]))  # the replaced file, its -wal replayed: every acknowledged row is kept
    placeholders = ",".join("?" * len(acked))
    (in_kept,), = read_sql(kept, f"SELECT count(*) FROM trades WHERE trade_id IN ({placeholders})", tuple(acked))
    assert in_kept == len(acked)
    figures("D4b stale -wal after kill -9, then restore", f"restore matches backup: yes; stale -wal removed; "
            f"{in_kept}/{len(acked)} acked rows of the killed writer kept in the pre-restore copy")


def place_foreign_wal(foreign: Path, target: Path, with_shm: bool) -> None:
    """Put another database's log (and optionally its index) beside `target`; both files are closed."""
    Path(f"{target}-wal").write_bytes(Path(f"{foreign}-wal").read_bytes())
    if with_shm:
        Path(f"{target}-shm").write_bytes(Path(f"{foreign}-shm").read_bytes())


FOREIGN_CASES = [*((c, False) for c in (*COMMANDS, "restore")), ("migrate", True), ("split", True),
                 ("restore", True)]


@pytest.mark.parametrize(("command", "with_shm"), FOREIGN_CASES,
                         ids=[f"{c}-{'with-shm' if s else 'unpaired'}" for c, s in FOREIGN_CASES])
def test_a_wal_from_another_database_is_never_merged(tmp_path: Path, template: Path, foreign: Path, command: str,
                                                     with_shm: bool, figures) -> None:
    project = reading_project(tmp_path / "proj", template, command)
    args: list[str] = []
    if command == "restore":
        args = [run_cli("backup", "-q", config=project).stdout.strip()]
    original = logical_checksum(project.shared_db)
    place_foreign_wal(foreign, project.shared_db, with_shm)
    digest, before = byte_checksum(project.shared_db), files_under(project.root)
    wal = Path(f"{project.shared_db}-wal")

    done = run_cli(command, *args, "-q", config=project)

    if command == "restore" and with_shm:
        line = one_line(done, 5, str(project.shared_db), "move it aside")
        outcome = _restore_after_moving_aside(project, Path(args[0]), original)
    elif with_shm:  # cannot be told from a crash leftover by pairing: the pages do not fit, so it is corrupt
        line = one_line(done, 5, str(project.shared_db), "corrupt")
        outcome = "refused as corrupt (pages do not fit)"
    else:
        line = _unpaired_refusal(project, command, done)
        outcome = "refused: unpaired -wal"
    if not (command == "restore" and with_shm):
        assert byte_checksum(project.shared_db) == digest, "the foreign log was replayed into the file"
        assert wal.exists() and not (Path(f"{project.shared_db}-shm").exists() and not with_shm)
        assert stray(before, files_under(project.root)) in ([], ["data/backups"]), line
    figures("D4c foreign -wal", f"{command}, {'with its -shm' if with_shm else 'no -shm'}: {outcome}; "
            "merged silently: no")


def _unpaired_refusal(project: Project, command: str, done: Result) -> str:
    if command == "verify":
        line = one_line(done, 1, f"integrity:{DB}")
        assert "unpaired write-ahead log" in " ".join(done.stdout.split())  # a long detail wraps
        return line
    return one_line(done, 5, f"{project.shared_db}-wal", "unpaired write-ahead log")


def _restore_after_moving_aside(project: Project, backup: Path, original: dict[str, str]) -> str:
    """The pair was replayed by SQLite itself when restore took its lock; the damage is refused, not hidden."""
    aside = project.root / "aside"
    aside.mkdir()
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{project.shared_db}{suffix}")
        if path.exists():
            path.rename(aside / path.name)
    json_out(run_cli("restore", str(backup), "--json", "-q", config=project))
    assert logical_checksum(project.shared_db) == logical_checksum(backup) == original
    return "refused (exit 5: the merged file fails its check, move it aside); after that restore == backup"


# --- D5: read-only files, folders and file systems ---------------------------------------------------------------


def _refused_read_only(done: Result, path: Path, cause: str) -> str:
    line = one_line(done, 3, str(path), cause)
    return line


def _add_trade(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO trades (trade_id, logic_type, status, pnl) VALUES ('RO-NEW', 'LOGIC1', 'closed', 2)")
        conn.commit()
    finally:
        conn.close()


@privileged
def test_read_only_database_file(tmp_path: Path, template: Path, figures) -> None:
    project = legacy_project(tmp_path / "proj", template)
    project.set_all_shared(True)
    target = project.isolated_db(V3[0])
    assert run_cli("split", "--plugin", V3[0], "-q", config=project).rc == 0  # as root: the group file exists
    _add_trade(project.shared_db)  # one more row to copy, so the next split must write the group file
    os.chmod(project.shared_db, 0o444)
    os.chmod(target, 0o444)
    source, group, before = state(project.shared_db), byte_checksum(target), files_under(project.root)

    reads = {c: run_cli(c, "-q", config=project, prefix=no_dac()) for c in ("stats", "verify")}
    migrate = run_cli("migrate", "-q", config=project, prefix=no_dac())
    split = run_cli("split", "--plugin", V3[0], "-q", config=project, prefix=no_dac())

    assert {c: r.rc for c, r in reads.items()} == {"stats": 0, "verify": 0}, reads
    one_line(migrate, 3, f"read-only: {project.shared_db}", "no backup taken")
    one_line(split, 3, str(target), "read-only")
    assert state(project.shared_db) == source and byte_checksum(target) == group
    assert stray(before, files_under(project.root)) == []
    figures("D5 read-only", "0444 database: stats, verify read it (exit 0); migrate exit 3 'read-only: <path>' "
            "before any backup; split into a 0444 group file exit 3 'read-only'; nothing written")


@privileged
def test_read_only_folder_with_a_wal_database_and_no_shm(tmp_path: Path, template: Path, figures) -> None:
    project = legacy_project(tmp_path / "proj", template)
    project.set_all_shared(True)
    assert not Path(f"{project.shared_db}-shm").exists()
    source, before = state(project.shared_db), files_under(project.root)
    os.chmod(project.data, 0o555)
    try:
        runs = {c: run_cli(*c.split(), "-q", config=project, prefix=no_dac())
                for c in ("stats", "verify", "migrate", "backup", f"split --plugin {V3[0]}")}
    finally:
        os.chmod(project.data, 0o700)

    for command in ("verify", "stats"):  # read it immutable: no -wal, nobody can be writing (stats: issue 18)
        assert runs[command].rc == 0, runs[command].stderr
    for command, done in runs.items():
        if command.startswith("split"):  # reads the source as verify does; what it must create first is named
            _refused_read_only(done, project.data / LOCK_DIR, "Permission denied")
        elif command == "migrate":  # its read works now (immutable): the folder it must write is named
            one_line(done, 3, f"{project.data} (the folder of {DB})", "not writable", "no backup taken")
        elif command == "backup":  # the source is read; the folder it must create is named
            _refused_read_only(done, project.data / "backups", "Permission denied")
    assert state(project.shared_db) == source
    assert files_under(project.root) == before
    figures("D5 read-only", "0555 folder, WAL db, no -shm: verify and stats read it; "
            "migrate and backup exit 3 naming the folder they cannot write, split exit 3 naming the lock folder it cannot "
            "create; no file created")


@privileged
def test_read_only_file_system(tmp_path: Path, template: Path, figures) -> None:
    mnt = tmp_path / "mnt"
    with mounted_tmpfs("8m", mnt) as fs:
        project = Project(fs.view(mnt / "proj"))
        project.set_all_shared(True)
        db = mnt / "proj" / "data" / DB
        fs.install(template, db)
        digest = byte_checksum(fs.view(db))
        fs.sh('mount -o remount,ro "$1"', str(mnt))
        configs = mnt / "proj" / "configs"
        runs = {c: run_cli(*c.split(), "-q", config=configs, prefix=fs.prefix)
                for c in ("stats", "verify", "migrate", "backup", f"split --plugin {V3[0]}")}
        for command in ("verify", "stats"):  # nobody can be writing it: read as immutable
            assert runs[command].rc == 0, runs[command].stderr
        for command, done in runs.items():
            if command.startswith("split"):  # the source is read; what it must create first is named
                _refused_read_only(done, db.parent / LOCK_DIR, "Read-only file system")
            elif command == "backup":  # the source is read; the folder it must write is named
                _refused_read_only(done, db.parent / "backups", "Read-only file system")
            elif command not in ("verify", "stats"):
                _refused_read_only(done, db, "read-only file system")
        assert byte_checksum(fs.view(db)) == digest
        assert sorted(files_under(fs.view(mnt / "proj" / "data"))) == [DB]
    figures("D5 read-only", "remount,ro tmpfs: verify and stats read it; migrate exit 3 'read-only file system' "
            "naming the file, backup and split naming the folder or file they cannot create (was 'I/O error "
            "(unable to open database file)')")
    figures("D5 read-only", "ro scenarios 3, misleading errors 0")
