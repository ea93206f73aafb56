"""What the commands print for people: the same fact the same way (NULL), no Python reprs, readable widths,
and the way on when something is missing (configs, what to run after the demo)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, Project, copy_database, run_cli
from zepix_store._sample.legacy import build_legacy_db

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
