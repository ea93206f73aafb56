"""Fixtures shared by every test (helpers live in tests/helpers.py).

PostgreSQL: `pg_server` starts a throwaway server (tests/pg_server.py) the first time a test asks for one and
stops it at the end of the session; `pg_dsn` is a fresh database per test module. Tests that use them carry the
`postgresql` marker (added here when missing). No server binaries: those tests skip, but with CI=true a skipped
PostgreSQL test fails the run (CI installs the server, so a skip there would hide every PostgreSQL test).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# Re-exported for the test modules that still import them from here (test_split, test_merge, test_verify,
# test_store, test_isolation: rewritten on other branches); new code imports them from tests.helpers.
from .helpers import CI, REPO, Backed, Project, copy_database, hold_write_lock, query
from .pg_server import PgServer, find_bin_dir, start_server

__all__ = ["REPO", "Project", "copy_database", "hold_write_lock", "query"]

_PG_FIXTURES = {"pg_server", "pg_dsn"}
_SKIPPED_POSTGRESQL = pytest.StashKey[list[str]]()
_DATABASES = itertools.count(1)
_PREFIXES = itertools.count(1)  # roles are per server: every PostgreSQL store of the session gets its own prefix


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "proj")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, project: Project) -> Backed:
    """The project's store on SQLite files, or on PostgreSQL (this module's fresh database, a prefix per test)."""
    if request.param == "sqlite":
        return Backed(project, "sqlite")
    request.node.add_marker(pytest.mark.postgresql)
    dsn = request.getfixturevalue("pg_dsn")
    prefix = f"t{next(_PREFIXES)}_"
    store = project.configs / "store.yaml"
    store.write_text(store.read_text() + f"backend: postgresql\npostgresql: {{dsn: {json.dumps(dsn)}, "
                                          f"schema_prefix: {prefix}}}\n")
    return Backed(project, "postgresql", dsn, prefix)


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"leaked threads: {leaked}"


# --- PostgreSQL -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("postgresql: no server binaries (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="postgresql: psycopg missing (pip install -e '.[postgresql]')")
    server = start_server(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pg_dsn(pg_server: PgServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A DSN of a fresh, empty database for this test module, dropped after it."""
    import psycopg
    from psycopg import sql

    stem = re.sub(r"[^a-z0-9_]", "_", request.module.__name__.rpartition(".")[2].lower())[:40]
    name = f"zxt_{stem}_{next(_DATABASES)}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg_server.dsn(name)
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _PG_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("postgresql"):
            item.add_marker(pytest.mark.postgresql)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    # an expected failure (xfail) reports as skipped too: it ran, so it hides nothing
    if getattr(report, "skipped", False) and not hasattr(report, "wasxfail") and item.get_closest_marker("postgresql"):
        item.config.stash.setdefault(_SKIPPED_POSTGRESQL, []).append(item.nodeid)
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if CI and session.config.stash.get(_SKIPPED_POSTGRESQL, []) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    skipped = config.stash.get(_SKIPPED_POSTGRESQL, [])
    if skipped and CI:
        terminalreporter.section("postgresql tests skipped under CI=true (run failed)", red=True)
        for nodeid in skipped:
            terminalreporter.line(f"SKIPPED-POSTGRESQL {nodeid}")
