"""Why the legacy trades went where they went: trades per rule, unmapped values, ambiguous trades, duplicates.

Computed from the temp owner tables attribution.build_owners filled (same connection, same read snapshot), so
migrate, split and its dry run, verify, stats on an unmigrated file and the demo all tell one story. Nothing
here prints: `lines()` gives the human form for the commands to print.

Duplicates (SPEC 4), per owner and trade_id: an `open` row with a later row (higher rowid) is a superseded
snapshot (the bot saved every trade at entry and again at exit), counted; a trade_id left with more than one
row once those are set aside (several closed rows, a ticket reused) is a conflict, listed.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from .attribution import (
    LINKS,
    RULE_DEFAULT,
    RULE_OWN,
    SCHEMAS,
    TRADE_OWNERS,
    AttributionRules,
    ambiguous_rule,
    link_rule,
    link_table,
    mapping_rule,
)
from .literal import show_value, value_counts
from .schema import TRADES
from .words import count

__all__ = [
    "AmbiguousTrade",
    "AttributionReport",
    "DuplicateConflict",
    "LIST_LIMIT",
    "RULE_AMBIGUOUS",
    "UnmappedValue",
    "attribution_report",
]

LIST_LIMIT = 20  # ambiguous trades, conflicts and unmapped values listed per report (the rest counted)
RULE_AMBIGUOUS = "ambiguous"


@dataclass
class UnmappedValue:
    value: object
    trades: int  # trades no mapping (nor own plugin_id) decided that carry this value
    kept: int    # of those, the ones no link gave an owner either: kept by the default id


@dataclass
class AmbiguousTrade:
    id: int
    trade_id: object
    link: str
    value: object
    plugins: list[str]


@dataclass
class DuplicateConflict:
    plugin_id: str
    trade_id: object
    rows: int
    closed_rows: int


@dataclass
class AttributionReport:
    """Trades per rule and per owner, with the values and trades that explain the default id's share."""

    default_plugin_id: str
    mapping_columns: list[str]
    missing_columns: list[str] = field(default_factory=list)  # mapping columns and links the file lacks
    trades: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    by_plugin: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, list[UnmappedValue]] = field(default_factory=dict)
    unmapped_distinct: dict[str, int] = field(default_factory=dict)
    ambiguous: list[AmbiguousTrade] = field(default_factory=list)
    ambiguous_total: int = 0
    superseded_snapshots: int = 0
    conflicts: list[DuplicateConflict] = field(default_factory=list)
    conflicts_total: int = 0

    @property
    def unattributed(self) -> int:
        """Trades the default id keeps."""
        return self.by_plugin.get(self.default_plugin_id, 0)

    @property
    def mostly_unattributed(self) -> bool:
        """Whether the default id keeps more than half of the trades (verify warns)."""
        return 2 * self.unattributed > self.trades

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["unattributed"] = self.unattributed
        return doc

    def summary(self) -> str:
        """One line: trades per rule."""
        rules = ", ".join(f"{_rule_label(r)} {n:,}" for r, n in self.by_rule.items())
        return f"{count(self.trades, 'trade')} attributed by rule: {rules}; {self.unattributed:,} kept by " \
               f"{self.default_plugin_id}"

    def lines(self) -> list[str]:
        """The human form: the summary, then every list that explains it (long lists cut, with a count)."""
        out = [self.summary()]
        if self.missing_columns:
            out.append(f"columns the file lacks (rules skipped): {', '.join(self.missing_columns)}")
        for column, values in self.unmapped.items():
            if not values:  # every value of the column was mapped: no empty list after a colon
                continue
            more = self.unmapped_distinct[column] - len(values)
            kept = value_counts([(v.value, v.kept) for v in values if v.kept])
            out.append(f"unmapped {column} values (trades no mapping decided): "
                       f"{value_counts([(v.value, v.trades) for v in values])}{_more(more, 'values')}"
                       + (f"; of those left with {self.default_plugin_id}: {kept}" if kept else ""))
        if self.ambiguous_total:
            shown = "; ".join(f"id {a.id} trade_id {show_value(a.trade_id)}: {a.link} {show_value(a.value)} -> "
                              f"{', '.join(a.plugins)}" for a in self.ambiguous)
            out.append(f"ambiguous trades (their link leads to several plugins; kept by {self.default_plugin_id}): "
                       f"{self.ambiguous_total:,}: {shown}{_more(self.ambiguous_total - len(self.ambiguous))}")
        if self.superseded_snapshots:
            out.append(f"open snapshots superseded by a later row: {self.superseded_snapshots:,} (kept and copied, "
                       "never read as open positions)")
        if self.conflicts_total:
            shown = ", ".join(f"{c.plugin_id} {show_value(c.trade_id)} x{c.rows} ({c.closed_rows} closed)"
                              for c in self.conflicts)
            out.append(f"several closed rows for one trade_id (kept; conflicts to look at): {self.conflicts_total:,}: "
                       f"{shown}{_more(self.conflicts_total - len(self.conflicts))}")
        return out


def _more(n: int, noun: str = "") -> str:
    return f", ... and {n:,} more{' ' + noun if noun else ''}" if n > 0 else ""


def _rule_label(rule: str) -> str:
    return "own plugin_id" if rule == RULE_OWN else rule.split(".", 1)[-1]


# --- computing it -----------------------------------------------------------------------------------------------


def attribution_report(conn: sqlite3.Connection, schema: str, rules: AttributionRules,
                       present: dict[str, set[str]]) -> AttributionReport:
    """The report of the owner tables build_owners(conn, schema, rules) just filled."""
    assert schema in SCHEMAS
    report = AttributionReport(rules.default_plugin_id, list(rules.mapping_columns))
    cols = present.get("trades")
    if cols is None:
        return report
    columns = [c for c in rules.mapping_columns if c in cols]
    links = [c for c in LINKS if c in cols]
    report.missing_columns = [c for c in (*rules.mapping_columns, *LINKS) if c not in cols]
    counts = dict(conn.execute(f"SELECT rule, count(*) FROM {TRADE_OWNERS} GROUP BY rule").fetchall())
    report.by_rule = _by_rule(counts, columns, links)
    report.trades = sum(counts.values())
    report.by_plugin = dict(conn.execute(
        f"SELECT plugin_id, count(*) FROM {TRADE_OWNERS} GROUP BY plugin_id ORDER BY plugin_id").fetchall())
    undecided = [link_rule(c) for c in links] + [ambiguous_rule(c) for c in links] + [RULE_DEFAULT]
    for column in columns:
        _unmapped(conn, schema, column, undecided, links, report)
    for column in links:
        _ambiguous(conn, schema, column, "trade_id" in cols, report)
    report.ambiguous_total = report.by_rule[RULE_AMBIGUOUS]
    if "trade_id" in cols:
        _duplicates(conn, schema, "status" in cols, report)
    return report


def _by_rule(counts: dict[str, int], columns: list[str], links: list[str]) -> dict[str, int]:
    by_rule = {RULE_OWN: counts.get(RULE_OWN, 0)}
    by_rule.update({mapping_rule(c): counts.get(mapping_rule(c), 0) for c in columns})
    by_rule.update({link_rule(c): counts.get(link_rule(c), 0) for c in links})
    by_rule[RULE_AMBIGUOUS] = sum(counts.get(ambiguous_rule(c), 0) for c in links)
    by_rule[RULE_DEFAULT] = counts.get(RULE_DEFAULT, 0)
    return by_rule


def _unmapped(conn: sqlite3.Connection, schema: str, column: str, undecided: list[str], links: list[str],
              report: AttributionReport) -> None:
    """Values of `column` on the trades rules 1-2 did not decide, with how many of them kept the default id."""
    col = TRADES.column_names[TRADES.column_names.index(column)]
    kept = [RULE_DEFAULT] + [ambiguous_rule(c) for c in links]
    # IN lists of parameters, not json_each: a read-only connection's authorizer refuses the virtual table
    rows = conn.execute(
        f"SELECT x.{col}, count(*), count(CASE WHEN o.rule IN ({', '.join('?' * len(kept))}) THEN 1 END), "
        f"count(*) OVER () FROM {TRADE_OWNERS} o JOIN {schema}.trades x ON x.rowid = o.src_rowid "
        f"WHERE o.rule IN ({', '.join('?' * len(undecided))}) GROUP BY x.{col} "
        f"ORDER BY count(*) DESC, x.{col} LIMIT ?", (*kept, *undecided, LIST_LIMIT)).fetchall()
    report.unmapped[column] = [UnmappedValue(v, n, k) for v, n, k, _ in rows]
    report.unmapped_distinct[column] = rows[0][3] if rows else 0


def _ambiguous(conn: sqlite3.Connection, schema: str, column: str, has_trade_id: bool,
               report: AttributionReport) -> None:
    room = LIST_LIMIT - len(report.ambiguous)
    if room <= 0:
        return
    col = TRADES.column_names[TRADES.column_names.index(column)]
    trade_id = "x.trade_id" if has_trade_id else "NULL"
    rows = conn.execute(
        f"SELECT o.src_rowid, {trade_id}, x.{col}, l.plugins FROM {TRADE_OWNERS} o "
        f"JOIN {schema}.trades x ON x.rowid = o.src_rowid JOIN {link_table(column)} l ON l.k = x.{col} "
        "WHERE o.rule = ? ORDER BY o.src_rowid LIMIT ?", (ambiguous_rule(column), room)).fetchall()
    report.ambiguous += [AmbiguousTrade(i, t, column, v, sorted(str(p).split(","))) for i, t, v, p in rows]


def _duplicates(conn: sqlite3.Connection, schema: str, has_status: bool, report: AttributionReport) -> None:
    """Superseded open snapshots counted, other duplicate trade_ids listed, per owner (one grouped scan)."""
    status = "x.status" if has_status else "NULL"
    conn.execute("DROP TABLE IF EXISTS temp.zx_duplicates")
    # max() is the only min/max aggregate, so the bare `last_status` is the status of the newest row
    conn.execute(
        f"CREATE TEMP TABLE zx_duplicates AS SELECT o.plugin_id, x.trade_id, count(*) AS n, "
        f"count(CASE WHEN {status} = 'closed' THEN 1 END) AS closed, "
        f"count(CASE WHEN {status} = 'open' THEN 1 END) AS opens, max(x.rowid) AS last, {status} AS last_status "
        f"FROM {schema}.trades x JOIN {TRADE_OWNERS} o ON o.src_rowid = x.rowid WHERE x.trade_id IS NOT NULL "
        "GROUP BY o.plugin_id, x.trade_id HAVING count(*) > 1")
    superseded = "(opens - (last_status IS 'open'))"
    total, conflicts = conn.execute(
        f"SELECT total({superseded}), count(CASE WHEN n - {superseded} > 1 THEN 1 END) FROM temp.zx_duplicates"
    ).fetchone()
    report.superseded_snapshots, report.conflicts_total = int(total), int(conflicts)
    report.conflicts = [DuplicateConflict(str(p), t, n, c) for p, t, n, c in conn.execute(
        f"SELECT plugin_id, trade_id, n, closed FROM temp.zx_duplicates WHERE n - {superseded} > 1 "
        "ORDER BY n DESC, plugin_id, trade_id LIMIT ?", (LIST_LIMIT,))]
    conn.execute("DROP TABLE temp.zx_duplicates")
