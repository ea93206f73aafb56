"""The command line: `zepix-store <command>` and `python -m zepix_store.<command>` share this boundary.

This is the one place errors become exit codes (errors.py has the table): a StoreError prints one line on
stderr and exits with its code; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sqlite3
import sys
import traceback
from collections.abc import Callable, Sequence

from .errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, StoreError, translate_sqlite_error

COMMANDS: dict[str, str] = {
    "split": "copy each plugin's rows from the shared database into its isolated file, verified",
    "merge": "bring a plugin's isolated rows back into the shared database, verified",
    "migrate": "add plugin_id to the shared database in place (Option A), after a backup",
    "backup": "WAL-safe online backup of the shared database and plugin files",
    "restore": "put a backup back in place, keeping the file it replaces",
    "verify": "run the verification checklist: integrity, schema, attribution, copies, configs",
    "stats": "per-plugin performance: wins, losses, PnL, profit factor, drawdown",
    "demo": "build a realistic legacy database in a scratch folder and run migrate, split, verify, stats",
    "bench": "measure performance against raw SQLite in the same run",
}
EXIT_INTERRUPTED = 130
log = logging.getLogger("zepix_store")


def common_parser() -> argparse.ArgumentParser:
    """Options every command takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default="configs", metavar="DIR",
                        help="config folder holding store.yaml and plugins/ (default: %(default)s)")
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return common


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def command_main(
    name: str,
    doc: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse `argv` for command `name`, run it, and turn errors into the documented exit codes."""
    parser = _Parser(prog=f"zepix-store {name}", description=doc, parents=[common_parser()],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s",
                        stream=sys.stderr, force=True)
    try:
        return run(args)
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error of ours; silence the flush at exit too.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    except KeyboardInterrupt:
        print(f"zepix-store {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (StoreError, sqlite3.Error, OSError) as exc:
        if args.debug:
            traceback.print_exc()
        typed = translate_sqlite_error(exc, getattr(exc, "filename", None) or "database")
        code = typed.exit_code if typed is not None else EXIT_CHECK_FAILED
        message = str(typed if typed is not None else exc).replace("\n", " ")
        print(f"zepix-store {name}: error: {message}", file=sys.stderr)
        return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `zepix-store` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = _Parser(prog="zepix-store", description="Per-plugin databases for the Zepix trading bot.",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog="commands:\n" + "\n".join(f"  {k:<8} {v}" for k, v in COMMANDS.items())
                         + "\n\n`zepix-store COMMAND --help` explains each one.")
        parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND")
        parser.parse_args(argv[:1])
        return EXIT_BAD_INPUT
    module = importlib.import_module(f"zepix_store.{argv[0]}")
    return int(module.main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
