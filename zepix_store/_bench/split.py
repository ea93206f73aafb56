"""bench: `split` (a child process, verification included) against the plain SQL copy a careful engineer writes.

The baseline, also a child process so both pay the same interpreter start: one fresh file per isolated target,
the store's schema, `ATTACH` the shared file, and per plugin one `INSERT ... SELECT` per table, rows chosen by
the mapping and the lineage in plain SQL; no ledger, no checks. `python -m zepix_store._bench.split CONFIG_DIR`
runs it and prints the number of rows copied.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..config import StoreConfig, load_config
from ..schema import ATTRIBUTION_ORDER, TABLE_BY_NAME, TABLES, Table, create_schema_sql, index_sql
from .core import (
    ChildRun,
    Figure,
    Say,
    median,
    not_measured,
    python_module,
    ratio_figure,
    raw_connect,
    remove_db,
    run_child,
)

__all__ = [
    "COPY_GOAL",
    "MEMORY_FLAT",
    "MEMORY_GOAL",
    "SPLIT_GOAL",
    "SplitBench",
    "SplitRuns",
    "copied_tables",
    "raw_split",
    "run_pair",
    "split_available",
    "split_figures",
    "targets",
]

SPLIT_GOAL = "ratio <= 1.5"
COPY_GOAL = "ratio <= 1.1"
MEMORY_GOAL = "ratio <= 1.25"
MEMORY_FLAT = 1.25  # peak RSS at N may exceed the one at N/10 by this factor and still count as flat


# -- the baseline (runs in the child) ---------------------------------------------------------------------------

def targets(config: StoreConfig) -> dict[Path, list[str]]:
    """Isolated file -> the plugins split into it."""
    files: dict[Path, list[str]] = {}
    for plugin in config.plugins.values():
        if not plugin.use_shared and plugin.isolated_db is not None:
            files.setdefault(plugin.isolated_db, []).append(plugin.plugin_id)
    return files


def _selector(table: Table, placeholders: str) -> str:
    """WHERE clause choosing the rows of one plugin: trades by mapping, children through their lineage."""
    if table.lineage is None:
        return f"logic_type IN ({placeholders})"
    lin, parent = table.lineage, TABLE_BY_NAME[table.lineage.parent]
    parent_rows = _selector(parent, placeholders)
    return f"{lin.column} IN (SELECT {lin.parent_column} FROM src.{parent.name} WHERE {parent_rows})"


def copied_tables() -> list[Table]:
    # system_state stays shared; every other table is the trades table or reaches it through its lineage
    return [TABLE_BY_NAME[n] for n in ATTRIBUTION_ORDER if n == "trades" or TABLE_BY_NAME[n].lineage is not None]


def raw_split(config_dir: Path) -> int:
    """Copy every isolated plugin's rows with plain SQL; return the number of rows copied."""
    config = load_config(config_dir)
    copied = 0
    for path, plugins in targets(config).items():
        remove_db(path)
        conn = raw_connect(path)
        try:
            indexes = {s for t in TABLES for s in index_sql(t)}
            for sql in create_schema_sql():
                if sql not in indexes:  # the indexes after the load, as a careful engineer builds them
                    conn.execute(sql)
            conn.execute("ATTACH DATABASE ? AS src", (str(config.shared_db),))
            conn.execute("BEGIN IMMEDIATE")
            for plugin_id in plugins:
                logic_types = [k for k, v in config.mapping.items() if v == plugin_id]
                if logic_types:
                    copied += _copy_plugin(conn, plugin_id, logic_types)
            for sql in sorted(indexes):
                conn.execute(sql)
            conn.execute("COMMIT")
        finally:
            conn.close()
    return copied


def _copy_plugin(conn: sqlite3.Connection, plugin_id: str, logic_types: list[str]) -> int:
    copied = 0
    for table in copied_tables():
        cols = ", ".join(c for c in table.column_names if c != "id")  # the target numbers its own rows
        sql = (f"INSERT INTO main.{table.name} ({cols}, plugin_id) SELECT {cols}, ? FROM src.{table.name} "
               f"WHERE {_selector(table, ', '.join('?' * len(logic_types)))}")
        copied += conn.execute(sql, (plugin_id, *logic_types)).rowcount
    return copied


# -- the measurement ---------------------------------------------------------------------------------------------

@dataclass
class SplitRuns:
    store: list[ChildRun] = field(default_factory=list)
    raw: list[ChildRun] = field(default_factory=list)


class SplitBench:
    """A scratch project (configs + data/trading_bot.db); every run starts with no isolated file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = load_config(root / "configs")
        self.files = targets(self.config)
        self.env = _child_env()

    def _clean(self) -> None:
        for path in self.files:
            remove_db(path)
            remove_db(path.with_name(path.name + ".tmp"))
        shutil.rmtree(self.config.backup_dir, ignore_errors=True)

    def store(self, log_name: str) -> ChildRun:
        self._clean()
        argv = python_module("zepix_store.split", "--config", str(self.root / "configs"), "--json", "-q")
        return run_child(argv, self.root, self.root / "logs" / log_name, self.env)

    def raw(self, log_name: str) -> ChildRun:
        self._clean()
        argv = python_module("zepix_store._bench.split", str(self.root / "configs"))
        return run_child(argv, self.root, self.root / "logs" / log_name, self.env)

    def copied_rows(self) -> int:
        """Rows in the isolated files now (after a run)."""
        total = 0
        for path in self.files:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                total += sum(conn.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in copied_tables())
            finally:
                conn.close()
        return total

    def source_rows(self) -> int:
        """Rows of the copied tables in the shared file."""
        conn = sqlite3.connect(f"file:{self.config.shared_db}?mode=ro", uri=True)
        try:
            return sum(conn.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in copied_tables())
        finally:
            conn.close()

    def file_of(self, plugin_id: str) -> Path | None:
        return next((p for p, members in self.files.items() if plugin_id in members), None)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parent.parent)  # so `-m zepix_store.split` runs from any folder
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    env.pop("ZEPIX_FAULT", None)
    return env


def split_available(log_dir: Path) -> str | None:
    """None if `python -m zepix_store.split` starts, else why not."""
    done = run_child(python_module("zepix_store.split", "--help"), log_dir, log_dir, _child_env())
    if done.returncode != 0:
        return f"python -m zepix_store.split --help exited {done.returncode}: {_tail(done.stderr)}"
    return None


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def run_pair(bench: SplitBench, repeat: int, say: Say) -> SplitRuns | str:
    """Warm-up baseline, then baseline and split alternately; a string says why split could not be timed."""
    runs = SplitRuns()
    warm = bench.raw("warmup")
    if warm.returncode != 0:
        return f"the plain SQL copy failed: {_tail(warm.stderr)}"
    for k in range(repeat):
        runs.raw.append(bench.raw(f"raw-{k}"))
        runs.store.append(bench.store(f"split-{k}"))
        last = runs.store[-1]
        if last.returncode != 0:
            return f"split exited {last.returncode}: {_tail(last.stderr)}"
        say(f"split: run {k + 1}/{repeat}: split {last.seconds:.2f} s, plain SQL {runs.raw[-1].seconds:.2f} s")
    return runs


def split_figures(runs: SplitRuns, copied: int, source_rows: int, small_rss: float | None, small_trades: int,
                  trades: int) -> list[Figure]:
    store = [r.seconds for r in runs.store]
    raw = [r.seconds for r in runs.raw]
    detail = {
        "trades": trades, "source_rows": source_rows, "rows_copied": copied,
        "baseline_rows_copied": _raw_rows(runs),
        "rows_per_second": copied / median(store), "baseline_rows_per_second": copied / median(raw),
        "seconds": store, "baseline_seconds": raw, "includes": "verification, process start",
        "baseline_is": "ATTACH + INSERT ... SELECT per table into fresh files (child process)",
    }
    figures = [ratio_figure("split.time", median(store), median(raw), "s", at_most=1.5, detail=detail)]
    checks = [_check_seconds(r) for r in runs.store]
    if None in checks:
        figures.append(not_measured("split.copy_time", "s", COPY_GOAL, "split's --json gave no phase seconds"))
    else:
        copy = [r.seconds - c for r, c in zip(runs.store, checks, strict=True) if c is not None]
        figures.append(ratio_figure("split.copy_time", median(copy), median(raw), "s", at_most=1.1, detail={
            "seconds": copy, "verify_and_report_seconds": checks, "baseline_seconds": raw,
            "includes": "process start, attribution, copy, ledger, fsync, ANALYZE; not the bucket, count, "
                        "value and money checks nor the unmapped/duplicate report"}))
    peak = max(r.max_rss_mb for r in runs.store)
    mem_detail = {"trades": trades, "baseline_trades": small_trades, "runs_mb": [r.max_rss_mb for r in runs.store],
                  "plain_sql_copy_mb": max(r.max_rss_mb for r in runs.raw),
                  "measured_by": "RUSAGE_CHILDREN ru_maxrss reported by a small parent of the split process"}
    if small_rss is None:
        figures.append(not_measured("split.peak_memory", "MB", MEMORY_GOAL, "no run at the small size"))
    else:
        figures.append(ratio_figure("split.peak_memory", peak, small_rss, "MB", at_most=MEMORY_FLAT,
                                    detail=mem_detail))
    return figures


def _check_seconds(run: ChildRun) -> float | None:
    """Seconds a split spent verifying and reporting (from its --json), the part "copy alone" leaves out."""
    try:
        seconds = json.loads(run.stdout)["seconds"]
        return float(seconds["verify"]) + float(seconds["report"])
    except (ValueError, KeyError, TypeError):
        return None


def _raw_rows(runs: SplitRuns) -> int | None:
    try:
        return int(json.loads(runs.raw[-1].stdout)["rows_copied"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


if __name__ == "__main__":
    print(json.dumps({"rows_copied": raw_split(Path(sys.argv[1]))}))
