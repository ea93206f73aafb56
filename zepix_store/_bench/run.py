"""Run the benchmark sections on generated data and collect their figures (the `bench` command prints them)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._sample.legacy import build_legacy_db
from ..config import load_config
from ..errors import ConfigError
from . import split as bs
from .core import Figure, Say, machine_info, not_measured
from .flip import measure_flip
from .migrate import make_migrated, measure_migrate
from .postgresql import NO_DSN, measure_postgresql
from .reads import Plan, measure_reads, plans_for
from .writes import measure_writes

__all__ = ["FULL", "QUICK", "SECTIONS", "BenchReport", "Sizes", "run_bench"]

SECTIONS = ("writes", "migrate", "reads", "split", "flip", "postgresql")


@dataclass(frozen=True)
class Sizes:
    """How much work each section does."""

    trades: int        # legacy trades for split, migrate, backup and reads
    small_trades: int  # the second size of split's memory figure
    single: int        # save_trade calls per run
    batch: int         # trades per save_trades batch
    concurrent: int    # save_trade calls per plugin, 8 plugins at once
    repeat: int
    flip: int = 100_000  # trades of the plugin flip moves while 8 others write


FULL = Sizes(1_000_000, 100_000, 5_000, 100_000, 1_000, 3)
QUICK = Sizes(5_000, 500, 300, 5_000, 50, 3, 5_000)


@dataclass
class BenchReport:
    """Every figure and query plan of one run, and the machine it ran on."""

    machine: dict[str, Any]
    sizes: Sizes
    figures: list[Figure] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # section -> why it was not measured
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        met = [f for f in self.figures if f.met]
        return {"machine": self.machine, "sizes": self.sizes.__dict__, "seconds": round(self.seconds, 1),
                "goals_met": len(met), "goals": len(self.figures),
                "figures": [f.as_dict() for f in self.figures], "plans": [p.as_dict() for p in self.plans],
                "skipped": self.skipped}


def run_bench(config_dir: Path, scratch: Path, sizes: Sizes, sections: Sequence[str], say: Say,
              pg_dsn: str | None = None) -> BenchReport:
    """Build the legacy data under `scratch`, measure the chosen sections, return every figure.

    The postgresql section runs on the server `pg_dsn` names; without one it is skipped, never failed.
    """
    started = time.perf_counter()
    report = BenchReport(machine_info(), sizes)
    # writes and postgresql use fresh files of their own; only the other sections need the (large) legacy database
    legacy = sizes.trades if set(sections) - {"writes", "postgresql"} else 0
    project = _project(config_dir, scratch / "split", legacy, say)
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
    if "flip" in sections:
        report.figures += measure_flip(scratch, sizes.flip, say)
    if "postgresql" in sections:
        if pg_dsn:
            report.figures += measure_postgresql(scratch / "postgresql", pg_dsn, sizes.single, sizes.batch,
                                                 sizes.concurrent, sizes.repeat, say)
        else:
            report.skipped["postgresql"] = NO_DSN
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
