"""convert's way back: every plugin's rows from a store on PostgreSQL into the same store on SQLite files.

The mirror of convert.py. A plugin's rows are read from the schema the source config routes it to (rows of ids no
config names from the shared schema), decoded to the SQLite values they were (values.decode_row: zx_raw gives
back text in a REAL column, blobs, NUL characters, reals and huge ints in INTEGER columns), and written, with their
ids, into the file the target config routes the plugin to (created when missing, owner-only). Rows are read in a
stable order (id; for the keyed tables their key, rows with a NULL key first), each chunk is written with
`INSERT ... RETURNING` in one SQLite transaction, compared as stored with its source before the commit, and
recorded in the file's own ledger table in that transaction: killed at any instant and run again, it continues.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import upgrade
from ..backend.postgresql.ddl import RAW_COLUMN
from ..backend.postgresql.names import layout_of, read_registry
from ..backend.postgresql.values import decode_row
from ..backend.sqlite_file import connect_sync, transaction, translated_errors
from ..config import StoreConfig
from ..errors import ConfigError, VerifyError
from ..schema import SCHEMA_VERSION, Table
from .convert_source import SourceRow, name_row
from .sync.files import check_regular_file

if TYPE_CHECKING:
    from psycopg import Connection, sql
    from psycopg.rows import TupleRow

__all__ = ["BACK_LEDGER", "RENUMBERED", "BackLedger", "PgReader", "SqliteTarget", "source_schemas"]

BACK_LEDGER = "zx_convert_ledger"
# tables whose id nothing refers to: a row whose id is taken in the target file gets a new one
RENUMBERED = ("sl_events", "tp_reentry_events", "reversal_exit_events", "profit_booking_events")


def source_schemas(conn: Connection[TupleRow], config: StoreConfig) -> dict[str, str]:
    """File name -> schema of the source store on the server; a ConfigError when the store is not there."""
    assert config.postgresql is not None
    layout = layout_of(config, config.postgresql.schema_prefix)
    known = {r.file_name: r.schema for r in read_registry(conn, layout.prefix).values()}
    if layout.shared_file not in known:
        raise ConfigError(f"{config.config_dir}: no store with schema prefix {layout.prefix} in this database (its "
                          "registry has no shared schema): check postgresql.dsn and schema_prefix")
    return known


@dataclass(frozen=True, slots=True)
class BackLedger:
    """How far one plugin's table was copied from one schema: the last id, or the NULL keys and the last key."""

    source_schema: str
    last_id: int
    nulls_done: bool
    last_key: str | None
    rows_copied: int
    verified: bool = False
    renumbered: int = 0  # event rows given a new id: their id was another plugin's row's in the file


class PgReader:
    """A plugin's rows of one table in one schema, read in a stable order, decoded to SQLite values."""

    def __init__(self, conn: Connection[TupleRow], schema: str, table: Table, plugin: str) -> None:
        self.conn, self.schema, self.table, self.plugin = conn, schema, table, plugin
        self.columns = [*table.column_names, "plugin_id", RAW_COLUMN]

    def _order_column(self) -> str:
        return "id" if "id" in self.table.column_names else self.table.key[0]

    def chunk(self, position: BackLedger, limit: int) -> tuple[list[dict[str, object]], BackLedger]:
        """The next rows after `position` (at most `limit`, but every NULL-key row at once) and the new position."""
        from psycopg import sql

        name = sql.Identifier(self._order_column())
        target = sql.Identifier(self.schema, self.table.name)
        picked = sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)
        if self._order_column() == "id":
            query = sql.SQL("SELECT {} FROM {} WHERE plugin_id = %s AND {} > %s ORDER BY {} LIMIT %s").format(
                picked, target, name, name)
            rows = self._run(query, [self.plugin, position.last_id, limit])
            last = int(str(rows[-1]["id"])) if rows else position.last_id
            return rows, BackLedger(position.source_schema, last, False, None, position.rows_copied + len(rows))
        if not position.nulls_done:
            query = sql.SQL("SELECT {} FROM {} WHERE plugin_id = %s AND {} IS NULL").format(picked, target, name)
            rows = self._run(query, [self.plugin])
            return rows, BackLedger(position.source_schema, 0, True, None, position.rows_copied + len(rows))
        if position.last_key is None:
            query = sql.SQL("SELECT {} FROM {} WHERE plugin_id = %s AND {} IS NOT NULL ORDER BY {} LIMIT %s").format(
                picked, target, name, name)
            rows = self._run(query, [self.plugin, limit])
        else:
            query = sql.SQL("SELECT {} FROM {} WHERE plugin_id = %s AND {} > %s ORDER BY {} LIMIT %s").format(
                picked, target, name, name)
            rows = self._run(query, [self.plugin, position.last_key, limit])
        last_key = self._raw_key(rows[-1]) if rows else position.last_key
        return rows, BackLedger(position.source_schema, 0, True, last_key, position.rows_copied + len(rows))

    def end(self, rows: int) -> BackLedger:
        """The position after the last row (what a rerun continues from), recording `rows` copied."""
        from psycopg import sql

        name = sql.Identifier(self._order_column())
        found = self.conn.execute(sql.SQL("SELECT max({}) FROM {} WHERE plugin_id = %s").format(
            name, sql.Identifier(self.schema, self.table.name)), [self.plugin]).fetchone()
        top = found[0] if found else None
        if self._order_column() == "id":
            return BackLedger(self.schema, int(str(top or 0)), False, None, rows)
        return BackLedger(self.schema, 0, True, None if top is None else str(top), rows)

    def _raw_key(self, row: dict[str, object]) -> str:
        value = row[self._order_column()]
        assert isinstance(value, str)  # a key in its column is text (others are in zx_raw, their column NULL)
        return value

    def _run(self, query: sql.Composed, params: Sequence[object]) -> list[dict[str, object]]:
        rows = self.conn.execute(query, params).fetchall()
        return [self._decoded(r) for r in rows]

    def _decoded(self, found: Sequence[object]) -> dict[str, object]:
        return decode_row(self.table.name, dict(zip(self.columns, found, strict=True)))

    def rows(self, batch: int) -> Iterator[SourceRow]:
        """Every row, in the stable order, `batch` at a time (memory stays flat)."""
        position = BackLedger(self.schema, 0, False, None, 0)
        while True:
            rows, following = self.chunk(position, batch)
            for row in rows:
                yield 0, row
            if not rows and (self._order_column() == "id" or position.nulls_done):
                return
            position = following


class SqliteTarget:
    """One SQLite file of the target store: read as it is until `prepare` creates it, its schema and its ledger."""

    def __init__(self, path: Path, config: StoreConfig, *, readonly: bool = False) -> None:
        self.path, self.data_dir = path, config.data_dir
        self.created = not check_regular_file(path)
        self.empty = True  # no tables yet: missing, or created by a run killed before its schema committed
        self.conn: sqlite3.Connection | None = None
        if self.created:
            return
        self.conn = connect_sync(path, data_dir=config.data_dir, readonly=readonly)
        try:
            with translated_errors(path):
                version = upgrade.file_version(self.conn, path)
                self.empty = upgrade.is_empty(self.conn)
                if version != SCHEMA_VERSION and not self.empty:
                    raise ConfigError(f"{path}: schema version {version}, not {SCHEMA_VERSION}: open it with this "
                                      "zepix_store first (zepix-store migrate for the shared file)")
        except BaseException:
            self.conn.close()
            raise

    def prepare(self) -> None:
        """Create the file (owner-only) with the current schema when missing, and the ledger table."""
        if self.conn is None:
            self.conn = connect_sync(self.path, create=True, data_dir=self.data_dir)
        with translated_errors(self.path):
            # copies mirror their source, dangling references (legacy orphans) included
            self.conn.execute("PRAGMA foreign_keys = OFF")
            with transaction(self.conn):
                if upgrade.is_empty(self.conn):
                    upgrade.initialise(self.conn)
                self.conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {BACK_LEDGER} (source_schema TEXT NOT NULL, plugin_id TEXT NOT NULL, "
                    "table_name TEXT NOT NULL, last_id INTEGER NOT NULL, nulls_done INTEGER NOT NULL, last_key TEXT, "
                    "rows_copied INTEGER NOT NULL, verified INTEGER NOT NULL DEFAULT 0, renumbered INTEGER NOT NULL "
                    "DEFAULT 0, PRIMARY KEY (plugin_id, table_name))")
        self.empty = False

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    @property
    def writer(self) -> sqlite3.Connection:
        assert self.conn is not None, "prepare() first"
        return self.conn

    def ledger(self) -> dict[tuple[str, str], BackLedger]:
        """(plugin, table) -> its ledger row (none before the first run)."""
        if self.conn is None or self.empty or not self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (BACK_LEDGER,)).fetchone():
            return {}
        rows = self.conn.execute(f"SELECT plugin_id, table_name, source_schema, last_id, nulls_done, last_key, "
                                 f"rows_copied, verified, renumbered FROM {BACK_LEDGER}").fetchall()
        return {(str(p), str(t)): BackLedger(str(s), int(i), bool(n), k, int(c), bool(v), int(r))
                for p, t, s, i, n, k, c, v, r in rows}

    def count(self, table: Table, plugin: str) -> int:
        if self.conn is None or self.empty:
            return 0
        with translated_errors(self.path):
            (n,) = self.conn.execute(f"SELECT count(*) FROM {table.name} WHERE plugin_id = ?", (plugin,)).fetchone()
        return int(n)

    def rows(self, table: Table, plugin: str) -> Iterator[dict[str, object]]:
        names = table.all_column_names
        if self.conn is None or self.empty:
            return
        with translated_errors(self.path):
            cur = self.conn.execute(f"SELECT {', '.join(names)} FROM {table.name} WHERE plugin_id = ?", (plugin,))
            for found in cur:
                yield dict(zip(names, found, strict=True))

    def record(self, plugin: str, table: Table, position: BackLedger, verified: bool = False) -> None:
        self.writer.execute(
            f"INSERT INTO {BACK_LEDGER} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (plugin_id, table_name) DO "
            "UPDATE SET source_schema = excluded.source_schema, last_id = excluded.last_id, nulls_done = "
            "excluded.nulls_done, last_key = excluded.last_key, rows_copied = excluded.rows_copied, verified = "
            "excluded.verified, renumbered = excluded.renumbered",
            (position.source_schema, plugin, table.name, position.last_id, int(position.nulls_done),
             position.last_key, position.rows_copied, int(verified), position.renumbered))

    def insert_rows(self, table: Table, rows: Sequence[dict[str, object]], plugin: str
               ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        """Insert `rows` (the caller holds the transaction): (the rows expected, the rows as the file holds them).

        An event row whose id another plugin's row holds in this file gets the next free id (nothing refers to an
        event by its id; a legacy event of shared lineage went to several plugins with one id): the expected row
        carries its new id. Rows are read back by rowid with a SELECT: RETURNING shows a value before the file
        stores it (an integral real in an INTEGER or NUMERIC column comes back as a real there).
        """
        names = table.all_column_names
        marks = ", ".join("?" for _ in names)
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks}) RETURNING rowid"
        expected, rowids = [], []
        for row in rows:
            try:
                found = self.writer.execute(sql, [row.get(c) for c in names]).fetchone()
            except sqlite3.IntegrityError as exc:
                if table.name not in RENUMBERED or f"{table.name}.id" not in str(exc):
                    raise VerifyError(f"{self.path}: {table.name}: plugin {plugin}: the file refused "
                                      f"{name_row(table, row)} ({exc}): it already holds that key or id",
                                      path=self.path, plugin=plugin, table=table.name) from None
                row = {**row, "id": None}
                found = self.writer.execute(sql, [row.get(c) for c in names]).fetchone()
                row["id"] = int(found[0])
            expected.append(row)
            rowids.append(int(found[0]))
        stored = self.writer.execute(f"SELECT {', '.join(names)} FROM {table.name} WHERE rowid IN (SELECT value "
                                     "FROM json_each(?))", (json.dumps(rowids),)).fetchall()
        return expected, [dict(zip(names, found, strict=True)) for found in stored]
