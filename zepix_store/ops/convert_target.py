"""The PostgreSQL side of convert: the ledger, one verified chunk per transaction, and reading a plugin's rows back.

A chunk is COPYed (binary) into a temporary staging table, moved into the store table by one INSERT ... SELECT
whose RETURNING gives the rows exactly as the table now holds them, and those rows, decoded back to SQLite
values (values.decode_row), are compared with the source chunk: count, a digest of every value with its storage
class, and the money totals as floats (never through numeric: `float8::numeric` rounds). Only then are the
identity sequence advanced and the ledger row (plugin, table, last source rowid) written, in the same
transaction: a kill at any instant leaves either the whole chunk and its ledger row or neither.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING

from ..backend.postgresql.ddl import RAW_COLUMN, pg_columns
from ..backend.postgresql.names import shared_schema
from ..backend.postgresql.values import decode_row, encode_row
from ..errors import StoreBusyError, VerifyError
from ..schema import TABLE_BY_NAME, Table
from .convert_source import SourceRow, chunk_money, name_row, row_hash

if TYPE_CHECKING:
    from psycopg import Connection, Cursor, sql
    from psycopg.rows import TupleRow

__all__ = [
    "LEDGER_TABLE",
    "LedgerRow",
    "TargetRows",
    "copy_chunk",
    "ensure_ledger",
    "lock_target",
    "plugin_counts",
    "read_ledger",
    "target_rows",
    "verify_chunk",
]

LEDGER_TABLE = "zx_convert_ledger"
_COPY_TYPES = {"double precision": "float8", "bigint": "int8", "text": "text", "timestamptz": "timestamptz",
               "jsonb": "jsonb"}
# The one foreign key of the schema: an order whose chain is missing (a legacy orphan) cannot stand in the column;
# its chain_id goes to zx_raw like any value its column cannot hold, and reads back as it was.
_ORPHAN_CHILD = TABLE_BY_NAME["profit_booking_orders"]
_ORPHAN_PARENT = TABLE_BY_NAME["profit_booking_chains"]
assert "(plugin_id, chain_id) REFERENCES profit_booking_chains" in _ORPHAN_CHILD.foreign_key


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """How far one plugin's table was copied into one schema: the last source rowid and the rows so far."""

    source_file: str
    last_rowid: int
    rows_copied: int
    verified: bool


def _ledger(prefix: str) -> sql.Identifier:
    from psycopg import sql

    return sql.Identifier(shared_schema(prefix), LEDGER_TABLE)


def lock_key(prefix: str) -> int:
    """The session advisory lock one convert into a store holds (one per schema prefix and database)."""
    return int.from_bytes(hashlib.sha256(f"zepix_store:convert:{prefix}".encode()).digest()[:8], "big", signed=True)


def lock_target(conn: Connection[TupleRow], prefix: str, where: str) -> None:
    """Hold the store's convert lock for the life of the connection (a killed convert's goes with its session).

    Raises:
        StoreBusyError: another convert into this store is running.
    """
    (got,) = conn.execute("SELECT pg_try_advisory_lock(%s)", [lock_key(prefix)]).fetchone() or (False,)
    if not got:
        raise StoreBusyError(f"{where}: another convert into this store (schema prefix {prefix}) is running; nothing "
                             "was changed, run again when it is done")


def ensure_ledger(conn: Connection[TupleRow], prefix: str) -> None:
    from psycopg import sql

    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (schema_name text NOT NULL, plugin_id text NOT NULL, table_name text NOT NULL, "
        "source_file text NOT NULL, last_rowid bigint NOT NULL, rows_copied bigint NOT NULL, verified_at timestamptz, "
        "PRIMARY KEY (schema_name, plugin_id, table_name))").format(_ledger(prefix)))


def read_ledger(conn: Connection[TupleRow], prefix: str) -> dict[tuple[str, str, str], LedgerRow]:
    """(schema, plugin, table) -> its ledger row; empty when no convert ever wrote to this store."""
    from psycopg import sql

    exists = conn.execute("SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
                          [shared_schema(prefix), LEDGER_TABLE]).fetchone()
    if exists is None:
        return {}
    rows = conn.execute(sql.SQL("SELECT schema_name, plugin_id, table_name, source_file, last_rowid, rows_copied, "
                                "verified_at IS NOT NULL FROM {}").format(_ledger(prefix))).fetchall()
    return {(str(s), str(p), str(t)): LedgerRow(str(f), int(str(r)), int(str(n)), bool(v))
            for s, p, t, f, r, n, v in rows}


def mark_verified(conn: Connection[TupleRow], prefix: str, key: tuple[str, str, str], source_file: str,
                  last_rowid: int, rows: int) -> None:
    """Record (or adopt) a unit whose target rows were found equal to the source's."""
    from psycopg import sql

    conn.execute(sql.SQL(
        "INSERT INTO {} AS l VALUES (%s, %s, %s, %s, %s, %s, now()) ON CONFLICT (schema_name, plugin_id, table_name) "
        "DO UPDATE SET verified_at = now() WHERE l.verified_at IS NULL").format(_ledger(prefix)),
        [*key, source_file, last_rowid, rows])


def _returned(table: Table, columns: Sequence[str]) -> list[str]:
    return [*[c for c in table.column_names if c in columns], "plugin_id", RAW_COLUMN]


def copy_chunk(conn: Connection[TupleRow], prefix: str, schema: str, table: Table, chunk: Sequence[SourceRow],
               source_file: str, previous: LedgerRow | None, zone: tzinfo) -> LedgerRow:
    """Copy one source chunk into `schema`.`table`, verify it as stored, advance ids and the ledger; one transaction.

    Raises:
        VerifyError: the rows the table holds after the insert differ from the source chunk (nothing is kept), or
            the table refused a row (a key the target already holds).
    """
    from psycopg import errors, sql

    plugin = str(chunk[0][1]["plugin_id"])
    encoded = [encode_row(table.name, row, zone) for _, row in chunk]
    columns = list(encoded[0])
    types = {c.name: _COPY_TYPES[c.pg_type] for c in pg_columns(table)}
    stage = sql.Identifier(f"zx_stage_{table.name}")
    target = sql.Identifier(schema, table.name)
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    back = _returned(table, list(chunk[0][1]))
    with conn.transaction():
        cur = conn.cursor()
        cur.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
                    .format(stage, target))
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(stage, names)) as copy:
            copy.set_types([types[c] for c in columns])
            for row in encoded:
                copy.write_row([row[c] for c in columns])
        if table is _ORPHAN_CHILD:
            _orphans_to_raw(cur, stage, sql.Identifier(schema, _ORPHAN_PARENT.name))
        try:
            stored = cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} RETURNING {}").format(
                target, names, names, stage, sql.SQL(", ").join(sql.Identifier(c) for c in back))).fetchall()
        except errors.IntegrityError as exc:
            raise VerifyError(f"{schema}.{table.name}: plugin {plugin}: the target refused a row of the chunk after "
                              f"{chunk[0][0] - 1} ({' '.join(str(exc).split())}): it already holds that key",
                              plugin=plugin, table=table.name) from None
        verify_chunk(table, schema, chunk, [decode_row(table.name, dict(zip(back, r, strict=True))) for r in stored])
        if "id" in table.column_names:
            top = max(int(str(row["id"])) for _, row in chunk)
            cur.execute("SELECT setval(s.seq, greatest(%s, coalesce(pg_sequence_last_value(s.seq), 0))) FROM "
                        "(SELECT pg_get_serial_sequence(%s, 'id')::regclass AS seq) s",
                        [top, target.as_string(conn)])
        done = LedgerRow(source_file, chunk[-1][0], (previous.rows_copied if previous else 0) + len(chunk), False)
        cur.execute(sql.SQL(
            "INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, NULL) ON CONFLICT (schema_name, plugin_id, table_name) "
            "DO UPDATE SET last_rowid = excluded.last_rowid, rows_copied = excluded.rows_copied, verified_at = NULL"
        ).format(_ledger(prefix)), [schema, plugin, table.name, source_file, done.last_rowid, done.rows_copied])
    return done


def _orphans_to_raw(cur: Cursor[TupleRow], stage: sql.Identifier, parent: sql.Identifier) -> None:
    from psycopg import sql

    cur.execute(sql.SQL(
        "UPDATE {} s SET zx_raw = coalesce(s.zx_raw, jsonb_build_object()) || jsonb_build_object('chain_id', "
        "jsonb_build_object('t', 'text', 'v', s.chain_id)), chain_id = NULL WHERE s.chain_id IS NOT NULL AND NOT "
        "EXISTS (SELECT 1 FROM {} p WHERE p.plugin_id = s.plugin_id AND p.chain_id = s.chain_id)"
    ).format(stage, parent))


def verify_chunk(table: Table, schema: str, chunk: Sequence[SourceRow], stored: Sequence[Mapping[str, object]]
                 ) -> None:
    """Refuse (VerifyError) stored rows that differ from their source chunk: count, every value, money totals."""
    source = [row for _, row in chunk]
    plugin = str(source[0]["plugin_id"])
    where = f"{schema}.{table.name}: plugin {plugin}"
    if len(stored) != len(source):
        raise VerifyError(f"{where}: {len(source)} rows sent, {len(stored)} stored; nothing of the chunk was kept",
                          plugin=plugin, table=table.name)
    missing = Counter(row_hash(table, r) for r in source)
    missing.subtract(row_hash(table, r) for r in stored)
    if any(missing.values()):
        names = [name_row(table, row, rowid) for rowid, row in chunk if missing[row_hash(table, row)] > 0][:5]
        raise VerifyError(f"{where}: rows read back differ from their source ({', '.join(names)}); nothing of the "
                          "chunk was kept", plugin=plugin, table=table.name)
    if chunk_money(table, source) != chunk_money(table, stored):
        raise VerifyError(f"{where}: money totals differ after the copy (source {chunk_money(table, source)}, "
                          f"target {chunk_money(table, stored)}); nothing of the chunk was kept",
                          plugin=plugin, table=table.name)


def plugin_counts(conn: Connection[TupleRow], schema: str, table: Table) -> dict[str, int]:
    """plugin id -> its rows in `schema`.`table`."""
    from psycopg import sql

    rows = conn.execute(sql.SQL("SELECT plugin_id, count(*) FROM {} GROUP BY plugin_id").format(
        sql.Identifier(schema, table.name))).fetchall()
    return {str(p): int(str(n)) for p, n in rows}


@dataclass
class TargetRows:
    """A plugin's rows of one table in one schema, read back as SQLite values, streamed."""

    conn: Connection[TupleRow]
    schema: str
    table: Table
    plugin: str
    columns: Sequence[str]  # the legacy columns the source file has
    batch: int = 5000

    def __iter__(self) -> Iterator[dict[str, object]]:
        from psycopg import sql

        back = _returned(self.table, self.columns)
        with self.conn.transaction():
            cur = self.conn.cursor(name="zx_convert_read")
            cur.itersize = self.batch
            cur.execute(sql.SQL("SELECT {} FROM {} WHERE plugin_id = %s").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in back), sql.Identifier(self.schema, self.table.name)),
                [self.plugin])
            for found in cur:
                yield decode_row(self.table.name, dict(zip(back, found, strict=True)))
            cur.close()


def target_rows(conn: Connection[TupleRow], schema: str, table: Table, plugin: str, columns: Sequence[str],
                batch: int = 5000) -> TargetRows:
    return TargetRows(conn, schema, table, plugin, columns, batch)
