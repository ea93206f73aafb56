"""Pairs whose row was replaced under a new rowid (INSERT OR REPLACE, or written again after a prune) follow
the row with the same key, instead of leaving two unpaired rows that meet as a conflict.

Only the keyed tables (their key is unique per plugin in a store file): a trade_id may name several rows.
"""

from __future__ import annotations

import sqlite3

from .identity import PAIRS, base_table
from .plan import Scope

__all__ = ["follow_replaced_rows"]


def follow_replaced_rows(conn: sqlite3.Connection, scope: Scope) -> int:
    """Re-point the segment's pairs whose row is gone to the plugin's unpaired row of the same key; count them.

    temp.zx_mine must hold the plugin's shared rows. A replaced isolated row gets the shared row as its base,
    so the bot's new content reads as the newer write.
    """
    if not scope.table.key or not scope.seg:
        return 0
    (k,) = scope.table.key
    t, base, c = scope.table.name, base_table(scope.table), scope.cols
    args = scope.args
    shared = conn.execute(
        f"UPDATE OR IGNORE iso.{PAIRS} AS p SET shared_rowid = (SELECT x.rowid FROM iso.{t} i JOIN sh.{t} x "
        f"ON x.{k} = i.{k} WHERE i.rowid = p.iso_rowid AND x.rowid IN (SELECT r FROM temp.zx_mine) "
        f"AND NOT EXISTS (SELECT 1 FROM iso.{PAIRS} q WHERE q.seg = p.seg AND q.shared_rowid = x.rowid) LIMIT 1) "
        f"WHERE p.seg = :seg AND p.shared_rowid NOT IN (SELECT r FROM temp.zx_mine) AND EXISTS (SELECT 1 "
        f"FROM iso.{t} i JOIN sh.{t} x ON x.{k} = i.{k} WHERE i.rowid = p.iso_rowid AND i.plugin_id = :p "
        f"AND x.rowid IN (SELECT r FROM temp.zx_mine) AND NOT EXISTS (SELECT 1 FROM iso.{PAIRS} q "
        "WHERE q.seg = p.seg AND q.shared_rowid = x.rowid))", args).rowcount
    conn.execute("DROP TABLE IF EXISTS temp.zx_rekeyed")
    conn.execute("CREATE TEMP TABLE zx_rekeyed (old INTEGER PRIMARY KEY, new INTEGER NOT NULL, kept INTEGER)")
    # An INSERT OR REPLACE fires no DELETE trigger (recursive_triggers is off), so a replaced row the bot had
    # changed before keeps that change's base row under its old rowid: the row is replaced, not deleted.
    conn.execute(
        f"INSERT OR IGNORE INTO temp.zx_rekeyed SELECT p.iso_rowid, i.rowid, EXISTS (SELECT 1 FROM iso.{base} b "
        f"WHERE b.zx_rowid = p.iso_rowid) FROM iso.{PAIRS} p JOIN sh.{t} s "
        f"ON s.rowid = p.shared_rowid JOIN iso.{t} i ON i.{k} = s.{k} AND i.plugin_id = :p WHERE p.seg = :seg "
        f"AND NOT EXISTS (SELECT 1 FROM iso.{t} x WHERE x.rowid = p.iso_rowid AND x.plugin_id = :p) "
        f"AND NOT EXISTS (SELECT 1 FROM iso.{PAIRS} q WHERE q.seg = :seg AND q.iso_rowid = i.rowid)", args)
    isolated = conn.execute(f"UPDATE OR IGNORE iso.{PAIRS} AS p SET iso_rowid = r.new FROM temp.zx_rekeyed r "
                            "WHERE p.seg = :seg AND p.iso_rowid = r.old", args).rowcount
    if isolated and c.values:
        # The new row's base is the state last synced: the replaced row's base row if it had one, else the
        # shared row (the bot's new content then reads as the newer write).
        conn.execute(f"INSERT OR REPLACE INTO iso.{base} (zx_rowid, {c.names()}) SELECT r.new, {c.names('b')} "
                     f"FROM temp.zx_rekeyed r JOIN iso.{PAIRS} p ON p.seg = :seg AND p.iso_rowid = r.new "
                     f"JOIN iso.{base} b ON b.zx_rowid = r.old WHERE r.kept", args)
        conn.execute(f"INSERT OR REPLACE INTO iso.{base} (zx_rowid, {c.names()}) SELECT r.new, {c.names('s')} "
                     f"FROM temp.zx_rekeyed r JOIN iso.{PAIRS} p ON p.seg = :seg AND p.iso_rowid = r.new "
                     f"JOIN sh.{t} s ON s.rowid = p.shared_rowid WHERE NOT r.kept", args)
        conn.execute(f"DELETE FROM iso.{base} WHERE zx_rowid IN (SELECT r.old FROM temp.zx_rekeyed r JOIN "
                     f"iso.{PAIRS} p ON p.seg = :seg AND p.iso_rowid = r.new WHERE r.kept)", args)
    return int(shared) + int(isolated)
