"""Set zepix_store up in the bot's own folder: write configs/store.yaml pointing at what the bot already has.

Run it in the bot's folder (or name it with --root). It finds data/trading_bot.db and the bot's plugin folders,
src/logic_plugins/<id>/config.json (the template's "database": {"path": ..., "backup_enabled": ...} included;
folders starting with _ or . are skipped), and writes configs/store.yaml with plugins_dir pointing at them, or
with --copy copies their config.json files into configs/plugins/<id>/. Every other key of a plugin's config
belongs to the plugin and is ignored. The mapping is proposed from the trades' strategy and logic_type values:
a value that names exactly one plugin (its id, or LOGIC<n> / combinedlogic-<n> for the plugin of logic n) is
mapped; the others are listed with their counts and left unmapped (re-entries inherit their chain's owner).

It prints the plugins, their routes, the trades each one owns in the shared file (what a split would move), and
the next commands. It never writes the shared database (it is only read) and never overwrites configs/store.yaml:
--force replaces it, keeping the old one as store.yaml.bak. --dry-run writes nothing.

examples:
  zepix-store init                     # in the bot's folder
  zepix-store init --dry-run           # what it would write, nothing written
  zepix-store init --root ~/zepix-bot --copy
  zepix-store init --json

exit codes: 0 done, 2 bad input or config (configs/store.yaml exists without --force, no src/logic_plugins/,
a plugin's config.json is broken: named on stderr, the rest is still set up), 3 disk full or I/O error,
5 the database is corrupt or from a newer zepix_store.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ._output import format_table, print_json, value_counts
from .cli import command_main
from .errors import EXIT_BAD_INPUT
from .ops.init import InitReport, init_project
from .words import count

__all__ = ["main", "next_commands"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", metavar="DIR", type=Path,
                        help="the bot's folder (default: the folder you run from)")
    parser.add_argument("--copy", action="store_true",
                        help="copy each plugin's config.json into configs/plugins/<id>/ instead of pointing at "
                             "src/logic_plugins")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing configs/store.yaml (kept as store.yaml.bak)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be written; write nothing")


def run(args: argparse.Namespace) -> int:
    root = args.root if args.root is not None else Path.cwd()
    report = init_project(root, copy=args.copy, force=args.force, dry_run=args.dry_run)
    steps = next_commands(report)
    if args.json:
        print_json({**report.to_json(), "next": steps})
    else:
        print_report(report, steps)
    for problem in report.disabled.values():
        print(f"zepix-store init: error: {problem} (left out; fix it before split)", file=sys.stderr)
    return EXIT_BAD_INPUT if report.disabled else 0


def next_commands(report: InitReport) -> list[str]:
    """What to run next, in order (with --config when the bot's folder is not the one init ran from)."""
    here = Path.cwd().resolve()
    inside = here == report.root or report.root in here.parents
    config = "" if inside else f" --config {report.store_yaml.parent}"
    switch = "in the bot, two lines: from zepix_store.compat import TradeDatabase  and  TradeDatabase(plugin_id)"
    if not report.shared_exists:  # no history to move: each plugin's file appears at its first write
        return [switch, "start the bot"]
    steps = ["stop the bot"]
    steps += [f"zepix-store {c}{config}" for c in ("backup", "split --dry-run", "split", "verify")]
    return [*steps, switch, "start the bot"]


def print_report(report: InitReport, steps: list[str]) -> None:
    """The human report: what was found, the mapping proposed, what was written, the next commands."""
    print(f"init: {report.root}" + (" (dry run: nothing written)" if report.dry_run else ""))
    shared = _shared_line(report)
    print(f"shared file: {report.shared_db.relative_to(report.root)}{shared}")
    source = "configs/plugins (copies)" if report.copy else report.plugins_dir
    print(f"plugins ({source}): {count(len(report.plugins), 'plugin')}"
          + (f", {len(report.disabled)} left out (broken config.json, below)" if report.disabled else ""))
    if report.plugins:
        rows = [[p.plugin_id, p.route, p.file, p.trades,
                 count(p.rows, "row") if p.route == "isolated" else "stays in the shared file"] for p in report.plugins]
        print(format_table(["plugin", "route", "file", "trades", "a split moves"], rows))
    for problem in report.disabled.values():
        print(f"left out: {problem}")
    _print_mapping(report)
    for path in report.written:
        print(f"wrote {path}")
    for path in report.kept:
        print(f"kept the file it replaced as {path}")
    if report.dry_run:
        print(f"would write {report.store_yaml.relative_to(report.root)}:")
        print("  " + report.store_text.rstrip().replace("\n", "\n  "))
    print("next:")
    for number, step in enumerate(steps, 1):
        print(f"  {number}. {step}")


def _shared_line(report: InitReport) -> str:
    if not report.shared_exists:
        return " does not exist yet (nothing to split)"
    state = "migrated" if report.shared_migrated else "not migrated (init and split only read it)"
    return f", {count(report.shared_trades, 'trade')}, {state}"


def _print_mapping(report: InitReport) -> None:
    mapped = [v for v in report.values if v.plugin_id is not None]
    if mapped:
        print("mapping proposed (strategy / logic_type values that name one plugin):")
        for plugin in sorted({str(v.plugin_id) for v in mapped}):
            values: dict[str, int] = {}
            for v in mapped:
                if v.plugin_id == plugin:
                    values[v.value] = values.get(v.value, 0) + v.trades
            print(f"  {plugin} <- {value_counts(list(values.items()))}")
    elif report.shared_exists:
        print("mapping proposed: none (no strategy or logic_type value names a plugin)")
    unmapped = report.unmapped
    if unmapped:
        columns = dict.fromkeys(v.column for v in unmapped)
        for column in columns:
            pairs = [(v.value, v.trades) for v in unmapped if v.column == column]
            print(f"left unmapped ({column} values that name no plugin or several): {value_counts(pairs)}")
    a = report.attribution
    if a is not None and a.trades:
        kept = a.unattributed
        print(f"attribution with this mapping: {a.trades - kept:,} of {count(a.trades, 'trade')} get a plugin "
              f"(re-entries through their chain); {kept:,} stay with {a.default_plugin_id} (not attributed)")


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("init", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
