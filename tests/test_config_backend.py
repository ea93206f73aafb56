"""store.yaml's `backend` and `postgresql` block: each bad value refused naming the file and field (exit 2), no
password ever accepted in the file or echoed back, and nothing changed for a store.yaml without these keys."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.helpers import Project, one_line, run_cli
from zepix_store import Store
from zepix_store.compat import TradeDatabase
from zepix_store.config import PostgresConfig, load_config
from zepix_store.errors import ConfigError, StoreUnavailableError

SECRET = "s3cr3t-Pw"
GOOD_DSN = "host=db1 port=5432 dbname=zepix user=zepix"


def write_store(project: Project, extra: str) -> Path:
    store = project.configs / "store.yaml"
    store.write_text(store.read_text() + extra)
    return store


def refused(project: Project, extra: str, field: str, *needles: str) -> str:
    store = write_store(project, extra)
    with pytest.raises(ConfigError) as info:
        load_config(project.configs)
    message = str(info.value)
    assert message.startswith(f"{store}: {field}: "), message
    assert info.value.exit_code == 2 and "\n" not in message and SECRET not in message
    for needle in needles:
        assert needle in message, message
    return message


BAD = [
    ("backend: mysql\n", "backend", "unknown backend 'mysql' (expected sqlite or postgresql)"),
    ("backend: [postgresql]\n", "backend", "unknown backend list"),
    ("backend: postgresql\n", "postgresql", "missing: backend is postgresql"),
    ("backend: postgresql\npostgresql: host=db1\n", "postgresql", "must be a mapping"),
    (f"backend: postgresql\npostgresql: {{dsn: 'postgresql://zepix:{SECRET}@db1/zepix'}}\n", "postgresql.dsn",
     "holds a password", "PGPASSWORD", "~/.pgpass", "dsn_env"),
    (f"backend: postgresql\npostgresql: {{dsn: 'host=db1 dbname=zepix user=zepix password={SECRET}'}}\n",
     "postgresql.dsn", "holds a password"),
    (f"backend: postgresql\npostgresql: {{dsn: 'postgresql://zepix@db1/zepix?password={SECRET}'}}\n",
     "postgresql.dsn", "holds a password"),
    (f"postgresql: {{dsn: 'host=db1 dbname=zepix user=zepix password={SECRET}'}}\n",  # backend sqlite: still
     "postgresql.dsn", "holds a password"),
    (f"backend: postgresql\npostgresql: {{dsn: '{GOOD_DSN}', dsn_env: ZEPIX_PG_DSN}}\n", "postgresql.dsn",
     "give exactly one of dsn"),
    ("backend: postgresql\npostgresql: {schema_prefix: zx_}\n", "postgresql.dsn", "give exactly one of dsn"),
    ("backend: postgresql\npostgresql: {dsn: 'dbname=zepix user=zepix'}\n", "postgresql.dsn", "names no host"),
    ("backend: postgresql\npostgresql: {dsn: 'host=db1 user=zepix'}\n", "postgresql.dsn", "names no database"),
    ("backend: postgresql\npostgresql: {dsn: 'postgresql://db1/zepix'}\n", "postgresql.dsn", "names no user"),
    ("backend: postgresql\npostgresql: {dsn: 'host=db1 dbname=zepix user=zepix nonsense'}\n", "postgresql.dsn",
     "not a valid DSN"),
    ("backend: postgresql\npostgresql: {dsn: ''}\n", "postgresql.dsn", "must be a non-empty string"),
    (f"backend: postgresql\npostgresql: {{dsn: '{GOOD_DSN}', passwd: x}}\n", "postgresql.passwd", "unknown key"),
    ("backend: postgresql\npostgresql: {dsn_env: 'not a name'}\n", "postgresql.dsn_env",
     "not an environment variable name"),
    ("backend: postgresql\npostgresql: {dsn_env: ZX_TEST_UNSET_DSN}\n", "postgresql.dsn_env",
     "ZX_TEST_UNSET_DSN is not set"),
    *((f"backend: postgresql\npostgresql: {{dsn: '{GOOD_DSN}', schema_prefix: '{prefix}'}}\n",
       "postgresql.schema_prefix", "1-16 of a-z 0-9 _") for prefix in ("Zx_", "1x_", "a" * 17, "pg_", "zx-", "")),
]


@pytest.mark.parametrize(("extra", "field", "needle"), [b[:3] for b in BAD],
                         ids=[f"{i}-{b[2][:24]}" for i, b in enumerate(BAD)])
def test_a_bad_backend_or_postgresql_block_is_refused_naming_file_and_field(project: Project, extra: str,
                                                                            field: str, needle: str) -> None:
    refused(project, extra, field, needle)


def test_the_password_messages_say_where_a_password_goes(project: Project) -> None:
    refused(project, BAD[4][0], "postgresql.dsn", *BAD[4][3:])


def test_without_the_keys_the_store_is_sqlite_as_before(project: Project) -> None:
    config = load_config(project.configs)
    assert (config.backend, config.postgresql) == ("sqlite", None)


@pytest.mark.parametrize("dsn", [GOOD_DSN, "postgresql://zepix@db1:5433/zepix", "host=/var/run/postgresql "
                                 "dbname=zepix user=zepix"], ids=["key-value", "uri", "unix-socket"])
def test_a_dsn_naming_host_database_and_user_is_taken_as_written(project: Project, dsn: str) -> None:
    write_store(project, f"backend: postgresql\npostgresql: {{dsn: '{dsn}', schema_prefix: desk1_}}\n")
    config = load_config(project.configs)
    assert (config.backend, config.postgresql) == ("postgresql", PostgresConfig(dsn, "desk1_"))


def test_dsn_env_is_read_at_load_and_may_hold_the_password(project: Project,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = f"host=db1 dbname=zepix user=zepix password={SECRET}"
    monkeypatch.setenv("ZX_TEST_DSN", dsn)
    write_store(project, "backend: postgresql\npostgresql: {dsn_env: ZX_TEST_DSN}\n")
    pg = load_config(project.configs).postgresql
    assert pg is not None and (pg.dsn, pg.schema_prefix, pg.dsn_env) == (dsn, "zx_", "ZX_TEST_DSN")
    assert SECRET not in repr(pg)


def test_a_dsn_from_the_environment_is_checked_but_never_quoted(project: Project,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZX_TEST_DSN", f"host=db1 password={SECRET} dbname=zepix")
    refused(project, "backend: postgresql\npostgresql: {dsn_env: ZX_TEST_DSN}\n", "postgresql.dsn_env",
            "$ZX_TEST_DSN", "names no user")
    # unparsable: libpq's message quotes the whole URI, so it stays out
    monkeypatch.setenv("ZX_TEST_DSN", f"postgresql://zepix:{SECRET}@[db1/zepix")
    with pytest.raises(ConfigError, match=r"\$ZX_TEST_DSN: not a valid DSN") as info:
        load_config(project.configs)
    assert SECRET not in str(info.value)


def test_a_sqlite_store_needs_no_dsn_env_variable(project: Project) -> None:
    write_store(project, "postgresql: {dsn_env: ZX_TEST_UNSET_DSN}\n")
    assert load_config(project.configs).postgresql is None


def test_without_psycopg_a_postgresql_store_names_the_extra(project: Project,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails, as without the extra
    refused(project, f"backend: postgresql\npostgresql: {{dsn: '{GOOD_DSN}'}}\n", "postgresql.dsn",
            "pip install 'zepix-store[postgresql]'")


def test_without_psycopg_a_password_is_still_found_on_a_sqlite_store(project: Project,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    refused(project, f"postgresql: {{dsn: 'postgresql://zepix:{SECRET}@db1/zepix'}}\n", "postgresql.dsn",
            "holds a password")


def test_a_command_refuses_a_password_in_store_yaml_with_exit_2(project: Project) -> None:
    write_store(project, BAD[5][0])
    done = run_cli("stats", config=project)
    assert SECRET not in done.stderr + done.stdout
    one_line(done, 2, "store.yaml: postgresql.dsn: holds a password")


def test_a_postgresql_store_never_falls_back_to_sqlite_files(project: Project, tmp_path: Path) -> None:
    """A server that cannot be reached is StoreUnavailableError at first use: never a SQLite file written instead."""
    pytest.importorskip("psycopg")
    nowhere = tmp_path / "no-server"  # a socket folder with no server: refused at once, no network timeout
    write_store(project, f"backend: postgresql\npostgresql: {{dsn: 'host={nowhere} dbname=zepix user=zepix'}}\n")

    async def use_store() -> None:
        async with Store.open(project.configs) as store:
            await store.for_plugin("v6-logic-01-1min").get_statistics()

    with pytest.raises(StoreUnavailableError, match="cannot reach the server"):
        asyncio.run(use_store())
    with TradeDatabase("v6-logic-01-1min", project.configs) as db, \
            pytest.raises(StoreUnavailableError, match="cannot reach the server"):
        db.save_trade({"trade_id": "T1"})
    assert sorted(p.name for p in project.data.iterdir()) == []  # not one SQLite file written instead


@pytest.mark.parametrize("command", ["stats", "split", "migrate", "backup"])
def test_sqlite_file_commands_refuse_a_postgresql_store_instead_of_reading_no_files(project: Project,
                                                                                  command: str) -> None:
    """stats would print zeros and backup copy stale files: the rows are on the server, not in data/."""
    pytest.importorskip("psycopg")
    write_store(project, f"backend: postgresql\npostgresql: {{dsn: '{GOOD_DSN}'}}\n")
    done = run_cli(command, "--json", config=project)
    line = one_line(done, 2, f"backend: postgresql: `zepix-store {command}` works on the SQLite files only")
    assert "store.yaml" in line
    assert sorted(p.name for p in project.data.iterdir()) == []
