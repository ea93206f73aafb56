"""The way back as one run: plan the units, refuse a target with other rows, copy chunk by chunk, compare whole.

Called by convert.convert for a PostgreSQL source and a SQLite target; it fills the same ConvertReport (a unit's
`source` is a schema, its `target` a file).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..backend.postgresql.names import layout_of
from ..backend.sqlite_file import transaction, translated_errors
from ..config import StoreConfig
from ..errors import ConfigError
from ..progress import ProgressSink
from ..schema import ATTRIBUTION_ORDER, TABLE_BY_NAME, Table
from .convert_back import BackLedger, PgReader, SqliteTarget, source_schemas
from .convert_check import compare_streams
from .convert_report import ConvertReport, UnitReport
from .convert_source import SourceRow
from .convert_target import verify_chunk

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.rows import TupleRow

__all__ = ["convert_back"]

ORDER: tuple[Table, ...] = tuple(TABLE_BY_NAME[name] for name in ATTRIBUTION_ORDER)


@dataclass
class _Work:
    unit: UnitReport
    table: Table
    reader: PgReader
    file: SqliteTarget
    renumbered: int = 0  # rows of this unit given a new id in the file (compared without ids then)

    def source_rows(self, batch: int) -> Iterator[SourceRow]:
        for rowid, row in self.reader.rows(batch):
            yield rowid, _without_id(row) if self.renumbered else row

    def target_rows(self) -> Iterator[dict[str, object]]:
        for row in self.file.rows(self.table, self.unit.plugin_id):
            yield _without_id(row) if self.renumbered else row


def _without_id(row: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in row.items() if k != "id"}


def _home_schema(config: StoreConfig, names: dict[str, str], plugin: str) -> str:
    assert config.postgresql is not None
    layout = layout_of(config, config.postgresql.schema_prefix)
    routed = config.plugins.get(plugin)
    if routed is not None and not routed.use_shared:
        return names.get(layout.plugin_files[plugin] or "", "")
    return names[layout.shared_file]


def _plan(conn: Connection[TupleRow], source: StoreConfig, target: StoreConfig, files: dict[Path, SqliteTarget],
          report: ConvertReport) -> list[_Work]:
    from psycopg import sql

    names = source_schemas(conn, source)
    work: list[_Work] = []
    for schema in sorted(set(names.values())):
        counts: dict[str, dict[str, int]] = {}
        for table in ORDER:
            rows = conn.execute(sql.SQL("SELECT plugin_id, count(*) FROM {} GROUP BY plugin_id").format(
                sql.Identifier(schema, table.name))).fetchall()
            counts[table.name] = {str(p): int(str(n)) for p, n in rows}
        for plugin in sorted({p for per in counts.values() for p in per}):
            total = sum(per.get(plugin, 0) for per in counts.values())
            if not _home_schema(source, names, plugin):
                raise ConfigError(f"{source.plugins[plugin].config_path}: plugin {plugin} is routed to a file whose "
                                  f"schema is not on the server, but schema {schema} holds {total} of its rows: "
                                  "route it where its rows are (use_shared), then convert")
            if _home_schema(source, names, plugin) != schema:
                report.warnings.append(f"schema {schema}: {total} rows of plugin {plugin} not copied: its config "
                                       f"routes it to {_home_schema(source, names, plugin)}")
                continue
            path = target.plugins[plugin].db_path if plugin in target.plugins else target.shared_db
            if path not in files:
                files[path] = SqliteTarget(path, target, readonly=report.dry_run)
            for table in ORDER:
                unit = UnitReport(plugin, table.name, schema, str(path), counts[table.name].get(plugin, 0))
                work.append(_Work(unit, table, PgReader(conn, schema, table, plugin), files[path]))
    return work


@contextmanager
def _targets() -> Iterator[dict[Path, SqliteTarget]]:
    files: dict[Path, SqliteTarget] = {}
    try:
        yield files
    finally:
        for file in files.values():
            file.close()


def convert_back(conn: Connection[TupleRow], source: StoreConfig, target: StoreConfig, report: ConvertReport,
                 chunk_rows: int, progress: ProgressSink) -> None:
    """Copy every plugin's rows from the server (`conn`) into the target's SQLite files; fills `report`."""
    with ExitStack() as stack:
        files = stack.enter_context(_targets())
        work = _plan(conn, source, target, files, report)
        # every file the target routes a plugin to exists afterwards, as every schema does on the server
        for path in [target.shared_db, *(p.db_path for p in target.plugins.values())]:
            if path not in files:
                files[path] = SqliteTarget(path, target, readonly=report.dry_run)
        report.units = [w.unit for w in work]
        report.created = [str(p) for p, f in files.items() if f.created]
        ledgers = {p: f.ledger() for p, f in files.items()}
        for w in work:
            _preflight(w, ledgers[Path(w.unit.target)].get((w.unit.plugin_id, w.table.name)), chunk_rows, report)
        if report.dry_run or report.problems:
            return
        for file in files.values():
            file.prepare()
        for w in work:
            _copy(w, ledgers[Path(w.unit.target)].get((w.unit.plugin_id, w.table.name)), chunk_rows, progress)
        progress.start("convert: verifying", len(work), "tables")
        for w in work:
            _verify(w, ledgers[Path(w.unit.target)].get((w.unit.plugin_id, w.table.name)), chunk_rows, report)
            progress.advance()
        progress.done()


def _preflight(w: _Work, known: BackLedger | None, chunk_rows: int, report: ConvertReport) -> None:
    u = w.unit
    if known is not None:
        u.copied_before = known.rows_copied
        if known.source_schema != u.source:
            report.problems.append(f"{u.target}: {u.table}: plugin {u.plugin_id} was copied from schema "
                                   f"{known.source_schema}, now its source is {u.source}: convert into an empty file")
        u.status = "would copy" if report.dry_run and known.rows_copied < u.source_rows else u.status
        return
    if w.file.count(w.table, u.plugin_id) == 0:
        u.status = "would copy" if report.dry_run and u.source_rows else u.status
        return
    found = compare_streams(w.table, lambda: w.reader.rows(chunk_rows), lambda: w.file.rows(w.table, u.plugin_id))
    if found.equal:
        u.copied_before, u.status = found.target_rows, "up to date"
        return
    u.status = "refused"
    report.problems.append(f"{u.target}: {u.table}: the file already holds {found.target_rows} rows of plugin "
                           f"{u.plugin_id} that differ from its {u.source_rows} rows in schema {u.source} "
                           f"({found.describe()}); nothing was written: convert into an empty file, or delete those "
                           "rows first")


def _copy(w: _Work, known: BackLedger | None, chunk_rows: int, progress: ProgressSink) -> None:
    u = w.unit
    if u.status == "up to date":
        return
    position = known or BackLedger(u.source, 0, False, None, 0)
    w.renumbered = position.renumbered
    while True:
        rows, following = w.reader.chunk(position, chunk_rows)
        if rows:
            if not u.copied:  # a unit with nothing left to copy shows no progress line
                progress.start(f"convert {u.plugin_id} {u.table}", max(u.source_rows - u.copied_before, 0), "rows")
            with translated_errors(w.file.path), transaction(w.file.writer):
                expected, stored = w.file.insert_rows(w.table, rows, u.plugin_id)
                verify_chunk(w.table, u.target, [(0, r) for r in expected], stored)
                moved = sum(a.get("id") != b.get("id") for a, b in zip(rows, expected, strict=True))
                renumbered = position.renumbered + moved
                following = replace(following, renumbered=renumbered)
                w.file.record(u.plugin_id, w.table, following)
            u.copied += len(rows)
            progress.advance(len(rows))
        elif "id" in w.table.column_names or position.nulls_done:
            break
        position = following
    w.renumbered = position.renumbered
    if u.copied:
        progress.done()


def _verify(w: _Work, known: BackLedger | None, chunk_rows: int, report: ConvertReport) -> None:
    u = w.unit
    if known is not None and not u.copied:
        w.renumbered = known.renumbered
    found = compare_streams(w.table, lambda: w.source_rows(chunk_rows), w.target_rows)
    if not found.equal:
        u.status = "failed"
        report.problems.append(f"{u.target}: {u.table}: plugin {u.plugin_id}: the file differs from schema {u.source} "
                               f"after the copy ({found.describe()})")
        return
    if u.status != "up to date":
        u.status = "copied" if u.copied else "up to date"
    if found.source_rows and (u.copied or known is None or not known.verified):
        with translated_errors(w.file.path), transaction(w.file.writer):
            end = replace(w.reader.end(found.source_rows), renumbered=w.renumbered)
            w.file.record(u.plugin_id, w.table, end, verified=True)
    if w.renumbered and u.copied:
        report.warnings.append(f"{u.target}: {u.table}: {w.renumbered} rows of plugin {u.plugin_id} got a new id "
                               "(their id was another plugin's row's in this file; nothing refers to an event by its "
                               "id)")
