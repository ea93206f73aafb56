"""Decide, for one plugin and table, what each row needs: the three-way rules, as set operations in SQL.

Kinds of action (temp.zx_todo, `src`/`dst` being rowids in the source and destination file):
  copy      a source row with no pair: copied (under its own id when free there), paired
  recopy    a pair whose destination row is gone (pruned): copied again under its old id when free
  update    the source changed since the last sync, the destination did not: written over it
  overwrite a conflict resolved by --prefer source: written over the destination and paired
  adopt     a conflict resolved by --prefer destination: paired, the destination's content wins
  pair      a source row equal to an unpaired destination row: paired (a crash between two commits)
  clean     a pair equal on both sides whose base row is no longer needed
  drop      a pair whose rows are gone on both sides
and, written nowhere, counted: keep (the bot's newer write), gone (source row pruned), deleted (the bot
deleted the isolated row), conflict.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ...attribution import owner_table
from ...literal import show_value
from ...schema import TABLES, Table
from .columns import Columns, key_text, natural_key
from .identity import PAIRS, base_table
from .job import Direction

__all__ = [
    'COUNTED',
    'Scope',
    'WRITES',
    'conflict_details',
    'counts',
    'create_todo',
    'other_side_names',
    'plan_pairs',
    'plan_unpaired',
    'shared_rows',
    'source_counts',
]

RESOLVED = {"source": "'overwrite'", "destination": "'adopt'"}  # --prefer: the action a conflict becomes
WRITES = ("copy", "recopy", "update", "overwrite", "adopt", "pair", "clean", "drop")
COUNTED = ("keep", "gone", "deleted", "conflict", "already")


@dataclass(frozen=True)
class Scope:
    """One (table, plugin) of one synchronisation, with the SQL names it uses."""

    table: Table
    plugin: str
    seg: int
    cols: Columns
    direction: Direction
    had_pairs: bool = False

    def __post_init__(self) -> None:
        # Everything put into SQL text from a Scope is a schema.py identifier: checked here, once.
        if self.table not in TABLES or not isinstance(self.direction, Direction):
            raise ValueError(f"not a schema table or direction: {self.table!r}, {self.direction!r}")
        self.cols.check(self.table)

    @property
    def src(self) -> str:
        return self.direction.src

    @property
    def dst(self) -> str:
        return self.direction.dst

    @property
    def to_iso(self) -> bool:
        return self.direction is Direction.TO_ISOLATED

    @property
    def args(self) -> dict[str, object]:
        return {"p": self.plugin, "seg": self.seg}


def resolved_kind(prefer: str | None) -> str:
    """The action (as SQL text) a conflict becomes under --prefer."""
    return RESOLVED[prefer] if prefer in RESOLVED else "'conflict'"  # noqa: SIM401 - the SQL scan traces a subscript


def create_todo(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TABLE IF EXISTS temp.zx_todo")
    conn.execute("CREATE TEMP TABLE zx_todo (n INTEGER PRIMARY KEY, seg INTEGER NOT NULL, kind TEXT NOT NULL, "
                 "src INTEGER, dst INTEGER)")
    conn.execute("CREATE INDEX temp.zx_todo_kind ON zx_todo (seg, kind, n)")


def shared_rows(conn: sqlite3.Connection, scope: Scope) -> None:
    """temp.zx_mine: the plugin's rows in the shared file (its attribution, or its plugin_id once merged into)."""
    conn.execute("DROP TABLE IF EXISTS temp.zx_mine")
    conn.execute("CREATE TEMP TABLE zx_mine (r INTEGER PRIMARY KEY)")
    t = scope.table.name
    if scope.to_iso:
        conn.execute(f"INSERT OR IGNORE INTO temp.zx_mine SELECT src_rowid FROM {owner_table(t)} WHERE plugin_id = ?",
                     (scope.plugin,))
    else:
        conn.execute(f"INSERT INTO temp.zx_mine SELECT rowid FROM sh.{t} WHERE plugin_id = ?", (scope.plugin,))
        if t != "trades":
            # A shared-lineage row (a child kept once under another id) still pairs with this plugin's copy;
            # a trade counts in a plugin's figures only under its id, so it must carry this one.
            conn.execute(f"INSERT OR IGNORE INTO temp.zx_mine SELECT p.shared_rowid FROM iso.{PAIRS} p "
                         f"JOIN sh.{t} s ON s.rowid = p.shared_rowid WHERE p.seg = ?", (scope.seg,))


def _state(conn: sqlite3.Connection, scope: Scope) -> None:
    """temp.zx_state: every pair of the segment with what each side holds compared with the base."""
    t, c, base = scope.table.name, scope.cols, base_table(scope.table)
    key = natural_key(scope.table)
    # A reused id (a pruned row's rowid taken by a new row) is not the same row: its key tells.
    same_key = (f" AND (coalesce(b.{key}, i.{key}) IS NULL OR s.{key} IS coalesce(b.{key}, i.{key}))"
                if key else "")
    conn.execute("DROP TABLE IF EXISTS temp.zx_state")
    conn.execute(
        "CREATE TEMP TABLE zx_state AS SELECT p.iso_rowid AS iso_rowid, p.shared_rowid AS sh_rowid, "
        "i.rowid IS NOT NULL AS iso_here, s.rowid IS NOT NULL AS sh_here, b.zx_rowid IS NOT NULL AS has_base, "
        f"CASE WHEN i.rowid IS NULL OR s.rowid IS NULL THEN 0 ELSE {c.same('s', 'i')} END AS same, "
        f"CASE WHEN b.zx_rowid IS NULL THEN 0 WHEN i.rowid IS NULL THEN 1 ELSE NOT ({c.same('i', 'b')}) END "
        "AS iso_changed, "
        f"CASE WHEN s.rowid IS NULL THEN 0 WHEN b.zx_rowid IS NOT NULL THEN NOT ({c.same('s', 'b')}) "
        f"WHEN i.rowid IS NOT NULL THEN NOT ({c.same('s', 'i')}) ELSE 1 END AS sh_changed "
        f"FROM iso.{PAIRS} p LEFT JOIN iso.{base} b ON b.zx_rowid = p.iso_rowid "
        f"LEFT JOIN iso.{t} i ON i.rowid = p.iso_rowid AND i.plugin_id = :p "
        f"LEFT JOIN sh.{t} s ON s.rowid = p.shared_rowid AND s.rowid IN (SELECT r FROM temp.zx_mine){same_key} "
        "WHERE p.seg = :seg", scope.args)


def plan_pairs(conn: sqlite3.Connection, scope: Scope, prefer: str | None) -> None:
    """The paired rows' actions (the three-way rules)."""
    _state(conn, scope)
    src_changed, dst_changed = ("sh_changed", "iso_changed") if scope.to_iso else ("iso_changed", "sh_changed")
    src_here, dst_here = ("sh_here", "iso_here") if scope.to_iso else ("iso_here", "sh_here")
    src_id, dst_id = ("sh_rowid", "iso_rowid") if scope.to_iso else ("iso_rowid", "sh_rowid")
    both = resolved_kind(prefer)
    deleted = "'deleted'" if scope.to_iso else "'recopy'"  # the bot's delete in its isolated file is kept
    conn.execute(
        f"INSERT INTO temp.zx_todo (seg, kind, src, dst) SELECT :seg, k, {src_id}, {dst_id} FROM (SELECT *, CASE "
        "WHEN iso_here AND sh_here AND same THEN CASE WHEN has_base THEN 'clean' END "
        f"WHEN iso_here AND sh_here THEN CASE WHEN {src_changed} AND NOT {dst_changed} THEN 'update' "
        f"WHEN {dst_changed} AND NOT {src_changed} THEN 'keep' ELSE {both} END "
        f"WHEN {src_here} THEN CASE WHEN has_base THEN {deleted} ELSE 'recopy' END "
        f"WHEN {dst_here} THEN 'gone' ELSE 'drop' END AS k FROM temp.zx_state) WHERE k IS NOT NULL",
        scope.args)


def _free_rows(conn: sqlite3.Connection, scope: Scope) -> None:
    """temp.zx_free_src / zx_free_dst: the plugin's rows on each side that have no pair."""
    t = scope.table.name
    iso_free = (f"SELECT i.rowid FROM iso.{t} i WHERE i.plugin_id = :p AND NOT EXISTS (SELECT 1 FROM iso.{PAIRS} p "
                "WHERE p.seg = :seg AND p.iso_rowid = i.rowid)")
    sh_free = (f"SELECT m.r FROM temp.zx_mine m WHERE NOT EXISTS (SELECT 1 FROM iso.{PAIRS} p "
               "WHERE p.seg = :seg AND p.shared_rowid = m.r)")
    src, dst = (sh_free, iso_free) if scope.to_iso else (iso_free, sh_free)
    for name, select in (("zx_free_src", src), ("zx_free_dst", dst)):
        conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
        conn.execute(f"CREATE TEMP TABLE {name} (r INTEGER PRIMARY KEY)")
        conn.execute(f"INSERT INTO temp.{name} {select}", scope.args)


def _count(conn: sqlite3.Connection, name: str) -> int:
    assert name in ("zx_free_src", "zx_free_dst")
    return int(conn.execute(f"SELECT count(*) FROM temp.{name}").fetchone()[0])


def plan_unpaired(conn: sqlite3.Connection, scope: Scope, prefer: str | None) -> None:
    """The unpaired source rows' actions: pair with an equal row, conflict on a key, else copy."""
    _free_rows(conn, scope)
    if not _count(conn, "zx_free_src"):
        return
    t, c, src, dst = scope.table.name, scope.cols, scope.src, scope.dst
    a, d = ("s", "i") if scope.to_iso else ("i", "s")  # source row, destination row
    key = natural_key(scope.table)
    if key is None and _count(conn, "zx_free_dst"):
        # Keyless rows (events) have nothing to conflict on: an equal unpaired row is the same event, found again
        # after a restored backup. Keyed rows meeting by key are the conflict rule's.
        conn.execute("DROP TABLE IF EXISTS temp.zx_match")
        conn.execute("CREATE TEMP TABLE zx_match (src INTEGER UNIQUE, dst INTEGER UNIQUE)")
        on = c.same(a, d)
        # Greedy one-to-one: each row takes the first equal partner left (OR IGNORE on both unique columns).
        conn.execute(
            f"INSERT OR IGNORE INTO temp.zx_match SELECT fs.r, fd.r FROM temp.zx_free_src fs JOIN {src}.{t} {a} "
            f"ON {a}.rowid = fs.r JOIN {dst}.{t} {d} ON {on} JOIN temp.zx_free_dst fd ON fd.r = {d}.rowid "
            f"WHERE {c.same(a, d)} ORDER BY fs.r, fd.r")
        conn.execute("INSERT INTO temp.zx_todo (seg, kind, src, dst) SELECT :seg, 'pair', src, dst "
                     "FROM temp.zx_match", scope.args)
        conn.execute("DELETE FROM temp.zx_free_src WHERE r IN (SELECT src FROM temp.zx_match)")
        conn.execute("DELETE FROM temp.zx_free_dst WHERE r IN (SELECT dst FROM temp.zx_match)")
    if key:
        _plan_key_conflicts(conn, scope, key, prefer)
    conn.execute("INSERT INTO temp.zx_todo (seg, kind, src) SELECT :seg, 'copy', r FROM temp.zx_free_src "
                 "ORDER BY r", scope.args)


def _plan_key_conflicts(conn: sqlite3.Connection, scope: Scope, key: str, prefer: str | None) -> None:
    """An unpaired source row whose key meets a destination row of the plugin (unpaired; for the keyed tables,
    any: their key is unique per plugin) is a conflict, or what --prefer says."""
    t, src, dst = scope.table.name, scope.src, scope.dst
    a, d = ("s", "i") if scope.to_iso else ("i", "s")
    mine = f"{d}.plugin_id = :p" if dst == "iso" else f"{d}.rowid IN (SELECT r FROM temp.zx_mine)"
    free = "1" if scope.table.key else f"{d}.rowid IN (SELECT r FROM temp.zx_free_dst)"
    paired = (f"EXISTS (SELECT 1 FROM iso.{PAIRS} p WHERE p.seg = :seg AND "
              f"p.{'iso_rowid' if dst == 'iso' else 'shared_rowid'} = {d}.rowid)")
    conn.execute("DROP TABLE IF EXISTS temp.zx_clash")
    conn.execute("CREATE TEMP TABLE zx_clash (src INTEGER PRIMARY KEY, dst INTEGER NOT NULL, paired INTEGER)")
    conn.execute(
        f"INSERT OR IGNORE INTO temp.zx_clash SELECT fs.r, {d}.rowid, {paired} FROM temp.zx_free_src fs "
        f"JOIN {src}.{t} {a} ON {a}.rowid = fs.r JOIN {dst}.{t} {d} ON {d}.{key} = {a}.{key} "
        f"WHERE {mine} AND {free} ORDER BY fs.r, {d}.rowid", scope.args)
    # A clash with a row already paired to another source row cannot be resolved by pairing: it stays one.
    kind = resolved_kind(prefer)
    # A source row equal to the plugin's paired row of that key (a shared-lineage row seen again after a merge
    # gave the plugin its own row) is already there.
    same = f"EXISTS (SELECT 1 FROM {src}.{t} {a} JOIN {dst}.{t} {d} ON {d}.rowid = zx_clash.dst " \
           f"WHERE {a}.rowid = zx_clash.src AND {scope.cols.same(a, d)})"
    conn.execute(f"INSERT INTO temp.zx_todo (seg, kind, src, dst) SELECT :seg, CASE WHEN paired AND {same} THEN "
                 f"'already' WHEN paired THEN 'conflict' ELSE {kind} END, src, dst FROM temp.zx_clash", scope.args)
    conn.execute("DELETE FROM temp.zx_free_src WHERE r IN (SELECT src FROM temp.zx_clash)")


def source_counts(conn: sqlite3.Connection, scope: Scope) -> dict[str, int]:
    """The plugin's rows in the source, and its pairs equal on both sides (after plan_pairs)."""
    if scope.to_iso:
        rows = conn.execute("SELECT count(*) FROM temp.zx_mine").fetchone()[0]
    else:
        rows = conn.execute(f"SELECT count(*) FROM iso.{scope.table.name} WHERE plugin_id = ?",
                            (scope.plugin,)).fetchone()[0]
    unchanged = conn.execute("SELECT count(*) FROM temp.zx_state WHERE same").fetchone()[0]
    return {"source_rows": int(rows), "unchanged": int(unchanged)}


def counts(conn: sqlite3.Connection, seg: int) -> dict[str, int]:
    return dict(conn.execute("SELECT kind, count(*) FROM temp.zx_todo WHERE seg = ? GROUP BY kind", (seg,)))


def conflict_details(conn: sqlite3.Connection, scope: Scope, limit: int = 5) -> list[str]:
    """`table: key (id=N): column shared=... isolated=...` for the first conflicts of the segment."""
    t, c = scope.table.name, scope.cols
    s_id, i_id = ("src", "dst") if scope.to_iso else ("dst", "src")
    rows = conn.execute(
        f"SELECT {key_text(scope.table, 's')}, {key_text(scope.table, 'i')}, "
        f"{', '.join(f's.{x}, i.{x}' for x in c.values) or '1, 1'} FROM temp.zx_todo x "
        f"JOIN sh.{t} s ON s.rowid = x.{s_id} JOIN iso.{t} i ON i.rowid = x.{i_id} "
        "WHERE x.seg = :seg AND x.kind = 'conflict' ORDER BY x.n LIMIT :n", {**scope.args, "n": limit}).fetchall()
    out = []
    for s_key, i_key, *values in rows:
        diffs = [f"{col} shared={show_value(values[2 * n])} isolated={show_value(values[2 * n + 1])}"
                 for n, col in enumerate(c.values) if values[2 * n] != values[2 * n + 1]
                 or type(values[2 * n]) is not type(values[2 * n + 1])]
        name = s_key if s_key == i_key else f"{s_key} / {i_key}"
        out.append(f"{t}: {name}: " + (", ".join(diffs[:4]) or "the same values") +
                   (f" (+{len(diffs) - 4} more)" if len(diffs) > 4 else ""))
    return out


def other_side_names(conn: sqlite3.Connection, scope: Scope, limit: int = 5) -> list[str]:
    """Rows this run carries over that the bot wrote in the source since the last sync (copies and updates)."""
    t, src = scope.table.name, scope.src
    alias = "s" if scope.to_iso else "i"
    rows = conn.execute(
        f"SELECT {key_text(scope.table, alias)}, x.kind FROM temp.zx_todo x JOIN {src}.{t} {alias} "
        f"ON {alias}.rowid = x.src WHERE x.seg = :seg AND x.kind IN ('copy', 'update') ORDER BY x.n LIMIT :n",
        {**scope.args, "n": limit}).fetchall()
    return [f"{t}: {name} ({'new' if kind == 'copy' else 'changed'})" for name, kind in rows]
