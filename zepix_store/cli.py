"""The command line: `zepix-store <command>` and `python -m zepix_store.<command>` share this boundary.

This is the one place errors become exit codes (errors.py has the table): a StoreError prints one line on
stderr and exits with its code; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import _thread
import argparse
import difflib
import importlib
import json
import logging
import os
import signal
import sqlite3
import sys
import textwrap
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from .config import STORE_FILE
from .errors import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_CODES,
    EXIT_INTERRUPTED,
    StoreError,
    translate_sqlite_error,
)
from .readonly import in_sqlite_callback

__all__ = [
    "COMMANDS",
    "SQLITE_FILE_COMMANDS",
    "UMBRELLA_DOC",
    "UMBRELLA_EPILOG",
    "command_main",
    "command_module",
    "common_parser",
    "find_config_dir",
    "not_a_config_dir",
    "help_parts",
    "interrupts_outside_sqlite_callbacks",
    "main",
]

# Commands that work on the SQLite files themselves: on a store.yaml naming PostgreSQL they would read files the
# bots no longer write (stats printing zeros, backup copying stale files), so they refuse it, exit 2, until they
# learn the server.
SQLITE_FILE_COMMANDS = frozenset({"split", "merge", "flip", "migrate", "backup", "restore", "stats"})

COMMANDS: dict[str, str] = {
    "init": "set zepix_store up in the bot's folder: a store.yaml pointing at its database and plugins",
    "split": "copy each plugin's rows from the shared database into its isolated file, verified",
    "merge": "bring a plugin's isolated rows back into the shared database, verified",
    "flip": "move one plugin to its isolated file or back to the shared file: sync, verify, rewrite its config",
    "migrate": "add plugin_id to the shared database in place, after a backup",
    "backup": "WAL-safe online backup of the shared database and plugin files",
    "restore": "put a backup back in place, keeping the file it replaces",
    "verify": "run the verification checklist: integrity, schema, attribution, copies, configs",
    "stats": "per-plugin performance: wins, losses, PnL, profit factor, drawdown",
    "demo": "build a realistic legacy database in a scratch folder and run migrate, split, verify, stats",
    "bench": "measure performance against raw SQLite in the same run",
    "pg-setup": "prepare a PostgreSQL server: schemas, one role per plugin, row-level security",
    "convert": "copy every plugin's rows between a store on SQLite and one on PostgreSQL (either way), verified",
}
_WIDTH = max(map(len, COMMANDS))
UMBRELLA_DOC = ("A database per strategy plugin of the Zepix trading bot, shared or isolated, and a lossless move of "
                "its history.\n\ncommands:\n" + "\n".join(f"  {k:<{_WIDTH}} {v}" for k, v in COMMANDS.items()))
UMBRELLA_EPILOG = """examples:
  zepix-store demo                     # the whole move on generated history, in a scratch folder
  zepix-store split --dry-run          # what would be copied from your shared file, nothing written
  zepix-store stats --days 30
  zepix-store COMMAND --help           # each command explained

""" + textwrap.fill("exit codes: " + ", ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + ".",
                    width=110) + "\n"
log = logging.getLogger("zepix_store")


def command_module(name: str) -> str:
    """The module that holds command `name` (`pg-setup` -> zepix_store.pg_setup)."""
    return f"zepix_store.{name.replace('-', '_')}"


class _Version(argparse.Action):
    """`--version`: the installed version, looked up only when asked.

    Reading the package metadata (importlib.metadata) costs a command's start-up about 50-80 ms, a quarter of it.
    """

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[object] | None, option_string: str | None = None) -> None:
        from . import __version__

        print(f"zepix-store {__version__}")  # on stdout, as argparse's own version action prints it
        parser.exit()


def common_parser() -> argparse.ArgumentParser:
    """Options every command takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="DIR",
                        help="config folder holding store.yaml and plugins/, or its store.yaml (default: the "
                             "configs/ folder of this folder or the nearest parent that has one)")
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr; the shortest report")
    common.add_argument("-v", "--verbose", action="store_true",
                        help="the whole report (verify: every check; split, merge, flip: every table; demo: each "
                             "step's whole report)")
    common.add_argument("--version", action=_Version, help="print the version and exit")
    return common


def help_parts(doc: str | None) -> tuple[str, str]:
    """A command's doc as (what it does, `examples:` and `exit codes:`): argparse prints the options between."""
    description, marker, rest = (doc or "").partition("\nexamples:")
    return description.strip() + "\n", (marker.strip() + rest).rstrip() + "\n" if marker else ""


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
    description, epilog = help_parts(doc)
    parser = _Parser(prog=f"zepix-store {name}", description=description, epilog=epilog,
                     parents=[common_parser()], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if (wrong := not_a_config_dir(args.config)) is not None:
        parser.error(wrong)
    given, args.config = args.config, find_config_dir(args.config)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s",
                        stream=sys.stderr, force=True)
    if given is None and Path(args.config).resolve().parent != Path.cwd().resolve():
        # Found above this folder: it may belong to another project (a bot checked out inside one), and the
        # paths the command prints are relative to it, not to here. Say which, before anything is done.
        print(f"zepix-store {name}: using the configs in {args.config} (found above this folder; --config "
              "chooses another)", file=sys.stderr)
    try:
        if name in SQLITE_FILE_COMMANDS:
            _refuse_another_backend(name, args.config)
        with interrupts_outside_sqlite_callbacks():
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
        if args.json and not getattr(args, "csv", False):  # a script reading stdout gets the failure as JSON too
            print(json.dumps({"command": name, "error": message, "exit_code": code}))
        return code


def _refuse_another_backend(name: str, config_dir: str) -> None:
    """Refuse a SQLite-file command on a store that store.yaml puts on PostgreSQL (ConfigError, exit 2)."""
    from .config import load_config
    from .errors import ConfigError

    try:
        backend = load_config(config_dir).backend
    except StoreError:
        return  # a bad config: the command itself reports it, naming the file and field
    if backend != "sqlite":
        raise ConfigError(f"{Path(config_dir) / STORE_FILE}: backend: {backend}: `zepix-store {name}` works on the "
                          "SQLite files only so far, and the bots write to the server; on PostgreSQL the library "
                          "(Store, compat.TradeDatabase) and `zepix-store pg-setup` work")


def not_a_config_dir(given: str | None) -> str | None:
    """Why `--config given` cannot name a config folder (a file other than store.yaml), or None.

    Read as a folder, `--config configs/store.yml` would fail as `.../store.yml/store.yaml: not found`.
    """
    if given is None:
        return None
    path = Path(given)
    if path.is_dir() or path.name == STORE_FILE:
        return None
    if path.exists() or path.suffix.lower() in (".yaml", ".yml", ".json"):
        return (f"--config {given}: give the config folder or its {STORE_FILE} (the store's settings are read "
                f"from {STORE_FILE} in that folder, whatever else it holds)")
    return None


def find_config_dir(given: str | None, start: Path | None = None) -> str:
    """The config folder a command uses: `--config` (a folder, or its store.yaml), else the nearest `configs/`
    holding a store.yaml in this folder or a parent, as git finds `.git`; else `configs` (named in the error)."""
    if given is not None:
        path = Path(given)
        return str(path.parent) if path.name == STORE_FILE and not path.is_dir() else given
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "configs" / STORE_FILE).is_file():
            return str(folder / "configs")
    return "configs"


@contextmanager
def interrupts_outside_sqlite_callbacks() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual, but never inside a callback SQLite makes into Python.

    sqlite3 turns an exception raised in such a callback (the read-only guard, an authorizer run while each
    statement is prepared) into a refusal and drops it: an interrupted migrate ended with "not authorized to
    use function: count", exit 1, and the interrupt was lost. Landing there, the interrupt is delivered again
    a few milliseconds later, until it lands in ordinary code. Only the main thread's default handler is
    replaced (an application embedding a command keeps its own).
    """
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    active = threading.Event()

    def redeliver() -> None:
        if active.is_set():
            _thread.interrupt_main(signal.SIGINT)

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if in_sqlite_callback(frame):
            timer = threading.Timer(0.005, redeliver)
            timer.daemon = True
            timer.start()
            return
        raise KeyboardInterrupt

    active.set()
    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        active.clear()
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `zepix-store` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        close = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; one of: {', '.join(COMMANDS)}"
        print(f"zepix-store: error: no command {argv[0]!r}{hint}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not argv or argv[0] not in COMMANDS:
        parser = _Parser(prog="zepix-store", description=UMBRELLA_DOC,
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=UMBRELLA_EPILOG)
        parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="one of the commands above")
        parser.add_argument("--version", action=_Version, help="print the version and exit")
        parser.parse_args(argv[:1])
        return EXIT_BAD_INPUT
    module = importlib.import_module(command_module(argv[0]))
    return int(module.main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
