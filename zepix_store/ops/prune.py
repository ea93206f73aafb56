"""Prune the place a plugin left: rows whose verified copy is in the place it is routed to now.

`prune_shared` (after a split or a flip to isolated) deletes from the shared file the rows every owner holds a
verified copy of; `prune_isolated` (after a flip to shared) deletes from the isolated file the plugin's rows the
shared file holds equal. Both back the file up first, delete in short chunks, each deleting a row only if it
still equals its copy at that moment (a row the bot changed meanwhile is kept), and keep the pairs, so a
restored backup or the way back finds its rows' ids again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import fault
from ..attribution import owner_table
from ..backend.sqlite_backup import backup_file
from ..backend.sqlite_file import transaction, translated_errors
from ..backup_identity import identity_of
from ..change_tracking import SUSPENDED
from ..config import StoreConfig
from ..schema import ATTRIBUTION_ORDER, TABLE_BY_NAME
from .sync.chunks import ChunkClock, plan_as_small
from .sync.columns import columns_for
from .sync.files import READ, attach, check_regular_file, detach
from .sync.identity import PAIRS, base_table, has_identity, segment

__all__ = ['prune_isolated', 'prune_preview', 'prune_shared']

Present = dict[str, set[str]]


def _prunable_files(config: StoreConfig) -> dict[Path, list[str]]:
    files: dict[Path, list[str]] = {}
    for pid, plugin in sorted(config.plugins.items()):
        path = plugin.isolated_db
        if not plugin.use_shared and path is not None and pid != config.default_plugin_id \
                and check_regular_file(path):
            files.setdefault(path, []).append(pid)
    return files


def _collect_verified(conn: sqlite3.Connection, config: StoreConfig, present: Present) -> None:
    """temp.zx_verified: (table, shared rowid, plugin) of every shared row with an equal, paired copy."""
    conn.execute("DROP TABLE IF EXISTS temp.zx_verified")
    conn.execute("CREATE TEMP TABLE zx_verified (table_name TEXT, src_rowid INTEGER, plugin_id TEXT, "
                 "PRIMARY KEY (table_name, src_rowid, plugin_id)) WITHOUT ROWID")
    for path, pids in _prunable_files(config).items():
        attach(conn, path, "iso", READ)
        try:
            if not has_identity(conn):
                continue
            for pid in pids:
                for name, cols in present.items():
                    table = TABLE_BY_NAME[name]
                    seg = segment(conn, table, pid)
                    if seg is None:
                        continue
                    c = columns_for(conn, table, cols)
                    conn.execute(
                        f"INSERT OR IGNORE INTO temp.zx_verified SELECT :t, p.shared_rowid, :p FROM iso.{PAIRS} p "
                        f"JOIN sh.{table.name} s ON s.rowid = p.shared_rowid JOIN iso.{table.name} i "
                        "ON i.rowid = p.iso_rowid "
                        f"AND i.plugin_id = :p WHERE p.seg = :seg AND {c.same('s', 'i')}",
                        {"t": name, "p": pid, "seg": seg})
        finally:
            detach(conn, "iso")


def _doomed(conn: sqlite3.Connection, selected: Sequence[str], present: Present) -> dict[str, int]:
    """temp.zx_doomed: rows whose every owner has a verified copy and one owner is selected; counts per table."""
    conn.execute("DROP TABLE IF EXISTS temp.zx_selected")
    conn.execute("CREATE TEMP TABLE zx_selected (plugin_id TEXT PRIMARY KEY)")
    conn.executemany("INSERT OR IGNORE INTO temp.zx_selected VALUES (?)", [(p,) for p in selected])
    conn.execute("DROP TABLE IF EXISTS temp.zx_doomed")
    conn.execute("CREATE TEMP TABLE zx_doomed (table_name TEXT, src_rowid INTEGER, PRIMARY KEY (table_name, src_rowid))"
                 " WITHOUT ROWID")
    counts = {}
    for name in present:
        counts[name] = conn.execute(
            f"INSERT INTO temp.zx_doomed SELECT :t, o.src_rowid FROM {owner_table(name)} o "
            "LEFT JOIN temp.zx_verified v "
            "ON v.table_name = :t AND v.src_rowid = o.src_rowid AND v.plugin_id = o.plugin_id GROUP BY o.src_rowid "
            "HAVING count(v.plugin_id) = count(*) AND max(o.plugin_id IN (SELECT plugin_id FROM temp.zx_selected))",
            {"t": name}).rowcount
    return counts


def prune_preview(conn: sqlite3.Connection, config: StoreConfig, selected: Sequence[str],
                  present: Present) -> dict[str, int]:
    """Rows prune would delete now, per table (reads only)."""
    _collect_verified(conn, config, present)
    return _doomed(conn, selected, present)


def prune_shared(conn: sqlite3.Connection, config: StoreConfig, selected: Sequence[str],
                 present: Present) -> dict[str, Any]:
    """Delete the doomed rows from the shared file (attached READ as `sh` on entry, re-attached to write)."""
    result: dict[str, Any] = {"backup": None, "deleted": {}}
    planned = prune_preview(conn, config, selected, present)
    if not sum(planned.values()):
        return result
    result["backup"] = str(backup_file(config.shared_db, config.backup_dir, "pre-prune",
                                       identity=identity_of(config, config.shared_db)))
    fault.point("after_prune_backup")
    detach(conn, "sh")
    with translated_errors(config.shared_db):
        attach(conn, config.shared_db, "sh", "rw")
    clock = ChunkClock(100.0)
    deleted = dict.fromkeys(present, 0)
    # Still equal to a copy: checked again inside each chunk's transaction, against the file it is in.
    for path, pids in _prunable_files(config).items():
        attach(conn, path, "iso", READ)
        try:
            if has_identity(conn):
                for name in reversed(ATTRIBUTION_ORDER):
                    if name in present:
                        deleted[name] += _delete_shared(conn, clock, config.shared_db, name, pids, present[name])
        finally:
            detach(conn, "iso")
    fault.point("after_prune_commit")
    result["deleted"] = deleted
    result["longest_hold_ms"] = round(clock.longest_ms, 1)
    return result


def _delete_shared(conn: sqlite3.Connection, clock: ChunkClock, path: Path, name: str, pids: list[str],
                   cols: set[str]) -> int:
    table = TABLE_BY_NAME[name]
    c = columns_for(conn, table, cols)
    done = 0
    for pid in pids:
        seg = segment(conn, table, pid)
        if seg is None:
            continue
        delete = (f"DELETE FROM sh.{name} WHERE rowid IN (SELECT b.r FROM temp.zx_batch b CROSS JOIN iso.{PAIRS} p "
                  f"ON p.seg = :seg AND p.shared_rowid = b.r CROSS JOIN sh.{name} s ON s.rowid = b.r "
                  f"CROSS JOIN iso.{name} i ON i.rowid = p.iso_rowid AND i.plugin_id = :p WHERE {c.same('s', 'i')})")
        done += _delete_in_chunks(conn, clock, path, "SELECT src_rowid FROM temp.zx_doomed WHERE table_name = ? "
                                  "AND src_rowid > ? ORDER BY src_rowid LIMIT ?", (name,),
                                  [delete], {"seg": seg, "p": pid}, "before_prune_commit")
    return done


def _delete_in_chunks(conn: sqlite3.Connection, clock: ChunkClock, path: Path, pick: str, pick_args: tuple[Any, ...],
                      statements: list[str], args: dict[str, Any], point: str, setup: str = "") -> int:
    """Run `statements` on successive batches of the rowids `pick` selects after the last one (temp.zx_batch),
    each batch in its own short transaction after `setup`; return the rows the first statement deleted."""
    done, after = 0, -1 << 62
    conn.execute("DROP TABLE IF EXISTS temp.zx_batch")
    conn.execute("CREATE TEMP TABLE zx_batch (r INTEGER PRIMARY KEY)")
    sized = False
    while True:
        start = time.perf_counter()
        with translated_errors(path), clock.held(), transaction(conn):
            ids = [r[0] for r in conn.execute(pick, (*pick_args, after, clock.size))]
            if not ids:
                return done
            after = ids[-1]
            conn.execute("DELETE FROM temp.zx_batch")
            conn.executemany("INSERT INTO temp.zx_batch VALUES (?)", [(i,) for i in ids])
            if not sized:
                plan_as_small(conn, "zx_batch")
                sized = True
            if setup:
                conn.execute(setup)
            done += conn.execute(statements[0], args).rowcount
            fault.point(point)
            for sql in statements[1:]:
                conn.execute(sql, args)
        clock.chunk_done(len(ids), (time.perf_counter() - start) * 1000)


def prune_isolated(conn: sqlite3.Connection, config: StoreConfig, plugin: str, path: Path,
                   present: Present) -> dict[str, Any]:
    """After a move to shared: delete the plugin's isolated rows the shared file holds equal (sh, iso attached rw)."""
    result: dict[str, Any] = {"backup": str(backup_file(path, config.backup_dir, "pre-prune",
                                                        identity=identity_of(config, path))), "deleted": {}}
    clock = ChunkClock(100.0)
    for name in reversed(ATTRIBUTION_ORDER):
        table = TABLE_BY_NAME[name]
        seg = segment(conn, table, plugin) if name in present else None
        if seg is None:
            continue
        c, base, args = columns_for(conn, table, present[name]), base_table(table), {"seg": seg, "p": plugin}
        still_equal = (f"SELECT p.iso_rowid FROM iso.{PAIRS} p JOIN iso.{name} i ON i.rowid = p.iso_rowid "
                       f"AND i.plugin_id = :p JOIN sh.{name} s ON s.rowid = p.shared_rowid AND s.plugin_id = :p "
                       f"WHERE p.seg = :seg AND {c.same('s', 'i')}")
        conn.execute("DROP TABLE IF EXISTS temp.zx_doomed_iso")
        conn.execute("CREATE TEMP TABLE zx_doomed_iso (iso_rowid INTEGER PRIMARY KEY)")
        conn.execute(f"INSERT INTO temp.zx_doomed_iso {still_equal}", args)

        delete = (f"DELETE FROM iso.{name} WHERE rowid IN (SELECT b.r FROM temp.zx_batch b CROSS JOIN iso.{PAIRS} p "
                  f"ON p.seg = :seg AND p.iso_rowid = b.r CROSS JOIN iso.{name} i ON i.rowid = b.r "
                  f"AND i.plugin_id = :p CROSS JOIN sh.{name} s ON s.rowid = p.shared_rowid AND s.plugin_id = :p "
                  f"WHERE {c.same('s', 'i')})")
        # A prune is not the bot's delete: the triggers are silenced for the chunk (change_tracking.SUSPENDED),
        # and a base row the bot's earlier change left for a pruned row goes with it.
        forget = (f"DELETE FROM iso.{base} WHERE zx_rowid IN (SELECT r FROM temp.zx_batch) "
                  f"AND zx_rowid NOT IN (SELECT rowid FROM iso.{name} WHERE rowid IN (SELECT r FROM temp.zx_batch))")
        n = _delete_in_chunks(conn, clock, path, "SELECT iso_rowid FROM temp.zx_doomed_iso WHERE iso_rowid > ? "
                              "ORDER BY iso_rowid LIMIT ?", (), [delete, forget, f"DELETE FROM iso.{SUSPENDED}"], args,
                              "before_isolated_prune_commit", setup=f"INSERT INTO iso.{SUSPENDED} VALUES (1)")
        result["deleted"][name] = n
    result["longest_hold_ms"] = round(clock.longest_ms, 1)
    return result
