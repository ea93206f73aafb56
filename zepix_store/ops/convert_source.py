"""The SQLite side of convert: which rows each plugin owns in a source file, read in rowid order, chunk by chunk.

A file whose every table has `plugin_id` (an isolated file, a migrated shared file) says who owns each row in that
column. A legacy shared file that was never migrated (or only half, as the seed plan's script left it) is
attributed on the way by SPEC 5 (attribution.build_owners): each row goes to its owner, a row of shared lineage to
each of its owners, an orphan to the default id. The file is only read.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..attribution import AttributionRules, build_owners, owner_table, source_columns
from ..backend.sqlite_file import translated_errors
from ..schema import TABLES, Table
from .sync.columns import MONEY, rowid_alias
from .sync.files import ScratchConnection, check_regular_file
from .sync.shared import open_shared

__all__ = [
    "HASH_BYTES",
    "SourceFile",
    "SourceRow",
    "chunk_money",
    "money_of",
    "name_row",
    "open_source",
    "row_hash",
]

HASH_BYTES = 16
# SQLite's storage class by the Python type sqlite3 returns (a bool is no SQLite value: KeyError)
_CLASS: dict[type, str] = {type(None): "null", int: "integer", float: "real", str: "text", bytes: "blob"}
_NAMES = {t.name: t.all_column_names for t in TABLES}
_ABSENT = object()
SourceRow = tuple[int, dict[str, object]]  # (source rowid, the logical row: legacy columns the file has + plugin_id)


def row_hash(table: Table, row: Mapping[str, object]) -> int:
    """A digest of every value of a logical row with its storage class (1, 1.0, '1' and b'1' all differ).

    A column the row lacks (an older file's) counts as absent, not as NULL. Hot: four times per row copied.
    """
    parts = []
    for name in _NAMES[table.name]:
        value = row.get(name, _ABSENT)
        parts.append("-" if value is _ABSENT else f"{_CLASS[type(value)]}:{value!r}")
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:HASH_BYTES], "big")


def money_of(table: Table, row: Mapping[str, object]) -> tuple[float, ...]:
    """The money values of a row as floats (0.0 where the value is no finite float: text, a blob, NULL)."""
    return tuple(float(v) if isinstance(v, float) and math.isfinite(v) else 0.0
                 for v in (row.get(c) for c in MONEY.get(table.name, ())))


def chunk_money(table: Table, rows: Sequence[Mapping[str, object]]) -> tuple[float, ...]:
    """Money totals of `rows` per money column, summed exactly (fsum: the order rows come in does not matter)."""
    columns = MONEY.get(table.name, ())
    values = [money_of(table, row) for row in rows]
    return tuple(math.fsum(v[i] for v in values) for i in range(len(columns)))


@dataclass
class SourceFile:
    """One SQLite file of the source store, attached read-only as `sh`, its rows' owners decided."""

    path: Path
    conn: ScratchConnection
    attributed: bool  # True: owners from SPEC 5's rules (temp owner tables), False: from the plugin_id column
    present: dict[str, set[str]] = field(default_factory=dict)  # table -> the columns it has in the file

    def close(self) -> None:
        self.conn.close()

    def columns(self, table: Table) -> list[str]:
        """The legacy columns of `table` the file has (plugin_id apart), in the schema's order."""
        have = self.present.get(table.name, set())
        return [c for c in table.column_names if c in have]

    def extra_columns(self, table: Table) -> list[str]:
        return sorted(self.present.get(table.name, set()) - set(table.all_column_names))

    def owner_counts(self, table: Table) -> dict[str, int]:
        """plugin id -> rows of `table` it owns in this file (a shared-lineage row counts for each owner)."""
        if table.name not in self.present:
            return {}
        with translated_errors(self.path):
            if self.attributed:
                rows = self.conn.execute(f"SELECT plugin_id, count(*) FROM {owner_table(table.name)} "
                                         "GROUP BY plugin_id").fetchall()
            else:
                rows = self.conn.execute(f"SELECT plugin_id, count(*) FROM sh.{table.name} "
                                         "GROUP BY plugin_id").fetchall()
        return {str(plugin): int(n) for plugin, n in rows}

    def max_rowid(self, table: Table, plugin: str) -> int:
        """The highest source rowid of `plugin`'s rows of `table` (0: none)."""
        if table.name not in self.present:
            return 0
        frm, args = self._rows_of(table, plugin)
        with translated_errors(self.path):
            (top,) = self.conn.execute(f"SELECT coalesce(max(x.rowid), 0) {frm}", args).fetchone()
        return int(top)

    def read_chunk(self, table: Table, plugin: str, after: int, limit: int) -> list[SourceRow]:
        """Up to `limit` of `plugin`'s rows of `table` with a rowid above `after`, in rowid order."""
        if table.name not in self.present:
            return []
        columns = self.columns(table)
        frm, args = self._rows_of(table, plugin)
        picked = ", ".join(f"x.{c}" for c in columns)
        with translated_errors(self.path):
            found = self.conn.execute(f"SELECT x.rowid, {picked} {frm} AND x.rowid > ? ORDER BY x.rowid LIMIT ?",
                                      (*args, after, limit)).fetchall()
        out = []
        for rowid, *values in found:
            row: dict[str, object] = dict(zip(columns, values, strict=True))
            row["plugin_id"] = plugin
            out.append((int(rowid), row))
        return out

    def iter_rows(self, table: Table, plugin: str, chunk_rows: int) -> Iterator[SourceRow]:
        """Every row of `plugin` in `table`, in rowid order, read `chunk_rows` at a time (memory stays flat)."""
        after = 0
        while chunk := self.read_chunk(table, plugin, after, chunk_rows):
            yield from chunk
            after = chunk[-1][0]

    def _rows_of(self, table: Table, plugin: str) -> tuple[str, tuple[object, ...]]:
        if self.attributed:
            return (f"FROM sh.{table.name} x JOIN {owner_table(table.name)} o ON o.src_rowid = x.rowid "
                    "WHERE o.plugin_id = ?", (plugin,))
        return f"FROM sh.{table.name} x WHERE x.plugin_id = ?", (plugin,)


def name_row(table: Table, row: Mapping[str, object], rowid: int | None = None) -> str:
    """`trade_id='T1' (id=5)`, `chain_id='C1'`, `key='risk'`: the words a report names a row with."""
    keys = table.key or (("trade_id",) if table.name == "trades" else ())
    parts = [f"{k}={row.get(k)!r}" for k in keys]
    alias = rowid_alias(table)
    if alias is not None and row.get(alias) is not None:
        parts.append(f"({alias}={row.get(alias)!r})")
    elif rowid is not None and not keys:
        parts.append(f"(rowid={rowid})")
    return " ".join(parts) or "(a row)"


def open_source(path: Path, rules: AttributionRules) -> SourceFile | None:
    """The source file at `path` opened to read (None when it does not exist), owners decided.

    Raises:
        StoreError: not a regular file, not a database, corrupt, newer than this code (open_shared's checks).
    """
    if not check_regular_file(path):
        return None
    conn = open_shared(path)
    try:
        with translated_errors(path):
            present = {t.name: source_columns(conn, "sh", t.name) for t in TABLES}
            present = {name: cols for name, cols in present.items() if cols}
            attributed = any("plugin_id" not in cols for cols in present.values())
            if attributed:
                build_owners(conn, "sh", rules)
    except BaseException:
        conn.close()
        raise
    return SourceFile(path, conn, attributed, present)
