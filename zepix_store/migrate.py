"""Give the shared database `plugin_id` in place, after a backup: the bot keeps its one file, now per plugin.

Steps: a quick_check (a corrupt file exits 5 before anything is written), a WAL-safe backup labelled
`pre-migrate` in backup_dir, then ONE transaction: `plugin_id` on all ten tables, each row given its owner
(store.yaml's mapping of the trade's logic; child rows follow their parents), the per-plugin indexes, fresh
statistics (ANALYZE) and the schema version. Killed at any instant, the file is either fully old or fully
new; run it again to finish. A second run reports "already migrated" and changes nothing.

Old bot code breaks after it: every table gains a column, so the bot's positional `INSERT INTO sl_events VALUES
(?,?,?,?,?,?,?,?)` (its old TradeDatabase) fails ("table sl_events has 9 columns but 8 values were supplied").
Switch the bot to the compat facade first (`from zepix_store.compat import TradeDatabase`, then
`TradeDatabase("<plugin_id>")`), or use `split`, which leaves the shared file's schema as it is.

The report lists rows per plugin per table, orphans (kept by the default id), shared lineage (a parent
used by several plugins stays with the default id and is listed), the trades decided by each attribution rule,
unmapped values per mapping column with their counts, ambiguous trades, superseded open snapshots and
duplicate trade_ids (kept, never merged).

examples:
  zepix-store migrate --dry-run        # what would change; writes nothing, creates no file
  zepix-store migrate                  # backup, then migrate in one transaction
  zepix-store migrate --json

exit codes: 0 done (or already migrated), 2 bad config, 3 disk full or I/O error,
4 locked by another process past --busy-timeout, 5 corrupt file, not a database, no tables, newer schema.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ._output import Progress, print_json, print_table, wrapped
from .cli import command_main
from .config import load_config
from .errors import ConfigError
from .ops.migrate import ALREADY, DRY_RUN, MigrateReport, migrate_shared
from .schema import TABLES
from .words import count, size

__all__ = ["main"]

OLD_CODE_NOTE = ("note: the bot's old TradeDatabase (positional INSERT ... VALUES into these tables) fails on this\n"
                 "  file now: each table has a plugin_id column more. Switch it to the compat facade:\n"
                 "  `from zepix_store.compat import TradeDatabase; db = TradeDatabase(\"<plugin_id>\")`;\n"
                 "  `split` is the path that leaves this file's schema untouched")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="report what would change; write nothing, create no file, take no backup")
    parser.add_argument("--busy-timeout", type=float, default=5.0, metavar="SECONDS",
                        help="how long to wait for the bot's write lock before giving up (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    if args.busy_timeout < 0:
        raise ConfigError(f"--busy-timeout: must be 0 or more, got {args.busy_timeout}")
    config = load_config(args.config)
    report = migrate_shared(config, dry_run=args.dry_run, busy_timeout_ms=int(args.busy_timeout * 1000),
                            progress=Progress(enabled=not args.quiet))
    if args.json:
        print_json(report.to_json(config.default_plugin_id))
    else:
        print_report(report, config.default_plugin_id, verbose=args.verbose)
    return 0


def _owner_rows(report: MigrateReport, default: str) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for t in TABLES:
        action = report.actions.get(t.name, "")
        b = report.buckets.get(t.name)
        if b is None:
            rows.append([t.name, action, "-", 0, "table absent: created empty" if action == "create" else ""])
            continue
        for plugin, n in sorted(b.by_plugin.items()):
            rows.append([t.name, action, plugin, n, ""])
        if b.orphans:
            rows.append([t.name, action, default, b.orphans, "orphans: no parent row"])
        if b.shared_rows:
            rows.append([t.name, action, default, b.shared_rows,
                         "shared lineage: " + ", ".join(sorted(b.shared_copies))])
        if not b.source_rows:
            rows.append([t.name, action, "-", 0, "empty"])
    return rows


def _owner_summary(report: MigrateReport, default: str) -> list[list[Any]]:
    """One row per owner: its rows, in how many tables, and the default id's orphans and shared lineage."""
    owners: dict[str, list[Any]] = {}
    for t in TABLES:
        b = report.buckets.get(t.name)
        if b is None:
            continue
        found = dict(b.by_plugin)
        found[default] = found.get(default, 0) + b.orphans + b.shared_rows
        for plugin, n in found.items():
            if n:
                row = owners.setdefault(plugin, [plugin, 0, 0, 0, 0])
                row[1] += n
                row[2] += 1
        if b.orphans or b.shared_rows:
            row = owners.setdefault(default, [default, 0, 0, 0, 0])
            row[3] += b.orphans
            row[4] += b.shared_rows
    rows = []
    for plugin, n, tables, orphans, shared in sorted(owners.values()):
        note = ", ".join(filter(None, [count(orphans, "orphan") + " (no parent row)" if orphans else "",
                                       count(shared, "row") + " of shared lineage" if shared else ""]))
        rows.append([plugin, n, tables, note])
    return rows


def print_report(report: MigrateReport, default: str, verbose: bool = False) -> None:
    """The human report on stdout: owners one row each (-v: each table and owner)."""
    if report.status == ALREADY:
        print(f"already migrated: {report.path} is at schema version {report.to_version}; nothing changed")
        print_table(["table", "plugin_id", "rows"],
                    [[t, p, n] for t, counts in report.rows_by_plugin.items() for p, n in counts.items()])
        return
    if report.status == DRY_RUN:
        print(f"dry run: {report.path} would be migrated from schema version {report.from_version} to "
              f"{report.to_version} after a backup of {size(report.db_bytes)}; nothing was written")
    else:
        print(f"migrated {report.path} from schema version {report.from_version} to {report.to_version} "
              f"in {report.seconds:.1f} s\nbackup: {report.backup}")
    if report.from_version == 0 and verbose:
        print()
        print_table(["table", "action", "owner", "rows", "note"], _owner_rows(report, default))
    elif report.from_version == 0:
        print()
        print_table(["owner", "rows", "tables", "note"], _owner_summary(report, default))
        created = [t.name for t in TABLES if report.actions.get(t.name) == "create"]
        if created:
            print(f"created empty: {', '.join(created)}")
        print("(-v: the rows of each table and owner)")
    for table, cols in report.added_columns.items():
        print(f"\n{table}: missing legacy columns added: {', '.join(cols)}")
    if report.reindexed:
        print(f"\nindexes rebuilt for the new close-time key: {', '.join(report.reindexed)} (no row changed)")
    if report.retriggered:
        tables = ", ".join(report.retriggered)
        print(f"\nchange-tracking triggers rewritten (repeated upserts no longer fail): {tables} (no row changed)")
    if report.attribution is not None:
        print("\n" + "\n".join(map(wrapped, report.attribution.lines())))
    if report.from_version == 0:
        print("\n" + OLD_CODE_NOTE)




def main(argv: Sequence[str] | None = None) -> int:
    return command_main("migrate", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
