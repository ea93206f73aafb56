"""Schema and role names on PostgreSQL (SPEC 9 "Layout"): derived within 63 bytes, distinct, recorded, stable."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from zepix_store.backend.postgresql.ddl import ensure_schemas
from zepix_store.backend.postgresql.names import (
    MAX_NAME_BYTES,
    Layout,
    check_prefix,
    isolated_schema_base,
    layout_of,
    name_candidates,
    read_registry,
    register_schemas,
    role_base,
)
from zepix_store.config import load_config
from zepix_store.errors import ConfigError

from .helpers import REPO

LONG = "a_very_long_isolated_database_file_name_for_one_plugin_group_of_the_desk"


def _first(base: str, key: str) -> str:
    return next(name_candidates(base, key))


@pytest.mark.parametrize(("file_name", "schema"), [
    ("zepix_v3_logic_combined.db", "zx_v3_logic_combined"),
    ("zepix_v6_logic_01_1min.db", "zx_v6_logic_01_1min"),
    ("sub/Zepix_V6-Logic.01.sqlite3", "zx_v6_logic_01"),
    ("plain", "zx_plain"),
    ("zepix_.db", "zx_file"),
])
def test_an_isolated_file_names_its_schema(file_name: str, schema: str) -> None:
    assert _first(isolated_schema_base("zx_", file_name), file_name) == schema


def test_a_name_too_long_is_cut_with_a_stable_hash_never_left_to_the_server() -> None:
    one, two = f"{LONG}_1.db", f"{LONG}_2.db"
    names = [_first(isolated_schema_base("zx_", f), f) for f in (one, two)]
    assert all(len(n.encode()) == MAX_NAME_BYTES for n in names)
    assert names[0] != names[1] and names[0][:50] == names[1][:50]  # the same cut, told apart by the hash
    assert names[0] == _first(isolated_schema_base("zx_", one), one)


def test_a_plugin_role_keeps_the_id_and_a_64_character_id_fits_in_63_bytes() -> None:
    assert _first(role_base("zx_", "v3-logic-01-5min"), "v3-logic-01-5min") == "zx_p_v3-logic-01-5min"
    ids = ["x" * 63 + "1", "x" * 63 + "2"]
    roles = [_first(role_base("zx_", i), i) for i in ids]
    assert roles[0] != roles[1] and all(len(r.encode()) <= MAX_NAME_BYTES for r in roles)


@pytest.mark.parametrize("prefix", ["", "pg_", "Zx_", "zx-", "1zx", "z" * 21])
def test_a_bad_schema_prefix_is_a_config_error(prefix: str) -> None:
    with pytest.raises(ConfigError, match="schema_prefix"):
        check_prefix(prefix)


def test_the_shipped_configs_give_one_schema_per_isolated_file_named_relative_to_data_dir() -> None:
    layout = layout_of(load_config(REPO / "configs"))
    assert (layout.prefix, layout.shared_file) == ("zx_", "trading_bot.db")
    assert {p: layout.plugin_files[p] for p in ("v3-logic-01-5min", "v3-logic-combined")} == {
        "v3-logic-01-5min": "zepix_v3_logic_combined.db", "v3-logic-combined": "zepix_v3_logic_combined.db"}
    assert len(layout.isolated_files) == 5  # the v3 group's file and one per v6 plugin
    assert [_first(isolated_schema_base("zx_", f), f) for f in layout.isolated_files][0] == "zx_v3_logic_combined"


# --- the registry, on a server ----------------------------------------------------------------------------------


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        for schema in _schemas(c):  # each test starts from an empty database
            c.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        yield c


def _schemas(conn: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    return {str(n) for (n,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'zx%'")}


def test_two_files_that_would_share_a_name_get_two_and_keep_them(
        conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS zx_taken")  # not the store's: never reused
    layout = Layout("zx_", "trading_bot.db", {"a": "a/zepix_x.db", "b": "b/zepix_x.db", "c": "b/zepix-x.db",
                                              "d": "shared.db", "e": "taken.db", "f": f"{LONG}.db", "g": None})
    names = register_schemas(conn, layout)
    assert len(set(names.values())) == len(names) == 7
    assert names["trading_bot.db"] == "zx_shared" and names["a/zepix_x.db"] == "zx_x"
    assert names["shared.db"] != "zx_shared" and names["taken.db"] != "zx_taken"
    # recorded with the full file names, kind and version 0 (no tables yet)
    assert {r.file_name: (r.schema, r.kind, r.version) for r in read_registry(conn, "zx_").values()} == {
        f: (s, "shared" if s == "zx_shared" else "isolated", 0) for f, s in names.items()}
    # a later run, with the files listed in another order and one more, keeps every name given
    again = register_schemas(conn, Layout("zx_", "trading_bot.db", {"z": "0/zepix_x.db", **layout.plugin_files}))
    assert {f: again[f] for f in names} == names and again["0/zepix_x.db"] not in names.values()


def test_the_server_holds_exactly_the_recorded_names(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    files = {f"p{i}": f"{LONG}_{i}.db" for i in range(3)}
    names = ensure_schemas(conn, Layout("zx_", "trading_bot.db", files))
    assert _schemas(conn) == set(names.values())  # nothing cut by the server into a clash


def test_one_file_named_shared_and_isolated_is_a_config_error(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    with pytest.raises(ConfigError, match="trading_bot.db"):
        register_schemas(conn, Layout("zx_", "trading_bot.db", {"a": "trading_bot.db"}))


def test_processes_opening_one_store_at_once_agree_on_the_names(pg_dsn: str,
                                                                 conn: psycopg.Connection[tuple[object, ...]]) -> None:
    layout = Layout("zx_", "trading_bot.db", {f"p{i}": f"g{i % 3}/zepix_x.db" for i in range(6)})
    start, results, errors = threading.Barrier(4), [], []

    def open_store() -> None:
        try:
            with psycopg.connect(pg_dsn, autocommit=True) as own:
                start.wait()
                results.append(ensure_schemas(own, layout))
        except Exception as exc:  # reported below: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 4
    assert all(r == results[0] for r in results) and len(set(results[0].values())) == 4
