"""convert: every plugin's rows from a store on SQLite into the same store on PostgreSQL (SPEC 9 "Moving").

The unit of work is one plugin's rows of one table: read from the file the source config routes the plugin to
(rows of ids no config names, the default id's among them, from the shared file), written to the schema the
target config routes it to, parents before children. Each unit is copied in chunks ordered by source rowid, each
chunk verified and committed with its ledger row (convert_target), so a rerun after a kill continues where the
last commit left off. Every unit is then compared whole with its source (count, every value with its storage
class, money totals as floats). A unit the ledger does not know must find no rows of its plugin in its target
table, or the very rows of the source: anything else refuses the whole run before a row is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .._fs import ensure_private_dir
from ..backend.postgresql.connection import connect, public_dsn, translate_pg_error
from ..backend.postgresql.ddl import advance_ids, ensure_schemas
from ..backend.postgresql.names import isolated_schema_base, layout_of, read_registry, shared_schema
from ..config import STORE_FILE, PostgresConfig, StoreConfig
from ..errors import ConfigError, StoreError
from ..plugin_lock import DEFAULT_LOCK_WAIT_S, plugin_locks
from ..progress import NO_PROGRESS, ProgressSink
from ..schema import ATTRIBUTION_ORDER, TABLE_BY_NAME, Table
from .convert_back_run import convert_back
from .convert_check import Comparison, compare_unit
from .convert_report import ConvertReport, UnitReport
from .convert_source import SourceFile, open_source
from .convert_target import LedgerRow, copy_chunk, ensure_ledger, lock_target, mark_verified, plugin_counts, read_ledger

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.rows import TupleRow

__all__ = ["ConvertReport", "UnitReport", "convert"]

DEFAULT_CHUNK_ROWS = 5000
ORDER: tuple[Table, ...] = tuple(TABLE_BY_NAME[name] for name in ATTRIBUTION_ORDER)  # parents before children


@dataclass
class _Unit:
    report: UnitReport
    table: Table
    source: SourceFile

    @property
    def key(self) -> tuple[str, str, str]:
        return self.report.target, self.report.plugin_id, self.report.table


def _check_backends(source: StoreConfig, target: StoreConfig) -> None:
    if {source.backend, target.backend} != {"sqlite", "postgresql"}:
        raise ConfigError(f"{target.config_dir}: convert copies a store on SQLite into one on PostgreSQL or back: "
                          f"--config is backend {source.backend}, --to is backend {target.backend}")
    for plugin in source.plugins:
        if plugin not in target.plugins:
            raise ConfigError(f"{target.plugins_dir}: plugin_id: plugin {plugin} of {source.config_dir} has no config "
                              "here: --to must describe the same plugins (copy the plugin folders)")


def _target_file(target: StoreConfig, plugin: str) -> str:
    """The file name (relative to data_dir, as the layout has it) the target config routes `plugin` to."""
    layout = layout_of(target, _prefix(target))
    if plugin in target.plugins and not target.plugins[plugin].use_shared:
        found = layout.plugin_files[plugin]
        assert found is not None
        return found
    return layout.shared_file


def _prefix(config: StoreConfig) -> str:
    assert config.postgresql is not None
    return config.postgresql.schema_prefix


@contextmanager
def _sources(config: StoreConfig) -> Iterator[dict[Path, SourceFile]]:
    isolated = {p.isolated_db for p in config.plugins.values() if p.isolated_db is not None}
    files = [config.shared_db, *sorted(isolated - {config.shared_db})]
    with ExitStack() as stack:
        opened: dict[Path, SourceFile] = {}
        for path in files:
            found = open_source(path, config.rules)
            if found is not None:
                stack.callback(found.close)
                opened[path] = found
        yield opened


def _plan(source: StoreConfig, target: StoreConfig, files: dict[Path, SourceFile], report: ConvertReport
          ) -> list[_Unit]:
    """Every unit to copy, parents before children within a plugin; refuses rows with nowhere to go.

    A unit's target is the target's file name here; _schema_names gives its schema once nothing is refused.
    """
    units: list[_Unit] = []
    for path, src in files.items():
        counts = {t.name: src.owner_counts(t) for t in ORDER}
        for plugin in sorted({p for per in counts.values() for p in per}):
            home = source.plugins[plugin].db_path if plugin in source.plugins else source.shared_db
            total = sum(per.get(plugin, 0) for per in counts.values())
            if home != path:
                _left_behind(source, files, plugin, path, total, report)
                continue
            schema = _target_file(target, plugin)
            for table in ORDER:
                if table.name in src.present:
                    units.append(_Unit(UnitReport(plugin, table.name, str(path), schema,
                                                  counts[table.name].get(plugin, 0)), table, src))
            for table in ORDER:
                if extra := src.extra_columns(table):
                    report.warnings.append(f"{path}: {table.name} has columns the store does not know, not copied: "
                                           f"{', '.join(extra)}")
    return units


def _left_behind(source: StoreConfig, files: dict[Path, SourceFile], plugin: str, path: Path, rows: int,
                 report: ConvertReport) -> None:
    routed = source.plugins.get(plugin)
    home = routed.db_path if routed is not None else source.shared_db
    if home not in files:
        where = routed.config_path if routed is not None else source.config_dir / STORE_FILE
        raise ConfigError(f"{where}: plugin {plugin} is routed to {home}, which does not exist, but {path} holds "
                          f"{rows} of its rows: run split first (or set use_shared: true), then convert")
    report.warnings.append(f"{path}: {rows} rows of plugin {plugin} not copied: its config routes it to {home} (they "
                           "are copies of it, or rows never split: run split first if they are not)")


def _schema_names(conn: Connection[TupleRow], target: StoreConfig, dry_run: bool, report: ConvertReport
                  ) -> dict[str, str]:
    """File name -> schema on the target; created (or, on a dry run, only named) here."""
    layout = layout_of(target, _prefix(target))
    known = {r.file_name: r.schema for r in read_registry(conn, layout.prefix).values()}
    wanted = [layout.shared_file, *layout.isolated_files]
    if not dry_run:
        names = ensure_schemas(conn, layout)
        report.created = [names[f] for f in wanted if f not in known]
        return names
    guess = {f: known.get(f) or (shared_schema(layout.prefix) if f == layout.shared_file
                                 else isolated_schema_base(layout.prefix, f)) for f in wanted}
    report.created = [guess[f] for f in wanted if f not in known]
    return guess


def convert(source: StoreConfig, target: StoreConfig, *, dry_run: bool = False, chunk_rows: int = DEFAULT_CHUNK_ROWS,
            progress: ProgressSink = NO_PROGRESS, lock_wait_s: float = DEFAULT_LOCK_WAIT_S) -> ConvertReport:
    """Copy every plugin's rows of `source` into `target` (see the module doc), SQLite -> PostgreSQL or back.

    A target holding other rows for a plugin, or a table that differs from its source after the copy, is a
    problem of the report (its `ok` is False, nothing is written in the first case).

    Raises:
        ConfigError: not one SQLite and one PostgreSQL store, a plugin unknown to the target, rows with nowhere to go.
        VerifyError: a chunk differed from its source as stored (rolled back; earlier chunks stay, a rerun continues).
        StoreBusyError: another convert into the target, or a synchronisation of a source plugin, is running.
        StoreUnavailableError: the server cannot be reached or the connection was lost (exit 7).
    """
    _check_backends(source, target)
    if source.backend == "postgresql":
        return _convert_back(source, target, dry_run, chunk_rows, progress, lock_wait_s)
    assert target.postgresql is not None
    where = f"postgresql {public_dsn(target.postgresql.dsn)}"
    report = ConvertReport(str(source.config_dir), where, dry_run)
    locks = nullcontext() if dry_run else plugin_locks(source.data_dir, sorted(source.plugins), "convert",
                                                       lock_wait_s)
    with locks, _sources(source) as files:
        conn = connect(target.postgresql, read_only=dry_run)
        try:
            lock_target(conn, _prefix(target), where)
            units = _plan(source, target, files, report)
            names = _schema_names(conn, target, dry_run, report)
            for unit in units:
                unit.report.target = names[unit.report.target]
            report.units = [u.report for u in units]
            ledger = read_ledger(conn, _prefix(target))
            adopted = _preflight(conn, units, ledger, chunk_rows, report)
            if dry_run or report.problems:
                return report
            ensure_ledger(conn, _prefix(target))
            for unit, rows in adopted:
                mark_verified(conn, _prefix(target), unit.key, unit.report.source,
                              unit.source.max_rowid(unit.table, unit.report.plugin_id), rows)
            for unit in units:
                _copy_unit(conn, target, unit, ledger.get(unit.key), chunk_rows, progress)
            _verify_all(conn, target, units, chunk_rows, progress, report)
            touched = sorted({u.report.target for u in units if u.report.copied})
            if touched:
                with conn.transaction():
                    for schema in touched:
                        advance_ids(conn, schema)
        except Exception as exc:
            _raise_as_store_error(exc, target.postgresql)
        finally:
            conn.close()
    return report


def _convert_back(source: StoreConfig, target: StoreConfig, dry_run: bool, chunk_rows: int, progress: ProgressSink,
                  lock_wait_s: float) -> ConvertReport:
    """PostgreSQL -> SQLite (ops/convert_back_run.py): the target's plugins locked, the server only read."""
    assert source.postgresql is not None
    report = ConvertReport(f"postgresql {public_dsn(source.postgresql.dsn)}", str(target.config_dir), dry_run)
    if not dry_run:
        ensure_private_dir(target.data_dir)  # a new desk's data folder: the locks and the files go there
    locks = nullcontext() if dry_run else plugin_locks(target.data_dir, sorted(target.plugins), "convert",
                                                       lock_wait_s)
    with locks:
        conn = connect(source.postgresql, read_only=True)
        try:
            convert_back(conn, source, target, report, chunk_rows, progress)
        except Exception as exc:
            _raise_as_store_error(exc, source.postgresql)
        finally:
            conn.close()
    return report


def _preflight(conn: Connection[TupleRow], units: list[_Unit], ledger: dict[tuple[str, str, str], LedgerRow],
               chunk_rows: int, report: ConvertReport) -> list[tuple[_Unit, int]]:
    """Each unit's state before anything is written: known to the ledger, or its target empty or equal.

    Returns the units whose target already holds exactly the source's rows (recorded once nothing is refused).
    """
    adopted: list[tuple[_Unit, int]] = []
    held: dict[tuple[str, str], dict[str, int]] = {}  # (schema, table) -> rows per plugin on the target
    for unit in units:
        r, known = unit.report, ledger.get(unit.key)
        if known is not None:
            if known.source_file != r.source:
                report.problems.append(f"{r.target}.{r.table}: plugin {r.plugin_id} was copied from "
                                       f"{known.source_file}, now its source is {r.source}: convert into an "
                                       "empty store, or drop the plugin's rows there first")
            r.copied_before = known.rows_copied
            r.status = "would copy" if report.dry_run and known.rows_copied < r.source_rows else r.status
            continue
        if r.target in report.created or not _held(conn, held, r.target, unit.table).get(r.plugin_id):
            r.status = "would copy" if report.dry_run and r.source_rows else r.status
            continue  # nothing of the plugin there (a dry run's new schema does not even exist)
        found = compare_unit(conn, unit.source, r.target, unit.table, r.plugin_id, chunk_rows)
        if found.target_rows == 0:
            r.status = "would copy" if report.dry_run and r.source_rows else r.status
            continue
        if found.equal:
            r.copied_before, r.status = found.target_rows, "up to date"
            adopted.append((unit, found.target_rows))
            continue
        r.status = "refused"
        report.problems.append(f"{r.target}.{r.table}: the target already holds {found.target_rows} rows of "
                               f"plugin {r.plugin_id} that differ from its {r.source_rows} rows in {r.source} "
                               f"({found.describe()}); nothing was written: convert into an empty store, or delete "
                               "those rows first")
    return adopted


def _held(conn: Connection[TupleRow], held: dict[tuple[str, str], dict[str, int]], schema: str, table: Table
          ) -> dict[str, int]:
    """Rows per plugin of `schema`.`table` on the target, counted once per run."""
    if (schema, table.name) not in held:
        held[schema, table.name] = plugin_counts(conn, schema, table)
    return held[schema, table.name]


def _copy_unit(conn: Connection[TupleRow], target: StoreConfig, unit: _Unit, known: LedgerRow | None,
               chunk_rows: int, progress: ProgressSink) -> None:
    r, src, state = unit.report, unit.source, known
    if r.status == "up to date":
        return
    after = known.last_rowid if known else 0
    while chunk := src.read_chunk(unit.table, r.plugin_id, after, chunk_rows):
        if not r.copied:  # a unit with nothing left to copy shows no progress line
            progress.start(f"convert {r.plugin_id} {r.table}", max(r.source_rows - r.copied_before, 0), "rows")
        state = copy_chunk(conn, _prefix(target), r.target, unit.table, chunk, r.source, state,
                           target.zone)
        r.copied += len(chunk)
        after = chunk[-1][0]
        progress.advance(len(chunk))
    if r.copied:
        progress.done()


def _verify_all(conn: Connection[TupleRow], target: StoreConfig, units: list[_Unit], chunk_rows: int,
                progress: ProgressSink, report: ConvertReport) -> None:
    """Compare every unit whole with its source, and record the verified ones in the ledger."""
    progress.start("convert: verifying", len(units), "tables")
    held: dict[tuple[str, str], dict[str, int]] = {}  # counted now, after the copy
    for unit in units:
        r = unit.report
        progress.advance()
        if not _held(conn, held, r.target, unit.table).get(r.plugin_id) and \
                not unit.source.owner_counts(unit.table).get(r.plugin_id):
            r.status = "up to date"
            continue  # nothing of the plugin on either side
        found: Comparison = compare_unit(conn, unit.source, r.target, unit.table, r.plugin_id, chunk_rows)
        if not found.equal:
            r.status = "failed"
            report.problems.append(f"{r.target}.{r.table}: plugin {r.plugin_id}: the target differs from "
                                   f"{r.source} after the copy ({found.describe()})")
            continue
        if r.status != "up to date":
            r.status = "copied" if r.copied else "up to date"
        mark_verified(conn, _prefix(target), unit.key, r.source, unit.source.max_rowid(unit.table, r.plugin_id),
                      found.source_rows)
    progress.done()


def _raise_as_store_error(exc: Exception, server: PostgresConfig) -> NoReturn:
    """Re-raise `exc`: a psycopg error as the store's typed error naming the server, anything else as it is."""
    if not isinstance(exc, StoreError) and type(exc).__module__.startswith("psycopg"):
        raise translate_pg_error(exc, server) from exc
    raise exc
