"""Per-plugin performance of closed trades, each plugin read where its config routes it.

Columns: trades, wins, losses, win rate, total/avg/best/worst PnL, profit factor, max drawdown. Read only: stats
never creates, upgrades or writes a database. A shared file not migrated yet is read read-only, its trades
attributed by store.yaml's rules as migrate would (and the attribution is reported); a plugin whose file does
not exist yet shows zero trades. Trades no plugin owns are a row of their own, "(not attributed)".

figures:
  win%    wins / closed trades that have a priced pnl (a pnl of 0 is neither a win nor a loss)
  PF      profit factor = gross profit / gross loss; "inf" with profits and no loss, "-" with neither
  max DD  largest fall of cumulative PnL below its peak (starting from 0), by close time then id
  a closed trade whose pnl is NULL, not a number or not finite is unpriced: it counts as a trade, in no money
  figure and not in win% (unpriced_trades)
  --json and --csv: numbers only, money rounded to cents; a figure with no value (PF with no loss, win% with no
  priced trade) is null in JSON and empty in CSV

A plugin routed to its own file that does not exist yet shows zeros "(no file yet)": a note then counts its
trades still waiting in the shared file and names the command that moves them (split). A plugin whose
config.json is broken is left out, named on stderr (and under "disabled" in --json); exit code 2 then, unless
--plugin named only healthy plugins.

window: --days N = the last N days up to now; --since/--until take YYYY-MM-DD (whole day, both ends included)
or YYYY-MM-DD HH:MM:SS, in store.yaml's timezone (a time may end in Z or +hh:mm instead).

examples:
  zepix-store stats
  zepix-store stats --plugin v6-logic-01-1min --plugin v6-logic-02-5min --days 30
  zepix-store stats --since 2024-01-01 --until 2024-03-31 --csv > q1.csv
  zepix-store stats --plot equity.svg --currency USD     # needs: pip install 'zepix-store[plot]'

exit codes: 0 done, 2 bad input or config (also a --plot name that is not .png/.svg, or matplotlib missing),
3 disk full or I/O error, 4 busy, 5 a database is corrupt or from a newer zepix_store.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import re
import sys
from collections.abc import Sequence
from datetime import tzinfo
from pathlib import Path

from . import _plot as plot
from ._output import format_table, left_out, print_json
from .cli import command_main
from .config import StoreConfig, load_config
from .errors import ConfigError
from .ops.stats import PluginStats, StatsReport, Window, collect_stats
from .ops.waiting import Waiting, waiting_trades
from .words import count

__all__ = ["main", "print_report"]

log = logging.getLogger("zepix_store")
HEADERS = ("plugin", "trades", "wins", "losses", "win%", "total", "avg", "best", "worst", "PF", "max DD", "file")
FIELDS = tuple(PluginStats.__dataclass_fields__)
SOURCE_NOTES = {"legacy": " (legacy, read-only)", "missing": " (no file yet)"}
CURRENCY = re.compile(r"[A-Z]{3}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", dest="plugins", metavar="ID",
                        help="only this plugin (repeatable; default: every configured plugin)")
    parser.add_argument("--days", type=int, metavar="N", help="trades closed in the last N days")
    parser.add_argument("--since", metavar="DATE", help="trades closed on or after DATE")
    parser.add_argument("--until", metavar="DATE", help="trades closed on or before DATE")
    parser.add_argument("--csv", action="store_true", help="print CSV (one row per plugin) on stdout")
    parser.add_argument("--plot", metavar="FILE", type=Path,
                        help="draw each plugin's equity curve into FILE.png or FILE.svg (needs matplotlib)")
    parser.add_argument("--currency", metavar="CODE",
                        help="the account currency (e.g. USD), shown on the plot's axis and in --json")


def _window(args: argparse.Namespace, zone: tzinfo) -> Window:
    if args.days is not None and (args.since or args.until):
        raise ConfigError("--days cannot be combined with --since/--until: choose one window")
    if args.days is not None:
        return Window.last_days(args.days)
    return Window.between(args.since, args.until, zone)


def run(args: argparse.Namespace) -> int:
    if args.json and args.csv:
        raise ConfigError("--json and --csv: choose one output format")
    if args.currency is not None:
        args.currency = args.currency.strip().upper()  # usd and USD are one currency
    if args.currency is not None and not CURRENCY.fullmatch(args.currency):
        raise ConfigError(f"--currency: {args.currency!r} is not a currency code (three letters, e.g. USD)")
    if args.plot is not None:
        plot.check_plot_name(args.plot)
        plot.require_matplotlib()  # before any work, so a missing extra fails fast
    config = load_config(args.config, strict=False)  # a broken plugin config leaves out that plugin alone
    window = _window(args, config.zone)
    report = asyncio.run(collect_stats(config, args.plugins, window, curves=args.plot is not None))
    waiting = waiting_trades(config, [s.plugin_id for s in report.plugins if s.source == "missing"])
    if args.plot is not None:
        plot.plot_equity_curves(report.curves, args.plot, f"Equity curves: {window.describe()}",
                                currency=args.currency,
                                drawdowns={s.plugin_id: s.max_drawdown for s in report.plugins})
        if args.csv:  # stdout holds the CSV alone
            log.info("equity curves written to %s", args.plot)
    if args.json:
        print_json({**report.to_json(args.plot, args.currency), "waiting": waiting and waiting.to_json(),
                    "disabled": {p: str(e) for p, e in config.disabled.items()}})
    elif args.csv:
        _print_csv(report.plugins)
    else:
        print_report(report, config, waiting)
        if args.plot is not None:
            print(f"equity curves written to {args.plot}")
    return left_out("stats", config.disabled, args.plugins)


def _print_csv(plugins: Sequence[PluginStats]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(FIELDS)
    for s in plugins:
        # a flag (attributed) is 1 or 0: every CSV cell is a number or empty
        writer.writerow(["" if v is None else int(v) if isinstance(v, bool) else v for v in s.numbers().values()])


def _display_path(path: str, config: StoreConfig) -> str:
    try:
        return str(Path(path).relative_to(config.root))
    except ValueError:
        return path


def _label(stats: PluginStats) -> str:
    """The plugin column: the default id's row says that no plugin owns its trades."""
    return stats.plugin_id if stats.attributed else f"{stats.plugin_id} (not attributed)"


def print_report(report: StatsReport, config: StoreConfig, waiting: Waiting | None = None) -> None:
    """The human report: the table of figures, then notes on trades waiting for a split, unpriced trades and
    unmigrated files."""
    rows = [[_label(s), s.total_trades, s.winning_trades, s.losing_trades, s.win_rate, s.total_pnl, s.avg_pnl,
             s.best_trade, s.worst_trade, s.profit_factor, s.max_drawdown,
             _display_path(s.database, config) + SOURCE_NOTES.get(s.source, "")] for s in report.plugins]
    print(report.window.describe() + ":")
    print(format_table(HEADERS, rows))
    if waiting is not None:
        print(f"note: {waiting.note(_display_path(str(waiting.shared_db), config))}")
    for s in report.plugins:
        if s.unpriced_trades:
            print(f"note: {s.plugin_id}: {count(s.unpriced_trades, 'closed trade')} with a pnl that is NULL, not a "
                  "number or not finite (counted as trades, left out of PnL, win%, PF and max DD)")
    for note in report.notes():
        print(f"note: {note}")
    legacy = sorted({_display_path(s.database, config) for s in report.plugins if s.source == "legacy"})
    for path in legacy:
        print(f"note: {path} is not migrated yet: read read-only, owners from store.yaml's mapping "
              "(run migrate to upgrade it)")
    for path, attribution in report.attribution.items():
        print(f"attribution of {_display_path(path, config)}: " + "\n  ".join(attribution.lines()))


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("stats", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
