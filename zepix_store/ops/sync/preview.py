"""--dry-run: what a synchronisation would do, planned against the files as they are, nothing written."""

from __future__ import annotations

import sqlite3

from ...schema import ATTRIBUTION_ORDER, TABLE_BY_NAME
from .engine import plan_plugin, record_plan, scopes_for
from .files import READ, attach, check_regular_file, detach
from .identity import has_identity
from .job import SyncJob
from .plan import conflict_details
from .report import PluginSync

__all__ = ['preview']


def preview(conn: sqlite3.Connection, job: SyncJob) -> dict[str, PluginSync]:
    """Each plugin's planned counts; a file never synchronised (or missing) would receive every source row."""
    exists = check_regular_file(job.isolated_db)
    out = {}
    if exists:
        attach(conn, job.isolated_db, "iso", READ)
    try:
        known = exists and has_identity(conn)
        for pid in job.plugins:
            verb = "copy" if job.direction.src == "sh" else "merge"
            result = out[pid] = PluginSync(pid, str(job.isolated_db), status=f"would {verb}")
            if not known:
                _count_only(conn, job, result, exists)
                continue
            scopes = scopes_for(conn, job, pid, create=False)
            planned = plan_plugin(conn, job, scopes)
            record_plan(scopes, planned, result)
            for scope in scopes:  # and the writes the plan would make
                kinds, tr = planned[scope.table.name], result.table(scope.table.name)
                tr.copied = kinds.get("copy", 0) + kinds.get("recopy", 0)
                tr.updated, tr.paired = kinds.get("update", 0), kinds.get("pair", 0)
                tr.resolved = kinds.get("overwrite", 0) + kinds.get("adopt", 0)
                if tr.conflicts:
                    result.conflicts += conflict_details(conn, scope)
            if result.conflicts:
                result.status = "would be refused"
                result.problems.append("conflicts: " + "; ".join(result.conflicts))
            elif not result.writes:
                result.status = "up to date"
    finally:
        if exists:
            detach(conn, "iso")
    return out


def _count_only(conn: sqlite3.Connection, job: SyncJob, result: PluginSync, exists: bool) -> None:
    from ...attribution import owner_table

    for table in (TABLE_BY_NAME[n] for n in ATTRIBUTION_ORDER if n in job.present):
        tr = result.table(table.name)
        if job.direction.src == "sh":
            tr.source_rows = int(conn.execute(f"SELECT count(DISTINCT src_rowid) FROM {owner_table(table.name)} "
                                              "WHERE plugin_id = ?", (result.plugin_id,)).fetchone()[0])
        elif exists:
            tr.source_rows = int(conn.execute(f"SELECT count(*) FROM iso.{table.name} WHERE plugin_id = ?",
                                              (result.plugin_id,)).fetchone()[0])
        tr.copied = tr.source_rows
    if not result.writes:
        result.status = "up to date"
