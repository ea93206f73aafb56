"""Per-plugin performance of closed trades, each plugin read where its config routes it.

Columns: trades, wins, losses, win rate, total/avg/best/worst PnL, profit factor, max drawdown. Read only: stats
never creates, upgrades or writes a database. A shared file not migrated yet is read read-only, its trades
attributed by store.yaml's rules as migrate would (and the attribution is reported); a plugin whose file does
not exist yet shows zero trades. Trades no plugin owns are a row of their own, "(not attributed)".

figures:
  win%    wins / closed trades that have a numeric pnl
  PF      profit factor = gross profit / gross loss; "inf" with profits and no loss, "-" with neither
  max DD  largest fall of cumulative PnL below its peak (starting from 0), by close time then id
  a pnl that is not a number (NULL or text) counts as a trade, not in money figures (unpriced_trades)

window: --days N = the last N days up to now; --since/--until take YYYY-MM-DD (whole day, both ends included)
or YYYY-MM-DD HH:MM:SS, in store.yaml's timezone (a time may end in Z or +hh:mm instead).

examples:
  python -m zepix_store.stats
  python -m zepix_store.stats --plugin v6-logic-01-1min --plugin v6-logic-02-5min --days 30
  python -m zepix_store.stats --since 2024-01-01 --until 2024-03-31 --csv > q1.csv
  python -m zepix_store.stats --plot equity.png        # needs: pip install 'zepix-store[plot]'
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import math
import sys
from collections.abc import Sequence
from datetime import tzinfo
from pathlib import Path
from typing import Any

from . import plot
from ._output import format_table, print_json
from .cli import command_main
from .config import StoreConfig, load_config
from .errors import ConfigError
from .stats import PluginStats, StatsReport, Window, collect_stats

log = logging.getLogger("zepix_store")
HEADERS = ("plugin", "trades", "wins", "losses", "win%", "total", "avg", "best", "worst", "PF", "max DD", "file")
FIELDS = tuple(PluginStats.__dataclass_fields__)
SOURCE_NOTES = {"legacy": " (legacy, read-only)", "missing": " (no file yet)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", dest="plugins", metavar="ID",
                        help="only this plugin (repeatable; default: every configured plugin)")
    parser.add_argument("--days", type=int, metavar="N", help="trades closed in the last N days")
    parser.add_argument("--since", metavar="DATE", help="trades closed on or after DATE")
    parser.add_argument("--until", metavar="DATE", help="trades closed on or before DATE")
    parser.add_argument("--csv", action="store_true", help="print CSV (one row per plugin) on stdout")
    parser.add_argument("--plot", metavar="FILE.png", type=Path,
                        help="draw each plugin's equity curve into a PNG (needs matplotlib)")


def _window(args: argparse.Namespace, zone: tzinfo) -> Window:
    if args.days is not None and (args.since or args.until):
        raise ConfigError("--days cannot be combined with --since/--until: choose one window")
    if args.days is not None:
        return Window.last_days(args.days)
    return Window.between(args.since, args.until, zone)


def run(args: argparse.Namespace) -> int:
    if args.json and args.csv:
        raise ConfigError("--json and --csv: choose one output format")
    if args.plot is not None:
        plot.require_matplotlib()  # before any work, so a missing extra fails fast
    config = load_config(args.config)
    window = _window(args, config.zone)
    report = asyncio.run(collect_stats(config, args.plugins, window, curves=args.plot is not None))
    if args.plot is not None:
        plot.plot_equity_curves(report.curves, args.plot, f"Equity curves: {_describe(window)}")
        log.info("equity curves written to %s", args.plot)
    if args.json:
        print_json(_json_document(report, args.plot))
    elif args.csv:
        _print_csv(report.plugins)
    else:
        _print_table(report, config)
    return 0


def _describe(window: Window) -> str:
    if window.days is not None:
        return f"trades closed in the last {window.days} days (since {window.since} UTC)"
    if window.since is None and window.before is None:
        return "all closed trades"
    since = f" from {window.since}" if window.since else ""
    before = f" before {window.before}" if window.before else ""
    return f"trades closed{since}{before} (UTC)"


def _finite(value: Any) -> Any:
    """JSON and CSV have no infinity: a non-finite figure is written as the text 'inf', '-inf' or 'nan'."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _json_document(report: StatsReport, plot_path: Path | None) -> dict[str, Any]:
    w = report.window
    return {
        "window": {"since": w.since, "before": w.before, "days": w.days},
        "plugins": [{k: _finite(v) for k, v in s.as_dict().items()} for s in report.plugins],
        "plot": None if plot_path is None else str(plot_path),
        "attribution": {path: a.to_json() for path, a in report.attribution.items()},
    }


def _print_csv(plugins: Sequence[PluginStats]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(FIELDS)
    for s in plugins:
        writer.writerow(["" if v is None else _finite(v) for v in s.as_dict().values()])


def _display_path(path: str, config: StoreConfig) -> str:
    try:
        return str(Path(path).relative_to(config.root))
    except ValueError:
        return path


def _label(stats: PluginStats) -> str:
    """The plugin column: the default id's row says that no plugin owns its trades."""
    return stats.plugin_id if stats.attributed else f"{stats.plugin_id} (not attributed)"


def _print_table(report: StatsReport, config: StoreConfig) -> None:
    rows = [[_label(s), s.total_trades, s.winning_trades, s.losing_trades, s.win_rate, s.total_pnl, s.avg_pnl,
             s.best_trade, s.worst_trade, s.profit_factor, s.max_drawdown,
             _display_path(s.database, config) + SOURCE_NOTES.get(s.source, "")] for s in report.plugins]
    print(_describe(report.window) + ":")
    print(format_table(HEADERS, rows))
    for s in report.plugins:
        if s.unpriced_trades:
            print(f"note: {s.plugin_id}: {s.unpriced_trades} closed trade(s) with a pnl that is not a number "
                  "(counted as trades, left out of PnL, win%, PF and max DD)")
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
