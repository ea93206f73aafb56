"""Put a backup back in place of the shared database, a plugin's file or a file in data_dir.

Order: the backup is integrity-checked first (a bad one exits 5 and the target is untouched); the target is
locked exclusively, which fails at once if any other process has it open (exit 4: stop the bot first);
the file being replaced is kept as a backup of its own in backup_dir (label `pre-restore`), so a restore can
be undone by restoring that file; then the backup is written INTO the target through SQLite's backup API in
one transaction (killed half-way, the rollback journal returns the old content). Switching the target out
of WAL mode under the lock checkpoints and removes its `-wal`/`-shm`, so no stale `-wal` can replay over
the restored copy.

A backup records what it is a backup of (role shared or isolated, path inside the data folder, plugins, schema
version). Restoring it onto any other file (a plugin's backup onto the shared file, one plugin's onto another's,
a group file's onto a single plugin's) is refused, naming both, unless --force; so is a backup that records
nothing (made by an older version). The record is dropped from the restored file: it gets the source back as
it was. The printed `undo:` line is the complete command that puts the replaced file back.

examples:
  zepix-store restore data/backups/trading_bot.db-shared-v1-20250101T120000000000Z.db
  zepix-store restore BACKUP --plugin v6-logic-01-1min
  zepix-store restore BACKUP --target data/scratch.db --force     # a copy to look at, beside the real files

exit codes: 0 restored, 2 bad input (missing backup, target outside data_dir, a backup of another file without
--force), 3 disk full or I/O error, 4 the target is open in another process, 5 the backup is corrupt, empty or
from a newer zepix_store.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from ._output import print_json
from .cli import command_main
from .config import load_config
from .ops.restore import restore

__all__ = ["main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backup", metavar="BACKUP", help="the backup file to restore")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--plugin", metavar="ID",
                       help="restore into the file this plugin is routed to now (the shared file for a use_shared "
                            "plugin: use --target for its isolated file then)")
    where.add_argument("--target", metavar="PATH", help="restore into this file (inside data_dir)")
    parser.add_argument("--force", action="store_true",
                        help="restore even a backup of another file (role or path differ) or one that records "
                             "no file; the replaced file is still kept")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    report = restore(config, Path(args.backup), plugin=args.plugin, target=args.target, force=args.force)
    if args.json:
        print_json(report.to_json())
        return 0
    print(f"restored {report.backup} into {report.target}")
    if report.forced and not (report.backup_of and report.target_is and report.backup_of.same_file(report.target_is)):
        what = report.backup_of.describe() if report.backup_of else "no recorded file"
        print(f"forced: the backup is of {what}")
    for side in report.removed:
        print(f"removed stale {side}")
    if report.kept:
        note = " (it failed its integrity check)" if report.kept_corrupt else ""
        print(f"kept the replaced file as {report.kept}{note}\n"
              f"undo: zepix-store restore {shlex.quote(str(report.kept))} --target {shlex.quote(str(report.target))} "
              f"--config {shlex.quote(str(config.config_dir))}")
    return 0



def main(argv: Sequence[str] | None = None) -> int:
    return command_main("restore", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
