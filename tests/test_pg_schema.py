"""The store's tables on PostgreSQL (SPEC 9 "Layout"), generated from schema.TABLES, on a real server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import errors, sql

from zepix_store.backend.postgresql.ddl import PG_SCHEMA_VERSION, advance_ids, ensure_schemas, schema_statements
from zepix_store.backend.postgresql.names import Layout
from zepix_store.errors import SchemaError
from zepix_store.schema import TABLES

LAYOUT = Layout("zx_", "trading_bot.db", {"v3": "zepix_v3_logic_combined.db", "v6": "zepix_v6.db"})
SCHEMAS = ["zx_shared", "zx_v3_logic_combined", "zx_v6"]
# What each legacy type word becomes (SPEC 9), written out here rather than taken from ddl.py
PG_TYPE = {"REAL": "double precision", "INTEGER": "bigint", "BOOLEAN": "bigint", "TEXT": "text",
           "DATETIME": "text", "TIMESTAMP": "text"}


@pytest.fixture(scope="module")
def conn(pg_dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        assert ensure_schemas(c, LAYOUT) == dict(zip(["trading_bot.db", *LAYOUT.isolated_files], SCHEMAS))
        yield c


def _rows(conn: psycopg.Connection[tuple[object, ...]], query: str, *params: object) -> list[tuple[object, ...]]:
    return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def test_every_schema_has_the_ten_tables_with_every_legacy_column_typed(
        conn: psycopg.Connection[tuple[object, ...]]) -> None:
    for schema in SCHEMAS:
        for table in TABLES:
            got = _rows(conn, "SELECT column_name, data_type, is_nullable, column_default FROM "
                              "information_schema.columns WHERE table_schema = %s AND table_name = %s "
                              "ORDER BY ordinal_position", schema, table.name)
            expected = []
            for column in table.columns:
                word = column.decl.split()[0]
                expected.append((column.name, PG_TYPE[word]))
                if word in ("DATETIME", "TIMESTAMP"):
                    expected.append((f"{column.name}_zx_ts", "timestamp with time zone"))
            expected += [("plugin_id", "text"), ("zx_raw", "jsonb")]
            assert [(n, t) for n, t, _, _ in got] == expected, (schema, table.name)
            plugin_id = next(r for r in got if r[0] == "plugin_id")
            assert plugin_id[2:] == ("NO", "'legacy'::text")


def test_keys_are_unique_per_plugin_and_a_legacy_null_key_still_fits(
        conn: psycopg.Connection[tuple[object, ...]]) -> None:
    with conn.transaction(force_rollback=True):
        for plugin in ("a", "b"):  # one id and one chain_id in two plugins: two rows
            conn.execute("INSERT INTO zx_shared.trades (id, plugin_id) VALUES (7, %s)", [plugin])
            conn.execute("INSERT INTO zx_shared.reentry_chains (chain_id, plugin_id) VALUES ('c1', %s)", [plugin])
        for _ in range(2):  # SQLite keeps rows whose key is NULL; so does this schema
            conn.execute("INSERT INTO zx_shared.reentry_chains (chain_id, plugin_id) VALUES (NULL, 'a')")
        with pytest.raises(errors.UniqueViolation), conn.transaction():
            conn.execute("INSERT INTO zx_shared.reentry_chains (chain_id, plugin_id) VALUES ('c1', 'a')")
        with pytest.raises(errors.UniqueViolation), conn.transaction():
            conn.execute("INSERT INTO zx_shared.trades (id, plugin_id) VALUES (7, 'a')")
        new = _rows(conn, "INSERT INTO zx_shared.trades (plugin_id) VALUES ('a') RETURNING id")
        assert isinstance(new[0][0], int)


def test_every_unique_key_begins_with_plugin_id(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    keys = _rows(conn, "SELECT n.nspname, c.conrelid::regclass::text, pg_get_constraintdef(c.oid) FROM pg_constraint "
                       "c JOIN pg_namespace n ON n.oid = c.connamespace WHERE c.contype IN ('p', 'u') AND "
                       "n.nspname = ANY(%s)", SCHEMAS)
    keys = [k for k in keys if ".zx_" not in str(k[1])]  # the store's registry is no table of the bot's
    assert len(keys) == 3 * 10
    assert [k for k in keys if not re.match(r"(PRIMARY KEY|UNIQUE) \(plugin_id, ", str(k[2]))] == []


def test_an_order_references_a_chain_of_its_own_plugin_in_its_own_schema(
        conn: psycopg.Connection[tuple[object, ...]]) -> None:
    foreign = _rows(conn, "SELECT c.connamespace::regnamespace::text, c.confrelid::regclass::text, "
                          "pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.contype = 'f' AND "
                          "c.connamespace::regnamespace::text = ANY(%s) ORDER BY 1", SCHEMAS)
    assert [(s, t) for s, t, _ in foreign] == [(s, f"{s}.profit_booking_chains") for s in sorted(SCHEMAS)]
    with conn.transaction(force_rollback=True):
        conn.execute("INSERT INTO zx_v6.profit_booking_chains (chain_id, symbol, direction, base_lot, plugin_id) "
                     "VALUES ('c', 'EURUSD', 'buy', 0.1, 'a')")
        conn.execute("INSERT INTO zx_v6.profit_booking_orders (order_id, chain_id, plugin_id) VALUES ('o', 'c', 'a')")
        with pytest.raises(errors.ForeignKeyViolation), conn.transaction():
            conn.execute("INSERT INTO zx_v6.profit_booking_orders (order_id, chain_id, plugin_id) VALUES "
                         "('o', 'c', 'b')")


def test_the_store_indexes_exist_with_the_close_time_instant(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    found = dict(_rows(conn, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'zx_v6'"))
    assert found["idx_trades_plugin_status_pnl"].endswith("USING btree (plugin_id, status, pnl)")  # type: ignore[union-attr]
    assert found["idx_trades_plugin_close"].endswith("USING btree (plugin_id, close_time_zx_ts)")  # type: ignore[union-attr]
    assert {n for t in TABLES for n, _ in t.indexes} <= set(found)


def test_a_legacy_not_null_holds_in_the_column_or_in_zx_raw(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    insert = ("INSERT INTO zx_shared.trading_sessions (session_id, symbol, direction, start_time, plugin_id, zx_raw) "
              "VALUES ('s', %s, 'buy', '2024-01-15 10:00:00', 'a', %s)")
    with conn.transaction(force_rollback=True):
        conn.execute(insert, [None, '{"symbol": {"t": "blob", "v": "AA=="}}'])
        with pytest.raises(errors.CheckViolation), conn.transaction():
            conn.execute(insert.replace("'s'", "'s2'"), [None, None])


def test_current_timestamp_defaults_write_sqlite_s_utc_text_and_its_instant(
        conn: psycopg.Connection[tuple[object, ...]]) -> None:
    with conn.transaction(force_rollback=True):
        (text, instant), = _rows(conn, "INSERT INTO zx_shared.profit_booking_events (plugin_id) VALUES ('a') "
                                       "RETURNING timestamp, timestamp_zx_ts")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", str(text))
    assert datetime.strptime(str(text), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) == instant


def test_creation_is_idempotent_and_recorded_at_the_current_version(
        conn: psycopg.Connection[tuple[object, ...]]) -> None:
    with conn.transaction(force_rollback=True):
        for statement in schema_statements("zx_v6"):  # every statement once more: no error
            conn.execute(statement)
    assert ensure_schemas(conn, LAYOUT)["zepix_v6.db"] == "zx_v6"
    versions = _rows(conn, "SELECT schema_name, schema_version FROM zx_shared.zx_registry ORDER BY 1")
    assert versions == [(s, PG_SCHEMA_VERSION) for s in sorted(SCHEMAS)]


def test_a_schema_from_a_newer_zepix_store_is_refused_untouched(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute("UPDATE zx_shared.zx_registry SET schema_version = %s WHERE schema_name = 'zx_v6'",
                 [PG_SCHEMA_VERSION + 1])
    try:
        with pytest.raises(SchemaError, match=r"zx_v6 \(zepix_v6.db\) is at version 2, newer"):
            ensure_schemas(conn, LAYOUT)
    finally:
        conn.execute("UPDATE zx_shared.zx_registry SET schema_version = %s WHERE schema_name = 'zx_v6'",
                     [PG_SCHEMA_VERSION])


def test_no_schema_is_created_half(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    # a schema recorded but never built, holding a table in the way of the store's sl_events (no trade_id)
    conn.execute("INSERT INTO zx_shared.zx_registry (schema_name, kind, file_name) VALUES ('zx_half', 'isolated', "
                 "'half.db')")
    conn.execute("CREATE SCHEMA zx_half")
    conn.execute("CREATE TABLE zx_half.sl_events (id text)")
    try:
        with pytest.raises(errors.UndefinedColumn):
            ensure_schemas(conn, Layout("zx_", "trading_bot.db", {"h": "half.db"}))
        # the tables before sl_events were rolled back with it, and the schema is still at version 0
        assert _rows(conn, "SELECT tablename FROM pg_tables WHERE schemaname = 'zx_half'") == [("sl_events",)]
        assert _rows(conn, "SELECT schema_version FROM zx_shared.zx_registry WHERE file_name = 'half.db'") == [(0,)]
    finally:
        conn.execute("DELETE FROM zx_shared.zx_registry WHERE file_name = 'half.db'")
        conn.execute(sql.SQL("DROP SCHEMA zx_half CASCADE"))


def test_ids_copied_in_move_the_identity_past_them_never_back(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    def new_id() -> object:
        return _rows(conn, "INSERT INTO zx_v6.trades (plugin_id) VALUES ('a') RETURNING id")[0][0]

    with conn.transaction(force_rollback=True):
        conn.execute("INSERT INTO zx_v6.trades (id, plugin_id) VALUES (1000, 'a'), (40, 'b')")  # as a copy would
        advance_ids(conn, "zx_v6")
        assert new_id() == 1001  # after the copied rows, so a later row has a higher id
        conn.execute("DELETE FROM zx_v6.trades WHERE id > 40")
        advance_ids(conn, "zx_v6")
        assert new_id() == 1002  # ids already given are not given again
