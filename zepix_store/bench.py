"""Measure zepix_store against plain SQLite on this machine: every figure is a ratio to the same work done by
the stdlib sqlite3 module in the same run, timed alternately (baseline, store, baseline, store, ...) and reported
as the median, so the ratios hold on a noisy machine.

  split    zepix-store split (verification included) vs ATTACH + INSERT ... SELECT into fresh files,
           and split's peak memory at N and N/10 trades (flat in N)
  writes   save_trade awaited one by one vs insert+commit; save_trades vs executemany; 8 plugins writing at
           once to isolated files vs to the shared file
  reads    get_statistics and the 30-day get_trades from the store's indexes vs the same SQL as a table scan,
           with EXPLAIN QUERY PLAN (must SEARCH an index, never SCAN trades)
  migrate  upgrade vs plain ALTER + UPDATE + CREATE INDEX; backup_file vs the raw backup API

The legacy database is generated (legacy_data.build_legacy_db); --config names the configs copied into the
scratch project (default: configs). Scratch files go to a temp folder (--dir), removed unless --keep.

examples:
  zepix-store bench --quick              # smoke run with 5,000 trades (~25 s)
  zepix-store bench                      # 1,000,000 trades (~600 MB, ~3 GB scratch), ~15 min on 2 cores
  zepix-store bench --json > bench.json  # one document: figures, plans, machine
  zepix-store bench --only writes --only reads --repeat 7

exit codes: 0 the run completed (goals met or not: see the `met` column), 2 bad input, 3 disk full / I/O.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import bench_split as bs
from ._output import Progress, format_table, print_json
from .bench_core import Figure, Say, machine_info, not_measured
from .bench_migrate import make_migrated, measure_migrate
from .bench_reads import Plan, measure_reads, plans_for
from .bench_writes import measure_writes
from .cli import command_main
from .config import load_config
from .errors import ConfigError
from .legacy_data import build_legacy_db

SECTIONS = ("writes", "migrate", "reads", "split")


@dataclass(frozen=True)
class Sizes:
    trades: int        # legacy trades for split, migrate, backup and reads
    small_trades: int  # the second size of split's memory figure
    single: int        # save_trade calls per run
    batch: int         # trades per save_trades batch
    concurrent: int    # save_trade calls per plugin, 8 plugins at once
    repeat: int


FULL = Sizes(1_000_000, 100_000, 5_000, 100_000, 1_000, 3)
QUICK = Sizes(5_000, 500, 300, 5_000, 50, 3)


@dataclass
class BenchReport:
    machine: dict[str, Any]
    sizes: Sizes
    figures: list[Figure] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        met = [f for f in self.figures if f.met]
        return {"machine": self.machine, "sizes": self.sizes.__dict__, "seconds": round(self.seconds, 1),
                "goals_met": len(met), "goals": len(self.figures),
                "figures": [f.as_dict() for f in self.figures], "plans": [p.as_dict() for p in self.plans]}


def run_bench(config_dir: Path, scratch: Path, sizes: Sizes, sections: Sequence[str], say: Say) -> BenchReport:
    """Build the legacy data under `scratch`, measure the chosen sections, return every figure."""
    started = time.perf_counter()
    report = BenchReport(machine_info(), sizes)
    # writes use fresh files of their own; only the other sections need the (large) legacy database
    project = _project(config_dir, scratch / "split", sizes.trades if set(sections) - {"writes"} else 0, say)
    config = load_config(project / "configs")
    if "writes" in sections:
        report.figures += measure_writes(scratch / "writes", sizes.single, sizes.batch, sizes.concurrent,
                                         sizes.repeat, say)
    migrated = scratch / "reads" / "data" / "trading_bot.db"
    if "migrate" in sections:  # its last upgraded copy becomes the store the reads run on
        report.figures += measure_migrate(config.shared_db, scratch / "migrate", config.mapping, sizes.repeat, say,
                                          keep_migrated=migrated)
    if "reads" in sections:
        if not migrated.exists():
            say("reads: upgrading a copy of the legacy database")
            make_migrated(config.shared_db, migrated, config.mapping)
        figures, plans = measure_reads(migrated, config.default_plugin_id, sizes.repeat, say)
        report.figures += figures
        report.plans += plans
    if "split" in sections:
        _measure_split(report, config_dir, project, scratch, sizes, say)
    report.machine["loadavg_end"] = _loadavg()
    report.seconds = time.perf_counter() - started
    return report


def _project(config_dir: Path, root: Path, trades: int, say: Say) -> Path:
    """A scratch project: a copy of the config folder and a generated legacy shared database."""
    if not (config_dir / "store.yaml").is_file():
        raise ConfigError(f"{config_dir}: no store.yaml (--config names the folder holding store.yaml)")
    shutil.copytree(config_dir, root / "configs")  # text configs only; no database is copied here
    shared = load_config(root / "configs").shared_db
    shared.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if trades:
        say(f"building a legacy database with {trades:,} trades in {shared}")
        build_legacy_db(shared, trades=trades)
    return root


def _measure_split(report: BenchReport, config_dir: Path, project: Path, scratch: Path, sizes: Sizes,
                   say: Say) -> None:
    bench = bs.SplitBench(project)
    reason = bs.split_available(scratch)
    runs = reason if reason else bs.run_pair(bench, sizes.repeat, say)
    if isinstance(runs, str):
        report.figures += [not_measured("split.time", "s", bs.SPLIT_GOAL, runs),
                           not_measured("split.copy_time", "s", bs.COPY_GOAL, runs),
                           not_measured("split.peak_memory", "MB", bs.MEMORY_GOAL, runs)]
        return
    copied, source = bench.copied_rows(), bench.source_rows()
    _split_plans(report, bench)
    say(f"split: peak memory at {sizes.small_trades:,} trades")
    small = bs.SplitBench(_project(config_dir, scratch / "split-small", sizes.small_trades, say)).store("small")
    small_rss = small.max_rss_mb if small.returncode == 0 else None
    report.figures += bs.split_figures(runs, copied, source, small_rss, sizes.small_trades, sizes.trades)


def _split_plans(report: BenchReport, bench: bs.SplitBench) -> None:
    """The store's read queries on the split's isolated file: split must leave the indexes and statistics."""
    plugin = next((p.params[0] for p in report.plans), None)
    path = bench.file_of(str(plugin)) if plugin is not None else None
    if path is not None and path.exists():
        report.plans += plans_for(path, [p for p in report.plans if p.database == "trading_bot.db"])


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- command line -------------------------------------------------------------------------------------------------

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


def _positive(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def sizes_from(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else FULL
    trades = args.trades or base.trades
    small = base.small_trades if trades == base.trades else max(trades // 10, 100)
    return Sizes(trades, small, base.single, base.batch, base.concurrent, args.repeat or base.repeat)


def run(args: argparse.Namespace) -> int:
    say = Progress(enabled=not args.quiet)
    sizes = sizes_from(args)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="zepix-bench-", dir=args.dir))
    try:
        report = run_bench(Path(args.config), scratch, sizes, args.only or SECTIONS, say)
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
