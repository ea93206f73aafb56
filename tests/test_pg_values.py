"""SQLite rows through PostgreSQL and back (SPEC 9 "Nothing lost in the types"), against a real server.

The property: any row SQLite holds (any value in any column) -> encode_row -> INSERT into the store's table on
PostgreSQL -> SELECT -> decode_row is the row sqlite3 returned, storage classes and float bits included.
"""

from __future__ import annotations

import math
import sqlite3
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.rows import dict_row

from zepix_store.backend.postgresql.ddl import RAW_COLUMN, ensure_schemas, ts_column
from zepix_store.backend.postgresql.names import Layout
from zepix_store.backend.postgresql.values import decode_row, encode_row, storage_class
from zepix_store.errors import RowError
from zepix_store.schema import TABLE_BY_NAME, TABLES
from zepix_store.values import KINDS

from .helpers import scaled

pytestmark = pytest.mark.postgresql

ZONE = ZoneInfo("Europe/Berlin")
SCHEMA = "zx_shared"
NOT_NULL = {(t.name, c.name) for t in TABLES for c in t.columns if "NOT NULL" in c.decl}
TIME_TEXT = st.sampled_from([
    "2024-01-15 10:00:00", "2024-01-15T10:00:00", "2024-01-15T10:00:00.123456", "2024-01-15T10:00:00Z",
    "2024-01-15T10:00:00+05:30", "2024-01-15", "2024-03-31T02:30:00", "2024-10-27T02:30:00", "yesterday", "",
])
VALUES = st.one_of(
    st.none(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.text(), st.binary(max_size=16),
    TIME_TEXT, st.sampled_from(["12.5", "N/A", "0", " 7 ", "a\x00b", "\x00", "-0.0", "1e400"]),
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, 5e-324, 2.0**63, 1705312800000, 1705312800]),
)


@pytest.fixture(scope="module")
def pg(pg_dsn: str) -> Iterator[psycopg.Connection[dict[str, object]]]:
    with psycopg.connect(pg_dsn, autocommit=True, row_factory=dict_row) as conn:
        ensure_schemas(conn, Layout("zx_", "trading_bot.db"))  # type: ignore[arg-type]
        yield conn


@pytest.fixture(scope="module")
def lite() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for table in TABLES:
        conn.execute(table.create_sql())
    yield conn
    conn.close()


def _bits(value: object) -> tuple[str, object]:
    """A value with its storage class, floats by their bits (so -0.0 differs from 0.0)."""
    if isinstance(value, float):
        return "real", struct.pack(">d", value)
    return storage_class(value), value


def _through_sqlite(lite: sqlite3.Connection, table: str, row: dict[str, object]) -> dict[str, object]:
    """The logical row: what sqlite3 returns after storing `row` (column affinity applied)."""
    cols = list(row)
    cur = lite.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                       list(row.values()))
    stored = lite.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE rowid = ?", [cur.lastrowid]).fetchone()
    lite.execute(f"DELETE FROM {table}")
    return dict(zip(cols, stored))


def _through_postgres(pg: psycopg.Connection[dict[str, object]], table: str,
                      row: dict[str, object]) -> dict[str, object]:
    """encode_row, INSERT, SELECT, decode_row; rolled back after."""
    encoded = encode_row(table, row, ZONE)
    with pg.transaction(force_rollback=True):
        if table == "profit_booking_orders" and encoded.get("chain_id") is not None:
            pg.execute(sql.SQL("INSERT INTO {} (plugin_id, chain_id, symbol, direction, base_lot) VALUES "
                               "(%s, %s, 's', 'd', 1)").format(sql.Identifier(SCHEMA, "profit_booking_chains")),
                       [encoded["plugin_id"], encoded["chain_id"]])
        cols = list(encoded)
        got = pg.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
            sql.Identifier(SCHEMA, table), sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.SQL(", ").join(sql.Placeholder() * len(cols))), list(encoded.values())).fetchone()
    assert got is not None
    for column, kind in KINDS[table].items():
        if kind == "time" and column in row:
            assert got[ts_column(column)] == encoded[ts_column(column)], column
    return decode_row(table, {c: got[c] for c in [*row, RAW_COLUMN]})


@st.composite
def sqlite_rows(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    table = draw(st.sampled_from([t.name for t in TABLES]))
    row: dict[str, object] = {"plugin_id": draw(st.sampled_from(["legacy", "v3-logic-01-5min", "x" * 64]))}
    for column in TABLE_BY_NAME[table].column_names:
        if column == "id":
            row[column] = draw(st.none() | st.integers(-(2**63), 2**63 - 1))
        elif (table, column) in NOT_NULL:
            row[column] = draw(VALUES.filter(lambda v: v is not None))
        elif draw(st.booleans()):
            row[column] = draw(VALUES)
    return table, row


@settings(max_examples=scaled(150, 600), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sqlite_rows())
def test_any_sqlite_row_comes_back_from_postgresql_as_it_was(
        pg: psycopg.Connection[dict[str, object]], lite: sqlite3.Connection,
        case: tuple[str, dict[str, object]]) -> None:
    table, row = case
    logical = _through_sqlite(lite, table, row)
    back = _through_postgres(pg, table, logical)
    assert {c: _bits(v) for c, v in back.items()} == {c: _bits(v) for c, v in logical.items()}


@pytest.mark.parametrize(("column", "value", "raw"), [
    ("pnl", -0.0, None),
    ("pnl", math.inf, None),
    ("pnl", -math.inf, None),
    ("pnl", "N/A", {"t": "text", "v": "N/A"}),
    ("pnl", 0.1 + 0.2, None),
    ("chain_level", 3.5, {"t": "real", "v": "3.5"}),
    ("chain_level", 2**63 - 1, None),
    ("chain_level", 2**70, {"t": "integer", "v": 2**70}),
    ("is_re_entry", "yes", {"t": "text", "v": "yes"}),
    ("comment", "a\x00b", {"t": "text", "hex": "610062"}),
    ("comment", b"\x00\xff", {"t": "blob", "v": "AP8="}),
    ("comment", 7, {"t": "integer", "v": 7}),
    ("comment", "", None),
    ("open_time", 1705312800, {"t": "integer", "v": 1705312800}),
    ("open_time", "2024-01-15T10:00:00", None),
], ids=lambda v: repr(v)[:20])
def test_a_value_its_column_cannot_hold_goes_to_zx_raw_verbatim(
        pg: psycopg.Connection[dict[str, object]], column: str, value: object, raw: dict[str, object] | None) -> None:
    encoded = encode_row("trades", {"plugin_id": "p", column: value}, ZONE)
    with pg.transaction(force_rollback=True):
        got = pg.execute(sql.SQL("INSERT INTO {} (plugin_id, {}, zx_raw) VALUES (%s, %s, %s) RETURNING *").format(
            sql.Identifier(SCHEMA, "trades"), sql.Identifier(column)),
            ["p", encoded[column], encoded[RAW_COLUMN]]).fetchone()
    assert got is not None
    assert (got[column], got[RAW_COLUMN]) == ((None, {column: raw}) if raw else (value, None))
    assert _bits(decode_row("trades", got)[column]) == _bits(value)


def test_an_int_written_to_a_real_column_reads_back_as_sqlite_returns_it(
        pg: psycopg.Connection[dict[str, object]], lite: sqlite3.Connection) -> None:
    row = {"plugin_id": "p", "pnl": 5, "commission": -(2**63)}
    assert _bits(_through_sqlite(lite, "trades", row)["pnl"]) == ("real", struct.pack(">d", 5.0))
    back = _through_postgres(pg, "trades", row)
    assert {c: _bits(v) for c, v in back.items()} == {c: _bits(v) for c, v in _through_sqlite(lite, "trades", row).items()}


@pytest.mark.parametrize(("value", "instant"), [
    ("2024-01-15 10:00:00", datetime(2024, 1, 15, 10, tzinfo=UTC)),       # the store's own form: UTC
    ("2024-01-15T10:00:00", datetime(2024, 1, 15, 9, tzinfo=UTC)),        # naive: Berlin wall time
    ("2024-01-15T10:00:00+05:30", datetime(2024, 1, 15, 4, 30, tzinfo=UTC)),
    ("2024-07-15", datetime(2024, 7, 14, 22, tzinfo=UTC)),                # a day alone: its local midnight
    (1705312800000, datetime(2024, 1, 15, 10, tzinfo=UTC)),               # epoch milliseconds
    ("soon", None),
])
def test_each_time_has_its_instant_beside_it(pg: psycopg.Connection[dict[str, object]], value: object,
                                             instant: datetime | None) -> None:
    encoded = encode_row("trades", {"plugin_id": "p", "close_time": value}, ZONE)
    with pg.transaction(force_rollback=True):
        got = pg.execute(sql.SQL("INSERT INTO {} (plugin_id, close_time, close_time_zx_ts, zx_raw) VALUES "
                                 "(%s, %s, %s, %s) RETURNING close_time_zx_ts").format(
            sql.Identifier(SCHEMA, "trades")), ["p", encoded["close_time"], encoded["close_time_zx_ts"],
                                                encoded[RAW_COLUMN]]).fetchone()
    assert got == {"close_time_zx_ts": instant}


@pytest.mark.parametrize("value", [math.nan, "\ud800", [1], 1.5j], ids=["nan", "surrogate", "list", "complex"])
def test_nan_and_non_sqlite_values_are_refused_before_the_driver(value: object) -> None:
    with pytest.raises(RowError, match=r"trades\.pnl"):
        encode_row("trades", {"plugin_id": "p", "pnl": value}, ZONE)


def test_an_unknown_column_or_a_plugin_id_that_is_no_text_is_refused() -> None:
    with pytest.raises(RowError, match="no column 'pnl_x'"):
        encode_row("trades", {"plugin_id": "p", "pnl_x": 1.0}, ZONE)
    with pytest.raises(RowError, match="trades.plugin_id"):
        encode_row("trades", {"plugin_id": b"p"}, ZONE)
