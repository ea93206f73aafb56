"""Helpers for the CLI-level fault tests: legacy projects, command runs, refusal checks, a tmpfs kept mounted.

`MountedTmpfs` keeps a tmpfs mounted in a private mount namespace for the length of a test: a holder process
(`unshare -m`, see conftest.tmpfs) mounts it and sleeps. Commands run inside that namespace through
`nsenter -t <holder> -m`, and this process reaches the same files through `/proc/<holder>/root/...`
(`view(path)`), so checksums and listings work unchanged. Nothing is mounted in the test's own namespace:
the mount dies with the holder, whatever happens to the test.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..conftest import Project, copy_database
from .conftest import Result, _order_by, byte_checksum, child_env, run, tmpfs

GROUP_FILE = "zepix_v3_logic_combined.db"
V3 = ("v3-logic-01-5min", "v3-logic-02-15min", "v3-logic-03-1h", "v3-logic-combined")
V6 = ("v6-logic-01-1min", "v6-logic-02-5min", "v6-logic-03-15min", "v6-logic-04-1h")


def install(template: Path, target: Path) -> Path:
    """Copy a closed legacy database to `target` through the backup API (never a file copy), owner-only."""
    return copy_database(template, target)


def legacy_project(root: Path, template: Path) -> Project:
    """A project (shipped configs) whose shared database is a copy of `template`."""
    project = Project(root)
    install(template, project.shared_db)
    return project


def cli(project: Project | Path, command: str, *args: object, prefix: Sequence[str] = (), fault: str | None = None,
        timeout: float = 120) -> Result:
    """`python -m zepix_store <command> --config <configs> ARGS`, optionally behind a wrapper (nsenter, setpriv).

    `project` is a Project or its configs folder as the command sees it (inside a tmpfs namespace).
    """
    configs = project.configs if isinstance(project, Project) else project
    argv = [*prefix, sys.executable, "-m", "zepix_store", command, "--config", str(configs), *map(str, args)]
    return run(argv, timeout, env=child_env(**({"ZEPIX_FAULT": fault} if fault else {})))


def one_line(result: Result, code: int, *needles: str) -> str:
    """The documented exit code, and exactly one stderr line holding every needle, no traceback."""
    assert result.rc == code, (result.rc, result.stdout[-2000:], result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def json_out(result: Result) -> dict[str, Any]:
    assert result.rc == 0, (result.rc, result.stderr[-2000:])
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def _reader(path: Path) -> sqlite3.Connection:
    """A connection that reads `path` and leaves no file behind.

    conftest's checksums read with mode=ro, and a read-only connection to a WAL database creates a `-wal` and a
    `-shm` it cannot remove: a later refusal test would then find a `-shm` that pairs a foreign log, or a read
    in a read-only folder that works because the `-shm` is already there. With no side file present this opens
    read-write (the last connection to close removes them; reading changes no byte of the file); with side
    files present (a live or crashed writer's), read-only, so nothing is checkpointed.
    """
    side = any(Path(f"{path}{s}").exists() for s in ("-wal", "-shm"))
    return sqlite3.connect(f"file:{quote(str(Path(path).absolute()))}?mode={'ro' if side else 'rw'}", uri=True)


def read_sql(path: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    conn = _reader(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def checksums(path: Path) -> tuple[str, dict[str, str]]:
    """(schema checksum, logical checksum) as conftest computes them, through `_reader`."""
    conn = _reader(path)
    try:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        schema = hashlib.sha256(repr((rows, conn.execute("PRAGMA user_version").fetchone()[0])).encode()).hexdigest()
        logical = {}
        # zx_backup: a backup's record of what it is a backup of, not data (restore drops it)
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                     "AND name NOT LIKE 'sqlite%' AND name <> 'zx_backup' ORDER BY name").fetchall():
            digest = hashlib.sha256()
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY {_order_by(conn, table)}'):
                digest.update(repr(tuple((type(v).__name__, repr(v)) for v in row)).encode())
                digest.update(b"\n")
            logical[table] = digest.hexdigest()
        return schema, logical
    finally:
        conn.close()


def logical(path: Path) -> dict[str, str]:
    return checksums(path)[1]


def state(path: Path) -> tuple[str, dict[str, str], str]:
    """(schema checksum, logical checksum, byte checksum) of a closed database; leaves no file behind."""
    schema, sums = checksums(path)
    return schema, sums, byte_checksum(path)


def files_under(root: Path) -> dict[str, int]:
    """Every regular file under `root` (relative path -> size); directories are listed with size -1."""
    found: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), root)] = -1
        for name in filenames:
            full = os.path.join(dirpath, name)
            found[os.path.relpath(full, root)] = os.lstat(full).st_size
    return found


def stray(before: dict[str, int], after: dict[str, int]) -> list[str]:
    """Paths new in `after`: no command may leave a file behind, a reader's -wal/-shm included."""
    return [path for path in sorted(after) if path not in before]


# --- a tmpfs kept mounted for a whole test ------------------------------------------------------------------------


class MountedTmpfs:
    """A tmpfs on `mountpoint` inside a holder's private mount namespace (see the module doc)."""

    def __init__(self, proc: subprocess.Popen[str], mountpoint: Path) -> None:
        self.proc = proc
        self.mountpoint = mountpoint

    @property
    def prefix(self) -> list[str]:
        """Command prefix that runs the rest inside the holder's mount namespace."""
        return ["nsenter", "-t", str(self.proc.pid), "-m", "--"]

    def view(self, path: Path) -> Path:
        """`path` (as the namespace sees it) as this process can reach it."""
        return Path(f"/proc/{self.proc.pid}/root{Path(path).absolute()}")

    def python(self, code: str, *args: object, timeout: float = 60) -> Result:
        """Run `code` in a fresh interpreter inside the namespace (SQLite cannot open files through `view`)."""
        return run([*self.prefix, sys.executable, "-c", code, *map(str, args)], timeout)

    def install(self, template: Path, target: Path) -> None:
        """`install` (backup API) into `target`, a path as the namespace sees it."""
        done = self.python(_NS_INSTALL, template, target)
        assert done.rc == 0, done.stderr

    def state(self, path: Path) -> tuple[str, dict[str, str], str]:
        """`state(path)` computed inside the namespace."""
        done = self.python(_NS_STATE, path)
        assert done.rc == 0, done.stderr
        schema, logical, digest = json.loads(done.stdout)
        return schema, logical, digest

    def free_bytes(self) -> int:
        st = os.statvfs(self.view(self.mountpoint))
        return st.f_bavail * st.f_frsize

    def sh(self, script: str, *args: str) -> None:
        """Run a shell script inside the namespace (e.g. a remount); fail on error."""
        done = run([*self.prefix, "sh", "-c", script, "sh", *args], 30)
        assert done.rc == 0, done.stderr

    def fill(self, ballast: Path, leave: int) -> int:
        """Write `ballast` (a view path) until only about `leave` bytes stay free; return its size."""
        size = max(0, self.free_bytes() - leave)
        block = b"\xa5" * (1 << 16)
        with open(ballast, "wb") as f:  # a plain file of our own, never a database
            written = 0
            while written < size:
                chunk = block[: min(len(block), size - written)]
                f.write(chunk)
                written += len(chunk)
        return size


_NS_INSTALL = """
import sys
from pathlib import Path
from tests.fault.cli_support import install
install(Path(sys.argv[1]), Path(sys.argv[2]))
"""

_NS_STATE = """
import json, sys
from pathlib import Path
from tests.fault.cli_support import state
print(json.dumps(state(Path(sys.argv[1]))))
"""


@contextmanager
def mounted_tmpfs(size: str, mountpoint: Path) -> Iterator[MountedTmpfs]:
    """Mount a `size` tmpfs on `mountpoint` (an existing folder) in a private namespace for the `with` block."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([*tmpfs(size, mountpoint), "sh", "-c", "echo ready; exec sleep 3600"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        assert line == "ready\n", holder.stderr.read() if holder.stderr else line
        yield MountedTmpfs(holder, mountpoint)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        if holder.stdout:
            holder.stdout.close()
        if holder.stderr:
            holder.stderr.close()
