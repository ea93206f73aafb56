"""--remap: copies whose shared row the changed mapping gives to another plugin leave this plugin's file.

A copy still equal to its source and unchanged since is deleted with its pair; one the bot changed is kept (a
write is never lost) but leaves the identity map.
"""

from __future__ import annotations

import sqlite3

from ...attribution import owner_table
from ...schema import ATTRIBUTION_ORDER, TABLE_BY_NAME
from .columns import columns_for
from .identity import PAIRS, base_table, segment
from .job import SyncJob

__all__ = ['drop_remapped']


def drop_remapped(conn: sqlite3.Connection, job: SyncJob, plugin: str) -> tuple[int, int]:
    """Return (copies removed, copies kept but no longer paired) over every table."""
    removed = kept = 0
    for table in (TABLE_BY_NAME[n] for n in ATTRIBUTION_ORDER if n in job.present):
        seg = segment(conn, table, plugin)
        if seg is None:
            continue
        t = table.name
        c, base = columns_for(conn, table, job.present[t]), base_table(table)
        stale = (f"FROM iso.{PAIRS} p JOIN sh.{t} s ON s.rowid = p.shared_rowid WHERE p.seg = :seg AND NOT EXISTS "
                 f"(SELECT 1 FROM {owner_table(t)} o WHERE o.src_rowid = p.shared_rowid AND o.plugin_id = :p)")
        args = {"seg": seg, "p": plugin}
        conn.execute("DROP TABLE IF EXISTS temp.zx_stale")
        conn.execute(f"CREATE TEMP TABLE zx_stale AS SELECT p.iso_rowid AS r, EXISTS (SELECT 1 FROM iso.{t} i "
                     f"WHERE i.rowid = p.iso_rowid AND {c.same('s', 'i')} AND NOT EXISTS (SELECT 1 FROM iso.{base} b "
                     f"WHERE b.zx_rowid = i.rowid)) AS same {stale}", args)
        removed += conn.execute(f"DELETE FROM iso.{t} WHERE plugin_id = :p AND rowid IN "
                                "(SELECT r FROM temp.zx_stale WHERE same)", args).rowcount
        kept += int(conn.execute("SELECT count(*) FROM temp.zx_stale WHERE NOT same").fetchone()[0])
        conn.execute(f"DELETE FROM iso.{base} WHERE zx_rowid IN (SELECT r FROM temp.zx_stale WHERE same)")
        conn.execute(f"DELETE FROM iso.{PAIRS} WHERE seg = :seg AND iso_rowid IN (SELECT r FROM temp.zx_stale)", args)
    return removed, kept
