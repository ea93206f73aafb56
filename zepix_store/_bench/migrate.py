"""bench: `upgrade` (the migrate step) against plain ALTER + UPDATE + CREATE INDEX, `backup_file` against the raw
backup API, each on copies of the same legacy file."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

from .. import upgrade
from ..attribution import AttributionRules
from ..backend.sqlite_backup import backup_file
from ..backend.sqlite_file import connect_sync
from ..schema import DEFAULT_PLUGIN_ID, TABLES, TRADES, Table, index_sql
from .core import (
    Figure,
    Say,
    alternate,
    copy_db,
    median,
    ratio_figure,
    raw_connect,
    remove_db,
)

__all__ = ["MigrateBench", "make_migrated", "measure_migrate", "raw_migrate_sql"]


def raw_migrate_sql(mapping: Mapping[str, str]) -> list[tuple[str, tuple[object, ...]]]:
    """The migration a plain-SQL engineer writes: add the column, attribute trades and children, index, analyze."""
    statements: list[tuple[str, tuple[object, ...]]] = [
        (f"ALTER TABLE {t.name} ADD COLUMN plugin_id TEXT NOT NULL DEFAULT '{DEFAULT_PLUGIN_ID}'", ()) for t in TABLES]
    cases = " ".join("WHEN ? THEN ?" for _ in mapping)
    params = tuple(v for pair in mapping.items() for v in pair)
    statements.append((f"UPDATE trades SET plugin_id = CASE logic_type {cases} END "
                       f"WHERE logic_type IN ({', '.join('?' * len(mapping))})", (*params, *mapping)))
    for table in TABLES:  # TABLES lists every parent before its children
        statements.extend(_lineage_update(table))
    statements.extend((sql, ()) for t in TABLES for sql in index_sql(t))
    statements.append(("ANALYZE", ()))
    return statements


def _lineage_update(table: Table) -> list[tuple[str, tuple[object, ...]]]:
    lin = table.lineage
    if lin is None:
        return []
    return [(f"UPDATE {table.name} SET plugin_id = p.plugin_id FROM (SELECT {lin.parent_column} AS k, "
             f"min(plugin_id) AS plugin_id FROM {lin.parent} WHERE {lin.parent_column} IS NOT NULL "
             f"GROUP BY {lin.parent_column}) p WHERE p.k = {table.name}.{lin.column}", ())]


class MigrateBench:
    """Each run works on a fresh backup-API copy of the legacy file; only the migration itself is timed."""

    def __init__(self, legacy: Path, scratch: Path, mapping: Mapping[str, str]) -> None:
        self.legacy = legacy
        self.scratch = scratch
        self.mapping = dict(mapping)
        self.last_store_copy: Path | None = None
        scratch.mkdir(parents=True, exist_ok=True)

    def _copy(self, name: str) -> Path:
        target = self.scratch / f"{name}.db"
        copy_db(self.legacy, target)
        return target

    def store_migrate(self) -> float:
        path = self._copy("store")
        conn = connect_sync(path)
        try:
            start = time.perf_counter()
            upgrade.upgrade(conn, path, AttributionRules(self.mapping, DEFAULT_PLUGIN_ID))
            return time.perf_counter() - start
        finally:
            conn.close()
            self.last_store_copy = path

    def raw_migrate(self) -> float:
        path = self._copy("raw")
        conn = raw_connect(path)
        try:
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            for sql, params in raw_migrate_sql(self.mapping):
                conn.execute(sql, params)
            conn.execute("COMMIT")
            return time.perf_counter() - start
        finally:
            conn.close()
            remove_db(path)

    def store_backup(self) -> float:
        target_dir = self.scratch / "backups"
        start = time.perf_counter()
        made = backup_file(self.legacy, target_dir, "bench")
        seconds = time.perf_counter() - start
        remove_db(made)
        return seconds

    def raw_backup(self) -> float:
        target = self.scratch / "raw-backup.db"
        remove_db(target)
        start = time.perf_counter()
        copy_db(self.legacy, target)  # the raw backup API; its remove_db finds nothing to remove here
        seconds = time.perf_counter() - start
        remove_db(target)
        return seconds


def measure_migrate(legacy: Path, scratch: Path, mapping: Mapping[str, str], repeat: int, say: Say,
                    keep_migrated: Path | None = None) -> list[Figure]:
    """migrate vs plain SQL, backup vs raw backup API; optionally keep one migrated copy at `keep_migrated`."""
    bench = MigrateBench(legacy, scratch, mapping)
    trades = _count(legacy, TRADES)
    say(f"migrate: upgrade vs plain ALTER + UPDATE + CREATE INDEX on {trades:,} trades, {repeat} runs each")
    store, raw = alternate(bench.store_migrate, bench.raw_migrate, repeat)
    figures = [_time_figure("migrate.upgrade", store, raw, 1.5, trades)]
    say(f"backup: backup_file vs raw Connection.backup, {repeat} runs each")
    store, raw = alternate(bench.store_backup, bench.raw_backup, repeat)
    figures.append(_time_figure("backup.backup_file", store, raw, 1.2, trades))
    if keep_migrated is not None and bench.last_store_copy is not None:
        _checkpoint(bench.last_store_copy)
        remove_db(keep_migrated)
        keep_migrated.parent.mkdir(parents=True, exist_ok=True)
        bench.last_store_copy.rename(keep_migrated)  # a closed, checkpointed file with no -wal left
    shutil.rmtree(scratch, ignore_errors=True)
    return figures


def make_migrated(legacy: Path, target: Path, mapping: Mapping[str, str]) -> None:
    """An upgraded copy of `legacy` at `target` (untimed), for the reads when migrate itself is not measured."""
    target.parent.mkdir(parents=True, exist_ok=True)
    copy_db(legacy, target)
    conn = connect_sync(target)
    try:
        upgrade.upgrade(conn, target, AttributionRules(mapping, DEFAULT_PLUGIN_ID))
    finally:
        conn.close()
    _checkpoint(target)


def _checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")  # folds the -wal into the file and removes it
    finally:
        conn.close()


def _count(path: Path, table: Table) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0])
    finally:
        conn.close()


def _time_figure(name: str, store: list[float], raw: list[float], at_most: float, trades: int) -> Figure:
    detail = {"trades": trades, "seconds": store, "baseline_seconds": raw}
    return ratio_figure(name, median(store), median(raw), "s", at_most=at_most, detail=detail)
