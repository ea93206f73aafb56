"""Copy each isolated plugin's rows from the shared database into its own file, verified.

The shared database is only read (never upgraded, never written) unless --prune is given. Every plugin with
`use_shared: false` is split, or only those named with --plugin. Rows are given their owner once and copied
by SQLite itself, values and storage classes exactly; each copy is recorded in the file's copy ledger, so a
rerun copies only what is new. A row the bot changed in the shared file since the last split is updated in the
copy; a copy the bot changed is kept as its newer write; a row changed in both places refuses that plugin
(nothing of it written) until --prefer says which side wins. Every chunk written is compared with its source
(values and money totals) before it commits; a new file is built as `<name>.tmp` and appears under its name only
once verified. On a file in use, no write transaction holds its lock much longer than 100 ms. It prints a row
per plugin that had something to do (-v: per table), the plugins up to date on one line.

examples:
  zepix-store split --dry-run          # the preflight: what would be copied, problems, disk
  zepix-store split                    # every isolated plugin
  zepix-store split --plugin v6-logic-01-1min --json
  zepix-store split -v                 # every table of every plugin
  zepix-store split --prune            # then delete verified copies from the shared file

exit codes: 0 done, 1 a verification failed or a plugin was refused (key collision), 2 bad config or input
(also: the mapping changed since the last split, see --remap), 3 disk full / I/O, 4 busy, 5 corrupt database.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ._output import Progress, emit_report, human, print_table, wrapped
from ._sync_output import add_lock_wait, print_sync
from .cli import command_main
from .config import load_config
from .ops.split import SplitReport, split
from .ops.sync.job import PREFER
from .words import count, size, verb

__all__ = ["SplitReport", "main", "split"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="ID",
                        help="split only this plugin (repeatable; default: every plugin with use_shared false)")
    parser.add_argument("--dry-run", action="store_true",
                        help="preflight only: report what would be copied and every problem; write nothing")
    parser.add_argument("--prune", action="store_true",
                        help="after verifying, back up the shared file and delete the rows every owner has a "
                             "verified copy of")
    parser.add_argument("--remap", action="store_true",
                        help="accept a mapping that changed since the last split: re-attribute the copies")
    parser.add_argument("--prefer", choices=PREFER,
                        help="resolve conflicts (a row changed in both places): the shared row (source) or the "
                             "isolated copy (destination) wins")
    add_lock_wait(parser)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    progress = Progress(enabled=not args.quiet)
    report = split(config, args.plugin, dry_run=args.dry_run, prune=args.prune, remap=args.remap,
                   prefer=args.prefer, progress=progress, say=progress, lock_wait_s=args.lock_wait)
    return emit_report("split", report, args.json, lambda r: print_report(r, args.verbose))


def print_report(report: SplitReport, verbose: bool = False) -> None:
    """The human form of the report: per-plugin table and words, attribution buckets, anomalies."""
    mode = "dry run (nothing written)" if report.dry_run else "split"
    print(f"{mode}: {report.shared_db}")
    print_sync(report, "source", report.dry_run, verbose)
    current = [path for path, status in report.files.items() if status == "up to date"]
    for path, status in report.files.items():
        if status != "up to date" or verbose:
            print(f"file {path}: {status}")
    if report.files and len(current) == len(report.files):
        print("nothing to do: every file is up to date")
    elif current and not verbose:
        print(f"{count(len(current), 'file')} up to date")
    _print_attribution(report, verbose)
    _print_preflight(report.preflight)
    for key, value in report.prune.items():
        print(f"prune {key.replace('_', ' ')}: {human(value)}")


def _print_attribution(report: SplitReport, verbose: bool = False) -> None:
    print()
    # Rows per plugin are in the table above (and in --json): here only where each source row went; an empty
    # table only with -v.
    print_table(["table", "source rows", "one owner", "orphans", "shared rows", "shared copies", "total"],
                [(t, b.source_rows, sum(b.by_plugin.values()), b.orphans, b.shared_rows,
                  sum(b.shared_copies.values()), b.bucket_total) for t, b in report.buckets.items()
                 if b.source_rows or b.bucket_total or verbose])
    if report.attribution is not None:
        print("\n".join(map(wrapped, report.attribution.lines())))
    if report.absent_tables:
        print("absent tables: " + ", ".join(report.absent_tables))
    for table, cols in report.absent_columns.items():
        print(f"absent columns in {table} (copies get the default): {', '.join(cols)}")
    for table, cols in report.extra_columns.items():
        print(f"extra columns in {table} (not copied): {', '.join(cols)}")


def _print_preflight(preflight: dict[str, Any]) -> None:
    """The dry run's checks in words: foreign keys, free disk per folder, write permission per path (each once)."""
    if "foreign_key_problems" in preflight:
        problems = preflight["foreign_key_problems"]
        dangling = [f"{t}: {count(n, 'row')} {verb(n, 'references', 'reference')} a missing parent"
                    for t, n in problems.items()]
        print("preflight foreign keys: " + (", ".join(dangling) or "no dangling references"))
    for disk in preflight.get("disk", []):
        print(f"preflight disk: {disk['folder']}: {size(disk['free_bytes'])} free, the copies need about "
              f"{size(disk['source_bytes'])} ({'ok' if disk['ok'] else 'NOT ENOUGH'})")
    seen: dict[str, bool] = {}
    for place in preflight.get("writable", []):
        seen[place["path"]] = seen.get(place["path"], True) and place["ok"]
    for path, ok in seen.items():
        print(f"preflight writable: {path}: {'ok' if ok else 'NOT WRITABLE'}")


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("split", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
