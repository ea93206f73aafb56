"""convert killed with SIGKILL at random instants, then run again: the server ends equal to an uninterrupted run's.

Each kill converts into its own schema prefix of one database (the source file is only read, so every run shares
it); the state compared is every row of every store table as the server holds it (companions and zx_raw
included), the ledger, and each identity sequence's position. Small chunks make many commits, so a kill lands
between chunks, inside one, or during the final verification.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from zepix_store.schema import TABLES

from ..helpers import REPO, Project, child_env, legacy_project, legacy_template, scaled, sqlite_config

CHUNK_ROWS = "20"
KILLS = scaled(6, 20)
BACK_KILLS = scaled(4, 20)
BACK_CHUNK_ROWS = "5"  # the way back is quicker: smaller chunks keep its copy long enough to be hit


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    template = legacy_template(tmp_path_factory, trades=120, seed=41)
    project = legacy_project(tmp_path_factory.mktemp("desk") / "desk", template)
    project.set_all_shared(True)
    return project


def target_for(project: Project, pg_dsn: str, prefix: str) -> Path:
    """A PostgreSQL config for `prefix` beside the project (shipped routing: v3 in one schema, v6 each its own)."""
    target = project.root / f"pg-{prefix}"
    shutil.copytree(REPO / "configs", target)
    doc = yaml.safe_load((target / "store.yaml").read_text())
    doc.update(backend="postgresql", postgresql={"dsn": pg_dsn, "schema_prefix": prefix},
               plugins_dir=f"pg-{prefix}/plugins")
    (target / "store.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def command(project: Project, target: Path) -> list[str]:
    return [sys.executable, "-m", "zepix_store.convert", "--config", str(project.configs), "--to", str(target),
            "--chunk-rows", CHUNK_ROWS, "-q", "--json"]


def state(pg: psycopg.Connection[tuple[object, ...]], prefix: str) -> dict[str, object]:
    """Everything the server holds for the store of `prefix`, with the prefix taken out of the names."""
    out: dict[str, object] = {}
    schemas = [str(s) for (s,) in pg.execute(f"SELECT schema_name FROM {prefix}shared.zx_registry").fetchall()]
    for schema in sorted(schemas):
        name = schema.removeprefix(prefix)
        for table in TABLES:
            out[f"{name}.{table.name}"] = sorted(str(r[0]) for r in pg.execute(
                f"SELECT row_to_json(t)::text FROM {schema}.{table.name} t").fetchall())
            if "id" in table.column_names:
                out[f"{name}.{table.name}.next_id"] = pg.execute(
                    "SELECT pg_sequence_last_value(pg_get_serial_sequence(%s, 'id'))",
                    [f"{schema}.{table.name}"]).fetchone()
    out["ledger"] = sorted((str(s).removeprefix(prefix), str(p), str(t), int(str(r)), int(str(n)))
                           for s, p, t, r, n in pg.execute(
        f"SELECT schema_name, plugin_id, table_name, last_rowid, rows_copied FROM {prefix}shared.zx_convert_ledger"))
    return out


def wait_for_sessions_to_end(pg: psycopg.Connection[tuple[object, ...]]) -> None:
    """Wait until the killed convert's server session is gone: a COMMIT it sent may still be applied."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = pg.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid()").fetchone()
        if found == (0,):
            return
        time.sleep(0.02)
    pytest.fail("the killed convert's session outlived it by 10 s")


def wait_for_first_chunk(pg: psycopg.Connection[tuple[object, ...]], prefix: str,
                         proc: subprocess.Popen[bytes]) -> float:
    """Seconds from now until the run's ledger records a first committed chunk (or the run ended)."""
    started = time.monotonic()
    while proc.poll() is None and copied_rows(pg, prefix) == 0:
        time.sleep(0.005)
    return time.monotonic() - started


def copied_rows(pg: psycopg.Connection[tuple[object, ...]], prefix: str) -> int:
    """Rows the ledger records as copied (0: the run died before its first commit)."""
    try:
        found = pg.execute(f"SELECT coalesce(sum(rows_copied), 0) FROM {prefix}shared.zx_convert_ledger").fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return int(str(found[0])) if found else 0


def test_convert_killed_at_random_instants_then_rerun_equals_an_uninterrupted_run(
        project: Project, pg_dsn: str, figures) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as pg:
        clean = target_for(project, pg_dsn, "k0_")
        started = time.monotonic()
        proc = subprocess.Popen(command(project, clean), cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        first = wait_for_first_chunk(pg, "k0_", proc)
        out, err = proc.communicate(timeout=120)
        duration = time.monotonic() - started
        assert proc.returncode == 0, err
        total = json.loads(out)["rows_copied"]
        reference = state(pg, "k0_")
        rng = random.Random(2026)
        landed = 0
        for index in range(1, KILLS + 1):
            prefix = f"k{index}_"
            target = target_for(project, pg_dsn, prefix)
            proc = subprocess.Popen(command(project, target), cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            if index % 2:  # any instant of the run (its first tenths are the interpreter starting)
                time.sleep(rng.uniform(0.15, 1.0) * duration)
            else:  # any instant once the first chunk has committed, in the first half of the rest: the copy
                wait_for_first_chunk(pg, prefix, proc)
                time.sleep(rng.uniform(0.0, (duration - first) / 2))
            proc.kill()
            proc.wait(timeout=30)
            wait_for_sessions_to_end(pg)
            before = copied_rows(pg, prefix)
            landed += 0 < before < total
            rerun = subprocess.run(command(project, target), cwd=REPO, env=child_env(), capture_output=True,
                                   text=True, timeout=120, check=False)
            assert rerun.returncode == 0, (index, rerun.stderr)
            doc = json.loads(rerun.stdout)
            assert doc["rows_copied"] == total - before, (index, before, doc["rows_copied"])
            assert state(pg, prefix) == reference, index
        figures("convert kill -9", f"kills {KILLS}, landed mid-copy {landed}, rows per run {total}, "
                                   f"clean run {duration:.1f} s")
        assert landed >= 1, "no kill landed while rows were being copied: the test proves nothing"


def file_state(path: Path) -> dict[str, object]:
    """Every row of every store table of the file, type-tagged, and its ledger."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out: dict[str, object] = {t.name: sorted(repr(tuple((type(v).__name__, repr(v)) for v in r)) for r in
                                                 conn.execute(f"SELECT * FROM {t.name}")) for t in TABLES}
        out["ledger"] = sorted(conn.execute("SELECT * FROM zx_convert_ledger").fetchall())
        return out
    finally:
        conn.close()


def file_copied_rows(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found = conn.execute("SELECT coalesce(sum(rows_copied), 0) FROM zx_convert_ledger").fetchone()
    except sqlite3.OperationalError:  # no ledger yet
        return 0
    finally:
        conn.close()
    return int(found[0])


def test_the_way_back_killed_at_random_instants_then_rerun_equals_an_uninterrupted_run(
        project: Project, pg_dsn: str, figures) -> None:
    source = target_for(project, pg_dsn, "kb_")
    done = subprocess.run(command(project, source), cwd=REPO, env=child_env(), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr

    def back(target: Path) -> list[str]:
        return [sys.executable, "-m", "zepix_store.convert", "--config", str(source), "--to", str(target),
                "--chunk-rows", BACK_CHUNK_ROWS, "-q", "--json"]

    clean = sqlite_config(project, "back0", use_shared=True)
    shared = project.root / "back0-data" / "trading_bot.db"
    started = time.monotonic()
    proc = subprocess.Popen(back(clean), cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    while proc.poll() is None and file_copied_rows(shared) == 0:
        time.sleep(0.005)
    first = time.monotonic() - started
    out, err = proc.communicate(timeout=120)
    duration = time.monotonic() - started
    assert proc.returncode == 0, err
    total = json.loads(out)["rows_copied"]
    reference = file_state(shared)
    rng = random.Random(7)
    landed = 0
    for index in range(1, BACK_KILLS + 1):
        target = sqlite_config(project, f"back{index}", use_shared=True)
        path = project.root / f"back{index}-data" / "trading_bot.db"
        proc = subprocess.Popen(back(target), cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if index % 2:
            time.sleep(rng.uniform(0.15, 1.0) * duration)
        else:
            while proc.poll() is None and file_copied_rows(path) == 0:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, (duration - first) / 3))
        proc.kill()
        proc.wait(timeout=30)
        before = file_copied_rows(path)
        landed += 0 < before < total
        rerun = subprocess.run(back(target), cwd=REPO, env=child_env(), capture_output=True, text=True,
                               timeout=120, check=False)
        assert rerun.returncode == 0, (index, rerun.stderr)
        assert json.loads(rerun.stdout)["rows_copied"] == total - before, (index, before)
        assert file_state(path) == reference, index
    figures("convert back kill -9", f"kills {BACK_KILLS}, landed mid-copy {landed}, rows per run {total}, "
                                    f"clean run {duration:.1f} s")
    assert landed >= 1, "no kill landed while rows were being copied: the test proves nothing"
