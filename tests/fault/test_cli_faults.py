"""A5, B1-B3, C2, C3, E1/E3 through the command line: reruns, full disks, lock holders, a running bot, bad configs.

Each command runs through helpers.run_cli: in this process, or as a real subprocess where the case needs one (a
fault point that kills it, a mount namespace, a setpriv wrapper, a worker thread). Every refusal is checked for the plan's
four things: the documented exit code (2 config, 3 disk full / I/O / read-only, 4 locked), one stderr line naming
the path and the cause without a traceback, the source unchanged (schema, logical and byte checksums), and no
stray file under a final name. Full disks are real tmpfs mounts in a private mount namespace (root only; see
helpers.MountedTmpfs).

What happens beside a running bot (C3), documented here and in the figures:
- a bot of the legacy schema (plain sqlite3, before zepix_store) keeps writing while `migrate` runs: migrate takes
  the write lock between two of its writes, backs up and migrates in one transaction while the bot's next write
  waits on its busy timeout; nothing the bot acknowledged is lost. Rows it writes after the migration carry the
  column default (the default plugin id): stop the old bot before migrating.
- a bot using the library in shared mode upgrades the legacy file itself on first use (after a backup), so
  `migrate` then reports "already migrated"; `split` only reads the shared file and works beside it, and a rerun
  after the bot stops copies the rest: every acknowledged write ends up copied exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    GROUP_FILE,
    REPO,
    V3,
    V6,
    MountedTmpfs,
    Project,
    byte_checksum,
    checksums,
    child_env,
    files_under,
    hold_write_lock,
    json_out,
    legacy_project,
    mounted_tmpfs,
    one_line,
    privileged,
    read_sql,
    run_cli,
    scaled,
    state,
)
from zepix_store._sample.legacy import build_legacy_db
from zepix_store.schema import SCHEMA_VERSION

DB = "trading_bot.db"
LAST_FILE = "zepix_v6_logic_04_1h.db"  # split handles the files in plugin order: this one comes last


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    build_legacy_db(path, trades=scaled(2000, 6000), seed=17)
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixed-size legacy file (about 690 KB) for the tmpfs tests, whose sizes are worked out from it."""
    path = tmp_path_factory.mktemp("small") / "legacy.db"
    build_legacy_db(path, trades=1000, seed=5)
    return path


def isolated_state(project: Project) -> dict[str, tuple[str, dict[str, str], str]]:
    return {p.name: state(p) for p in sorted(project.data.glob("zepix_*.db"))}


def same_content(a: tuple[str, dict[str, str]], b: tuple[str, dict[str, str]]) -> bool:
    """Equal schema and rows."""
    return a[0] == b[0] and a[1] == b[1]


def backups_of(project: Project) -> dict[str, tuple[int, int, str]]:
    """Each backup under a final name: (inode, mtime_ns, sha256) shows it was never rewritten."""
    found = {}
    for path in sorted((project.data / "backups").glob("*.db")):
        st = path.stat()
        found[path.name] = (st.st_ino, st.st_mtime_ns, byte_checksum(path))
    return found


# --- A5: idempotent reruns --------------------------------------------------------------------------------------


def test_migrate_twice_and_after_a_kill_after_commit_changes_nothing(tmp_path: Path, template: Path,
                                                                     figures) -> None:
    clean = legacy_project(tmp_path / "clean", template)
    first = json_out(run_cli("migrate", "--json", "-q", config=clean))
    assert first["status"] == "migrated"
    done_state, backups, rows = state(clean.shared_db), backups_of(clean), _row_counts(clean.shared_db)

    again = run_cli("migrate", "-q", config=clean)
    assert again.rc == 0 and again.stdout.startswith(f"already migrated: {clean.shared_db}"), again.stdout
    assert json_out(run_cli("migrate", "--json", "-q", config=clean))["status"] == "already migrated"
    assert state(clean.shared_db) == done_state and _row_counts(clean.shared_db) == rows
    assert backups_of(clean) == backups and len(backups) == 1

    killed = legacy_project(tmp_path / "killed", template)
    crash = run_cli("migrate", "-q", config=killed, fault="after_commit:kill")  # committed, then SIGKILL before any output
    assert crash.rc == -9 and crash.stdout == ""
    assert checksums(killed.shared_db) == done_state[:2]
    kept = backups_of(killed)
    rerun = run_cli("migrate", "-q", config=killed)
    assert rerun.rc == 0 and rerun.stdout.startswith("already migrated"), rerun.stdout
    assert checksums(killed.shared_db) == done_state[:2] and backups_of(killed) == kept and len(kept) == 1
    figures("A5 idempotent reruns", "migrate: second run 'already migrated', 0 rows changed, file byte-identical, "
            "no new backup, the first never rewritten; after a kill after COMMIT the rerun says 'already migrated', "
            "checksum == clean run: yes")


def _row_counts(path: Path) -> dict[str, int]:
    tables = [t for (t,) in read_sql(path, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {str(t): int(read_sql(path, f'SELECT count(*) FROM "{t}"')[0][0]) for t in tables}


def test_split_twice_and_after_a_kill_after_the_last_link_copies_nothing_twice(tmp_path: Path, template: Path,
                                                                                figures) -> None:
    clean = legacy_project(tmp_path / "clean", template)
    first = json_out(run_cli("split", "--json", "-q", config=clean))
    copied = first["rows_copied"]
    assert isinstance(copied, int) and copied > 0
    reference = isolated_state(clean)
    assert len(reference) == 5

    again = run_cli("split", "-q", config=clean)
    assert again.rc == 0 and "nothing to do: every file is up to date" in again.stdout, again.stdout
    second = isolated_state(clean)
    assert {k: v[:2] for k, v in second.items()} == {k: v[:2] for k, v in reference.items()}
    doc = json_out(run_cli("split", "--json", "-q", config=clean))
    assert doc["rows_copied"] == 0 and set(doc["files"].values()) == {"up to date"}
    # Byte-identical from the second run on: the first reopen only switches a new file to WAL mode (header).
    assert isolated_state(clean) == second
    _assert_no_duplicates(clean, copied)

    killed = legacy_project(tmp_path / "killed", template)
    crash = run_cli("split", "-q", config=killed, fault=f"after_link:{LAST_FILE}:kill")  # all done, killed before exiting
    assert crash.rc == -9
    rerun = run_cli("split", "-q", config=killed)
    assert rerun.rc == 0 and "nothing to do" in rerun.stdout, rerun.stdout
    after = isolated_state(killed)
    assert after.keys() == reference.keys()
    assert all(same_content(after[k][:2], reference[k][:2]) for k in reference)
    assert not list(killed.data.glob("*.tmp*"))
    _assert_no_duplicates(killed, copied)
    figures("A5 idempotent reruns", f"split: second run 'nothing to do', 0 of {copied:,} rows copied again, rows "
            "and schema identical (bytes too from then on: the first reopen switches a new file to WAL); after a kill after the last file was linked the rerun says 'nothing to do', checksum "
            "== clean run: yes; duplicate rows 0 (split takes no backups)")


def _assert_no_duplicates(project: Project, copied: int) -> None:
    """Every copy is ledgered once, and the files hold exactly the rows the first run copied."""
    total = 0
    for path in project.data.glob("zepix_*.db"):
        (entries, distinct), = read_sql(path, "SELECT count(*), count(DISTINCT seg || ':' || shared_rowid) "
                                              "FROM zx_sync_pairs")
        assert entries == distinct
        total += int(entries)
    assert total == copied


# --- B1-B3: full disks (tmpfs) ---------------------------------------------------------------------------------


@privileged
def test_migrate_on_a_full_disk_changes_nothing_and_a_rerun_finishes(tmp_path: Path, small: Path,
                                                                     figures) -> None:
    clean = legacy_project(tmp_path / "clean", small)
    assert run_cli("migrate", "-q", config=clean).rc == 0
    reference = checksums(clean.shared_db)
    mnt = tmp_path / "mnt"
    with mounted_tmpfs("4m", mnt) as fs:
        Project(fs.view(mnt / "proj"))
        db, configs, data = mnt / "proj" / "data" / DB, mnt / "proj" / "configs", mnt / "proj" / "data"
        fs.install(small, db)
        before, size = fs.state(db), fs.view(db).stat().st_size
        steps = []
        # 200 KB free: the backup cannot be written; backup + 400 KB: the backup fits, the migration's WAL does not
        for leave, step in ((200_000, "backup"), (size + 400_000, "migration transaction")):
            ballast = fs.view(mnt / "ballast")
            fs.fill(ballast, leave)
            line = one_line(run_cli("migrate", "-q", config=configs, prefix=fs.prefix), 3, "disk full", str(data))
            assert ("backups/" in line) == (step == "backup"), line
            assert fs.state(db) == before
            _assert_only_whole_backups(fs, data, before)
            ballast.unlink()
            steps.append(step)
        assert run_cli("migrate", "-q", config=configs, prefix=fs.prefix).rc == 0
        assert fs.state(db)[:2] == reference
    figures("B1 migrate on a full disk (tmpfs 4 MiB)", f"ENOSPC at step {' and at step '.join(steps)}: exit 3 "
            "'disk full' naming the file; source unchanged: yes (schema, logical, bytes); .tmp/-journal left 0; "
            "rerun after freeing space ok, == clean run")


def _assert_only_whole_backups(fs: MountedTmpfs, data: Path, before: tuple[str, dict[str, str], str]) -> None:
    """Beside the database only complete backups remain: no .tmp, no -journal, no half-written file."""
    names = files_under(fs.view(data))
    assert not [n for n in names if n.endswith((".tmp", "-journal")) or ".tmp-" in n], names
    for name in names:
        if name.startswith("backups/") and name.endswith(".db"):
            assert fs.state(data / name)[1] == before[1], name


@privileged
def test_backup_on_a_full_disk_leaves_nothing_and_migrate_does_not_start(tmp_path: Path, small: Path,
                                                                         figures) -> None:
    project = legacy_project(tmp_path / "proj", small)
    backups = project.data / "backups"
    backups.mkdir(mode=0o700)
    before = state(project.shared_db)
    with mounted_tmpfs("256k", backups) as fs:  # smaller than the database: the backup cannot fit
        backup = run_cli("backup", "-q", config=project, prefix=fs.prefix)
        one_line(backup, 3, "disk full", str(backups))
        left_by_backup = files_under(fs.view(backups))
        migrate = run_cli("migrate", "-q", config=project, prefix=fs.prefix)
        one_line(migrate, 3, "disk full", str(backups))
        left_by_migrate = files_under(fs.view(backups))
    assert left_by_backup == {} and left_by_migrate == {}  # the partial target and its -journal are removed
    assert state(project.shared_db) == before  # no migration without a verified backup
    assert "plugin_id" not in {r[1] for r in read_sql(project.shared_db, "PRAGMA table_info(trades)")}
    figures("B2 backup on a full disk (backup_dir on a 256 KiB tmpfs)", "backup and migrate exit 3 'disk full'; "
            "partial files left 0 (no .tmp, no -journal); migration started: no (source byte-identical)")


@privileged
def test_split_on_a_full_disk_keeps_finished_files_and_a_rerun_completes(tmp_path: Path, small: Path,
                                                                         figures) -> None:
    clean = legacy_project(tmp_path / "clean", small)
    assert run_cli("split", "-q", config=clean).rc == 0
    reference = {k: v[:2] for k, v in isolated_state(clean).items()}
    sizes = files_under(clean.data)
    room = sizes[GROUP_FILE] + sizes["zepix_v6_logic_01_1min.db"] * 3 // 2  # the group file and one more
    mnt = tmp_path / "mnt"
    with mounted_tmpfs("6m", mnt) as fs:
        Project(fs.view(mnt / "proj"))
        data, configs = mnt / "proj" / "data", mnt / "proj" / "configs"
        fs.install(small, data / DB)
        source = fs.state(data / DB)
        ballast = fs.view(mnt / "ballast")
        fs.fill(ballast, room)
        line = one_line(run_cli("split", "-q", config=configs, prefix=fs.prefix), 3, "disk full", str(data))
        assert fs.state(data / DB) == source
        names = files_under(fs.view(data))
        finished = sorted(n for n in names if n.startswith("zepix_") and n.endswith(".db"))
        assert not [n for n in names if ".tmp" in n], names  # the half-written file never had a final name
        assert 1 <= len(finished) < 5 and GROUP_FILE in finished, (finished, line)
        for name in finished:  # each finished file is complete: equal to the clean run's
            assert same_content(fs.state(data / name)[:2], reference[name]), name
        ballast.unlink()
        assert run_cli("split", "-q", config=configs, prefix=fs.prefix).rc == 0
        assert all(same_content(fs.state(data / n)[:2], reference[n]) for n in reference)
        assert fs.state(data / DB) == source
    failed_at = line.split(f"{data}/", 1)[1].split(":", 1)[0]
    figures("B3 split on a full disk (tmpfs)", f"plugins' files completed before ENOSPC {len(finished)} of 5 "
            f"(failed at {failed_at}); half-written DBs under a final name 0; source unchanged: yes; rerun after "
            "freeing space completes, == clean run")


# --- C2: a foreign write-lock holder, from the CLI ---------------------------------------------------------------

def _release(holder: subprocess.Popen[str]) -> None:
    holder.kill()
    holder.communicate(timeout=30)


def test_migrate_and_split_beside_a_foreign_write_lock(tmp_path: Path, template: Path, figures) -> None:
    project = legacy_project(tmp_path / "proj", template)
    before = checksums(project.shared_db)
    holder = hold_write_lock(project.shared_db, 60)
    try:
        started = time.monotonic()
        refused = run_cli("migrate", "-q", config=project)  # the default busy timeout: 5 s
        gave_up = time.monotonic() - started
        started = time.monotonic()
        split = run_cli("split", "-q", config=project)  # reads only: a writer's lock does not stop it
        split_took = time.monotonic() - started
    finally:
        _release(holder)
    one_line(refused, 4, f"locked by another process: {project.shared_db}", "nothing was changed")
    assert gave_up > 4.5, gave_up  # it waited the 5 s busy timeout out; exit 4 says it gave up before the 60 s holder
    assert not (project.data / "backups").exists()
    assert split.rc == 0, split.stderr
    assert checksums(project.shared_db) == before

    # Timed from before the holder starts: it takes the lock after this and keeps it 2 s, so a migrate that
    # waited it out ends 2 s or more later however busy the machine (load only adds time).
    started = time.monotonic()
    holder = hold_write_lock(project.shared_db, 2.0)
    waited = run_cli("migrate", "-q", config=project)
    took = time.monotonic() - started
    holder.communicate(timeout=30)
    assert holder.returncode == 0
    assert waited.rc == 0, waited.stderr
    assert took >= 2.0, took  # it cannot have finished while the holder still had the lock
    assert read_sql(project.shared_db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    figures("C2 foreign write lock (CLI)", f"30 s holder: migrate gave up after {gave_up:.1f} s with exit 4 "
            f"'locked by another process: <path>', nothing written, no backup; split beside it exit 0 in "
            f"{split_took:.1f} s, shared file unchanged; 2 s holder: migrate waited and finished ({took:.1f} s, "
            "exit 0)")


# --- C3: migrate and split while a bot keeps writing -------------------------------------------------------------

OLD_BOT = """
import os, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
print("ready", flush=True)
i = 0
while not os.path.exists(sys.argv[2]):
    started = time.monotonic()
    try:
        conn.execute("INSERT INTO trades (trade_id, symbol, status, pnl, logic_type) "
                     "VALUES (?, 'EURUSD', 'closed', 1.0, 'LOGIC1')", (f"OLD-{i}",))
        print(f"OLD-{i} {time.monotonic() - started:.3f}", flush=True)
    except sqlite3.Error as exc:
        print(f"ERROR {exc}", flush=True)
    i += 1
    time.sleep(0.05)
"""

LIBRARY_BOT = """
import asyncio, os, sys, time
from zepix_store import Store, Trade

async def main():
    async with Store.open(sys.argv[1]) as store:
        db = store.for_plugin(sys.argv[2])
        await db.get_statistics()  # opens the shared file (and upgrades a legacy one, after a backup)
        print("ready", flush=True)
        i = 0
        while not os.path.exists(sys.argv[3]):
            started = time.monotonic()
            await db.save_trade(Trade(trade_id=f"BOT-{i}", symbol="EURUSD", status="closed", pnl=1.0))
            print(f"BOT-{i} {time.monotonic() - started:.3f}", flush=True)
            i += 1
            await asyncio.sleep(0.05)

asyncio.run(main())
"""


class Bot:
    """A writer subprocess; its stdout (a file) lists each write after it committed, with how long it took."""

    def __init__(self, tmp: Path, code: str, *args: object) -> None:
        self.stop, self.out = tmp / "stop", tmp / "bot.out"
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args), str(self.stop)],
                                         stdout=out, stderr=subprocess.PIPE, text=True, cwd=REPO, env=child_env())
        self.wait_for(0)

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines()

    def acked(self) -> list[str]:
        return [line.split()[0] for line in self.lines()[1:] if not line.startswith("ERROR")]

    def wait_for(self, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if lines and lines[0] == "ready" and len(lines) > n:
                return
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            time.sleep(0.02)
        raise AssertionError(f"the bot did not write {n} rows in {timeout} s")

    def finish(self) -> tuple[list[str], list[str], float]:
        """Stop it; return (acknowledged ids, errors, longest wait of one write in s)."""
        self.stop.touch()
        _, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        lines = self.lines()[1:]
        errors = [line for line in lines if line.startswith("ERROR")]
        waits = [float(line.split()[1]) for line in lines if not line.startswith("ERROR")]
        return self.acked(), errors, max(waits, default=0.0)


def test_migrate_beside_a_running_legacy_bot_loses_no_write(tmp_path: Path, template: Path, figures) -> None:
    project = legacy_project(tmp_path / "proj", template)
    bot = Bot(tmp_path, OLD_BOT, project.shared_db)
    try:
        bot.wait_for(10)
        migrated = run_cli("migrate", "--json", "-q", config=project)
        during = len(bot.acked())
        bot.wait_for(during + 10)
    finally:
        acked, errors, longest = bot.finish()
    doc = json_out(migrated)
    assert doc["status"] == "migrated" and not errors, errors
    owners = dict(read_sql(project.shared_db, "SELECT trade_id, plugin_id FROM trades WHERE trade_id LIKE 'OLD-%'"))
    assert set(acked) <= set(owners), "an acknowledged write of the bot is missing"
    before = [a for a in acked if owners[a] == V3[0]]  # present at the migration: attributed by the mapping
    assert before and {owners[a] for a in acked} <= {V3[0], "legacy"}
    assert read_sql(project.shared_db, "PRAGMA integrity_check") == [("ok",)]
    figures("C3 migrate beside a running bot", f"legacy-schema bot (plain sqlite3, a write every 50 ms): migrate "
            f"worked online (exit 0); bot writes {len(acked)}, lost 0, errors 0, longest wait for the lock "
            f"{longest * 1000:.0f} ms; {len(before)} written before the migration attributed by the mapping, "
            f"{len(acked) - len(before)} after it kept the default id (stop the old bot before migrating)")


def test_split_beside_a_running_library_bot_loses_no_write(tmp_path: Path, template: Path, figures) -> None:
    project = legacy_project(tmp_path / "proj", template)
    plugin = V6[0]
    project.set_use_shared(plugin, True)
    bot = Bot(tmp_path, LIBRARY_BOT, project.configs, plugin)  # its first use upgrades the legacy file
    try:
        bot.wait_for(5)
        migrate = run_cli("migrate", "-q", config=project)
        split = run_cli("split", "-q", config=project)
        # Reports that attribute and count the shared file beside the writer (each once read two snapshots).
        reports = [run_cli(*args, "-q", config=project) for args in (("verify",), ("split", "--dry-run"), ("verify",))]
        early = run_cli("split", "--plugin", plugin, "--json", "-q", config=project)
        copied_early = len(bot.acked())
        bot.wait_for(copied_early + 10)
    finally:
        acked, errors, longest = bot.finish()
    assert migrate.rc == 0 and migrate.stdout.startswith("already migrated"), migrate.stdout
    assert split.rc == 0, split.stderr
    assert [r.rc for r in reports] == [0, 0, 0], [r.stderr for r in reports]
    assert json_out(early)["ok"] is True
    late = json_out(run_cli("split", "--plugin", plugin, "--json", "-q", config=project))  # after the bot stopped
    shared = {t for (t,) in read_sql(project.shared_db, "SELECT trade_id FROM trades WHERE plugin_id = ?", (plugin,))}
    copies = read_sql(project.isolated_db(plugin), "SELECT trade_id FROM trades WHERE plugin_id = ?", (plugin,))
    assert not errors and set(acked) <= shared
    assert sorted(t for (t,) in copies) == sorted(shared) and len(copies) == len(set(copies))
    assert late["rows_copied"] == len(shared) - json_out(early)["rows_copied"]
    figures("C3 split beside a running bot", f"library bot (Store, use_shared, a write every 50 ms): its first use "
            f"upgraded the file, migrate said 'already migrated' (exit 0); split, split --dry-run, verify and "
            f"split --plugin worked beside it (exit 0); bot writes {len(acked)}, lost 0, errors 0, longest write {longest * 1000:.0f} ms; after it "
            f"stopped a rerun copied the rest: copies {len(copies)}/{len(shared)}, duplicates 0")


# --- E1/E3: malformed configs and traversal paths, every command -------------------------------------------------

PLUGIN = V6[0]
COMMANDS = ("migrate", "split", "verify", "stats", "backup")


def _edit_json(project: Project, edit: Callable[[dict[str, Any]], None]) -> Path:
    path = project.plugin_config_path(PLUGIN)
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return path


def _set_isolated(value: str) -> Callable[[Project, Path], tuple[Path, str]]:
    def apply(project: Project, outside: Path) -> tuple[Path, str]:
        raw = value.format(outside=outside)
        _edit_json(project, lambda d: d["database"].update(isolated_db=raw))
        return project.plugin_config_path(PLUGIN), "database.isolated_db"
    return apply


def _symlinked(kind: str) -> Callable[[Project, Path], tuple[Path, str]]:
    def apply(project: Project, outside: Path) -> tuple[Path, str]:
        if kind == "file":
            (outside / "existing.db").write_bytes(b"")
            (project.data / "p.db").symlink_to(outside / "existing.db")
            raw = "data/p.db"
        else:
            (project.data / "sub").symlink_to(outside, target_is_directory=True)
            raw = "data/sub/p.db"
        return _set_isolated(raw)(project, outside)
    return apply


def _raw_plugin(text: str, field: str) -> Callable[[Project, Path], tuple[Path, str]]:
    def apply(project: Project, outside: Path) -> tuple[Path, str]:
        path = project.plugin_config_path(PLUGIN)
        path.write_text(text.replace("{original}", path.read_text().strip()[1:-1]))
        return path, field
    return apply


def _store_yaml(old: str, new: str, field: str) -> Callable[[Project, Path], tuple[Path, str]]:
    def apply(project: Project, outside: Path) -> tuple[Path, str]:
        path = project.configs / "store.yaml"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))
        return path, field
    return apply


def _json_field(field: str, value: object) -> Callable[[Project, Path], tuple[Path, str]]:
    def apply(project: Project, outside: Path) -> tuple[Path, str]:
        def edit(doc: dict[str, Any]) -> None:
            if value is DELETE:
                doc.pop(field)
            elif field == "use_shared":
                doc["database"]["use_shared"] = value
            else:
                doc[field] = value
        return _edit_json(project, edit), "database" if field == "database" else field
    return apply


DELETE = object()
BAD_CONFIGS: dict[str, Callable[[Project, Path], tuple[Path, str]]] = {
    "truncated JSON": _raw_plugin('{"plugin_id": "v6-logic-01-1min", "datab', "malformed JSON"),
    "duplicate key": _raw_plugin('{{original}, "plugin_id": "v6-logic-01-1min"}', "plugin_id: duplicate key"),
    "NaN": _raw_plugin('{{original}, "risk": NaN}', "risk: NaN"),
    "use_shared \"false\"": _json_field("use_shared", "false"),
    "no database block": _json_field("database", DELETE),
    "YAML no -> False": _store_yaml("default_plugin_id: legacy", "default_plugin_id: no", "default_plugin_id"),
    "YAML python tag": _store_yaml("data_dir: data", "data_dir: !!python/object/apply:os.getcwd []", "python/"),
    "../../x.db": _set_isolated("../../x.db"),
    "absolute outside": _set_isolated("{outside}/x.db"),
    "file: URI": _set_isolated("file:x.db?mode=rwc"),
    "symlink out": _symlinked("file"),
    "symlinked parent": _symlinked("folder"),
}


def _bad_config_case(root: Path, small_db: Path, name: str) -> list[str]:
    project = legacy_project(root / "proj", small_db)
    outside = root / "outside"
    outside.mkdir()
    config_file, field = BAD_CONFIGS[name](project, outside)
    # backup, stats and verify leave out a plugin whose own config.json is broken and serve the rest (exit 2
    # all the same): backup then writes the shared file's backup, and only that (the figure counts the rest)
    left_out = config_file.name == "config.json" and not name.startswith(("..", "absolute", "file:", "symlink"))
    problems = []
    for command in COMMANDS:
        before = files_under(root)
        done = run_cli(command, "-q", config=project)
        line = one_line(done, 2, str(config_file), field)
        after = files_under(root)
        created = set(after) - set(before)
        changed = {k for k in before if after.get(k) != before[k]}  # removed or resized
        backups = Path("proj/data/backups")
        served = left_out and command == "backup" and not changed \
            and all(Path(k) == backups or Path(k).parent == backups for k in created)
        if (created or changed) and not served:
            problems.append(f"{name} / {command}: created or changed files {sorted(created)} {sorted(changed)}")
        assert line.startswith(f"zepix-store {command}: error: ")
    return problems


def test_bad_configs_and_traversal_paths_are_refused_by_every_command(tmp_path: Path, small: Path,
                                                                      figures) -> None:
    # In this process, one after the other: a refusal is cli.main's work, and a process per case (there are
    # len(BAD_CONFIGS) x len(COMMANDS)) cost more in interpreter start-ups than everything else here.
    problems = [p for i, name in enumerate(BAD_CONFIGS) for p in _bad_config_case(tmp_path / f"case{i}", small, name)]
    assert problems == []
    traversal = sum(1 for n in BAD_CONFIGS if n.startswith(("..", "absolute", "file:", "symlink")))
    figures("E1/E3 bad configs via the CLI", f"malformed configs {len(BAD_CONFIGS) - traversal}, traversal paths "
            f"{traversal}, x {len(COMMANDS)} commands ({', '.join(COMMANDS)}): exit 2 with one line naming the file "
            f"and field {len(BAD_CONFIGS) * len(COMMANDS)}/{len(BAD_CONFIGS) * len(COMMANDS)}; accepted 0; files "
            "or folders created anywhere under the tmp root 0 (but the shared file's backup that backup still makes "
            "when it leaves out one plugin's broken config.json)")
