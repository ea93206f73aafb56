"""What the tests share: a throwaway project, the one CLI runner, the one logical checksum, readers and processes.

conftest.py holds fixtures only; every test module imports its helpers from here (never from another test module).

Checksums never read a database with plain file I/O in this process: closing such a handle would drop every
SQLite lock this process holds on the file. The logical checksum goes through SQL; byte checksums run in a child
process. Readers open a file so that they leave no `-wal`/`-shm` behind (see `_reader`).

`MountedTmpfs` keeps a tmpfs mounted in a private mount namespace for the length of a test: a holder process
(`unshare -m`, see `tmpfs`) mounts it and sleeps. Commands run inside that namespace through
`nsenter -t <holder> -m`, and this process reaches the same files through `/proc/<holder>/root/...`
(`view(path)`), so checksums and listings work unchanged. Nothing is mounted in the test's own namespace.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from zepix_store.backup_identity import IDENTITY_TABLE
from zepix_store.legacy_data import build_legacy_db

REPO = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() == "true"
# ZEPIX_TEST_UNPRIVILEGED=1 lets the CI guard itself be tested as root.
IS_ROOT = os.geteuid() == 0 and not os.environ.get("ZEPIX_TEST_UNPRIVILEGED")
NOBODY = 65534
GROUP_FILE = "zepix_v3_logic_combined.db"
V3 = ("v3-logic-01-5min", "v3-logic-02-15min", "v3-logic-03-1h", "v3-logic-combined")
V6 = ("v6-logic-01-1min", "v6-logic-02-5min", "v6-logic-03-15min", "v6-logic-04-1h")


# ZEPIX_STRESS=1: the big sizes of a release check (docs/testing.md), never on every submission.
STRESS = os.environ.get("ZEPIX_STRESS", "") not in ("", "0")


def scaled(local: int, ci: int, stress: int | None = None) -> int:
    """A size, kill count or round count: `local` by default, `ci` when CI=true, `stress` with ZEPIX_STRESS=1.

    The small default still reaches every step a test checks (each fault point, several chunks, a kill mid-run);
    the larger ones add chances and size. A test with a `stress` size is marked `slow`, so that
    `ZEPIX_STRESS=1 python -m pytest -m slow` runs every one of them big (without one, stress runs `ci`).
    """
    if STRESS:
        return ci if stress is None else stress
    return ci if CI else local


# --- a project --------------------------------------------------------------------------------------------------


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


class Backed:
    """A project whose store runs on one backend (the `backend` fixture): read what a database holds through
    `rows(path, sql)`, whether it is the SQLite file at `path` or that file's schema on PostgreSQL."""

    def __init__(self, project: Project, kind: str, dsn: str | None = None, prefix: str | None = None) -> None:
        self.project = project
        self.kind = kind
        self.dsn = dsn
        self.prefix = prefix
        self.configs = project.configs

    def __repr__(self) -> str:
        return f"Backed({self.kind})"

    @property
    def is_pg(self) -> bool:
        return self.kind == "postgresql"

    def schema_of(self, path: Path) -> str | None:
        """The schema the store gave the file at `path` (None while it has none)."""
        import psycopg

        name = path.resolve().relative_to(self.project.data.resolve()).as_posix()
        with psycopg.connect(str(self.dsn), autocommit=True) as conn:
            if conn.execute("SELECT to_regclass(%s)", [f"{self.prefix}shared.zx_registry"]).fetchone() == (None,):
                return None
            found = conn.execute(f"SELECT schema_name FROM {self.prefix}shared.zx_registry WHERE file_name = %s",
                                 [name]).fetchone()
        return None if found is None else str(found[0])

    def rows(self, path: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read query on the database of `path`; [] for a PostgreSQL schema not made yet."""
        if not self.is_pg:
            return query(path, sql, tuple(params))
        import psycopg

        schema = self.schema_of(path)
        if schema is None:
            return []
        with psycopg.connect(str(self.dsn), autocommit=True) as conn:
            conn.execute(f'SET search_path = "{schema}"')
            return conn.execute(sql.replace("%", "%%").replace("?", "%s"), list(params)).fetchall()  # type: ignore

    def write(self, path: Path, sql: str, params: Sequence[object] = ()) -> None:
        """Run one write on the database of `path` as the bot's own SQL would, past the store (raw legacy rows)."""
        if not self.is_pg:
            conn = sqlite3.connect(path)
            try:
                conn.execute(sql, tuple(params))
                conn.commit()
            finally:
                conn.close()
            return
        import psycopg

        schema = self.schema_of(path)
        assert schema is not None, f"{path}: the store has not made its schema yet"
        with psycopg.connect(str(self.dsn), autocommit=True) as conn:
            conn.execute(f'SET search_path = "{schema}"')
            conn.execute(sql.replace("%", "%%").replace("?", "%s"), list(params))  # type: ignore[arg-type]

    def holds(self, path: Path) -> bool:
        """Whether the database of `path` exists (a file, or a schema on the server)."""
        return self.schema_of(path) is not None if self.is_pg else path.exists()


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


def install(template: Path, target: Path) -> Path:
    """Copy a closed legacy database to `target` through the backup API (never a file copy), owner-only."""
    return copy_database(template, target)


def legacy_template(factory: pytest.TempPathFactory, trades: int, seed: int) -> Path:
    """A closed legacy database of `trades` trades and their child rows, made once for a module to copy from."""
    path = factory.mktemp("legacy") / "trading_bot.db"
    build_legacy_db(path, trades=trades, seed=seed)
    return path


def legacy_project(root: Path, template: Path) -> Project:
    """A project (shipped configs) whose shared database is a copy of `template`."""
    project = Project(root)
    install(template, project.shared_db)
    return project

# --- the CLI ----------------------------------------------------------------------------------------------------


@dataclass
class Result:
    """A command's exit code and output, however it ran."""

    rc: int
    stdout: str
    stderr: str

    @property
    def returncode(self) -> int:
        return self.rc


def run_cli(command: str, *args: object, config: Project | Path | str | None = None, prefix: Sequence[str] = (),
            fault: str | None = None, umask: int | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 120, process: bool = False) -> Result:
    """`zepix-store <command> ARGS [--config DIR]`: in this process through `cli.main`, unless it needs one.

    A real process (`python -m zepix_store.<command>` from the repository root) runs it when asked (`process`)
    or when the run needs one: a fault point (`fault`, the process kills itself), a `umask`, an environment, a
    wrapper `prefix` (nsenter, setpriv), or a caller off the main thread. `config` is a Project or its configs folder as the command sees it.
    """
    argv = [str(a) for a in args]
    if config is not None:
        argv += ["--config", str(config.configs if isinstance(config, Project) else config)]
    # Output is captured by swapping sys.stdout/sys.stderr, which only one thread at a time can do.
    in_thread = threading.current_thread() is not threading.main_thread()
    if process or in_thread or fault or umask is not None or env is not None or prefix:
        return _run_process(command, argv, prefix, fault, umask, env, timeout)
    return _run_in_process(command, argv)


def _run_in_process(command: str, argv: list[str]) -> Result:
    from zepix_store import cli

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # command_main configures logging; pytest's capture stays
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main([command, *argv])
            except SystemExit as exc:  # --help, --version, an argparse error
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        root.handlers[:], root.level = handlers, level
    return Result(code, out.getvalue(), err.getvalue())


def _run_process(command: str, argv: list[str], prefix: Sequence[str], fault: str | None, umask: int | None,
                 env: Mapping[str, str] | None, timeout: float) -> Result:
    from zepix_store import cli

    full_env = child_env(**({"ZEPIX_FAULT": fault} if fault else {}))
    full_env.update(env or {})
    preexec = (lambda: os.umask(umask)) if umask is not None else None  # runs in the child
    return run([*prefix, sys.executable, "-m", cli.command_module(command), *argv], timeout, env=full_env,
               preexec_fn=preexec)


def cli_ok(command: str, project: Project, *args: object) -> Result:
    """`<command> ARGS` on the project: it must exit 0 (its output is in the failure message otherwise)."""
    done = run_cli(command, *args, config=project)
    assert done.rc == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def cli_json(command: str, project: Project | Path, *args: object) -> dict[str, Any]:
    """`<command> --json ARGS` on the project: it must exit 0; its one JSON document."""
    done = run_cli(command, "--json", *args, config=project)
    assert done.rc == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


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

# --- reading databases ------------------------------------------------------------------------------------------


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
    """The rows of one query on a closed database file, leaving no file behind."""
    conn = _reader(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def scalar(path: Path, sql: str, params: Sequence[object] = ()) -> object:
    conn = _reader(path)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


def user_tables(conn: sqlite3.Connection) -> list[str]:
    """The tables holding data; not a backup's own record of what it is a backup of (restore drops it)."""
    return [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> ? "
        "ORDER BY name", (IDENTITY_TABLE,))]


def table_columns(path: Path) -> dict[str, list[str]]:
    """Each data table's columns, in order."""
    conn = _reader(path)
    try:
        return {t: [r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')] for t in user_tables(conn)}
    finally:
        conn.close()


def row_counts(path: Path) -> dict[str, int]:
    conn = _reader(path)
    try:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in user_tables(conn)}
    finally:
        conn.close()


# --- checksums --------------------------------------------------------------------------------------------------


def logical_checksum(path: Path, columns: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """Per data table: sha256 over every row with its rowid, in rowid order, each value tagged with its type.

    repr() of the fetched rows is the type tag: 1, 1.0, '1', b'1' and None all print differently (so do -0.0
    and 0.0), and it is several times faster than tagging each value by hand. The rowid is hashed too, so a
    row that moved counts as a change (a WITHOUT ROWID table, which has none, is hashed in key order). With
    `columns`, only those tables and columns (a migrated file compared with its source).
    """
    conn = _reader(path)
    try:
        out = {}
        for table in (columns or {t: [] for t in user_tables(conn)}):
            cols = ", ".join(f'"{c}"' for c in (columns or {}).get(table, [])) or "*"
            digest = hashlib.sha256()
            cursor = conn.execute(_rows_sql(conn, table, cols))
            while rows := cursor.fetchmany(5000):
                digest.update(repr(rows).encode())
            out[table] = digest.hexdigest()
        return out
    finally:
        conn.close()


def _rows_sql(conn: sqlite3.Connection, table: str, cols: str) -> str:
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    if "WITHOUT ROWID" not in str(sql).upper():
        return f'SELECT rowid, {cols} FROM "{table}" ORDER BY rowid'
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    key = ", ".join(f'"{r[1]}"' for r in sorted(info, key=lambda r: r[5]) if r[5] > 0)
    return f'SELECT {cols} FROM "{table}" ORDER BY {key}'


def schema_checksum(path: Path) -> str:
    """sha256 over sqlite_master (type, name, table, sql) and user_version."""
    conn = _reader(path)
    try:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    return hashlib.sha256(repr((rows, version)).encode()).hexdigest()


def checksums(path: Path) -> tuple[str, dict[str, str]]:
    """(schema checksum, logical checksum)."""
    return schema_checksum(path), logical_checksum(path)


def state(path: Path) -> tuple[str, dict[str, str], str]:
    """(schema checksum, logical checksum, byte checksum) of a closed database; leaves no file behind."""
    schema, sums = checksums(path)
    return schema, sums, byte_checksum(path)


_BYTE_SUM = """
import hashlib, os, sys
h = hashlib.sha256()
for p in sys.argv[1:]:
    h.update(p.encode() + b"\\0")
    if os.path.exists(p):
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
print(h.hexdigest())
"""


def byte_checksum(path: Path) -> str:
    """sha256 of the file and its -wal, read by a child process (never by this one: see module doc)."""
    out = subprocess.run([sys.executable, "-c", _BYTE_SUM, str(path), f"{path}-wal"],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def byte_digest(path: Path) -> str:
    """sha256 of a database file's bytes, read in a child process (a plain handle here could drop our locks)."""
    code = "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())"
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


# --- files ------------------------------------------------------------------------------------------------------


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` (relative) with its mode and size; symlinks are not followed."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            found[os.path.relpath(full, root)] = (st.st_mode, 0 if name in dirnames else st.st_size)
    return found


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


# --- processes --------------------------------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child interpreter: this checkout importable, no inherited fault injection."""
    env = {k: v for k, v in os.environ.items() if k != "ZEPIX_FAULT"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def run(cmd: Sequence[str], timeout: float = 60, **kwargs: object) -> Result:
    """Run `cmd` to completion; a timeout is a hang and fails the test."""
    kwargs.setdefault("env", child_env())
    kwargs.setdefault("cwd", REPO)
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False,  # type: ignore
                              **kwargs)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"hang: {' '.join(map(str, cmd))[:200]} still running after {timeout} s "
                    f"(stderr: {exc.stderr!r:.300})")
    if proc.returncode == 124:
        pytest.fail(f"hang: timeout(1) killed {' '.join(map(str, cmd))[:200]}")
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_python(code: str, *args: object, timeout: float = 60, prefix: Sequence[str] = (),
               **kwargs: object) -> Result:
    """Run `code` in a fresh interpreter (optionally behind a wrapper such as `tmpfs(...)` or `as_nobody()`)."""
    return run([*prefix, sys.executable, "-c", code, *map(str, args)], timeout, **kwargs)


@dataclass
class Kill:
    index: int
    delay: float  # seconds after the child said "ready"
    killed: bool  # False: the child had already exited on its own
    returncode: int
    stdout: str
    stderr: str


def _wait_ready(proc: subprocess.Popen[bytes], out: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and out.read_text(errors="replace").startswith("ready\n"):
            return
        if proc.poll() is not None:
            return
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    pytest.fail(f"child never printed 'ready' within {timeout} s")


def kill_at_random(cmd: Sequence[str], n: int, lo: float, hi: float, seed: int, *, workdir: Path,
                   env: dict[str, str] | None = None, ready_timeout: float = 30) -> Iterator[Kill]:
    """Start `cmd` `n` times and SIGKILL it `uniform(lo, hi)` s after its first stdout line `ready`.

    Lazily yields each run once the child is dead, so the caller checks the files between kills. The child's
    stdout goes to a file (a full pipe would stall it; page-cache writes survive SIGKILL).
    """
    rng = random.Random(seed)
    for index in range(n):
        out, err = workdir / f"kill-{index}.out", workdir / f"kill-{index}.err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            proc = subprocess.Popen(list(cmd), stdout=stdout, stderr=stderr, cwd=REPO, env=env or child_env())
        try:
            _wait_ready(proc, out, ready_timeout)
            delay = rng.uniform(lo, hi)
            time.sleep(delay)
            killed = proc.poll() is None
            if killed:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        yield Kill(index, delay, killed, proc.returncode, out.read_text(errors="replace"),
                   err.read_text(errors="replace"))


# --- privileged wrappers (root only: mount namespaces, setpriv) -------------------------------------------------

privileged = pytest.mark.privileged


def tmpfs(size: str, mountpoint: Path) -> list[str]:
    """Command prefix: run the rest in a private mount namespace with a `size` tmpfs mounted on `mountpoint`.

    The mount is visible only to that process tree and vanishes with it: the child must check its own results.
    """
    script = 'mount -t tmpfs -o "size=$1,mode=0700" tmpfs "$2" && shift 2 && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "tmpfs", size, str(mountpoint)]


def as_nobody() -> list[str]:
    """Command prefix: run the rest as nobody:nogroup with no supplementary groups.

    The interpreter's site-packages must be readable by nobody (one under a 0700 /root is not: aiosqlite will
    not import); `no_dac()` gives the same file-mode checks while keeping root's files reachable.
    """
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def no_dac() -> list[str]:
    """Command prefix: root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, so file modes apply."""
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


# --- a tmpfs kept mounted for a whole test (see the module doc) -------------------------------------------------


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
from tests.helpers import install
install(Path(sys.argv[1]), Path(sys.argv[2]))
"""

_NS_STATE = """
import json, sys
from pathlib import Path
from tests.helpers import state
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


# --- attribution, worked out independently of zepix_store.attribution ---------------------------------------------

DEFAULT = "legacy"
ORDER = ("trades", "reentry_chains", "profit_booking_chains", "trading_sessions", "sl_events",
         "reversal_exit_events", "tp_reentry_events", "profit_booking_orders", "profit_booking_events", "system_state")
LINEAGE = {  # child table: (parent table, parent column, child column)
    "reentry_chains": ("trades", "chain_id", "chain_id"),
    "profit_booking_chains": ("trades", "profit_chain_id", "chain_id"),
    "trading_sessions": ("trades", "session_id", "session_id"),
    "sl_events": ("trades", "trade_id", "trade_id"),
    "reversal_exit_events": ("trades", "trade_id", "trade_id"),
    "tp_reentry_events": ("reentry_chains", "chain_id", "chain_id"),
    "profit_booking_orders": ("profit_booking_chains", "chain_id", "chain_id"),
    "profit_booking_events": ("profit_booking_chains", "chain_id", "chain_id"),
}


def typed(value: object) -> tuple[str, str]:
    """A value with its Python type: 1, 1.0, '1' and b'1' all differ."""
    return type(value).__name__, repr(value)


def connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _columns_of(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def legacy_rows(conn: sqlite3.Connection, table: str) -> dict[int, dict[str, object]]:
    """rowid -> row (column -> value) of a table."""
    cols = _columns_of(conn, table)
    return {r[0]: dict(zip(cols, r[1:])) for r in conn.execute(f"SELECT rowid, * FROM {table}")}


def expected_owners(path: Path, mapping: Mapping[str, str], default: str = DEFAULT) -> dict[str, dict[int, set[str]]]:
    """table -> source rowid -> owners, from SPEC 5 alone (independent of zepix_store.attribution)."""
    conn = connect_ro(path)
    try:
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        owners: dict[str, dict[int, set[str]]] = {}
        for table in ORDER:
            if table in present:
                owners[table] = _owners_of(table, legacy_rows(conn, table), owners, conn, mapping, default)
        return owners
    finally:
        conn.close()


def _owners_of(table: str, rows: dict[int, dict[str, object]], owners: dict[str, dict[int, set[str]]],
               conn: sqlite3.Connection, mapping: Mapping[str, str], default: str) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    keys: dict[object, set[str]] | None = None
    if table in LINEAGE:
        parent, pcol, ccol = LINEAGE[table]
        if parent in owners and pcol in _columns_of(conn, parent) and ccol in _columns_of(conn, table):
            keys = {}
            for rowid, prow in legacy_rows(conn, parent).items():
                if prow[pcol] is not None:
                    keys.setdefault(prow[pcol], set()).update(owners[parent][rowid])
    if table == "trades":
        return trade_owners(rows, mapping, default)
    for rowid, row in rows.items():
        own = row.get("plugin_id")
        if own is not None and own != default:
            out[rowid] = {str(own)}
        elif table in LINEAGE and keys is not None:
            out[rowid] = set(keys.get(row[LINEAGE[table][2]], ())) or {default}
        else:
            out[rowid] = {default}
    return out


MAPPING_COLUMNS = ("logic_type", "strategy")  # store.yaml's default
TRADE_LINKS = ("chain_id", "profit_chain_id", "session_id")


def trade_owners(rows: Mapping[int, Mapping[str, object]], mapping: Mapping[str, str], default: str = DEFAULT,
                 columns: Iterable[str] = MAPPING_COLUMNS) -> dict[int, set[str]]:
    """SPEC 5's four rules for trades, in Python: own plugin_id, mapping by column, one-step links, default."""
    decided: dict[int, str] = {}
    for rowid, row in rows.items():
        own = row.get("plugin_id")
        if own is not None and own != default:
            decided[rowid] = str(own)
            continue
        for column in columns:
            value = row.get(column)
            if isinstance(value, str) and value in mapping:
                decided[rowid] = mapping[value]
                break
    reached = {link: {} for link in TRADE_LINKS}  # link -> value -> owners of the decided trades carrying it
    for rowid, owner in decided.items():
        for link in TRADE_LINKS:
            value = rows[rowid].get(link)
            if value is not None and value != "":
                reached[link].setdefault(value, set()).add(owner)
    owners = {rowid: {owner} for rowid, owner in decided.items()}
    for rowid, row in rows.items():
        if rowid in decided:
            continue
        found = next((reached[link][row.get(link)] for link in TRADE_LINKS
                      if row.get(link) not in (None, "") and row.get(link) in reached[link]), set())
        owners[rowid] = set(found) if len(found) == 1 else {default}
    return owners


# --- files of a backup folder -----------------------------------------------------------------------------------


def names_under(folder: Path) -> list[str]:
    """Every path under `folder`, relative, sorted (folders included)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def final_backups(backup_dir: Path) -> list[Path]:
    """The backups under a final name (never a `.tmp`)."""
    return sorted(p for p in backup_dir.glob("*.db")) if backup_dir.is_dir() else []


def make_store_file(path: Path) -> None:
    """An empty store file of the current schema (what the library creates for an isolated plugin)."""
    from zepix_store import upgrade
    from zepix_store.backend.sqlite_file import connect_sync, transaction

    conn = connect_sync(path, create=True)
    try:
        with transaction(conn):
            upgrade.initialise(conn)
        conn.execute("INSERT INTO system_state (key, value, plugin_id) VALUES ('k', ?, 'x')", (path.name,))
    finally:
        conn.close()


# --- split, merge and verify tests: the legacy project, its CLI and per-plugin checksums -------------


split_V3 = ("v3-logic-01-5min", "v3-logic-02-15min", "v3-logic-03-1h", "v3-logic-combined")


split_ORDER = ("trades", "reentry_chains", "profit_booking_chains", "trading_sessions", "sl_events",
         "reversal_exit_events", "tp_reentry_events", "profit_booking_orders", "profit_booking_events", "system_state")


ID_TABLES = {"trades", "sl_events", "tp_reentry_events", "reversal_exit_events", "profit_booking_events"}


N_KILLS = scaled(4, 10, 100)  # random kills of split, beside a kill at each of its fault points


def split_run_cli(command: str, project: Project, *args: str, env: Mapping[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`zepix-store <command> --config <project configs> ARGS`: in this process (run_cli) unless it needs its
    own (an environment, or a caller off the main thread): then `python -m zepix_store.<command>`."""
    if env is None and threading.current_thread() is threading.main_thread():
        done = run_cli(command, *args, config=project)
        return subprocess.CompletedProcess([command, *args], done.rc, done.stdout, done.stderr)
    full_env = {**os.environ, **(env or {})}
    if env is None:
        full_env.pop("ZEPIX_FAULT", None)
    return subprocess.run([sys.executable, "-m", f"zepix_store.{command}", "--config", str(project.configs), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout, env=full_env, check=False)


def split_table_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def content(row: Mapping[str, object], table: str, columns: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The typed values of a row's legacy columns, the rowid alias `id` left out."""
    return tuple(typed(row[c]) for c in columns if not (c == "id" and table in ID_TABLES))


def plugin_rows(path: Path, table: str, plugin: str, columns: list[str]) -> list[tuple[tuple[str, str], ...]]:
    conn = connect_ro(path)
    try:
        rows = legacy_rows(conn, table)
    finally:
        conn.close()
    return sorted(content(r, table, columns) for r in rows.values() if r["plugin_id"] == plugin)


def logical_checksums(paths: Iterable[Path]) -> dict[str, str]:
    """(file, plugin, table) -> sha256 of that plugin's rows (SELECT *, type-tagged, sorted), per file."""
    sums: dict[str, str] = {}
    for path in paths:
        if not path.exists():
            continue
        conn = connect_ro(path)
        try:
            for table in ORDER:
                cols = split_table_columns(conn, table)
                groups: dict[str, list[tuple[tuple[str, str], ...]]] = {}
                for row in conn.execute(f"SELECT * FROM {table}"):
                    d = dict(zip(cols, row))
                    groups.setdefault(str(d.get("plugin_id", "-")), []).append(tuple(typed(v) for v in row))
                for plugin, rows in groups.items():
                    sums[f"{path.name}|{plugin}|{table}"] = hashlib.sha256(repr(sorted(rows)).encode()).hexdigest()
        finally:
            conn.close()
    return sums


def split_byte_digest(path: Path) -> str:
    """sha256 of the db file and of its -wal (a missing -wal counts as empty), computed in a subprocess.

    A subprocess, because closing a plain file handle on a database drops this process's SQLite locks.
    """
    code = ("import hashlib, sys, pathlib\n"
            "p = pathlib.Path(sys.argv[1]); w = pathlib.Path(sys.argv[1] + '-wal')\n"
            "print(hashlib.sha256(p.read_bytes()).hexdigest(), "
            "hashlib.sha256(w.read_bytes() if w.exists() else b'').hexdigest())")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def split_listing(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def set_mapping(project: Project, mapping: Mapping[str, str]) -> None:
    path = project.configs / "store.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["mapping"] = dict(mapping)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def shipped_mapping(project: Project) -> dict[str, str]:
    return dict(yaml.safe_load((project.configs / "store.yaml").read_text())["mapping"])


def isolated_files(project: Project) -> list[Path]:
    return sorted({project.isolated_db(p.name) for p in (project.configs / "plugins").iterdir()})


def build_template(factory: pytest.TempPathFactory) -> Path:
    """One legacy database per test module (400 trades and every edge case), copied into each test's project."""
    path = factory.mktemp("legacy") / "trading_bot.db"
    build_legacy_db(path, trades=400, seed=11)
    return path


def split_install(template: Path, project: Project) -> Path:
    """Copy the template into the project as its shared database (through SQLite's backup API)."""
    return copy_database(template, project.shared_db)


FAULT_POINTS = (
    "after_owners", f"after_copy:{V3[0]}:trades", f"after_copy:{V3[1]}:profit_booking_events",
    f"before_commit:{GROUP_FILE}", f"after_commit:{GROUP_FILE}", f"before_link:{GROUP_FILE}",
    f"after_link:{GROUP_FILE}", "before_link:zepix_v6_logic_04_1h.db", "after_backup_copy", "after_prune_backup",
    "before_prune_commit", "after_prune_commit",
)


def _state(project: Project) -> dict[str, str]:
    return logical_checksums([*isolated_files(project), project.shared_db])


def _assert_final_names_verified(project: Project, reference: dict[str, str]) -> None:
    """Each isolated file under its final name is complete (all-or-nothing per file)."""
    for path in isolated_files(project):
        if path.exists():
            mine = {k: v for k, v in logical_checksums([path]).items()}
            assert mine == {k: v for k, v in reference.items() if k.startswith(path.name + "|")}, path


def _killed_split(template: Path, root: Path, kind: str, what: str, duration: float) -> Project:
    """A project whose `split --prune` was SIGKILLed at a fault point (`kind` "fault") or at random."""
    project = Project(root)
    split_install(template, project)
    cmd = [sys.executable, "-m", "zepix_store.split", "--config", str(project.configs), "--prune", "-q"]
    env = {k: v for k, v in os.environ.items() if k != "ZEPIX_FAULT"}
    if kind == "fault":
        env["ZEPIX_FAULT"] = f"{what}:kill"
        rc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=120, check=False).returncode
        assert rc == -9, f"fault point {what} was never reached"
    else:
        proc = subprocess.Popen(cmd[:-1], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        proc.stderr.readline()  # "split: attributing ...": the work has begun; kill somewhere inside it
        time.sleep(random.Random(what).uniform(0.0, duration))
        proc.kill()
        proc.communicate()
    return project


def _rerun_equals(project: Project, reference: dict[str, str], kind: str, what: str) -> None:
    """After a kill: every file under a final name verified; a rerun (in this process) ends as a clean run."""
    _assert_final_names_verified(project, reference)
    rerun = run_cli("split", "--prune", "-q", config=project)
    assert rerun.returncode == 0, (kind, what, rerun.stderr)
    assert _state(project) == reference, (kind, what)
    assert not list(project.data.glob("*.tmp*")), (kind, what)


def sqlite_config(project: Project, name: str, *, use_shared: bool, make_data: bool = True) -> Path:
    """A SQLite config `name` beside the project with its own data folder `<name>-data` (nothing shared with it)."""
    folder = project.root / name
    shutil.copytree(project.configs, folder)
    data = f"{name}-data"
    doc = yaml.safe_load((folder / "store.yaml").read_text())
    doc.update(data_dir=data, shared_db=f"{data}/trading_bot.db", backup_dir=f"{data}/backups",
               plugins_dir=f"{name}/plugins")
    (folder / "store.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for plugin in (folder / "plugins").iterdir():
        config = json.loads((plugin / "config.json").read_text())
        database = config["database"]
        database.update(use_shared=use_shared, shared_db=f"{data}/trading_bot.db",
                        isolated_db=database["isolated_db"].replace("data/", f"{data}/", 1))
        (plugin / "config.json").write_text(json.dumps(config, indent=2))
    if make_data:
        (project.root / data).mkdir(mode=0o700)
    return folder
