"""`zepix-store verify` on a store on PostgreSQL: the server's checks (schemas, isolation, routes), read-only.

Roles are per server, not per database, so each test uses its own schema_prefix.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.helpers import Project, one_line, run_cli

NOT_ENFORCED = "the server does not enforce isolation yet: run `zepix-store pg-setup`"


@pytest.fixture
def configure(project: Project, pg_dsn: str) -> Callable[[str], Project]:
    def configure(prefix: str) -> Project:
        store = project.configs / "store.yaml"
        store.write_text(store.read_text() + f"backend: postgresql\npostgresql: {{dsn: '{pg_dsn}', "
                         f"schema_prefix: {prefix}}}\n")
        return project

    return configure


def verify_json(project: Project, rc: int = 0) -> dict[str, Any]:
    done = run_cli("verify", "--json", config=project)
    assert done.rc == rc, done.stdout + done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def checks(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["status"], c["detail"]) for c in doc["checks"]}


def test_before_pg_setup_verify_passes_warning_that_isolation_is_not_enforced(
        configure: Callable[[str], Project]) -> None:
    project = configure("zva_")
    done = run_cli("verify", config=project)
    assert done.rc == 0, done.stdout + done.stderr
    assert NOT_ENFORCED in " ".join(done.stdout.split())
    found = checks(verify_json(project))
    assert found["server"][0] == "ok" and found["isolation"][0] == "warn"
    assert found["schema:zva_shared"] == ("warn", "trading_bot.db: not created yet: the store creates it at first "
                                          "use or run pg-setup")
    assert found["config:v6-logic-01-1min"] == ("ok", "isolated in schema zva_v6_logic_01_1min "
                                                "(zepix_v6_logic_01_1min.db)")
    assert list(project.data.iterdir()) == []  # verify created nothing, on the server or on disk


def test_after_pg_setup_verify_passes_without_a_warning(configure: Callable[[str], Project]) -> None:
    project = configure("zvb_")
    assert run_cli("pg-setup", config=project).rc == 0
    doc = verify_json(project)
    assert doc["counts"]["warned"] == 0 and doc["counts"]["failed"] == 0, doc
    found = checks(doc)
    assert found["isolation"][0] == "ok" and "zvb_p_v6-logic-01-1min" in found["isolation"][1]
    assert found["schema:zvb_shared"] == ("ok", "trading_bot.db: version 1")
    assert len([name for name in found if name.startswith("schema:")]) == 6
    assert len([name for name in found if name.startswith("config:")]) == 8


def test_a_schema_newer_than_this_zepix_store_fails(configure: Callable[[str], Project], pg_dsn: str) -> None:
    project = configure("zvc_")
    assert run_cli("pg-setup", config=project).rc == 0
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("UPDATE zvc_shared.zx_registry SET schema_version = 99 WHERE schema_name = "
                      "'zvc_v6_logic_01_1min'")
    found = checks(verify_json(project, rc=1))
    assert found["schema:zvc_v6_logic_01_1min"][0] == "FAIL"
    assert "version 99, newer than this zepix_store knows" in found["schema:zvc_v6_logic_01_1min"][1]
    done = run_cli("verify", config=project)
    one_line(done, 1, "1 check failed: schema:zvc_v6_logic_01_1min")


def test_an_unreachable_server_exits_7(project: Project) -> None:
    pytest.importorskip("psycopg")
    store = project.configs / "store.yaml"
    store.write_text(store.read_text() + "backend: postgresql\npostgresql: {dsn: 'host=127.0.0.1 port=1 "
                     "dbname=zepix user=zepix connect_timeout=2'}\n")
    done = run_cli("verify", config=project)
    one_line(done, 7, "cannot reach the server")
    assert list(project.data.iterdir()) == []
