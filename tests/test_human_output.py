"""What the commands print for people: the same fact the same way (NULL), no Python reprs, readable widths,
and the way on when something is missing (configs, what to run after the demo)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, Project, copy_database, run_cli
from zepix_store._sample.bot_history import build_bot_history
from zepix_store._sample.legacy import build_legacy_db
from zepix_store.attribution_report import AttributionReport, UnmappedValue

REPR = re.compile(r"\{'|\[\{|\bNone\b|\(\('|\[\('")  # dict, list of dicts, None, tuples as Python shows them


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    build_legacy_db(path, trades=600, seed=9)  # NULL, '' and odd-case logic types among them
    return path


def test_migrate_and_split_print_null_the_same_way_and_no_python_repr(project: Project, legacy: Path) -> None:
    copy_database(legacy, project.shared_db)

    outputs = {name: run_cli(name, "--dry-run", "-q", config=project) for name in ("migrate", "split")}

    for name, done in outputs.items():
        assert done.returncode == 0, done.stderr
        (unmapped,) = [line for line in done.stdout.splitlines() if line.startswith("unmapped logic_type values")]
        assert re.search(r": NULL x\d+, '' x1, ", unmapped), (name, unmapped)
        assert not REPR.search(done.stdout), (name, REPR.search(done.stdout))
    split = outputs["split"].stdout.splitlines()
    writable = [line for line in split if line.startswith("preflight writable: ")]
    assert writable == [f"preflight writable: {project.data}: ok"]  # five new files, one folder: named once
    assert any(line.startswith(f"preflight disk: {project.data}: ") for line in split)
    (header,) = [i for i, line in enumerate(split) if line.startswith("table ") and "source rows" in line]
    buckets = split[header:header + 12]  # where each source row went: one line per table
    assert max(len(line) for line in buckets) <= 100, buckets


def test_a_missing_config_folder_says_to_name_it_with_config(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "zepix_store", "stats"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False, env={"PYTHONPATH": str(REPO), "PATH": ""})

    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"zepix-store stats: error: {tmp_path}/configs/store.yaml: file: no such folder: ")
    assert "--config DIR" in line


def test_the_demo_says_where_its_configs_are_and_what_to_run_next(tmp_path: Path) -> None:
    scratch = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "zepix_store.demo", "--dir", str(scratch), "--trades", "400", "-q"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)

    assert done.returncode == 0, done.stderr
    assert f"   configs: {scratch}/configs (store.yaml and one folder per plugin)" in done.stdout
    after = done.stdout.split("\n== next: ", 1)[1].splitlines()[1:]
    commands = [shlex.split(line, comments=True) for line in after if line.startswith("  zepix-store ")]
    assert len(commands) >= 4 and all("--config" in argv for argv in commands)
    for argv in commands:  # each runs as printed, from anywhere
        ran = subprocess.run([sys.executable, "-m", "zepix_store", *argv[1:]], cwd=tmp_path, capture_output=True,
                             text=True, timeout=120, check=False, env={"PYTHONPATH": str(REPO), "PATH": ""})
        assert ran.returncode == 0, (argv, ran.stderr)


@pytest.fixture
def bot_file(project: Project) -> Project:
    """The bot's own small file, as issue 22 tried it: an older bot's six tables, no logic_type, about 26 trades."""
    build_bot_history(project.shared_db, trades=13, seed=3, older=True)
    return project


def test_a_clean_run_prints_a_screenful_with_no_zero_lines_and_no_empty_list(bot_file: Project) -> None:
    first = run_cli("split", "-q", config=bot_file)
    again = run_cli("split", "-q", config=bot_file)
    verify = run_cli("verify", "-q", config=bot_file)
    verbose = run_cli("verify", "-v", "-q", config=bot_file)

    assert [first.returncode, again.returncode, verify.returncode, verbose.returncode] == [0, 0, 0, 0]
    for done in (first, again):
        assert not [line for line in done.stdout.splitlines() if " 0 new rows" in line], done.stdout
    assert again.stdout.count("nothing to do") == 2, again.stdout  # the plugins on one line, the files on one
    assert len(again.stdout.splitlines()) < 25, again.stdout
    assert len(verify.stdout.splitlines()) < 20, verify.stdout  # was 69: a row per check
    assert len(verbose.stdout.splitlines()) > 60  # -v: every check
    for done in (first, again, verify, verbose, run_cli("stats", "-q", config=bot_file)):
        unwrapped = done.stdout.replace("\n      ", " ")  # a verify detail wraps under its check
        assert not [line for line in unwrapped.splitlines() if line.rstrip().endswith(":")
                    and not line.startswith(("all closed trades", "trades closed"))], done.stdout
    assert max(len(line) for line in verbose.stdout.splitlines()) <= 110


def test_sizes_are_in_kb_mb_gb_and_counts_agree_with_their_noun(bot_file: Project) -> None:
    dry = run_cli("split", "--dry-run", "-q", config=bot_file)
    migrate = run_cli("migrate", "--dry-run", "-q", config=bot_file)

    (disk,) = [line for line in dry.stdout.splitlines() if line.startswith("preflight disk: ")]
    assert re.search(r": \d+(\.\d)? [KMGT]B free, the copies need about \d+(\.\d)? [KMG]B \(ok\)$", disk), disk
    assert re.search(r"after a backup of \d+(\.\d)? [KM]B; nothing was written", migrate.stdout), migrate.stdout
    assert "bytes" not in dry.stdout + migrate.stdout
    assert "1 rows" not in dry.stdout and "1 row references a missing parent" not in dry.stdout
    assert not re.search(r"\b1 (checks|rows|trades|plugins|files|copies)\b|\(s\)", dry.stdout + migrate.stdout)


def test_a_mapping_column_with_no_unmapped_value_prints_no_empty_list() -> None:
    report = AttributionReport("legacy", ["logic_type", "strategy"], trades=3, by_rule={"strategy": 2, "default": 1},
                               by_plugin={"v3-logic-01-5min": 2, "legacy": 1},
                               unmapped={"logic_type": [], "strategy": [UnmappedValue("MANUAL", 1, 1)]},
                               unmapped_distinct={"logic_type": 0, "strategy": 1})

    lines = report.lines()

    assert not [line for line in lines if line.rstrip().endswith(":")], lines  # was `... values (...): `
    assert [line for line in lines if line.startswith("unmapped ")] == [
        "unmapped strategy values (trades no mapping decided): 'MANUAL' x1; of those left with legacy: 'MANUAL' x1"]


def test_migrate_names_each_owner_once_and_every_table_with_v(tmp_path: Path) -> None:
    # The owner table of a legacy file was one row per table and owner (48 rows on the demo): one per owner now.
    folder = tmp_path / "d"
    assert run_cli("demo", "--dir", folder, "--trades", "300", "-q").rc == 0
    shared = folder / "data" / "trading_bot.db"
    for verbose in (False, True):
        for suffix in ("-wal", "-shm"):
            Path(f"{shared}{suffix}").unlink(missing_ok=True)
        shutil.copy(next((folder / "data" / "backups").glob("*pre-migrate.db")), shared)
        done = run_cli("migrate", *(["-v"] if verbose else []), config=folder / "configs")
        assert done.rc == 0, done.stderr
        owner_rows = [line for line in done.stdout.splitlines() if line.startswith(("legacy ", "v3-", "v6-"))]
        if verbose:
            per_table = [line for line in done.stdout.splitlines() if line.startswith(("trades ", "sl_events "))]
            assert len(per_table) > 5 and any(line.startswith("table ") for line in done.stdout.splitlines())
        else:
            assert 2 <= len(owner_rows) == len({line.split()[0] for line in owner_rows}) <= 9, done.stdout
            assert "(-v: the rows of each table and owner)" in done.stdout
