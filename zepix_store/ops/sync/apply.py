"""Carry out a segment's planned actions in chunks, each one or two short, committed, verified transactions.

Into the isolated file (split) a chunk's rows, pairs and base rows commit together. Into the shared file
(merge) one transaction spans both files, and SQLite commits attached WAL files one after the other in the order
they were attached: the isolated file is attached first (engine.synchronise), so a chunk's pairs and base rows
commit before its shared rows. Killed between the two, a pair whose shared row never landed reads as a pair
whose destination is gone and is copied again (plan's `recopy`, under the same id when free), so nothing is
lost and nothing copied twice. The other order would leave shared rows that no pair knows, found again only by
equal content (plan's `pair`): a row changed meanwhile would then become a conflict.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from ... import fault
from ...backend.sqlite_file import transaction
from ...errors import VerifyError
from ...words import count, verb
from .chunks import ChunkClock, plan_as_small
from .columns import money_columns, natural_key, rowid_alias
from .identity import PAIRS, base_table
from .plan import Scope
from .report import PluginSync, TableSync

__all__ = ['apply_segment', 'fresh_copy', 'ORDER', 'Writer']

Txn = Callable[[], AbstractContextManager[object]]
ORDER = ("drop", "clean", "pair", "adopt", "update", "overwrite", "recopy", "copy")


class Writer:
    """Runs chunks against the attached files; `outer` is True when a new file is built in one transaction."""

    def __init__(self, conn: sqlite3.Connection, clock: ChunkClock, outer: bool) -> None:
        self.conn, self.clock, self.outer = conn, clock, outer

    @contextmanager
    def txn(self) -> Iterator[None]:
        if self.outer:
            yield
            return
        with self.clock.held(), transaction(self.conn):
            yield


def apply_segment(w: Writer, scope: Scope, result: PluginSync) -> None:
    """Every planned action of the segment, kind by kind, chunk by chunk."""
    conn, tr = w.conn, result.table(scope.table.name)
    conn.execute("DROP TABLE IF EXISTS temp.zx_chunk")
    conn.execute("CREATE TEMP TABLE zx_chunk (n INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, want INTEGER, "
                 "done INTEGER NOT NULL DEFAULT 0)")
    sized = False
    for kind in ORDER:
        after = 0
        while True:
            conn.execute("DELETE FROM temp.zx_chunk")
            conn.execute("INSERT INTO temp.zx_chunk (n, src, dst) SELECT n, src, dst FROM temp.zx_todo "
                         "WHERE seg = ? AND kind = ? AND n > ? ORDER BY n LIMIT ?",
                         (scope.seg, kind, after, w.clock.size))
            row = conn.execute("SELECT count(*), max(n) FROM temp.zx_chunk").fetchone()
            if not row[0]:
                break
            rows, after = int(row[0]), int(row[1])
            if not sized:
                plan_as_small(conn, "zx_chunk")
                sized = True
            start = time.perf_counter()
            fault.point(f"before_chunk:{scope.plugin}:{scope.table.name}")
            _KINDS[kind](w, scope, tr, result)
            fault.point(f"after_copy:{scope.plugin}:{scope.table.name}")
            w.clock.chunk_done(rows, (time.perf_counter() - start) * 1000)


# --- SQL pieces ------------------------------------------------------------------------------------------------


def _iso_col(scope: Scope) -> str:
    """Which zx_chunk column holds the isolated rowid."""
    return "dst" if scope.to_iso else "src"


def _sh_col(scope: Scope) -> str:
    return "src" if scope.to_iso else "dst"


def _record_pairs(conn: sqlite3.Connection, scope: Scope, only_done: bool) -> None:
    """Pair each chunk row (replacing any older pair of either row) whose two rows both exist."""
    iso, sh, t = _iso_col(scope), _sh_col(scope), scope.table.name
    done = " AND c.done = 1" if only_done else ""
    # Two statements, each on its own index (an OR of the two would scan every pair of the segment).
    conn.execute(f"DELETE FROM iso.{PAIRS} WHERE seg = :seg AND iso_rowid IN (SELECT {iso} FROM temp.zx_chunk c "
                 f"WHERE 1{done})", scope.args)
    conn.execute(f"DELETE FROM iso.{PAIRS} WHERE seg = :seg AND shared_rowid IN (SELECT {sh} FROM temp.zx_chunk c "
                 f"WHERE 1{done})", scope.args)
    conn.execute(f"INSERT INTO iso.{PAIRS} (seg, iso_rowid, shared_rowid) SELECT :seg, c.{iso}, c.{sh} "
                 f"FROM temp.zx_chunk c CROSS JOIN iso.{t} i ON i.rowid = c.{iso} "
                 f"CROSS JOIN sh.{t} s ON s.rowid = c.{sh} WHERE 1{done}", scope.args)


def _settle_base(conn: sqlite3.Connection, scope: Scope, only_done: bool, shared_wins: bool = False) -> None:
    """After a chunk synchronised its rows: the base is what both held (no base row while equal).

    With `shared_wins` (a conflict resolved for the shared side) the isolated row becomes the base, so the
    shared row reads as the newer one.
    """
    iso, sh, t, c = _iso_col(scope), _sh_col(scope), scope.table.name, scope.cols
    base, done = base_table(scope.table), " AND x.done = 1" if only_done else ""
    rows = (f"FROM temp.zx_chunk x CROSS JOIN iso.{t} i ON i.rowid = x.{iso} CROSS JOIN sh.{t} s ON s.rowid = x.{sh} "
            f"WHERE 1{done}")
    if shared_wins:
        conn.execute(f"DELETE FROM iso.{base} WHERE zx_rowid IN (SELECT x.{iso} FROM temp.zx_chunk x WHERE 1{done})")
        return
    conn.execute(f"DELETE FROM iso.{base} WHERE zx_rowid IN (SELECT i.rowid {rows} AND {c.same('s', 'i')})")
    if c.values:
        conn.execute(f"INSERT OR REPLACE INTO iso.{base} (zx_rowid, {c.names()}) SELECT i.rowid, {c.names('s')} "
                     f"{rows} AND NOT ({c.same('s', 'i')})")


def _verify_chunk(conn: sqlite3.Connection, scope: Scope, expected: int, result: PluginSync, what: str,
                  rows: str = "zx_chunk") -> None:
    """Inside the writing transaction: the written rows (`done` in temp table `rows`, with their source and
    destination rowids) equal their source, money totals included."""
    assert rows in ("zx_chunk", "zx_fresh")
    t, c = scope.table.name, scope.cols
    money = money_columns(scope.table, c)
    a, d = ("s", "i") if scope.to_iso else ("i", "s")
    sums = "".join(f", total({a}.{m}), total({d}.{m})" for m in money)
    n, differ, *totals = conn.execute(
        f"SELECT count(*), coalesce(sum(NOT ({c.same(a, d)})), 0){sums} FROM temp.{rows} x "
        f"CROSS JOIN {scope.src}.{t} {a} ON {a}.rowid = x.src CROSS JOIN {scope.dst}.{t} {d} ON {d}.rowid = x.dst "
        f"AND {d}.plugin_id = :p WHERE x.done = 1", scope.args).fetchone()
    problems = []
    if n != expected or differ:
        problems.append(f"{t}: {what} {count(expected, 'row')}, {n:,} found in the destination, "
                        f"{differ:,} {verb(differ, 'differs', 'differ')} from the source")
    for k, m in enumerate(money):
        pair = result.money.setdefault(m, [0.0, 0.0])
        pair[0] += totals[2 * k]
        pair[1] += totals[2 * k + 1]
        if totals[2 * k] != totals[2 * k + 1]:
            problems.append(f"{t}: total {m} of the copies {totals[2 * k + 1]!r} != source {totals[2 * k]!r}")
    if problems:
        raise VerifyError(f"{scope.plugin}: " + "; ".join(problems))


# --- the kinds -----------------------------------------------------------------------------------------------


def _copy(w: Writer, scope: Scope, tr: TableSync, result: PluginSync) -> None:
    """copy / recopy: under the wanted id when free in the destination, else a new one above every id there."""
    conn, t, c, src, dst = w.conn, scope.table.name, scope.cols, scope.src, scope.dst
    a = "s" if scope.to_iso else "i"
    with w.txn():
        conn.execute("UPDATE temp.zx_chunk SET want = coalesce(dst, src), dst = NULL")
        conn.execute(f"UPDATE temp.zx_chunk SET want = NULL WHERE want IN (SELECT rowid FROM {dst}.{t})")
        key = natural_key(scope.table)
        if key and scope.table.key:  # the bot may have saved the key meanwhile: that row is planned again
            mine = "x.plugin_id = :p"
            conn.execute(f"DELETE FROM temp.zx_chunk WHERE EXISTS (SELECT 1 FROM {src}.{t} {a} JOIN {dst}.{t} x "
                         f"ON x.{key} = {a}.{key} WHERE {a}.rowid = zx_chunk.src AND {mine})", scope.args)
        top = conn.execute(f"SELECT max(coalesce((SELECT max(rowid) FROM {dst}.{t}), 0), "
                           "coalesce((SELECT max(want) FROM temp.zx_chunk), 0))").fetchone()[0]
        conn.execute("UPDATE temp.zx_chunk SET dst = want WHERE want IS NOT NULL")
        conn.execute("UPDATE temp.zx_chunk AS c SET dst = :top + r.k FROM (SELECT n, row_number() OVER (ORDER BY n) "
                     "AS k FROM temp.zx_chunk WHERE want IS NULL) r WHERE r.n = c.n", {"top": top})
        renumbered = conn.execute("SELECT count(*) FROM temp.zx_chunk WHERE want IS NULL").fetchone()[0]
        rid = rowid_alias(scope.table) or "rowid"
        written = conn.execute(
            f"INSERT INTO {dst}.{t} ({rid}, {c.names()}{', ' if c.values else ''}plugin_id) "
            f"SELECT x.dst, {c.names(a)}{', ' if c.values else ''}:p FROM temp.zx_chunk x "
            f"CROSS JOIN {src}.{t} {a} ON {a}.rowid = x.src ORDER BY x.dst", scope.args).rowcount
        conn.execute(f"UPDATE temp.zx_chunk SET done = 1 WHERE EXISTS (SELECT 1 FROM {dst}.{t} y "
                     "WHERE y.rowid = zx_chunk.dst)")
        _verify_chunk(conn, scope, written, result, "copied")
        # Into the shared file the pairs commit first (the isolated file is attached first): killed between
        # the two commits, a pair whose shared row never landed is copied again, never twice.
        _record_pairs(conn, scope, only_done=True)
        _settle_base(conn, scope, only_done=True)
    tr.copied += written
    tr.renumbered += renumbered


def _update(w: Writer, scope: Scope, tr: TableSync, result: PluginSync, forced: bool = False) -> None:
    """update / overwrite: the source row's content over the destination row (that still is as planned)."""
    conn, t, c, src, dst = w.conn, scope.table.name, scope.cols, scope.src, scope.dst
    base = base_table(scope.table)
    if not c.values:
        return
    if forced:
        guard = "1"
    elif scope.to_iso:  # the isolated row is still unchanged since the last sync
        guard = f"NOT EXISTS (SELECT 1 FROM iso.{base} b WHERE b.zx_rowid = i.rowid AND NOT ({c.same('b', 'i')}))"
    else:  # the shared row still holds the base
        guard = f"EXISTS (SELECT 1 FROM iso.{base} b WHERE b.zx_rowid = x.src AND {c.same('s', 'b')})"
    a, d = ("s", "i") if scope.to_iso else ("i", "s")
    with w.txn():
        if not scope.to_iso and not forced:
            # Decided before the base row is replaced below.
            conn.execute(f"UPDATE temp.zx_chunk SET want = EXISTS (SELECT 1 FROM sh.{t} s JOIN iso.{base} b ON "
                         f"b.zx_rowid = zx_chunk.src WHERE s.rowid = zx_chunk.dst AND {c.same('s', 'b')})")
            guard = "x.want = 1"
        if not scope.to_iso:
            # The shared row as it was becomes the base first: killed before the shared file's commit, the
            # isolated row still reads as changed and is written again.
            conn.execute(f"INSERT OR REPLACE INTO iso.{base} (zx_rowid, {c.names()}) SELECT x.src, {c.names('s')} "
                         f"FROM temp.zx_chunk x CROSS JOIN sh.{t} s ON s.rowid = x.dst AND s.plugin_id = :p "
                         f"WHERE {guard}", scope.args)
        conn.execute(
            f"UPDATE {dst}.{t} AS {d} SET ({c.names()}) = ({c.names(a)}) FROM temp.zx_chunk x "
            f"CROSS JOIN {src}.{t} {a} ON {a}.rowid = x.src WHERE {d}.rowid = x.dst AND {d}.plugin_id = :p AND {guard}",
            scope.args)
        conn.execute(f"UPDATE temp.zx_chunk SET done = 1 WHERE EXISTS (SELECT 1 FROM {src}.{t} {a} JOIN {dst}.{t} {d} "
                     f"ON {d}.rowid = zx_chunk.dst WHERE {a}.rowid = zx_chunk.src AND {c.same(a, d)})")
        done = conn.execute("SELECT count(*) FROM temp.zx_chunk WHERE done = 1").fetchone()[0]
        _verify_chunk(conn, scope, done, result, "updated")
        if forced:
            _record_pairs(conn, scope, only_done=True)
        if scope.to_iso:
            _settle_base(conn, scope, only_done=True)
    if not scope.to_iso:
        with w.txn():  # both committed: the base is what both hold now
            _settle_base(conn, scope, only_done=True)
    tr.updated += done
    if forced:
        tr.resolved += done


def _overwrite(w: Writer, scope: Scope, tr: TableSync, result: PluginSync) -> None:
    _update(w, scope, tr, result, forced=True)


def _pair(w: Writer, scope: Scope, tr: TableSync, result: PluginSync) -> None:
    """pair (equal rows found unpaired) and adopt (the destination wins a conflict): pairs and base only."""
    with w.txn():
        w.conn.execute("UPDATE temp.zx_chunk SET done = 1")
        _record_pairs(w.conn, scope, only_done=False)
        _settle_base(w.conn, scope, only_done=False)
    tr.paired += int(w.conn.execute("SELECT count(*) FROM temp.zx_chunk").fetchone()[0])


def _adopt(w: Writer, scope: Scope, tr: TableSync, result: PluginSync) -> None:
    with w.txn():
        _record_pairs(w.conn, scope, only_done=False)
        # The destination's content wins: for an isolated destination the shared row becomes the base (the
        # isolated row then reads as the newer write); for a shared one the isolated row does.
        _settle_base(w.conn, scope, only_done=False, shared_wins=not scope.to_iso)
    tr.resolved += int(w.conn.execute("SELECT count(*) FROM temp.zx_chunk").fetchone()[0])


def _clean(w: Writer, scope: Scope, tr: TableSync, result: PluginSync) -> None:
    t, c, iso, sh = scope.table.name, scope.cols, _iso_col(scope), _sh_col(scope)
    with w.txn():
        w.conn.execute(f"DELETE FROM iso.{base_table(scope.table)} WHERE zx_rowid IN (SELECT x.{iso} "
                       f"FROM temp.zx_chunk x CROSS JOIN iso.{t} i ON i.rowid = x.{iso} "
                       f"CROSS JOIN sh.{t} s ON s.rowid = x.{sh} WHERE {c.same('s', 'i')})")


def _drop(w: Writer, scope: Scope, tr: TableSync, result: PluginSync) -> None:
    iso = _iso_col(scope)
    with w.txn():
        w.conn.execute(f"DELETE FROM iso.{PAIRS} WHERE seg = :seg AND iso_rowid IN (SELECT {iso} FROM temp.zx_chunk)",
                       scope.args)


_KINDS: dict[str, Callable[[Writer, Scope, TableSync, PluginSync], None]] = {
    "copy": _copy, "recopy": _copy, "update": _update, "overwrite": _overwrite, "pair": _pair,
    "adopt": _adopt, "clean": _clean, "drop": _drop,
}


def fresh_copy(w: Writer, scope: Scope, result: PluginSync) -> None:
    """Into a new file (nobody else's yet): every row of the plugin in a few set statements, then checked.

    The plan's machinery is not needed there: no pair, no base row, no bot write can exist yet. A row keeps its
    shared rowid unless another plugin of the same file took it (shared lineage), then gets one above all.
    """
    conn, t, c, tr = w.conn, scope.table.name, scope.cols, result.table(scope.table.name)
    conn.execute("DROP TABLE IF EXISTS temp.zx_fresh")
    conn.execute("CREATE TEMP TABLE zx_fresh (src INTEGER PRIMARY KEY, dst INTEGER, done INTEGER NOT NULL DEFAULT 1)")
    conn.execute(f"INSERT INTO temp.zx_fresh (src, dst) SELECT r, CASE WHEN EXISTS (SELECT 1 FROM iso.{t} x "
                 "WHERE x.rowid = r) THEN NULL ELSE r END FROM temp.zx_mine")
    top = conn.execute(f"SELECT max(coalesce((SELECT max(rowid) FROM iso.{t}), 0), "
                       "coalesce((SELECT max(src) FROM temp.zx_fresh), 0))").fetchone()[0]
    tr.renumbered += conn.execute(
        "UPDATE temp.zx_fresh AS f SET dst = :top + r.k FROM (SELECT src, row_number() OVER (ORDER BY src) AS k "
        "FROM temp.zx_fresh WHERE dst IS NULL) r WHERE r.src = f.src", {"top": top}).rowcount
    rid = rowid_alias(scope.table) or "rowid"
    sep = ", " if c.values else ""
    written = conn.execute(
        f"INSERT INTO iso.{t} ({rid}, {c.names()}{sep}plugin_id) SELECT f.dst, {c.names('s')}{sep}:p "
        f"FROM temp.zx_fresh f JOIN sh.{t} s ON s.rowid = f.src ORDER BY f.dst", scope.args).rowcount
    conn.execute(f"INSERT INTO iso.{PAIRS} (seg, iso_rowid, shared_rowid) SELECT :seg, dst, src FROM temp.zx_fresh",
                 scope.args)
    _verify_chunk(conn, scope, written, result, "copied", rows="zx_fresh")
    tr.copied += written
    fault.point(f"after_copy:{scope.plugin}:{t}")
