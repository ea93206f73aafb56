"""`zepix-store pg-setup` on a real server: schemas, roles and row-level security from the shipped configs,
idempotent, a dry run that creates nothing, and the DSN each bot should use (never a password).

Roles are per server, not per database, so each test uses its own schema_prefix (test_pg_roles uses zx_).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.helpers import Project, one_line, run_cli
from zepix_store.schema import TABLES

A, B = "v6-logic-01-1min", "v6-logic-02-5min"  # each with its own isolated file
GROUP = ("v3-logic-01-5min", "v3-logic-02-15min")  # sharing zepix_v3_logic_combined.db
Conn = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture(scope="module")
def admin(pg_dsn: str) -> Iterator[Conn]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def configure(project: Project, pg_dsn: str) -> Callable[..., Project]:
    def configure(prefix: str, *, dsn: str = pg_dsn, block: str | None = None) -> Project:
        store = project.configs / "store.yaml"
        store.write_text(store.read_text() + "backend: postgresql\n"
                         + (block or f"postgresql: {{dsn: '{dsn}', schema_prefix: {prefix}}}\n"))
        return project

    return configure


def setup_json(project: Project, *args: str) -> dict[str, Any]:
    done = run_cli("pg-setup", "--json", *args, config=project)
    assert done.rc == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def names_on_server(admin: Conn, prefix: str) -> tuple[list[str], list[str]]:
    schemas = admin.execute("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname::text, %s) ORDER BY 1",
                            [prefix]).fetchall()
    roles = admin.execute("SELECT rolname::text FROM pg_roles WHERE starts_with(rolname::text, %s) ORDER BY 1",
                          [prefix]).fetchall()
    return [s for (s,) in schemas], [r for (r,) in roles]


def test_dry_run_prints_the_plan_and_creates_nothing(configure: Callable[..., Project], admin: Conn) -> None:
    project = configure("zxd_")
    plan = setup_json(project, "--dry-run")
    assert names_on_server(admin, "zxd_") == ([], [])
    assert (plan["dry_run"], plan["changed"]) == (True, False)
    assert {(s["schema"], s["kind"], s["state"]) for s in plan["schemas"]} == {
        ("zxd_shared", "shared", "to create"), ("zxd_v3_logic_combined", "isolated", "to create"),
        *((f"zxd_v6_logic_0{i}_{tf}", "isolated", "to create") for i, tf in enumerate(("1min", "5min", "15min", "1h"),
                                                                                      1))}
    by_id = {p["plugin_id"]: p for p in plan["plugins"]}
    assert len(by_id) == 8 and by_id[A]["role"] == f"zxd_p_{A}" and by_id[A]["state"] == "to create"
    assert by_id[A]["schemas"] == ["zxd_shared", "zxd_v6_logic_01_1min"]
    assert f"user={by_id[A]['role']}" in by_id[A]["dsn"]


def test_setup_twice_then_each_role_sees_only_its_own_rows(configure: Callable[..., Project], admin: Conn,
                                                           pg_dsn: str) -> None:
    project = configure("zxs_")
    first = setup_json(project)
    assert first["changed"] is True and {s["state"] for s in first["schemas"]} == {"created"}
    assert {p["state"] for p in first["plugins"]} == {"created"}
    schemas, roles = names_on_server(admin, "zxs_")
    assert len(schemas) == 6 and len(roles) == 8 + 1  # a role per plugin, and the tables' owner

    again = run_cli("pg-setup", config=project)
    assert again.rc == 0, again.stderr
    assert again.stdout.rstrip().endswith("already set up: nothing changed"), again.stdout
    second = setup_json(project)
    assert second["changed"] is False and {s["state"] for s in second["schemas"]} == {"exists"}
    assert [(p["role"], p["dsn"]) for p in second["plugins"]] == [(p["role"], p["dsn"]) for p in first["plugins"]]
    assert names_on_server(admin, "zxs_") == (schemas, roles)
    assert (setup_json(project, "--dry-run")["changed"], names_on_server(admin, "zxs_")) == (False, (schemas, roles))

    for plugin, n in ((A, 3), (B, 5), (GROUP[0], 2), (GROUP[1], 4)):
        admin.execute("INSERT INTO zxs_shared.trades (plugin_id, trade_id, pnl) SELECT %s, 't' || i, i "
                      "FROM generate_series(1, %s) i", [plugin, n])
    admin.execute("INSERT INTO zxs_v6_logic_02_5min.trades (plugin_id, trade_id) VALUES (%s, 'iso')", [B])
    admin.execute("INSERT INTO zxs_v3_logic_combined.trades (plugin_id, trade_id) VALUES (%s, 'g0'), (%s, 'g1')",
                  list(GROUP))
    dsn = {p["plugin_id"]: p["dsn"] for p in second["plugins"]}
    with psycopg.connect(dsn[A], autocommit=True) as conn:  # the printed DSN, as the bot would use it
        assert conn.execute("SELECT current_user").fetchone() == (f"zxs_p_{A}",)
        assert conn.execute("SELECT plugin_id, count(*) FROM zxs_shared.trades GROUP BY 1").fetchall() == [(A, 3)]
        assert conn.execute("DELETE FROM zxs_shared.trades WHERE plugin_id = %s", [B]).rowcount == 0
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM zxs_v6_logic_02_5min.trades")
    with psycopg.connect(dsn[GROUP[0]], autocommit=True) as conn:
        assert conn.execute("SELECT trade_id FROM zxs_v3_logic_combined.trades").fetchall() == [("g0",)]
    assert admin.execute("SELECT count(*) FROM zxs_shared.trades").fetchone() == (14,)


def test_a_grant_taken_away_by_hand_is_put_back_and_reported(configure: Callable[..., Project], admin: Conn) -> None:
    project = configure("zxg_")
    setup_json(project)
    admin.execute(f'REVOKE ALL ON zxg_shared.trades FROM "zxg_p_{A}"')
    assert setup_json(project)["changed"] is True
    assert setup_json(project)["changed"] is False
    assert admin.execute("SELECT has_table_privilege(%s, 'zxg_shared.trades', 'INSERT')", [f"zxg_p_{A}"]).fetchone() \
        == (True,)


def test_the_human_report_names_roles_and_dsns_without_a_password(configure: Callable[..., Project], pg_dsn: str,
                                                                  admin: Conn,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZX_TEST_PG_DSN", f"{pg_dsn} password=hunter2-secret")  # trust auth ignores it
    project = configure("zxh_", block="postgresql: {dsn_env: ZX_TEST_PG_DSN, schema_prefix: zxh_}\n")
    done = run_cli("pg-setup", config=project)
    assert done.rc == 0, done.stderr
    assert "hunter2" not in done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("v")}
    assert len(lines) == 8 and f"zxh_p_{A}" in lines[A] and f"user=zxh_p_{A}" in lines[A], done.stdout
    assert "created" in lines[A] and done.stdout.rstrip().endswith("6 schemas and 8 roles created; row-level "
                                                                   "security, policies and grants in place")
    assert len(names_on_server(admin, "zxh_")[0]) == 6
    assert admin.execute("SELECT count(*) FROM pg_policies WHERE schemaname = 'zxh_shared'").fetchone() == (
        len(TABLES) + 1,)


def test_a_password_in_the_dsn_is_refused_before_connecting(configure: Callable[..., Project], pg_dsn: str,
                                                            admin: Conn) -> None:
    project = configure("zxp_", dsn=f"{pg_dsn} password=hunter2-secret")
    done = run_cli("pg-setup", config=project)
    one_line(done, 2, "store.yaml: postgresql.dsn: holds a password")
    assert "hunter2" not in done.stderr + done.stdout and names_on_server(admin, "zxp_") == ([], [])


def test_an_unreachable_server_is_exit_7(configure: Callable[..., Project], tmp_path: Any) -> None:
    project = configure("zxu_", dsn=f"host={tmp_path / 'nothing'} dbname=zepix user=zepix")
    one_line(run_cli("pg-setup", config=project), 7, "cannot reach the server", "postgresql.dsn")


def test_an_unknown_database_is_a_config_error(configure: Callable[..., Project], pg_dsn: str) -> None:
    project = configure("zxn_", dsn=pg_dsn.replace("dbname=", "dbname=nothere_"))
    one_line(run_cli("pg-setup", config=project), 2, "the server refused the login", "does not exist")


def test_a_sqlite_store_is_refused(project: Project) -> None:
    one_line(run_cli("pg-setup", config=project), 2, "store.yaml: backend: is sqlite", "set backend: postgresql")


def test_without_psycopg_the_command_names_the_extra(configure: Callable[..., Project]) -> None:
    project = configure("zxm_")
    (project.root / "shadow").mkdir()
    (project.root / "shadow" / "psycopg.py").write_text("raise ImportError('no psycopg here')\n")
    done = run_cli("pg-setup", config=project, env={"PYTHONPATH": str(project.root / "shadow")})
    one_line(done, 2, "pip install 'zepix-store[postgresql]'")


def test_a_plugin_added_later_gets_its_role_and_the_others_keep_theirs(configure: Callable[..., Project],
                                                                        admin: Conn) -> None:
    project = configure("zxa_")
    first = setup_json(project)
    folder = project.configs / "plugins" / "v7-new"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"plugin_id": "v7-new", "database": {
        "use_shared": True, "shared_db": "data/trading_bot.db", "isolated_db": "data/zepix_v7_new.db"}}))
    second = setup_json(project)
    assert second["changed"] is True
    states = {p["plugin_id"]: (p["role"], p["state"]) for p in second["plugins"]}
    assert states.pop("v7-new") == ("zxa_p_v7-new", "created")
    assert states == {p["plugin_id"]: (p["role"], "exists") for p in first["plugins"]}
    assert [s["state"] for s in second["schemas"] if s["file"] == "zepix_v7_new.db"] == ["created"]
    assert admin.execute("SELECT has_schema_privilege('zxa_p_v7-new', 'zxa_v7_new', 'USAGE'), "
                         "has_schema_privilege('zxa_p_v7-new', 'zxa_v6_logic_01_1min', 'USAGE')").fetchone() == (
        True, False)
