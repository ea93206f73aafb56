"""Move one plugin to its isolated file or back to the shared file, while the bot keeps running.

The whole move as one command: a backup of the file that receives rows, the synchronisation (as split or
merge do it: new rows copied, changed rows updated, the bot's newer writes kept, conflicts refused), its
verification, then a last round while the plugin's writes wait (in every process using the store): what the bot
wrote meanwhile is carried over and the plugin's config.json rewritten atomically (only database.use_shared
changes; every other key, their order and the indentation stay). A running bot using the store follows the new
route at its next call; an old bot writing the file with its own SQL is named, and the next run carries its rows
over. --prune then deletes the verified rows from the old place (after a backup of it). Run it again after an
interruption: it finishes the move. A plugin already where --to says, with nothing left to carry over, is left
as it is (no backup, no config rewrite).

examples:
  zepix-store flip v6-logic-01-1min --to isolated --dry-run   # what would be copied, nothing written
  zepix-store flip v6-logic-01-1min --to isolated
  zepix-store flip v6-logic-01-1min --to shared --prune       # back, then delete its rows from its own file

exit codes: 0 done, 1 a verification failed or the plugin was refused (conflicts: see --prefer), 2 bad config or
input, 3 disk full / I/O, 4 busy, 5 corrupt database.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._output import Progress, emit_report
from ._sync_output import add_lock_wait, print_sync
from .cli import command_main
from .ops.flip import TARGETS, FlipReport, flip
from .ops.sync.job import PREFER

__all__ = ["FlipReport", "flip", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plugin", metavar="PLUGIN", help="the plugin to move")
    parser.add_argument("--to", choices=TARGETS, required=True, help="where the plugin's rows will live")
    parser.add_argument("--prune", action="store_true", help="then delete the verified rows from the old place")
    parser.add_argument("--dry-run", action="store_true", help="plan only: what would be copied; write nothing")
    parser.add_argument("--prefer", choices=PREFER, help="resolve conflicts: the old place (source) or the new "
                                                         "place (destination) wins")
    add_lock_wait(parser)


def run(args: argparse.Namespace) -> int:
    report = flip(args.config, args.plugin, args.to, prune=args.prune, dry_run=args.dry_run, prefer=args.prefer,
                  progress=Progress(enabled=not args.quiet), lock_wait_s=args.lock_wait)
    return emit_report("flip", report, args.json, print_report)


def print_report(report: FlipReport, verbose: bool = False) -> None:
    if report.already is not None:
        print(f"{'dry run (nothing written): ' if report.dry_run else ''}flip {report.plugin_id} to {report.to}: "
              f"{report.already}")
        return
    print(f"{'dry run (nothing written): ' if report.dry_run else ''}flip {report.plugin_id} to {report.to}"
          + (f" (backup {report.backup})" if report.backup else ""))
    for n, sync in enumerate(report.syncs):
        if n:
            print("last round, the plugin's writes waiting (rows the bot wrote meanwhile):" if n == 1 else
                  "prune:")
        print_sync(sync, "source", report.dry_run, verbose)
    if report.config_changed:
        print(f"config: database.use_shared is now {'true' if report.to == 'shared' else 'false'}")
    for key, value in report.prune.items():
        print(f"prune {key.replace('_', ' ')}: {value}")


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("flip", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
