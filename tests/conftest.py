"""Shared fixtures: a project folder (configs + data) in tmp_path, built from the shipped configs."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


class Project:
    """A throwaway copy of the shipped configs with its own data/ folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.configs = root / "configs"
        self.data = root / "data"
        shutil.copytree(REPO / "configs", self.configs)
        self.data.mkdir(mode=0o700)

    @property
    def shared_db(self) -> Path:
        return self.data / "trading_bot.db"

    def plugin_config_path(self, plugin_id: str) -> Path:
        return self.configs / "plugins" / plugin_id / "config.json"

    def set_use_shared(self, plugin_id: str, value: bool) -> None:
        path = self.plugin_config_path(plugin_id)
        doc = json.loads(path.read_text())
        doc["database"]["use_shared"] = value
        path.write_text(json.dumps(doc, indent=2))

    def set_all_shared(self, value: bool) -> None:
        for folder in sorted((self.configs / "plugins").iterdir()):
            self.set_use_shared(folder.name, value)

    def isolated_db(self, plugin_id: str) -> Path:
        doc = json.loads(self.plugin_config_path(plugin_id).read_text())
        return self.root / doc["database"]["isolated_db"]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "proj")


def copy_database(src: Path, dst: Path) -> Path:
    """Copy a closed database with SQLite's backup API (never a file copy), owner-only, as the store would."""
    dst.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    os.chmod(dst, 0o600)
    return dst


def query(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run one read query on a closed database file through a fresh connection."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    import threading

    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"leaked threads: {leaked}"


_WRITE_LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[3] == "wal":
    conn.execute("PRAGMA journal_mode=WAL")
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO system_state (key, value) VALUES ('held', 'x')")
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def hold_write_lock(path: Path, seconds: float, *, wal: bool = False) -> subprocess.Popen[str]:
    """Another process holding the write lock of `path` (an uncommitted row) for `seconds`, like a busy bot."""
    env = {k: v for k, v in os.environ.items() if k != "ZEPIX_FAULT"}
    proc = subprocess.Popen([sys.executable, "-c", _WRITE_LOCK_HOLDER, str(path), str(seconds),
                             "wal" if wal else "as-is"], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc
