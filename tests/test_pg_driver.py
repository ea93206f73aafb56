"""PostgreSQL stays optional: nothing needs psycopg until it is used, and CI cannot skip the server tests."""

from __future__ import annotations

import sys

from .helpers import child_env, run, run_python

WITHOUT_PSYCOPG = """
import importlib, pkgutil, sys
sys.modules["psycopg"] = None  # as if the extra were not installed: `import psycopg` raises ImportError
import zepix_store
from zepix_store.errors import ConfigError
for module in pkgutil.walk_packages(zepix_store.__path__, "zepix_store."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
from zepix_store.backend.postgresql.ddl import ensure_schemas
from zepix_store.backend.postgresql.names import Layout, read_registry, register_schemas
from zepix_store.backend.postgresql.roles import setup_isolation
from zepix_store.backend.postgresql.values import encode_row
calls = [lambda: ensure_schemas(None, Layout("zx_", "t.db")), lambda: setup_isolation(None, Layout("zx_", "t.db")),
         lambda: encode_row("trades", {}, None), lambda: read_registry(None, "zx_"),
         lambda: register_schemas(None, Layout("zx_", "t.db"))]
for call in calls:
    try:
        call()
    except ConfigError as exc:
        print(exc.exit_code, exc)
"""


def test_every_module_imports_without_psycopg_and_using_it_names_the_extra() -> None:
    result = run_python(WITHOUT_PSYCOPG)
    assert result.returncode == 0, result.stderr
    line = "2 backend postgresql: the psycopg driver is not installed (pip install 'zepix-store[postgresql]')"
    assert result.stdout.splitlines() == [line] * 5


def test_a_postgresql_test_skipped_for_want_of_a_server_fails_the_run_under_ci() -> None:
    test = "tests/test_pg_names.py::test_the_server_holds_exactly_the_recorded_names"
    # Without Hypothesis's plugin (about a second of imports per run; this test uses none of it).
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-rs", test]
    local = run(args, timeout=120, env=child_env(CI="", ZEPIX_TEST_PG_BINDIR=""))
    assert local.returncode == 0 and "1 skipped" in local.stdout and "no server binaries" in local.stdout
    ci = run(args, timeout=120, env=child_env(CI="true", ZEPIX_TEST_PG_BINDIR=""))
    assert ci.returncode == 1, ci.stdout
    assert f"SKIPPED-POSTGRESQL {test}" in ci.stdout
