"""The human form of a synchronisation's report, shared by split, merge and flip."""

from __future__ import annotations

import argparse

from ._output import print_table
from .ops.sync.report import PluginSync, SyncReport
from .plugin_lock import DEFAULT_LOCK_WAIT_S

__all__ = ['add_lock_wait', 'print_sync']


def add_lock_wait(parser: argparse.ArgumentParser) -> None:
    """--lock-wait: how long to wait for another synchronisation of the same plugin (then exit 4)."""
    parser.add_argument("--lock-wait", type=float, default=DEFAULT_LOCK_WAIT_S, metavar="SECONDS",
                        help="wait this long for another split, merge or flip of the same plugin to finish, then "
                             f"give up with exit 4 naming it (default {DEFAULT_LOCK_WAIT_S:g})")

_COLUMNS = ("copied", "updated", "kept", "unchanged", "paired", "renumbered", "source_gone", "conflicts")


def print_sync(report: SyncReport, source: str, dry_run: bool = False) -> None:
    """Per plugin and table, what happened; then, in words, each plugin's outcome and what was refused."""
    rows = [(p.plugin_id, name, t.source_rows, *(getattr(t, c) for c in _COLUMNS), p.status)
            for p in report.plugins.values() for name, t in p.tables.items()
            if t.source_rows or any(getattr(t, c) for c in _COLUMNS)]
    if rows:
        heads = ["to copy" if dry_run else "copied", "to update" if dry_run else "updated", "kept (newer)",
                 "unchanged", "paired", "new ids", "source gone", "conflicts"]
        print_table(["plugin", "table", f"{source} rows", *heads, "status"], rows)
    for p in report.plugins.values():
        print(f"{p.plugin_id}: {_in_words(p, dry_run)}")
        for line in p.conflicts:
            print(f"  conflict: {line}")
        for line in p.other_side:
            print(f"  written in the other place since the last sync, carried over: {line}")
    money = [(p.plugin_id, col, s, c) for p in report.plugins.values() for col, (s, c) in p.money.items() if s or c]
    if money:
        print()
        print_table(["plugin", "money", "source total", "copy total"], money)
    if report.longest_hold_ms:
        print(f"longest write transaction held on a file in use: {report.longest_hold_ms:.0f} ms")
    for warning in report.warnings:
        print(f"warning: {warning}")


def _in_words(p: PluginSync, dry_run: bool) -> str:
    total = {c: sum(getattr(t, c) for t in p.tables.values()) for c in _COLUMNS}
    if p.status in ("refused", "would be refused"):
        return (f"{'would be ' if dry_run else ''}refused: {total['conflicts']:,} rows changed in both places or "
                "holding one key twice; nothing written for this plugin (see the conflicts below; "
                "--prefer source|destination resolves them)")
    if p.status == "failed":
        return "FAILED: " + "; ".join(p.problems)
    verb = ("would copy", "would update") if dry_run else ("copied", "updated")
    parts = [f"{verb[0]} {total['copied']:,} new rows", f"{verb[1]} {total['updated']:,} changed since the last sync",
             f"kept {total['kept']:,} the bot changed in the destination since",
             f"{total['unchanged']:,} already equal"]
    if total["paired"]:
        parts.append(f"recognised {total['paired']:,} equal rows as already copied")
    if total["source_gone"]:
        parts.append(f"{total['source_gone']:,} whose source row is gone (pruned) left as they are")
    return ", ".join(parts) + (" (nothing to do)" if p.status == "up to date" else "")
