"""Build a realistic legacy trading_bot.db in a scratch folder, then run migrate, split, verify and stats there.

The history is shaped like the real bot's (strategy carrying the logic, dual orders, re-entries and recoveries
on their chains, open snapshots superseded by closed rows, naive local timestamps), after the edge cases
every report must handle. Never touches your own data/: everything lives in --dir (default: a new temporary
folder), which must be empty or absent. The legacy file is seeded, so two runs with the same --seed and
--trades in the same hour are identical.

Each step prints what it did in a few lines (the warnings and problems in full); -v prints each step's whole
report, as the command itself does with -v. At the end it names the folder, its configs, the files made and
the commands to try next on it (each with --config).

examples:
  zepix-store demo
  zepix-store demo --trades 50000 --dir /tmp/zepix-demo
  zepix-store demo -v                  # every step's whole report

exit codes: 0 every step passed, 1 a step's check failed (the demo stops there), 2 bad input (--dir not empty),
3 disk full or I/O error.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _plot as plot
from . import migrate, split, stats, verify
from ._output import Progress, print_json
from ._sample.bot_history import build_bot_history
from ._sample.project import write_project
from ._sync_output import outcome_lines
from .cli import command_main
from .config import StoreConfig, load_config
from .errors import ConfigError, StoreError
from .ops.migrate import migrate_shared
from .ops.stats import collect_stats
from .ops.verify import listed
from .words import count

__all__ = ["main", "next_commands", "write_project"]


@dataclass
class _Step:
    """One step's report, how to print it in full (-v) and in brief, its exit code and the problems for stderr."""

    document: Any  # its report as JSON
    print_human: Callable[[], None]
    print_brief: Callable[[], None]
    exit_code: int = 0
    problems: Sequence[str] = ()


def _migrate(config: StoreConfig, progress: Progress) -> _Step:
    report = migrate_shared(config, progress=progress)

    def brief() -> None:
        print(f"migrated from schema version {report.from_version} to {report.to_version} in {report.seconds:.1f} s\n"
              f"backup: {report.backup}")
        if report.attribution is not None:
            print(report.attribution.summary())

    return _Step(report.to_json(config.default_plugin_id),
                 lambda: migrate.print_report(report, config.default_plugin_id, verbose=True), brief)


def _split(config: StoreConfig, progress: Progress) -> _Step:
    report = split.split(config, progress=progress)

    def brief() -> None:
        print("\n".join(outcome_lines(report)))
        made = [f for f, status in report.files.items() if status == "created"]
        equal = all(round(s, 2) == round(c, 2) for p in report.plugins.values() for s, c in p.money.values())
        print(f"{count(len(made), 'file')} created; every copy compared with its source"
              + ("; money totals equal" if equal else ""))

    return _Step(report.to_json(), lambda: split.print_report(report, verbose=True), brief, 0 if report.ok else 1,
                 report.problems)


def _verify(config: StoreConfig, progress: Progress) -> _Step:
    report = verify.verify(config, progress)
    problems = [f"{count(len(report.failed), 'check')} failed: {listed(report.failed, ', ')}"] if report.failed else []
    return _Step(report.to_json(), lambda: verify.print_report(report, verbose=True),
                 lambda: verify.print_report(report, quiet=True), 1 if report.failed else 0, problems)


def _stats(config: StoreConfig, progress: Progress, picture: Path | None = None) -> _Step:
    report = asyncio.run(collect_stats(config, curves=picture is not None))
    if picture is not None:  # what `zepix-store stats --plot` draws
        plot.plot_equity_curves(report.curves, picture, f"Equity curves: {report.window.describe()}",
                                drawdowns={s.plugin_id: s.max_drawdown for s in report.plugins})
    return _Step(report.to_json(picture), lambda: stats.print_report(report, config),
                 lambda: stats.print_report(report, config))


STEPS: tuple[tuple[str, Callable[[StoreConfig, Progress], _Step]], ...] = (
    ("migrate", _migrate), ("split", _split), ("verify", _verify), ("stats", _stats))


def _scratch_dir(requested: str | None) -> Path:
    if requested is None:
        return Path(tempfile.mkdtemp(prefix="zepix-demo-"))
    path = Path(requested).absolute()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"{path}: --dir must be an empty or new folder (the demo never writes into existing data)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_step(name: str, step: Callable[[StoreConfig, Progress], _Step], config: StoreConfig,
              progress: Progress, args: argparse.Namespace) -> tuple[int, Any]:
    """Run one step through the library; print its report unless --json; (exit code, its JSON report or None)."""
    try:
        done = step(config, progress)
    except StoreError as exc:
        print(f"zepix-store {name}: error: {str(exc).replace(chr(10), ' ')}", file=sys.stderr)
        return exc.exit_code, None
    if not args.json:
        (done.print_human if args.verbose else done.print_brief)()
    for problem in done.problems:
        print(f"zepix-store {name}: error: {problem}", file=sys.stderr)
    return done.exit_code, done.document


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", help="scratch folder (empty or new; default: a new temporary folder)")
    parser.add_argument("--trades", type=int, default=5000, help="legacy trades to generate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the generated history")
    parser.add_argument("--plot", metavar="FILE", type=Path,
                        help="where to draw the equity curves, .png or .svg (default: equity.png in the demo's "
                             "folder; drawn when matplotlib is installed: pip install 'zepix-store[plot]')")


def run(args: argparse.Namespace) -> int:
    if args.trades < 1:
        raise ConfigError("--trades: must be at least 1")
    quiet = args.quiet or args.json

    def say(message: str) -> None:
        if not args.json:  # the human report goes to stdout; with --json only the document does
            print(message, flush=True)

    picture = _picture(args.plot)
    root = _scratch_dir(args.dir)
    if picture is not None and args.plot is None:
        picture = root / picture
    configs = write_project(root)
    shared = root / "data" / "trading_bot.db"
    say(f"== demo project: {root}\n   configs: {configs} (store.yaml and one folder per plugin)\n"
        f"   data:    {root / 'data'}")
    summary = build_bot_history(shared, trades=args.trades, seed=args.seed)
    rows = f"{count(sum(summary.rows.values()), 'row')} in {count(len(summary.rows), 'table')}"
    say(f"\n== 1. legacy database: {shared} ({rows})")
    if quiet:
        logging.getLogger("zepix_store").setLevel(logging.WARNING)
    config, progress = load_config(configs), Progress(enabled=not quiet)
    document: dict[str, Any] = {"dir": str(root), "configs": str(configs), "legacy_db": str(shared),
                                "legacy_rows": summary.rows, "steps": {}}
    worst = 0
    for number, (name, step) in enumerate(STEPS, start=2):
        say(f"\n== {number}. {name}")
        if name == "stats":
            step = functools.partial(_stats, picture=picture)
        code, report = _run_step(name, step, config, progress, args)
        document["steps"][name] = {"exit_code": code, "report": report}
        worst = max(worst, code)
        if code != 0:
            say(f"{name} exited {code}; stopping")
            break
    files = sorted(str(p) for p in (root / "data").rglob("*") if p.is_file())
    document["files"] = files
    document["plot"] = str(picture) if picture is not None and picture.exists() else None
    document["next"] = next_commands(root, configs, picture)
    if args.json:
        print_json(document)
    else:
        print(f"\n== files made in {root / 'data'}\n" + "\n".join(
            f"  {Path(f).relative_to(root / 'data')}" for f in files))
        print(f"\n== equity curves: {document['plot']}" if document["plot"] else
              f"\n== equity curves: not drawn ({plot.INSTALL_HINT})")
        print(f"\n== next: try the commands on this project (its configs are {configs})\n"
              + "\n".join(f"  {c}" for c in document["next"]))
    return worst


def _picture(requested: Path | None) -> Path | None:
    """The equity plot's file (relative: inside the demo's folder), or None when matplotlib is missing."""
    if requested is not None:
        plot.check_plot_name(requested)
        plot.require_matplotlib()  # asked for by name: a missing extra is an error (exit 2)
        return requested.absolute()
    try:
        plot.require_matplotlib()
    except ConfigError:
        return None
    return Path("equity.png")


def next_commands(root: Path, configs: Path, picture: Path | None = None) -> list[str]:
    """What to run next on the demo project, each a complete command (--config included); `picture`: the plot,
    named in the last line when --plot put it outside the demo's folder."""
    where = shlex.quote(str(configs))
    outside = picture is not None and not picture.is_relative_to(root)
    elsewhere = f"only {shlex.quote(str(picture))} outside it" if outside else "nothing anywhere else"
    return [f"zepix-store stats --config {where} --days 30",
            f"zepix-store stats --config {where} --plugin v3-logic-01-5min --json",
            f"zepix-store verify --config {where}",
            f"zepix-store backup --config {where} --all",
            f"zepix-store split --config {where} --dry-run",
            f"rm -r {shlex.quote(str(root))}    # when done: the demo wrote {elsewhere}"]


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("demo", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
