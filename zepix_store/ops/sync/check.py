"""verify's check of a plugin's isolated copies against the shared file, read-only, by the three-way rules.

A copy equal to its source passes; a copy the bot changed since the last sync is its newer write and passes; a
shared row changed after the plugin moved away is a warning naming it (the next split carries it over). A row of
the plugin in the shared file with no copy fails (run split), and so does any difference in the event tables,
which the bot only ever inserts into.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from ...attribution import owner_table
from ...schema import Table
from ...words import count, verb
from .columns import Columns, key_text
from .identity import PAIRS, base_table

__all__ = ['check_copies', 'check_sync_duplicates', 'CopyCheck', 'INSERT_ONLY']

INSERT_ONLY = ("sl_events", "tp_reentry_events", "reversal_exit_events", "profit_booking_events")


@dataclass
class CopyCheck:
    compared: int = 0
    newer: int = 0  # copies the bot changed since: its newer write
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_copies(conn: sqlite3.Connection, table: Table, cols: Columns, plugin: str, seg: int | None,
                 out: CopyCheck, limit: int = 5) -> None:
    """Compare `plugin`'s pairs of `table` (`sh` attached with the owner tables built, `iso` attached)."""
    t, base, args = table.name, base_table(table), {"seg": seg or 0, "p": plugin, "n": limit}
    pairs = (f"FROM iso.{PAIRS} p JOIN iso.{t} i ON i.rowid = p.iso_rowid AND i.plugin_id = :p "
             f"JOIN sh.{t} s ON s.rowid = p.shared_rowid LEFT JOIN iso.{base} b ON b.zx_rowid = p.iso_rowid "
             "WHERE p.seg = :seg")
    shared_changed = f"NOT ({cols.same('s', 'b')})" if cols.values else "0"
    differs = f"NOT ({cols.same('s', 'i')})"
    compared, newer, unexplained, moved = conn.execute(
        f"SELECT count(*), coalesce(sum({differs} AND b.zx_rowid IS NOT NULL AND NOT ({shared_changed})), 0), "
        f"coalesce(sum({differs} AND b.zx_rowid IS NULL), 0), "
        f"coalesce(sum({differs} AND b.zx_rowid IS NOT NULL AND {shared_changed}), 0) {pairs}", args).fetchone()
    out.compared += compared
    out.newer += newer
    if unexplained:
        # No trigger recorded a change of the copy: altered outside SQLite, or the shared row changed after
        # the copy (an old bot). Without a fingerprint of every row the two look alike; split copies the
        # shared row over it either way.
        names = [r[0] for r in conn.execute(
            f"SELECT {key_text(table, 's')} {pairs} AND {differs} AND b.zx_rowid IS NULL LIMIT :n", args)]
        differ = verb(unexplained, "differs", "differ")
        out.problems.append(f"{t}: {count(unexplained, 'copy')} {differ} from their source with no record of the "
                            f"bot changing them ({', '.join(names)}): altered outside SQLite, or the shared row was "
                            "changed after the copy; run split to copy the shared rows over them")
    if moved:
        names = [r[0] for r in conn.execute(
            f"SELECT {key_text(table, 's')} {pairs} AND {differs} AND b.zx_rowid IS NOT NULL AND {shared_changed} "
            "LIMIT :n", args)]
        text = (f"{t}: {count(moved, 'row')} changed in the shared file after the copy, the copy too "
                f"({', '.join(names)})")
        if t in INSERT_ONLY:
            out.problems.append(text + ": the bot never changes this table; a copy or the source was altered")
        else:
            out.warnings.append(text + ": split refuses them until --prefer says which side wins")
    missing = (f"FROM {owner_table(t)} o JOIN sh.{t} s ON s.rowid = o.src_rowid WHERE o.plugin_id = :p AND NOT EXISTS "
               f"(SELECT 1 FROM iso.{PAIRS} p WHERE p.seg = :seg AND p.shared_rowid = o.src_rowid)")
    (uncopied,) = conn.execute(f"SELECT count(DISTINCT o.src_rowid) {missing}", args).fetchone()
    if uncopied:
        names = [r[0] for r in conn.execute(f"SELECT DISTINCT {key_text(table, 's')} {missing} LIMIT :n", args)]
        out.problems.append(f"{t}: {count(uncopied, 'row')} of the plugin in the shared file not copied "
                            f"({', '.join(names)}): run split")


# The indexed column a keyless table's rows are found by (keyed tables cannot hold two rows of one key).
_LINK = {"trades": "trade_id", "sl_events": "trade_id", "reversal_exit_events": "trade_id",
         "tp_reentry_events": "chain_id", "profit_booking_events": "chain_id"}


def check_sync_duplicates(conn: sqlite3.Connection, table: Table, cols: Columns, plugin: str, seg: int | None,
                          shared_has_plugin: bool, out: CopyCheck, limit: int = 5) -> None:
    """Fail a pair table that maps two rows onto one, and unpaired rows equal to a paired row of the same side.

    Two syncs of one plugin that ran at once copied the same rows twice: the second copy has no pair (the
    first took it) and equals a paired row value for value. The bot's own new rows are unpaired too, but the
    bot never writes a row equal to one it has (save_trade updates; events carry their own time).
    """
    if seg is None:
        return
    t, args = table.name, {"seg": seg, "p": plugin, "n": limit}
    for side in ("iso_rowid", "shared_rowid"):
        (twice,) = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM iso.{PAIRS} WHERE seg = :seg GROUP BY {side} "
                                "HAVING count(*) > 1)", args).fetchone()
        if twice:
            out.problems.append(f"{t}: {count(twice, 'row')} paired with more than one row of the other file ({side})")
    link = _LINK.get(t)
    if link is None:
        return
    sides = [("iso", "iso_rowid")] + ([("sh", "shared_rowid")] if shared_has_plugin else [])
    for schema, side in sides:
        dupes = (f"FROM {schema}.{t} i WHERE i.plugin_id = :p AND NOT EXISTS (SELECT 1 FROM iso.{PAIRS} p "
                 f"WHERE p.seg = :seg AND p.{side} = i.rowid) AND EXISTS (SELECT 1 FROM {schema}.{t} x "
                 f"JOIN iso.{PAIRS} q ON q.seg = :seg AND q.{side} = x.rowid WHERE x.plugin_id = :p "
                 f"AND x.{link} IS i.{link} AND x.rowid <> i.rowid AND {cols.same('x', 'i')})")
        (n,) = conn.execute(f"SELECT count(*) {dupes}", args).fetchone()
        if n:
            names = [r[0] for r in conn.execute(f"SELECT {key_text(table, 'i')} {dupes} LIMIT :n", args)]
            where = "isolated file" if schema == "iso" else "shared file"
            out.problems.append(f"{t}: {count(n, 'row')} in the {where} {verb(n, 'duplicates', 'duplicate')} "
                                "a synchronised row value for value "
                                f"({', '.join(names)}): two synchronisations ran at once; delete the copies named")
