"""Bring plugins' isolated rows back into the shared database: the way back for a plugin set to use_shared: true.

Set the plugin's `use_shared` to true, run merge, then start the bot (or let `zepix-store flip` do all of it).
The shared file is backed up first when something will change (and upgraded to the current schema if it is
older); then every row of the plugin goes back exactly once, in short committed chunks the bot can write
between: a row that came from the shared file by split and is still there is only recognised; one the plugin
changed since is updated in place; a pruned one is restored under its old id when that id is free; rows the
plugin wrote in its own file are added with new ids. A row changed in both places, or a key the plugin holds on
two different rows, refuses the plugin (nothing of it written) until --prefer says which side wins. Every chunk
is compared with the isolated file (values and money totals) before it commits.

examples:
  zepix-store merge --plugin v6-logic-01-1min --dry-run   # what would change, nothing written
  zepix-store merge --plugin v6-logic-01-1min
  zepix-store merge --plugin v3-logic-01-5min --plugin v3-logic-02-15min --json

exit codes: 0 done, 1 a verification failed or a plugin was refused, 2 bad config or input (plugin not
use_shared, no isolated file), 3 disk full / I/O, 4 busy, 5 corrupt database.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._output import Progress, emit_report
from ._sync_output import add_lock_wait, print_sync
from .cli import command_main
from .config import load_config
from .ops.merge import MergeReport, check_plugins, merge, prepare_shared
from .ops.sync.job import PREFER

__all__ = ["MergeReport", "check_plugins", "main", "merge", "prepare_shared"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="ID", required=True,
                        help="plugin to merge back (repeatable); its config must say use_shared: true")
    parser.add_argument("--dry-run", action="store_true", help="plan only: what would change; write nothing")
    parser.add_argument("--prefer", choices=PREFER,
                        help="resolve conflicts (a row changed in both places): the isolated row (source) or the "
                             "shared row (destination) wins")
    add_lock_wait(parser)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    progress = Progress(enabled=not args.quiet)
    report = merge(config, args.plugin, dry_run=args.dry_run, prefer=args.prefer, progress=progress, say=progress,
                   lock_wait_s=args.lock_wait)
    return emit_report("merge", report, args.json, lambda r: print_report(r, args.verbose))


def print_report(report: MergeReport, verbose: bool = False) -> None:
    mode = "dry run (nothing written): merge" if report.dry_run else "merge"
    print(f"{mode} into {report.shared_db}" + (f" (backup {report.backup})" if report.backup else ""))
    if report.upgraded_from is not None:
        print(f"upgraded the shared file from schema version {report.upgraded_from}")
    print_sync(report, "isolated", report.dry_run, verbose)


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("merge", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
