"""synchronise(): one isolated file's plugins against the shared file, one way, planned then applied in chunks.

The caller attaches the shared file as `sh` (read-only for a split: it is never written then; read-write for
a merge, already at the current schema) and, for a split, builds the attribution's owner tables. Per plugin:
plan every table (a conflict refuses the whole plugin before anything of it is written), apply, and plan again
until nothing is left (the bot may write meanwhile), at most ROUNDS times.
"""

from __future__ import annotations

import sqlite3
from contextlib import nullcontext

from ... import fault
from ...backend.sqlite_file import read_snapshot, transaction, translated_errors
from ...errors import VerifyError
from ...schema import ATTRIBUTION_ORDER, SCHEMA_VERSION, TABLE_BY_NAME, TABLES, create_schema_sql, index_sql
from .apply import Writer, apply_segment, fresh_copy
from .chunks import ChunkClock
from .columns import columns_for
from .files import Target, attach, attach_isolated, detach, link_new_file, release
from .identity import (
    has_identity,
    has_pairs,
    identity_ddl,
    mapping_record,
    record_mapping,
    recorded_mapping,
    segment,
    upgrade_old_ledgers,
)
from .job import Direction, SyncJob, Unsettled
from .plan import (
    WRITES,
    Scope,
    conflict_details,
    counts,
    create_todo,
    other_side_names,
    plan_pairs,
    plan_unpaired,
    shared_rows,
    source_counts,
)
from .rekey import follow_replaced_rows
from .remap import drop_remapped
from .report import PluginSync, SyncReport

__all__ = ['plan_plugin', 'record_plan', 'ROUNDS', 'scopes_for', 'synchronise']

ROUNDS = 4


def synchronise(conn: sqlite3.Connection, job: SyncJob, report: SyncReport) -> None:
    """Synchronise `job`'s plugins of one isolated file; results and problems go into `report`."""
    results = {p: PluginSync(p, str(job.isolated_db)) for p in job.plugins}
    report.plugins.update(results)
    to_shared = job.direction is Direction.TO_SHARED
    if to_shared:  # attached after the isolated file, so each chunk's pairs commit before its shared rows
        detach(conn, "sh")
    target = attach_isolated(conn, job.config, job.isolated_db, create=not to_shared)
    if to_shared:
        with translated_errors(job.config.shared_db):
            attach(conn, job.config.shared_db, "sh", "rw")
            conn.execute("PRAGMA sh.synchronous = FULL")
    clock = ChunkClock(job.max_hold_ms, bounded=not target.created)
    writer = Writer(conn, clock, outer=target.created)
    try:
        with translated_errors(target.file):
            if target.created:
                with transaction(conn):  # a new file is nobody's yet: built in one transaction, linked when verified
                    _prepare(conn, job, target)
                    _run(conn, job, writer, results)
                    _finish_new(conn, results)
                    fault.point(f"before_commit:{target.path.name}")
                fault.point(f"after_commit:{target.path.name}")
                if all(r.status != "failed" for r in results.values()):
                    link_new_file(conn, target)
            else:
                with writer.txn():
                    _prepare(conn, job, target)
                _run(conn, job, writer, results)
                if any(r.writes for r in results.values()):
                    with writer.txn():
                        conn.execute("PRAGMA analysis_limit = 400")
                        conn.execute("ANALYZE iso")
    finally:
        release(conn, target)
        report.longest_hold_ms = max(report.longest_hold_ms, clock.longest_ms)
    for r in results.values():
        report.problems.extend(f"{r.plugin_id}: {p}" for p in r.problems)
        report.warnings.extend(f"{r.plugin_id}: written in the other place since the last sync, carried over: {n}"
                               for n in r.other_side)
        report.warnings.extend(f"{r.plugin_id}: {n}" for n in r.unsettled)


def _prepare(conn: sqlite3.Connection, job: SyncJob, target: Target) -> None:
    """Schema, identity map and mapping record of the isolated file (an old copy ledger converted)."""
    if conn.execute("PRAGMA iso.user_version").fetchone()[0] == 0:
        conn.execute(f"PRAGMA iso.user_version = {SCHEMA_VERSION}")
    statements = create_schema_sql("iso")
    if target.created:  # indexes after the load (cheaper), see _finish_new
        indexes = {s for t in TABLES for s in index_sql(t, "iso")}
        statements = [s for s in statements if s not in indexes]
    fresh = not has_identity(conn)
    for sql in [*statements, *identity_ddl("iso")]:
        conn.execute(sql)
    if fresh:
        routed = {pid: not p.use_shared for pid, p in job.config.plugins.items()}
        upgrade_old_ledgers(conn, routed)
    if job.direction is Direction.TO_ISOLATED:
        record = mapping_record(job.config.mapping, job.config.default_plugin_id, job.config.mapping_columns)
        recorded = recorded_mapping(conn)
        if job.remap and recorded not in (None, record):
            for pid in job.plugins:
                drop_remapped(conn, job, pid)
        record_mapping(conn, record)


def _finish_new(conn: sqlite3.Connection, results: dict[str, PluginSync]) -> None:
    if any(r.status == "failed" for r in results.values()):
        raise VerifyError("; ".join(f"{r.plugin_id}: {p}" for r in results.values() for p in r.problems))
    for table in TABLES:
        for sql in index_sql(table, "iso"):
            conn.execute(sql)
    conn.execute("PRAGMA analysis_limit = 1000")
    conn.execute("ANALYZE iso")


def scopes_for(conn: sqlite3.Connection, job: SyncJob, pid: str, create: bool) -> list[Scope]:
    """One Scope per table the shared file has, in attribution order (segments created if asked)."""
    scopes = []
    for table in (TABLE_BY_NAME[n] for n in ATTRIBUTION_ORDER if n in job.present):
        seg = segment(conn, table, pid, create=create) or 0  # 0: no segment yet, so no pair (ids start at 1)
        scopes.append(Scope(table, pid, seg, columns_for(conn, table, job.present[table.name]), job.direction,
                            had_pairs=has_pairs(conn, seg)))
    return scopes


def plan_plugin(conn: sqlite3.Connection, job: SyncJob, scopes: list[Scope]) -> dict[str, dict[str, int]]:
    """Plan every table of one plugin in one read snapshot; returns table -> kind -> rows."""
    create_todo(conn)
    planned = {}
    with nullcontext() if conn.in_transaction else read_snapshot(conn):
        for scope in scopes:
            shared_rows(conn, scope)
            plan_pairs(conn, scope, job.prefer)
            plan_unpaired(conn, scope, job.prefer)
            planned[scope.table.name] = {**counts(conn, scope.seg), **source_counts(conn, scope)}
    return planned


def _run(conn: sqlite3.Connection, job: SyncJob, writer: Writer, results: dict[str, PluginSync]) -> None:
    for pid in job.plugins:
        result = results[pid]
        try:
            _run_plugin(conn, job, writer, result)
        except VerifyError as exc:
            result.status = "failed"
            result.problems.append(str(exc).removeprefix(f"{pid}: "))
            if writer.outer:
                raise


def _run_plugin(conn: sqlite3.Connection, job: SyncJob, writer: Writer, result: PluginSync) -> None:
    if writer.outer:
        scopes = scopes_for(conn, job, result.plugin_id, create=True)
        _copy_into_new_file(conn, job, writer, scopes, result)
        return
    with writer.txn():
        scopes = scopes_for(conn, job, result.plugin_id, create=True)
    for scope in scopes:
        if scope.table.key and scope.had_pairs:
            shared_rows(conn, scope)
            with writer.txn():
                follow_replaced_rows(conn, scope)
    for round_ in range(ROUNDS):
        planned = plan_plugin(conn, job, scopes)
        if round_ == 0:
            record_plan(scopes, planned, result)
            if _refused(conn, scopes, planned, result):
                return
            result.other_side = [n for s in scopes if _moved_away(job, s) for n in other_side_names(conn, s)]
        if not any(planned[s.table.name].get(k) for s in scopes for k in WRITES):
            break
        for scope in scopes:
            if any(planned[scope.table.name].get(k) for k in WRITES):
                apply_segment(writer, scope, result)
                tr = result.table(scope.table.name)
                job.say(f"{job.direction.command}: {result.plugin_id} {scope.table.name}: {tr.copied:,} copied, "
                        f"{tr.updated:,} updated, {tr.source_rows:,} in the source")
    else:
        _still_changing(job, scopes, planned, result)
    result.status = ("copied" if job.direction is Direction.TO_ISOLATED else "merged") if result.writes \
        else "up to date"


def _still_changing(job: SyncJob, scopes: list[Scope], planned: dict[str, dict[str, int]],
                    result: PluginSync) -> None:
    if job.unsettled is Unsettled.FAIL:
        result.problems.append(f"still changing after {ROUNDS} rounds (is the bot writing this plugin in both "
                               "places?); run again")
    elif job.unsettled is Unsettled.NAME:
        left = ", ".join(f"{s.table.name} {n:,} rows" for s in scopes
                         if (n := sum(planned[s.table.name].get(k, 0) for k in WRITES)))
        result.unsettled.append(f"still changing after {ROUNDS} rounds with the store's writers of it held: "
                                f"something writes it without the store (old bot code?): {left}; the next sync "
                                "carries that over")


def _copy_into_new_file(conn: sqlite3.Connection, job: SyncJob, writer: Writer, scopes: list[Scope],
                        result: PluginSync) -> None:
    """A new file: nothing to plan, the rows are copied and checked in a few statements per table."""
    for scope in scopes:
        shared_rows(conn, scope)
        tr = result.table(scope.table.name)
        tr.source_rows = int(conn.execute("SELECT count(*) FROM temp.zx_mine").fetchone()[0])
        if tr.source_rows:
            fresh_copy(writer, scope, result)
            job.say(f"split: {result.plugin_id} {scope.table.name}: {tr.copied:,} copied, {tr.source_rows:,} in "
                    "the source")
    result.status = "copied" if result.writes else "up to date"


def _refused(conn: sqlite3.Connection, scopes: list[Scope], planned: dict[str, dict[str, int]],
             result: PluginSync) -> bool:
    """A conflict refuses the whole plugin before anything of it is written."""
    conflicts = [d for s in scopes if planned[s.table.name].get("conflict") for d in conflict_details(conn, s)]
    if conflicts:
        result.status, result.conflicts = "refused", conflicts
        result.problems.append("refused, nothing written for this plugin: changed on both sides or one key on two "
                               "rows (resolve with --prefer source|destination): " + "; ".join(conflicts))
    return bool(conflicts)


def _moved_away(job: SyncJob, scope: Scope) -> bool:
    """Whether the source is the place the plugin is not routed to (rows written there are an old bot's)."""
    plugin = job.config.plugins.get(scope.plugin)
    if plugin is None or not scope.had_pairs:
        return False
    return plugin.use_shared == (job.direction is Direction.TO_SHARED)


def record_plan(scopes: list[Scope], planned: dict[str, dict[str, int]], result: PluginSync) -> None:
    """The counts a plan gives that no write changes: source rows, unchanged, kept, source gone, conflicts."""
    for scope in scopes:
        tr, kinds = result.table(scope.table.name), planned[scope.table.name]
        tr.kept, tr.source_gone, tr.conflicts = kinds.get("keep", 0) + kinds.get("deleted", 0), kinds.get("gone", 0), \
            kinds.get("conflict", 0)
        tr.source_rows, tr.unchanged = kinds.get("source_rows", 0), kinds.get("unchanged", 0)
