"""Check everything the move to per-plugin stores promises, as named checks, each listed with its result.

Every file is opened read-only and nothing is upgraded or written: the shared database and each isolated file
that exists. Checks, per file: integrity (PRAGMA integrity_check), foreign keys (foreign_key_check), schema
version, columns (plugin_id NOT NULL DEFAULT 'legacy' on all ten tables), the store's indexes, attribution (no
NULL plugin_id; in an isolated file only plugins routed to it). Then: attribution buckets of the shared file add
up, each isolated plugin's copies equal their source rows or are the bot's newer writes (through the plugin's
identity map, every value compared), the mapping recorded by split is the current one, and configs agree with
the files on disk.

A legacy shared file (version 0, never migrated) is reported as a warning: split leaves it as it is.
Dangling references in the shared file are warnings too (legacy data is kept as the bot left it), and so are
an attribution that leaves more than half of the trades with the default id (the detail says which rules
decided the trades and which values no mapping covers) and trade_ids with several closed rows.

A plugin whose config.json is broken fails its config check (the detail names the file and field) and is left
out of the others; every other plugin is verified, then the exit code is 2, the broken file named on stderr.

The last line sums up: how many checks are ok, warned, failed (and skipped); a long detail is cut, with a count.

examples:
  zepix-store verify
  zepix-store verify --json

exit codes: 0 every check passed (warnings allowed), 1 a check failed (named on stderr), 2 bad config,
3 disk full or I/O error kept a check from running (and no check found the data wrong), 4 busy likewise,
5 a database is not readable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._output import Progress, left_out, print_json, print_table
from .cli import command_main
from .config import load_config
from .ops.verify import DETAIL_WIDTH, VerifyReport, listed, verify

__all__ = ["VerifyReport", "add_arguments", "main", "print_report", "run", "verify"]


# --- command line ------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """verify takes only the common options."""


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, strict=False)  # a broken plugin config: a failed check, the rest still run
    report = verify(config, Progress(enabled=not args.quiet))
    if args.json:
        print_json({**report.to_json(), "disabled": {p: str(e) for p, e in config.disabled.items()}})
    else:
        print_report(report)
    if config.disabled:
        return left_out("verify", config.disabled)
    if report.failed and report.exit_code == 1:
        print(f"zepix-store verify: error: {len(report.failed)} checks failed: {listed(report.failed, ', ')}",
              file=sys.stderr)
    elif report.failed:  # nothing found wrong, but some checks could not run: say why, not "failed"
        first = next(c for c in report.checks if c.name in report.failed)
        print(f"zepix-store verify: error: could not check {listed(report.failed, ', ')}: {first.detail}",
              file=sys.stderr)
    return report.exit_code


def print_report(report: VerifyReport) -> None:
    """The checks as a table, then the summary line."""
    print_table(["check", "status", "detail"], [(c.name, c.status, _cut(c.detail)) for c in report.checks])
    print(report.summary())


def _cut(detail: str, width: int = DETAIL_WIDTH) -> str:
    """One table cell: a detail longer than `width` is cut, saying how much more --json holds."""
    if len(detail) <= width:
        return detail
    return f"{detail[:width - 40].rstrip()} ... ({len(detail) - width + 40:,} more characters in --json)"


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("verify", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
