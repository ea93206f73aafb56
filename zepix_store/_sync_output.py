"""The human form of a synchronisation's report, shared by split, merge and flip."""

from __future__ import annotations

import argparse

from ._output import print_table
from .ops.sync.report import PluginSync, SyncReport, TableSync
from .plugin_lock import DEFAULT_LOCK_WAIT_S
from .words import count

__all__ = ['add_lock_wait', 'outcome_lines', 'print_sync']


def add_lock_wait(parser: argparse.ArgumentParser) -> None:
    """--lock-wait: how long to wait for another synchronisation of the same plugin (then exit 4)."""
    parser.add_argument("--lock-wait", type=float, default=DEFAULT_LOCK_WAIT_S, metavar="SECONDS",
                        help="wait this long for another split, merge or flip of the same plugin to finish, then "
                             f"give up with exit 4 naming it (default {DEFAULT_LOCK_WAIT_S:g})")

_COLUMNS = ("copied", "updated", "kept", "unchanged", "paired", "renumbered", "source_gone", "conflicts")


def print_sync(report: SyncReport, source: str, dry_run: bool = False, verbose: bool = False) -> None:
    """What happened, one row per plugin (per plugin and table with `verbose`); then each plugin's outcome in
    words and what was refused.

    Columns that are 0 on every row and plugins with nothing to do are left out of the table and the words
    (with `verbose`, every table of every plugin is a row): the plugins up to date are named on one line.
    """
    heads = dict(zip(_COLUMNS, ["to copy" if dry_run else "copied", "to update" if dry_run else "updated",
                                "kept (newer)", "unchanged", "paired", "new ids", "source gone", "conflicts"],
                     strict=True))
    rows = _rows(report, verbose)
    shown = [c for c in _COLUMNS if c == "copied" or any(getattr(t, c) for _, _, t, _ in rows)]
    if rows:
        print_table(["plugin", "table" if verbose else "tables", f"{source} rows", *(heads[c] for c in shown),
                     "status"],
                    [(pid, name, t.source_rows, *(getattr(t, c) for c in shown), status)
                     for pid, name, t, status in rows])
    for line in outcome_lines(report, dry_run):
        print(line)
    money = [(p.plugin_id, col, s, c) for p in report.plugins.values() for col, (s, c) in p.money.items() if s or c]
    if money:
        print()
        print_table(["plugin", "money", "source total", "copy total"], money)
    if report.longest_hold_ms:
        print(f"longest write transaction held on a file in use: {report.longest_hold_ms:.0f} ms")
    for warning in report.warnings:
        print(f"warning: {warning}")


def outcome_lines(report: SyncReport, dry_run: bool = False) -> list[str]:
    """Each plugin's outcome in words, its conflicts and carried-over rows; the plugins up to date on one line."""
    lines = []
    for p in report.plugins.values():
        if p.status != "up to date":
            lines.append(f"{p.plugin_id}: {_in_words(p, dry_run)}")
        lines += [f"  conflict: {line}" for line in p.conflicts]
        lines += [f"  written in the other place since the last sync, carried over: {line}" for line in p.other_side]
    idle = [p.plugin_id for p in report.plugins.values() if p.status == "up to date"]
    if idle:
        lines.append(f"up to date, nothing to do: {count(len(idle), 'plugin')} ({', '.join(idle)})")
    return lines


def _rows(report: SyncReport, verbose: bool) -> list[tuple[str, str | int, TableSync, str]]:
    """(plugin, table or how many tables, counts, status): a row per table with `verbose`, else per plugin that
    had something to do."""
    rows: list[tuple[str, str | int, TableSync, str]] = []
    for p in report.plugins.values():
        tables = [(name, t) for name, t in p.tables.items() if t.source_rows or any(getattr(t, c) for c in _COLUMNS)]
        if verbose:
            rows += [(p.plugin_id, name, t, p.status) for name, t in tables]
        elif p.status != "up to date" and tables:
            rows.append((p.plugin_id, len(tables), _summed([t for _, t in tables]), p.status))
    return rows


def _summed(tables: list[TableSync]) -> TableSync:
    """One plugin's tables added up, for its row of the short table."""
    total = TableSync()
    for t in tables:
        total.source_rows += t.source_rows
        for c in _COLUMNS:
            setattr(total, c, getattr(total, c) + getattr(t, c))
    return total


def _in_words(p: PluginSync, dry_run: bool) -> str:
    total = {c: sum(getattr(t, c) for t in p.tables.values()) for c in _COLUMNS}
    if p.status in ("refused", "would be refused"):
        return (f"{'would be ' if dry_run else ''}refused: {count(total['conflicts'], 'row')} changed in both places "
                "or holding one key twice; nothing written for this plugin (see the conflicts below; "
                "--prefer source|destination resolves them)")
    if p.status == "failed":
        return "FAILED: " + "; ".join(p.problems)
    verb = ("would copy", "would update") if dry_run else ("copied", "updated")
    parts = [f"{verb[0]} {count(total['copied'], 'new row')}"]
    if total["updated"]:
        parts.append(f"{verb[1]} {total['updated']:,} changed since the last sync")
    if total["kept"]:
        parts.append(f"kept {total['kept']:,} the bot changed in the destination since")
    if total["unchanged"]:
        parts.append(f"{total['unchanged']:,} already equal")
    if total["paired"]:
        parts.append(f"recognised {count(total['paired'], 'equal row')} as already copied")
    if total["source_gone"]:
        parts.append(f"{total['source_gone']:,} whose source row is gone (pruned) left as they are")
    return ", ".join(parts)
