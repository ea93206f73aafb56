"""Shared pieces of `bench`: figures, side-by-side timing, child processes, scratch projects, the machine.

Every figure is the store's work measured against the same work done by plain stdlib sqlite3 in the same run,
timed alternately (A B A B ...) so a noisy neighbour slows both sides alike; the median of the runs is reported.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "ChildRun",
    "Figure",
    "Say",
    "Timed",
    "alternate",
    "copy_db",
    "machine_info",
    "median",
    "not_measured",
    "python_module",
    "ratio_figure",
    "raw_connect",
    "remove_db",
    "run_child",
    "timed",
    "write_project",
]

Say = Callable[[str], None]


@dataclass
class Figure:
    """One measured figure: `ratio` is always value / baseline, both in `unit`."""

    name: str
    value: float | None  # None: not measured (detail["not_measured"] says why)
    unit: str
    baseline: float | None
    ratio: float | None
    goal: str
    met: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ratio_figure(name: str, value: float, baseline: float, unit: str, *, at_most: float | None = None,
                 at_least: float | None = None, detail: dict[str, Any] | None = None) -> Figure:
    """A figure whose goal bounds value / baseline from above (times) or below (rates)."""
    ratio = value / baseline if baseline > 0 else None  # None, not inf: the JSON stays standard
    if at_most is not None:
        goal, met = f"ratio <= {at_most:.3g}", ratio is not None and ratio <= at_most
    else:
        assert at_least is not None
        goal, met = f"ratio >= {at_least:.3g}", ratio is not None and ratio >= at_least
    return Figure(name, value, unit, baseline, ratio, goal, met, detail or {})


def not_measured(name: str, unit: str, goal: str, reason: str) -> Figure:
    """A figure that could not be measured in this run: no value, goal not met, and the reason."""
    return Figure(name, None, unit, None, None, goal, False, {"not_measured": reason})


# -- timing -----------------------------------------------------------------------------------------------

Timed = Callable[[], float]  # does its own untimed setup and returns the seconds of the timed part


def alternate(store: Timed, raw: Timed, repeat: int) -> tuple[list[float], list[float]]:
    """Run raw and store alternately `repeat` times each (B A B A: the baseline warms the cache first)."""
    store_times: list[float] = []
    raw_times: list[float] = []
    for _ in range(repeat):
        raw_times.append(raw())
        store_times.append(store())
    return store_times, raw_times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], object]) -> float:
    """Seconds `fn()` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class ChildRun:
    """A finished child process: wall time and its own peak RSS."""

    argv: list[str]
    seconds: float
    max_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


# A child's ru_maxrss starts at the RSS of the process that forked it (Linux records the old image's peak at
# exec), so the bench (large) must not fork the measured command itself: this small interpreter does, and
# reports RUSAGE_CHILDREN, which then holds only the command's own peak.
_RSS_WRAPPER = """
import os, resource, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
status = os.waitpid(pid, 0)[1]
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_child(argv: Sequence[str], cwd: Path, log_dir: Path, env: Mapping[str, str] | None = None) -> ChildRun:
    """Run `argv` to completion with stdout/stderr in files (no pipe can fill up and stall the timing)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path, rss_path = log_dir / "child.out", log_dir / "child.err", log_dir / "child.maxrss"
    rss_path.unlink(missing_ok=True)
    command = [sys.executable, "-S", "-c", _RSS_WRAPPER, str(rss_path), *argv]
    with open(out_path, "w+b") as out, open(err_path, "w+b") as err:
        start = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, stdout=out, stderr=err, env=dict(env) if env else None, check=False)
        seconds = time.perf_counter() - start
    rss_kb = int(rss_path.read_text() or 0) if rss_path.exists() else 0
    return ChildRun(list(argv), seconds, rss_kb / 1024, done.returncode,
                    out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


# -- scratch projects ---------------------------------------------------------------------------------------

def write_project(root: Path, plugins: Mapping[str, str | None], mapping: Mapping[str, str] | None = None) -> Path:
    """Write store.yaml and one config.json per plugin under `root`; return the configs folder.

    `plugins` maps a plugin id to its isolated file name under data/, or None for use_shared: true.
    """
    configs = root / "configs"
    (root / "data").mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = ["data_dir: data", "shared_db: data/trading_bot.db", "backup_dir: data/backups",
             "plugins_dir: configs/plugins", "default_plugin_id: legacy"]
    # JSON is YAML: one flow mapping, every key quoted so YAML cannot retype it
    lines.append(f"mapping: {json.dumps(dict(mapping or {}))}")
    configs.mkdir(parents=True, exist_ok=True)
    (configs / "store.yaml").write_text("\n".join(lines) + "\n")
    for plugin_id, isolated in plugins.items():
        folder = configs / "plugins" / plugin_id
        folder.mkdir(parents=True, exist_ok=True)
        database: dict[str, Any] = {"use_shared": isolated is None, "shared_db": "data/trading_bot.db"}
        if isolated is not None:
            database["isolated_db"] = f"data/{isolated}"
        (folder / "config.json").write_text(json.dumps({"plugin_id": plugin_id, "database": database}, indent=2))
    return configs


def remove_db(path: Path) -> None:
    """Delete a closed database file and its -wal/-shm/-journal companions."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def copy_db(source: Path, target: Path) -> None:
    """Copy a database with the backup API (WAL content included), never a file copy."""
    remove_db(target)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def raw_connect(path: Path) -> sqlite3.Connection:
    """What a plain stdlib user opens: autocommit handle, WAL, synchronous=NORMAL (the store's pragmas)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


# -- the machine ---------------------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    """Where the figures were measured: CPUs, CPU model, RAM, Python, SQLite."""
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "ram_gb": round(int((_proc_field("/proc/meminfo", "MemTotal") or "0 kB").split()[0]) / 1024 ** 2, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "aiosqlite": _version("aiosqlite"),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],  # other work on the machine during the run
    }


def _proc_field(path: str, key: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:  # a /proc text file, not a database
            for line in fh:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        return None
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
