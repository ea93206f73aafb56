"""Back up the shared database, a plugin's file or all of them: SQLite's online backup API, never a file copy.

A backup is written to `<name>.tmp` (owner-only, locked with flock while it is written), integrity-checked,
fsynced and only then linked under its final name (link, not rename, so an existing backup is never
overwritten): a partial backup never has a final name, and the `.tmp` of a killed run is removed by the next.
The backup API reads one consistent snapshot, the committed content of the `-wal` included.

Each backup knows what it is a backup of: its name is `<path>-<role>-v<schema version>-<UTC time>[-label].db`
(path inside the data folder, `/` written as `~`; role shared, isolated or other), and the same facts plus the
plugins routed to the file are recorded inside it (restore refuses to put it onto any other file).

Prints the path of each backup made, one per line, then `deleted <path>` for each backup --keep removed.
--keep counts only plain backups of the same file; labelled safety copies (pre-migrate, pre-merge, pre-prune,
pre-restore, pre-upgrade) are never rotated.

A plugin whose config.json is broken is left out (named on stderr, and under "disabled" in --json): every
other file is still backed up, then the exit code is 2 (0 when --plugin named only healthy plugins).

examples:
  zepix-store backup                       # the shared database
  zepix-store backup --plugin v6-logic-01-1min
  zepix-store backup --all --keep 7        # every database file; keep the 7 newest plain backups of each
  zepix-store backup --json

exit codes: 0 done, 2 bad input or config, 3 disk full or I/O error, 4 busy, 5 the source is corrupt.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._fs import fsync_path
from ._output import Progress, left_out, print_json
from .backend.sqlite_backup import backup_connection, backup_file
from .cli import command_main
from .config import load_config
from .ops.backup import back_up_files

# backup_connection, backup_file and fsync_path are imported from here by split, merge and copy_ledger.
__all__ = ["backup_connection", "backup_file", "fsync_path", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--plugin", action="append", default=[], metavar="ID",
                       help="back up this plugin's database file (repeatable)")
    which.add_argument("--all", action="store_true", help="back up the shared file and every plugin file")
    parser.add_argument("--keep", type=int, metavar="N",
                        help="then delete all but the N newest plain backups of each file, naming each one "
                             "deleted (labelled copies such as pre-migrate are never deleted)")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, strict=False)  # a broken plugin config stops only that plugin's backup
    report = back_up_files(config, args.plugin, args.all, args.keep, Progress(enabled=not args.quiet))
    if args.json:
        print_json({**report.to_json(), "disabled": {p: str(e) for p, e in config.disabled.items()}})
    else:
        for r in report.results:
            print(r.backup)
            for path in r.deleted:
                print(f"deleted {path}")
    return left_out("backup", config.disabled, args.plugin)


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("backup", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
