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

On a store.yaml naming PostgreSQL the checks are the server's: it answers (unreachable: exit 7), each schema
of the layout is at the version this zepix_store writes (not created yet: a warning, the store creates it at
first use; newer: a failure), pg-setup has given every plugin its role (else a warning: the server does not
enforce isolation yet), and each plugin's config names the schema it maps to. Nothing is created.

A plugin whose config.json is broken fails its config check (the detail names the file and field) and is left
out of the others; every other plugin is verified, then the exit code is 2, the broken file named on stderr.

Failures, warnings and skipped checks are printed in full; the checks that passed are one line per kind
(integrity, copies, ...), each check with -v, none with -q. The last line sums up: how many checks are ok,
warned, failed (and skipped). A long detail is wrapped, and cut past about six lines (--json has it whole).

examples:
  zepix-store verify
  zepix-store verify -v                # every check, one by one
  zepix-store verify --json

exit codes: 0 every check passed (warnings allowed), 1 a check failed (named on stderr), 2 bad config,
3 disk full or I/O error kept a check from running (and no check found the data wrong), 4 busy likewise,
5 a database is not readable, 7 the server cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence

from ._output import WIDTH, Progress, left_out, print_json
from .cli import command_main
from .config import load_config
from .ops.verify import OK, Check, VerifyReport, listed, verify
from .ops.verify_pg import verify_pg
from .words import count

DETAIL_CHARS = 600  # of one detail (about six lines); --json keeps it whole

__all__ = ["VerifyReport", "add_arguments", "main", "print_report", "run", "verify"]


# --- command line ------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """verify takes only the common options."""


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, strict=False)  # a broken plugin config: a failed check, the rest still run
    check = verify_pg if config.backend == "postgresql" else verify
    report = check(config, Progress(enabled=not args.quiet))
    if args.json:
        print_json({**report.to_json(), "disabled": {p: str(e) for p, e in config.disabled.items()}})
    else:
        print_report(report, verbose=args.verbose, quiet=args.quiet)
    if config.disabled:
        return left_out("verify", config.disabled)
    if report.failed and report.exit_code == 1:
        print(f"zepix-store verify: error: {count(len(report.failed), 'check')} failed: "
              f"{listed(report.failed, ', ')}", file=sys.stderr)
    elif report.failed:  # nothing found wrong, but some checks could not run: say why, not "failed"
        first = next(c for c in report.checks if c.name in report.failed)
        print(f"zepix-store verify: error: could not check {listed(report.failed, ', ')}: {first.detail}",
              file=sys.stderr)
    return report.exit_code


def print_report(report: VerifyReport, verbose: bool = False, quiet: bool = False) -> None:
    """Passes as one line per kind of check (each check with -v, none with -q); every failure, warning and skip
    in full; the summary.

    A check reads `status  name: detail`, the detail wrapped under it, so no line runs past WIDTH however long
    the detail.
    """
    if not verbose and not quiet:
        for kind, checks in _passes_by_kind(report).items():
            print(_block(OK, kind + ": " + (checks[0].detail if len(checks) == 1 else
                                              f"{_subjects(checks)} passed")))
    shown = report.checks if verbose else [c for c in report.checks if c.status != OK]
    for check in shown:
        print(_block(check.status, f"{check.name}: {_cut(check.detail)}"))
    hint = "" if verbose or len(shown) == len(report.checks) else "; -v lists every check"
    print(report.summary() + hint)


def _passes_by_kind(report: VerifyReport) -> dict[str, list[Check]]:
    """The passed checks grouped by kind (the part of the name before `:`), in the order they ran."""
    kinds: dict[str, list[Check]] = {}
    for check in report.checks:
        if check.status == OK:
            kinds.setdefault(check.name.partition(":")[0], []).append(check)
    return kinds


def _subjects(checks: Sequence[Check]) -> str:
    """What the checks of one kind were about: `6 files`, `8 plugins`, or `9 checks` when mixed."""
    names = [c.name.partition(":")[2] for c in checks]
    noun = ("file" if all(n.endswith(".db") for n in names) else
            "plugin" if all(n and not n.endswith(".db") and "_" not in n for n in names) else "check")
    return count(len(checks), noun)


def _block(status: str, text: str) -> str:
    """`warn  name: detail ...`, wrapped at WIDTH with the continuation under the name."""
    return textwrap.fill(text, WIDTH, initial_indent=f"{status:<6}", subsequent_indent=" " * 6,
                         break_long_words=False, break_on_hyphens=False)


def _cut(detail: str, width: int = DETAIL_CHARS) -> str:
    """A detail longer than `width` is cut, saying how much more --json holds (lists are cut before, by item)."""
    if len(detail) <= width:
        return detail
    return f"{detail[:width - 40].rstrip()} ... ({count(len(detail) - width + 40, 'more character')} in --json)"


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("verify", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
