"""split: each isolated plugin's rows from the shared file into its own file, through the synchronisation.

The shared file is only read (never upgraded, never written) unless prune is asked for. Rows are given their
owner once (the attribution's temp tables), then each isolated file is synchronised with the shared file.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import attribution, fault, words
from ..attribution_report import AttributionReport, attribution_report
from ..backend.sqlite_file import read_snapshot, translated_errors
from ..config import StoreConfig
from ..errors import ConfigError
from ..plugin_lock import DEFAULT_LOCK_WAIT_S, plugin_locks, with_file_mates
from ..progress import NO_PROGRESS, ProgressSink
from ..schema import TABLES
from ..words import count
from .prune import prune_preview, prune_shared
from .sync import Direction, SyncJob, Unsettled, synchronise
from .sync.files import READ, attach, check_regular_file, detach
from .sync.identity import mapping_changes, mapping_record, recorded_mapping
from .sync.preview import preview
from .sync.report import SyncReport
from .sync.shared import open_shared

__all__ = ['check_existing_mappings', 'group_by_file', 'preflight', 'select_plugins', 'split', 'SplitReport']

Present = dict[str, set[str]]  # table -> the columns it has in the shared file


@dataclass(kw_only=True)
class SplitReport(SyncReport):
    shared_db: str
    dry_run: bool
    files: dict[str, str] = field(default_factory=dict)  # file -> created | updated | up to date | failed
    buckets: dict[str, attribution.TableBuckets] = field(default_factory=dict)
    attribution: AttributionReport | None = None
    absent_tables: list[str] = field(default_factory=list)
    absent_columns: dict[str, list[str]] = field(default_factory=dict)
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    preflight: dict[str, Any] = field(default_factory=dict)
    prune: dict[str, Any] = field(default_factory=dict)
    # Wall time per phase: attribute, report (unmapped, duplicates), verify (buckets) and copy (per file).
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = round(self.seconds.get(phase, 0.0) + time.perf_counter() - start, 6)

    def to_json(self) -> dict[str, Any]:
        doc = super().to_json()
        doc["buckets"] = {t: {**asdict(b), "bucket_total": b.bucket_total} for t, b in self.buckets.items()}
        doc["rows_copied"] = self.rows_copied()
        doc["attribution"] = self.attribution.to_json() if self.attribution else None
        return doc


def select_plugins(config: StoreConfig, plugin_ids: Sequence[str]) -> list[str]:
    """The plugins to split: those named (each must have an isolated_db), else every use_shared: false one."""
    if not plugin_ids:
        return sorted(p.plugin_id for p in config.plugins.values() if not p.use_shared)
    for pid in plugin_ids:
        if config.plugin(pid).isolated_db is None:
            raise ConfigError(f"{config.plugin(pid).config_path}: database.isolated_db: plugin {pid} has none to "
                              "split into")
    return sorted(set(plugin_ids))


def group_by_file(config: StoreConfig, plugins: Sequence[str]) -> dict[Path, list[str]]:
    groups: dict[Path, list[str]] = {}
    for pid in plugins:
        path = config.plugin(pid).isolated_db
        assert path is not None
        groups.setdefault(path, []).append(pid)
    return groups


def split(config: StoreConfig, plugin_ids: Sequence[str] = (), *, dry_run: bool = False, prune: bool = False,
          remap: bool = False, prefer: str | None = None, progress: ProgressSink = NO_PROGRESS,
          max_hold_ms: float = 100.0, say: Callable[[str], None] = lambda _line: None,
          lock_wait_s: float = DEFAULT_LOCK_WAIT_S, unsettled: Unsettled = Unsettled.FAIL) -> SplitReport:
    """Synchronise the selected plugins' isolated files from the shared file (see the module doc).

    `unsettled` says what rows still changing after the last round mean (flip's passes differ from a split's).

    Raises:
        ConfigError: unknown plugin, missing shared database, or a changed mapping without `remap`.
        StoreError: I/O, busy or corrupt files (nothing is left half-written under a final name).
    """
    plugins = select_plugins(config, plugin_ids)
    groups = group_by_file(config, plugins)
    with nullcontext() if dry_run else plugin_locks(config.data_dir, with_file_mates(config, plugins), "split",
                                                         lock_wait_s):
        report = SplitReport(direction=Direction.TO_ISOLATED.value, shared_db=str(config.shared_db), dry_run=dry_run)
        conn = open_shared(config.shared_db)
        try:
            check_existing_mappings(conn, config, list(groups), remap)
            # One snapshot: the bot may commit between the attribution and the counts of the same table.
            with translated_errors(config.shared_db), read_snapshot(conn):  # a damaged page is named here
                present = _attribute(conn, config, report, progress)
            jobs = [SyncJob(config, path, members, Direction.TO_ISOLATED, present, prefer=prefer, remap=remap,
                            max_hold_ms=max_hold_ms, unsettled=unsettled, progress=progress, say=say)
                    for path, members in groups.items()]
            if dry_run:
                for job in jobs:
                    report.plugins.update(preview(conn, job))
                preflight(conn, config, groups, report)
                if prune:
                    report.prune = {"would_delete": prune_preview(conn, config, plugins, present)}
                return report
            for job in jobs:
                existed = check_regular_file(job.isolated_db)
                progress.start(f"split {job.isolated_db.name}", None, "tables")
                with report.timed("copy"):
                    synchronise(conn, job, report)
                progress.done()
                failed = any(report.plugins[p].status == "failed" for p in job.plugins)
                wrote = any(report.plugins[p].writes for p in job.plugins)
                report.files[str(job.isolated_db)] = "failed" if failed else "created" if not existed else \
                    "updated" if wrote else "up to date"
            if prune and report.ok:
                report.prune = prune_shared(conn, config, plugins, present)
        finally:
            conn.close()
        return report


def check_existing_mappings(conn: sqlite3.Connection, config: StoreConfig, paths: Sequence[Path],
                            remap: bool) -> None:
    """Refuse (before writing anything) when a file was split with another mapping and `remap` is not set."""
    record = mapping_record(config.mapping, config.default_plugin_id, config.mapping_columns)
    for path in paths:
        if remap or not check_regular_file(path):
            continue
        with translated_errors(path):
            attach(conn, path, "iso", READ)
            try:
                recorded = recorded_mapping(conn, "iso")
            finally:
                detach(conn, "iso")
        if recorded is not None and recorded != record:
            raise ConfigError(f"{path}: store.yaml's mapping changed since the last split into this file "
                              f"({mapping_changes(recorded, record)}); check it, then run split again with --remap "
                              "to re-attribute the copies")


def _attribute(conn: sqlite3.Connection, config: StoreConfig, report: SplitReport,
               progress: ProgressSink) -> Present:
    """Attribute every source row once (temp owner tables) and fill the report's attribution part."""
    progress.start(f"attributing {config.shared_db.name}", len(TABLES), "tables")
    with report.timed("attribute"):
        present = attribution.build_owners(conn, "sh", config.rules)
    fault.point("after_owners")
    with report.timed("report"):
        report.attribution = attribution_report(conn, "sh", config.rules, present)
    for table in TABLES:
        progress.advance()
        cols = present.get(table.name)
        if cols is None:
            report.absent_tables.append(table.name)
            continue
        if missing := [c for c in table.column_names if c not in cols]:
            report.absent_columns[table.name] = missing
        if extra := sorted(cols - set(table.all_column_names)):
            report.extra_columns[table.name] = extra
        with report.timed("verify"):  # every row in exactly one bucket: part of the verification
            buckets = attribution.count_buckets(conn, "sh", table.name)
        report.buckets[table.name] = buckets
        if buckets.bucket_total != buckets.source_rows:
            report.problems.append(f"{table.name}: attribution buckets hold {count(buckets.bucket_total, 'row')}, "
                                   f"the source {buckets.source_rows:,}")
    progress.done()
    return present


# --- dry run ---------------------------------------------------------------------------------------------


def preflight(conn: sqlite3.Connection, config: StoreConfig, groups: dict[Path, list[str]],
              report: SplitReport) -> None:
    """--dry-run: foreign keys, free disk, write permission; reads only and creates no file."""
    for r in report.plugins.values():
        report.problems.extend(f"{r.plugin_id}: would be refused: {p}" for p in r.problems)
    report.preflight = {
        "foreign_key_problems": dict(conn.execute(
            "SELECT [table], count(*) FROM pragma_foreign_key_check(NULL, 'sh') GROUP BY 1").fetchall()),
        "disk": _disk_check(config.shared_db, list(groups), report),
        "writable": _permission_check(list(groups), report),
    }


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _disk_check(source: Path, targets: list[Path], report: SplitReport) -> list[dict[str, Any]]:
    """Free space of each target folder's file system against the source's size (copies are about as big)."""
    size = sum(os.stat(p).st_size for p in (source, Path(f"{source}-wal")) if p.exists())
    checks = []
    for folder in sorted({_existing_ancestor(t.parent) for t in targets}):
        free = shutil.disk_usage(folder).free
        checks.append({"folder": str(folder), "free_bytes": free, "source_bytes": size, "ok": free >= size})
        if free < size:
            report.problems.append(f"{folder}: {words.size(free)} free, the source holds {words.size(size)}")
    return checks


def _permission_check(targets: list[Path], report: SplitReport) -> list[dict[str, Any]]:
    checks = []
    for target in targets:
        where = target if target.exists() else _existing_ancestor(target.parent)
        ok = os.access(where, os.W_OK | (os.X_OK if where.is_dir() else 0))
        checks.append({"path": str(where), "ok": ok})
        if not ok:
            report.problems.append(f"{where}: not writable (needed for {target})")
    return checks
