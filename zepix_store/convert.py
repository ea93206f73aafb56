"""Copy every plugin's rows from the store --config describes into the one --to describes (SQLite <-> PostgreSQL).

Each plugin's rows go from where the --config store routes it (its file, or its schema) to where the --to store
routes it (rows of ids no config names, such as the default id's, from the shared file or schema to the shared
one); a legacy shared file that was never migrated is attributed on the way (as split does). Rows are copied in
chunks ordered by id (parents before children, COPY onto the server); every chunk is read back and compared with
its source (count, every value with its storage class, money totals as floats) before it commits, with a ledger
row in the target recording how far each plugin's table got, so a run killed at any instant continues where it
stopped when run again. Each table is compared whole at the end; a run that finds everything copied changes
nothing and says so. A target that already holds other rows for a plugin is refused, naming them, before anything
is written. The source is only read; stop the bot (or keep it off the source) while converting.

examples:
  zepix-store convert --to configs-pg --dry-run     # counts per plugin and table, schemas it would create
  zepix-store convert --to configs-pg               # copy, verify; run it again after an interruption
  zepix-store convert --config configs --to configs-pg --json
  zepix-store convert --config configs-pg --to configs-back      # the way back, into new SQLite files

exit codes: 0 done (or nothing to do), 1 a check failed or the target holds other rows for a plugin (nothing
written), 2 bad config (not SQLite <-> PostgreSQL, a plugin unknown to --to, rows that were never split), 4 another
convert into the same store, or a synchronisation of a plugin on the SQLite side, is running, 5 a corrupt source
file, 7 the server is unreachable or the connection was lost (run again: it continues).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._output import Progress, emit_report, print_table
from ._sync_output import add_lock_wait
from .cli import command_main, find_config_dir
from .config import load_config
from .ops.convert import DEFAULT_CHUNK_ROWS, ConvertReport, convert

__all__ = ["ConvertReport", "convert", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--to", required=True, metavar="DIR",
                        help="config folder (or its store.yaml) of the target store: the other backend, the same "
                             "plugins")
    parser.add_argument("--dry-run", action="store_true",
                        help="count what would be copied per plugin and table and the schemas it would create; "
                             "write nothing")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, metavar="N",
                        help=f"rows per verified, committed chunk (default {DEFAULT_CHUNK_ROWS})")
    add_lock_wait(parser)


def run(args: argparse.Namespace) -> int:
    if args.chunk_rows < 1:
        args.chunk_rows = 1
    source = load_config(args.config)
    target = load_config(find_config_dir(args.to))
    progress = Progress(enabled=not args.quiet)
    report = convert(source, target, dry_run=args.dry_run, chunk_rows=args.chunk_rows, progress=progress,
                     lock_wait_s=args.lock_wait)
    return emit_report("convert", report, args.json, print_report)


def print_report(report: ConvertReport) -> None:
    """Per plugin and table: where to, rows, what was done; then what was created, warnings, a verdict."""
    print(f"{'dry run (nothing written)' if report.dry_run else 'convert'}: {report.source} -> {report.target}")
    rows = [(u.plugin_id, u.table, u.target, u.source_rows, u.copied_before, u.copied, u.status)
            for u in report.units if u.source_rows or u.copied_before or u.status not in ("pending", "up to date")]
    print_table(["plugin", "table", "to", "source rows", "copied before", "copied now", "status"], rows)
    if report.created:
        print(f"{'would create' if report.dry_run else 'created'}: {', '.join(report.created)}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.nothing_to_do:
        print("nothing to do: every plugin's rows are already in the target, verified equal")
    elif report.ok and not report.dry_run:
        print(f"done: {report.rows_copied():,} rows copied, every table verified equal to its source")


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("convert", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
