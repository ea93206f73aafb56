"""The store's statements on PostgreSQL: the spellings that differ (Operations), and a connection that runs the
statement text of queries/ unchanged.

queries/ writes each statement once, with `?` or `?N` parameters. `PgConnection` turns that text into psycopg's
`%s` form once per statement (cached; a `%` in the text is escaped, `?N` is expanded into the parameter order),
and returns rows as SQLite would: the store's own columns (`<col>_zx_ts`, `zx_raw`) left out, a value kept in
zx_raw read back in place of its column's NULL, `numeric` results (avg of a bigint) as floats.

Writes fill what the store maintains beside the columns written: each time column's `timestamptz` companion (the
instant timefmt reads in it, naive times in store.yaml's zone) and the row's zx_raw entries (values.encode_row),
merged into the entries of the columns not written.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, ClassVar

from ...schema import TABLE_BY_NAME
from ..base import Connection, Cursor, Features, Operations
from . import require_driver
from .ddl import RAW_COLUMN, TS_SUFFIX, ts_column
from .values import decode_value, encode_row

if TYPE_CHECKING:
    import psycopg

__all__ = ["LOCK_BUCKETS", "PgConnection", "PgCursor", "PgOperations", "configure_connection", "translate"]

# a quoted literal (kept, its `%` escaped), a parameter `?` or `?N`, or a bare `%`
_TOKEN = re.compile(r"'(?:[^']|'')*'|\?(\d*)|%")
_NEVER, _FOREVER = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
_TRUE_TEXTS = "('1', 'true', 'True', 'TRUE')"
LOCK_BUCKETS = 256  # advisory locks per (schema, plugin) scope: a power of two
_LOCK_SCOPE = "hashtext(current_schema() || ?)"


def _scope_text(scope: Sequence[str]) -> str:
    return "\x1f" + "\x1f".join(str(part) for part in scope)


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> tuple[str, tuple[int, ...] | None]:
    """(the statement in psycopg's `%s` form, the order of the given parameters for `?N` ones, else None)."""
    order: list[int] = []

    def token(found: re.Match[str]) -> str:
        text = found.group(0)
        if text.startswith("'") or text == "%":
            return text.replace("%", "%%")
        if found.group(1):
            order.append(int(found.group(1)) - 1)
        return "%s"

    return _TOKEN.sub(token, sql), (tuple(order) if order else None)


def configure_connection(conn: psycopg.Connection[Any]) -> None:
    """Read `numeric` (avg or sum of a bigint) as float, as SQLite returns a REAL."""
    from psycopg.types.numeric import FloatLoader

    conn.adapters.register_loader("numeric", FloatLoader)


class PgCursor:
    """A psycopg cursor whose rows and description are the logical SQLite ones (companions and zx_raw folded)."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor
        names = [c.name for c in cursor.description or ()]
        self._names = names
        self._keep = [i for i, n in enumerate(names) if n != RAW_COLUMN and not n.endswith(TS_SUFFIX)]
        self._raw_at = names.index(RAW_COLUMN) if RAW_COLUMN in names else None

    @property
    def description(self) -> Any:
        return [(self._names[i], None, None, None, None, None, None) for i in self._keep] if self._names else None

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return None

    def _logical(self, row: Sequence[Any]) -> tuple[Any, ...]:
        raw = row[self._raw_at] if self._raw_at is not None else None
        if not raw:
            return tuple(row[i] for i in self._keep)
        return tuple(decode_value(raw[self._names[i]]) if self._names[i] in raw else row[i] for i in self._keep)

    def fetchone(self) -> Any:
        row = self._cursor.fetchone()
        return None if row is None else self._logical(row)

    def fetchall(self) -> list[Any]:
        return [self._logical(r) for r in self._cursor.fetchall()]

    def __iter__(self) -> Iterator[Any]:
        return (self._logical(r) for r in self._cursor)


class PgConnection:
    """The Connection of backend/base.py on a psycopg connection inside the caller's transaction."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    @staticmethod
    def _bound(sql: str, parameters: Any) -> tuple[str, list[Any]]:
        text, order = translate(sql)
        if isinstance(parameters, Mapping):
            raise TypeError("named parameters are not used by the store's statements")
        given = list(parameters)
        return text, [given[i] for i in order] if order is not None else given

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        text, params = self._bound(sql, parameters)
        return PgCursor(self._conn.execute(text, params))

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor:
        text, _ = translate(sql)
        cursor = self._conn.cursor()
        cursor.executemany(text, [self._bound(sql, p)[1] for p in parameters])
        return PgCursor(cursor)

    def copy_rows(self, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """COPY `rows` (each the same columns, as write_values gives them) into `table` of the current schema."""
        from psycopg import sql

        given = iter(rows)
        first = next(given, None)
        if first is None:
            return
        columns = list(first)
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns))
        with self._conn.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write_row([first[c] for c in columns])
            for row in given:
                if len(row) != len(columns):
                    raise ValueError(f"{table}: a row of the batch has other columns than the first")
                copy.write_row([row[c] for c in columns])

    def close(self) -> None:
        """The pool owns the connection."""


class PgOperations(Operations):
    """PostgreSQL's spellings: RETURNING id, `= ANY(list)`, timestamptz windows, written values encoded losslessly."""

    features: ClassVar[Features] = Features(bulk_insert_by_key=True)

    def __init__(self, zone: tzinfo) -> None:
        require_driver()
        import psycopg

        self.integrity_error = (psycopg.IntegrityError,)
        self.zone = zone  # of naive times written: their companion's instant

    def insert_sql(self, table: str, columns: Sequence[str]) -> str:
        returning = " RETURNING id" if "id" in TABLE_BY_NAME[table].column_names else ""
        return super().insert_sql(table, columns) + returning

    def upsert_sql(self, table: str, columns: Sequence[str], key: Sequence[str], updates: Sequence[str]) -> str:
        written = [c for c in columns if c not in key and c != RAW_COLUMN and not c.endswith(TS_SUFFIX)]
        sets = [f"{c} = excluded.{c}" for c in updates if c != RAW_COLUMN]
        sets.append(f"{RAW_COLUMN} = {self._merged_raw(f'{table}.{RAW_COLUMN}', written, f'excluded.{RAW_COLUMN}')}")
        base = f"{Operations.insert_sql(self, table, columns)} ON CONFLICT ({', '.join(key)})"
        return f"{base} DO UPDATE SET {', '.join(sets)}"

    @staticmethod
    def _merged_raw(current: str, written: Sequence[str], new: str) -> str:
        """zx_raw after a write: the entries of the columns written replaced by the new ones (NULL when none)."""
        dropped = "".join(f" - '{c}'" for c in written)  # column names from schema.py only
        return f"nullif((coalesce({current}, '{{}}'::jsonb){dropped}) || coalesce({new}, '{{}}'::jsonb), '{{}}'::jsonb)"

    def inserted_id(self, cursor: Cursor) -> int:
        row = cursor.fetchone() if cursor.description else None
        return int(row[0]) if row else 0

    def in_list(self, expression: str) -> str:
        return f"{expression} = ANY({self.placeholder})"

    def list_parameter(self, values: Sequence[str]) -> Any:
        return list(values)

    def write_values(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        # bigint takes no bool (psycopg refuses True for it): a flag is stored as the 0/1 SQLite keeps
        plain = {k: int(v) if isinstance(v, bool) else v for k, v in row.items()}
        return encode_row(table, plain, self.zone)

    def assignments(self, table: str, row: Mapping[str, Any]) -> tuple[str, list[Any]]:
        values = self.write_values(table, row)
        raw = values.pop(RAW_COLUMN)
        sets = [f"{c} = {self.placeholder}" for c in values]
        written = [c for c in values if not c.endswith(TS_SUFFIX)]
        sets.append(f"{RAW_COLUMN} = {self._merged_raw(RAW_COLUMN, written, self.placeholder + '::jsonb')}")
        return ", ".join(sets), [*values.values(), raw]

    def lock_key(self, conn: Connection, *key: str) -> None:
        # one lock per (schema, scope, bucket of the key): held to the end of the transaction, so a second writer
        # of the same trade_id reads the first one's row once it may go on (READ COMMITTED: each statement sees
        # the latest commits). Buckets bound a batch's locks: one per key would fill the server's lock table
        # (max_locks_per_transaction) and fail a batch of some 10,000 trades.
        conn.execute(f"SELECT pg_advisory_xact_lock({_LOCK_SCOPE}, hashtext(?) & {LOCK_BUCKETS - 1})",
                     [_scope_text(key[:-1]), str(key[-1])])

    def lock_keys(self, conn: Connection, scope: Sequence[str], keys: Sequence[str]) -> None:
        if keys:  # in bucket order: every batch takes its locks in the same order, so none waits in a circle
            conn.execute(f"SELECT pg_advisory_xact_lock({_LOCK_SCOPE}, b) FROM (SELECT DISTINCT hashtext(k) & "
                         f"{LOCK_BUCKETS - 1} AS b FROM unnest(?::text[]) k) s ORDER BY b",
                         [_scope_text(scope), [str(k) for k in keys]])

    def insert_batch(self, conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                     key: str) -> list[int]:
        assert isinstance(conn, PgConnection), conn
        owner_at, key_at = columns.index("plugin_id"), columns.index(key)
        keys: list[Any] = []
        owners: set[Any] = set()

        def encoded() -> Iterator[dict[str, Any]]:
            for row in rows:
                keys.append(row[key_at])
                owners.add(row[owner_at])
                yield self.write_values(table, dict(zip(columns, row, strict=True)))

        conn.copy_rows(table, encoded())
        if not keys:
            return []
        assert len(owners) == 1, owners  # one handle's batch
        found = dict(conn.execute(f"SELECT {key}, id FROM {table} WHERE plugin_id = ? AND {key} = ANY(?)",
                                  [owners.pop(), keys]).fetchall())
        return [int(found[k]) for k in keys]

    def window(self, column: str, first: int | None = None) -> str:
        lo, hi = (f"?{first}", f"?{first + 1}") if first else ("?", "?")
        return f"({ts_column(column)} >= {lo} AND {ts_column(column)} < {hi})"

    def window_bounds(self, since: datetime | None, before: datetime | None, zone: tzinfo) -> tuple[Any, ...]:
        return (since or _NEVER, before or _FOREVER)

    def is_true(self, column: str) -> str:
        return f"({column} <> 0)"

    def is_true_value(self, column: str) -> str:
        # legacy text flags ('true') are kept in zx_raw, their column NULL
        return f"({column} = 1 OR {RAW_COLUMN} -> '{column}' ->> 'v' IN {_TRUE_TEXTS})"

    def insertion_order(self, table: str) -> str:
        spec = TABLE_BY_NAME[table]
        if "id" in spec.column_names:
            return "id"
        # no rowid on PostgreSQL: creation time, then the key (a legacy row without a time comes last)
        first = f"{ts_column('created_at')}, " if "created_at" in spec.column_names else ""
        return first + ", ".join(spec.key)
