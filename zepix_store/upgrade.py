"""Bring a file to SCHEMA_VERSION in place, in one transaction (SPEC 4; the seed plan's Option A done right).

Version 0 is the legacy bot file (or the seed plan's half-migrated one). Tables whose key changes, or that
already carry a `plugin_id` of the wrong shape, are rebuilt (the SQLite 12-step ALTER); the others get
`ALTER TABLE ADD COLUMN` and one UPDATE from the owner tables. A parent shared by several plugins cannot be
given one owner in place, so it (and its children) keeps the default id here and is reported as shared.
Versions 1 and 2 differ only in the close-time index key (timefmt.time_key_sql) and in the change-tracking
triggers of a synchronised file (change_tracking.py): the index is rebuilt and the triggers rewritten, rows are
untouched.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from . import attribution, fault
from .attribution import AttributionRules
from .attribution_report import AttributionReport, attribution_report
from .change_tracking import replace_tracking_triggers
from .errors import SchemaError
from .progress import NO_PROGRESS, ProgressSink
from .schema import (
    CLOSE_INDEX,
    DEFAULT_PLUGIN_ID,
    PLUGIN_ID_COLUMN,
    SCHEMA_VERSION,
    TABLES,
    Table,
    create_schema_sql,
    index_sql,
)

__all__ = ["SINGLE_OWNER", "UpgradeReport", "file_version", "initialise", "is_empty", "needs_upgrade", "upgrade"]


@dataclass
class UpgradeReport:
    from_version: int
    to_version: int = SCHEMA_VERSION
    created_tables: list[str] = field(default_factory=list)
    rebuilt_tables: list[str] = field(default_factory=list)
    altered_tables: list[str] = field(default_factory=list)
    added_columns: dict[str, list[str]] = field(default_factory=dict)
    buckets: dict[str, attribution.TableBuckets] = field(default_factory=dict)
    attribution: AttributionReport | None = None  # None: no row was attributed (an upgrade from version 1)
    reindexed: list[str] = field(default_factory=list)
    retriggered: list[str] = field(default_factory=list)  # tables whose change-tracking triggers were rewritten

    @property
    def changed(self) -> bool:
        return self.from_version != self.to_version


def file_version(conn: sqlite3.Connection, path: object) -> int:
    """The file's PRAGMA user_version; a version newer than this code is an error."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: schema version {version} is newer than this zepix_store knows ({SCHEMA_VERSION}); "
            "upgrade zepix_store, never downgrade the file", path=path)
    return version


def is_empty(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0)


def needs_upgrade(conn: sqlite3.Connection, path: object) -> bool:
    """Whether the file holds data of an older version (an empty file is initialised, not upgraded)."""
    return file_version(conn, path) < SCHEMA_VERSION and not is_empty(conn)


def initialise(conn: sqlite3.Connection) -> None:
    """Create the current schema in an empty file (caller holds the write transaction)."""
    for sql in create_schema_sql():
        conn.execute(sql)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def upgrade(conn: sqlite3.Connection, path: object, rules: AttributionRules, *,
            progress: ProgressSink = NO_PROGRESS) -> UpgradeReport:
    """Upgrade the file behind `conn` (autocommit, not in a transaction) in one transaction."""
    report = UpgradeReport(from_version=file_version(conn, path))
    if not report.changed:
        return report
    # foreign_keys must be off to rebuild a parent table, and the pragma is a no-op inside a transaction.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have upgraded the file between our first look and the write lock.
            report.from_version = file_version(conn, path)
            if report.changed and report.from_version >= 1:
                _upgrade_in_place(conn, report)
            elif report.changed:
                _upgrade_in_transaction(conn, report, rules, progress, f"upgrade {path}")
            fault.point("before_commit")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    return report


def _upgrade_in_place(conn: sqlite3.Connection, report: UpgradeReport) -> None:
    """Version 1 or 2 -> 3: the close-time index (its key reads more legacy spellings in 3) and the
    change-tracking triggers; no row changes."""
    conn.execute(f"DROP INDEX IF EXISTS main.{CLOSE_INDEX}")
    for table in TABLES:
        for sql in index_sql(table):
            conn.execute(sql)
    report.reindexed.append(CLOSE_INDEX)
    conn.execute("ANALYZE")
    report.retriggered = replace_tracking_triggers(conn)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _upgrade_in_transaction(
    conn: sqlite3.Connection, report: UpgradeReport, rules: AttributionRules,
    progress: ProgressSink, label: str,
) -> None:
    default = rules.default_plugin_id
    present = attribution.build_owners(conn, "main", rules)
    report.attribution = attribution_report(conn, "main", rules, present)
    for table in TABLES:
        if table.name in present:
            report.buckets[table.name] = attribution.count_buckets(conn, "main", table.name)
    progress.start(label, sum(b.source_rows for b in report.buckets.values()), "rows")
    for table in TABLES:
        cols = present.get(table.name)
        if cols is None:
            conn.execute(table.create_sql())
            report.created_tables.append(table.name)
        elif table.key or "plugin_id" in cols or not set(table.column_names) <= cols:
            _rebuild(conn, table, cols, report, default)
        else:
            _alter(conn, table, report, default)
        fault.point(f"after_alter:{table.name}")
        progress.advance(report.buckets[table.name].source_rows if table.name in report.buckets else 0)
    progress.done()
    for table in TABLES:
        for sql in index_sql(table):
            conn.execute(sql)
    conn.execute("ANALYZE")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


SINGLE_OWNER = ("(SELECT CASE WHEN count(*) = 1 THEN min(o.plugin_id) ELSE :d END "
                "FROM {own} o WHERE o.src_rowid = x.rowid)")


def _alter(conn: sqlite3.Connection, table: Table, report: UpgradeReport, default: str) -> None:
    conn.execute(f"ALTER TABLE main.{table.name} ADD COLUMN {PLUGIN_ID_COLUMN}")
    own = attribution.owner_table(table.name)
    # Only rows whose owner differs from the column default need a write.
    if table.name == "trades":  # one owner per trade: join the keyed owner table directly
        owners = f"{own} o"
    else:
        owners = (f"(SELECT src_rowid, CASE WHEN count(*) = 1 THEN min(plugin_id) ELSE :d END AS plugin_id "
                  f"FROM {own} GROUP BY src_rowid) o")
    conn.execute(
        f"UPDATE main.{table.name} AS x SET plugin_id = o.plugin_id FROM {owners} "
        "WHERE o.src_rowid = x.rowid AND o.plugin_id <> :column_default",
        {"d": default, "column_default": DEFAULT_PLUGIN_ID},
    )
    report.altered_tables.append(table.name)


def _extra_columns(conn: sqlite3.Connection, table: Table) -> list[tuple[str, str]]:
    """Columns the file has beyond the legacy ones: kept as they are (quoted name, declaration)."""
    extra = []
    for _, name, decl, *_ in conn.execute(f"PRAGMA main.table_info({table.name})"):
        if name not in table.all_column_names:
            quoted = '"' + str(name).replace('"', '""') + '"'
            extra.append((quoted, f"{quoted} {decl}".rstrip()))
    return extra


def _rebuild(conn: sqlite3.Connection, table: Table, cols: set[str], report: UpgradeReport, default: str) -> None:
    missing = [c for c in table.column_names if c not in cols]
    if missing:
        report.added_columns[table.name] = missing
    extra = _extra_columns(conn, table)
    kept_indexes = [sql for (sql,) in conn.execute(
        "SELECT sql FROM main.sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (table.name,))]
    tmp = f"zx_new_{table.name}"
    create = table.create_sql(name=tmp)
    if extra:
        create = create.replace(", plugin_id TEXT", ", " + ", ".join(d for _, d in extra) + ", plugin_id TEXT", 1)
    conn.execute(create)
    copied = [c for c in table.column_names if c in cols] + [q for q, _ in extra]
    owner = SINGLE_OWNER.format(own=attribution.owner_table(table.name))
    conn.execute(
        f"INSERT INTO main.{tmp} (rowid, {', '.join(copied)}, plugin_id) "
        f"SELECT x.rowid, {', '.join('x.' + c for c in copied)}, {owner} FROM main.{table.name} x",
        {"d": default})
    conn.execute(f"DROP TABLE main.{table.name}")
    conn.execute(f"ALTER TABLE main.{tmp} RENAME TO {table.name}")
    for sql in kept_indexes:
        if "plugin_id" not in sql:  # the seed plan's plugin_id indexes are replaced by the store's
            conn.execute(sql)
    report.rebuilt_tables.append(table.name)
