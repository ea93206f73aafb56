"""Measure zepix_store against plain SQLite on this machine: every figure is a ratio to the same work done by
the stdlib sqlite3 module in the same run, timed alternately (baseline, store, baseline, store, ...) and reported
as the median, so the ratios hold on a noisy machine.

  split    zepix-store split (verification included) vs ATTACH + INSERT ... SELECT into fresh files with
           the indexes built after the load, and split's peak memory at N and N/10 trades (flat in N)
  flip     zepix-store flip of a 100,000-trade plugin while 8 others write: the longest write transaction
           it held (<= 200 ms) and the writers' p99 latency during the flip against without (<= 3x)
  writes   save_trade awaited one by one vs insert+commit; save_trades vs executemany; 8 plugins writing at
           once to isolated files vs to the shared file
  reads    get_statistics and the 30-day get_trades from the store's indexes vs the same SQL as a table scan,
           with EXPLAIN QUERY PLAN (must SEARCH an index, never SCAN trades)
  migrate  upgrade vs plain ALTER + UPDATE + CREATE INDEX; backup_file vs the raw backup API
  postgresql  the store on the PostgreSQL server --postgresql DSN names (or $ZEPIX_BENCH_PG_DSN), in schemas of
           its own dropped at the end: save_trade one by one vs stdlib sqlite3 and vs the SQLite store, 8 writers
           at once vs the SQLite store, save_trades vs executemany, get_statistics vs the SQLite store and vs a
           table scan, with EXPLAIN (must be an index-only scan). Without a DSN it is skipped, never failed.

The legacy database is generated (zepix_store._sample.legacy.build_legacy_db); --config names the configs copied
into the scratch project (default: configs). Scratch files go to a temp folder (--dir), removed unless --keep.

examples:
  zepix-store bench --quick              # smoke run with 5,000 trades (~25 s)
  zepix-store bench                      # 1,000,000 trades (~600 MB, ~3 GB scratch), ~15 min on 2 cores
  zepix-store bench --json > bench.json  # one document: figures, plans, machine
  zepix-store bench --only writes --only reads --repeat 7
  zepix-store bench --quick --only postgresql --postgresql 'host=/run/postgresql dbname=bench'

exit codes: 0 the run completed (goals met or not: see the `met` column), 2 bad input, 3 disk full / I/O.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ._bench.postgresql import DSN_ENV
from ._bench.run import FULL, QUICK, SECTIONS, BenchReport, Sizes, run_bench
from ._output import Progress, format_table, print_json
from .cli import command_main

__all__ = ["main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trades", type=_positive, metavar="N",
                        help=f"legacy trades to generate (default {FULL.trades:,}; --quick: {QUICK.trades:,})")
    parser.add_argument("--quick", action="store_true", help="small sizes for a CI smoke run (~25 s)")
    parser.add_argument("--repeat", type=_positive, metavar="K",
                        help=f"timed runs of each side; the median is reported (default {FULL.repeat})")
    parser.add_argument("--only", action="append", choices=SECTIONS, metavar="SECTION",
                        help=f"measure only this section (repeatable): {', '.join(SECTIONS)}")
    parser.add_argument("--dir", type=Path, metavar="DIR", help="where to put the scratch folder (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and print its path")
    parser.add_argument("--postgresql", metavar="DSN", default=os.environ.get(DSN_ENV) or None,
                        help=f"the PostgreSQL server of the postgresql section (default ${DSN_ENV}; none: skipped)")


def _positive(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def sizes_from(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else FULL
    trades = args.trades or base.trades
    small = base.small_trades if trades == base.trades else max(trades // 10, 100)
    return Sizes(trades, small, base.single, base.batch, base.concurrent, args.repeat or base.repeat, base.flip)


def run(args: argparse.Namespace) -> int:
    say = Progress(enabled=not args.quiet)
    sizes = sizes_from(args)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="zepix-bench-", dir=args.dir))
    try:
        report = run_bench(Path(args.config), scratch, sizes, args.only or SECTIONS, say, args.postgresql)
    finally:
        if args.keep:
            print(f"scratch files kept in {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print_json(report.to_json())
    else:
        print_report(report)
    return 0


def print_report(report: BenchReport) -> None:
    rows = [[f.name, _num(f.value), f.unit, _num(f.baseline), _num(f.ratio), f.goal,
             "yes" if f.met else ("not measured" if f.value is None else "NO")] for f in report.figures]
    for col in (1, 3, 4):  # numbers right-aligned
        width = max(len(r[col]) for r in rows) if rows else 0
        for r in rows:
            r[col] = r[col].rjust(width)
    print(format_table(["figure", "value", "unit", "baseline", "ratio", "goal", "met"], rows))
    for fig in report.figures:
        if fig.value is None:
            print(f"\n{fig.name}: not measured: {fig.detail['not_measured']}")
    for section, why in report.skipped.items():
        print(f"\n{section}: {why}")
    for fig in report.figures:
        if "index_only" in fig.detail and fig.name.endswith("_vs_scan"):
            flag = "index-only scan" if fig.detail["index_only"] else "NOT an index-only scan"
            print(f"\nEXPLAIN ANALYZE of get_statistics on PostgreSQL {fig.detail['server']}: {flag}\n  "
                  + "\n  ".join(fig.detail["plan"]))
    for plan in report.plans:
        flag = "index" if plan.uses_index else "NO INDEX (defect)"
        print(f"\nplan of {plan.query} on {plan.database}: {flag}\n  " + "\n  ".join(plan.lines))
    m = report.machine
    print(f"\nmachine: {m['nproc']} CPUs, {m['cpu_model']}, {m['ram_gb']} GB RAM, Python {m['python']}, "
          f"SQLite {m['sqlite']}, load {m['loadavg_start']} -> {m['loadavg_end']}; "
          f"{report.sizes.trades:,} trades, median of {report.sizes.repeat}; {report.seconds:.0f} s")


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("bench", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
