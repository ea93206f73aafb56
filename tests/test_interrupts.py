"""Ctrl-C: a command stops with exit 130 and `interrupted`, never with a SQLite error the interrupt caused.

sqlite3 drops an exception raised inside a callback SQLite makes into Python (the read-only guard runs on every
statement prepared for reading) and refuses the statement instead: an interrupted migrate once ended with
`not authorized to use function: count`, exit 1. The first test hits that window directly, many times; the
second interrupts migrate at random moments, as an operator would.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, Project, copy_database, logical_checksum, scalar, scaled
from zepix_store._sample.legacy import build_legacy_db
from zepix_store.cli import interrupts_outside_sqlite_callbacks
from zepix_store.readonly import WriteGuard
from zepix_store.schema import SCHEMA_VERSION


def _prepare_guarded_statements_until_interrupted(conn: sqlite3.Connection) -> None:
    for i in range(10**8):  # a new text each time: every statement is prepared, so the guard runs each time
        conn.execute(f"SELECT count(*) FROM sqlite_master WHERE {i} = {i}").fetchone()


def test_ctrl_c_while_the_read_only_guard_runs_is_a_keyboard_interrupt() -> None:
    conn = sqlite3.connect(":memory:")
    conn.set_authorizer(WriteGuard("main"))
    try:
        with interrupts_outside_sqlite_callbacks():
            for attempt in range(25):
                timer = threading.Timer(0.02 + 0.003 * attempt, os.kill, (os.getpid(), signal.SIGINT))
                timer.start()
                with pytest.raises(KeyboardInterrupt):  # not sqlite3.DatabaseError: not authorized
                    _prepare_guarded_statements_until_interrupted(conn)
                timer.join()
    finally:
        conn.close()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    build_legacy_db(path, trades=20000, seed=17)
    return path


# migrate's own main, started once the interpreter and the package are loaded: an interrupt before that is
# Python's own start-up (a KeyboardInterrupt traceback from an import), not the command's.
MIGRATE_WHEN_READY = """
import sys
from zepix_store import migrate
print("ready", file=sys.stderr, flush=True)
sys.exit(migrate.main(sys.argv[1:]))
"""


def _start_migrate(project: Project, extra: tuple[str, ...]) -> tuple[subprocess.Popen[str], float]:
    """A migrate process, returned once it is ready to run (and the time it was)."""
    env = {k: v for k, v in os.environ.items() if k != "ZEPIX_FAULT"}
    proc = subprocess.Popen([sys.executable, "-c", MIGRATE_WHEN_READY, "--config", str(project.configs), *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None and proc.stderr.readline() == "ready\n"
    return proc, time.monotonic()


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), ("--dry-run",)], ids=["migrate", "dry-run"])
def test_migrate_interrupted_at_random_moments_stops_cleanly(tmp_path: Path, legacy: Path,
                                                             extra: tuple[str, ...]) -> None:
    original = logical_checksum(legacy)
    clean = Project(tmp_path / "clean")
    copy_database(legacy, clean.shared_db)
    proc, ready = _start_migrate(clean, extra)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    duration = time.monotonic() - ready
    rng = random.Random(13)
    outcomes: dict[str, int] = {}
    for run in range(scaled(5, 10, 50)):
        project = Project(tmp_path / f"run{run}")
        copy_database(legacy, project.shared_db)
        proc, ready = _start_migrate(project, extra)
        time.sleep(max(0.0, ready + rng.uniform(0.0, duration) - time.monotonic()))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        if proc.returncode == -signal.SIGINT:  # Python's own exit had begun: the command finished first
            assert out.startswith(("dry run: ", "migrated ")) and out.endswith("\n"), (out, err)
        else:
            assert proc.returncode in (0, 130), (proc.returncode, err)
        assert "Traceback" not in err and "not authorized" not in err, err
        if proc.returncode == 130:
            assert err.strip().splitlines()[-1] == "zepix-store migrate: interrupted", err
        version = scalar(project.shared_db, "PRAGMA user_version")
        assert version in (0, SCHEMA_VERSION)  # fully old or fully new (a v0 file migrates straight to the current)
        if version == 0:  # fully old: not a byte of the content changed
            assert logical_checksum(project.shared_db) == original
        outcome = f"exit {proc.returncode}, schema version {version}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"migrate {' '.join(extra)} interrupted at random: {outcomes}")
    runs = sum(outcomes.values())
    interrupted = sum(n for outcome, n in outcomes.items() if outcome.startswith("exit 130,"))
    # an interrupt after migrate finished tests nothing: most must land while it runs
    # some must land mid-run (how many depends on the machine's load against the reference run)
    assert interrupted >= 1, f"only {interrupted} of {runs} interrupts landed while migrate ran: {outcomes}"
