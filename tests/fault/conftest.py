"""The fault plan's shared harness: checksums, subprocess runners, random SIGKILL, privileged wrappers, figures.

Checksums never read a database with plain file I/O in this process: closing such a handle would drop every
SQLite lock this process holds on the file. The logical checksum goes through SQL; the byte checksum runs in
a child process.

Privileged tests (`@pytest.mark.privileged`: mount namespaces, setpriv) are skipped when euid != 0, but with
CI=true a skipped privileged test fails the run: CI runs as root, so a skip there would hide a regression.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").lower() == "true"
# ZEPIX_TEST_UNPRIVILEGED=1 lets the CI guard itself be tested as root.
IS_ROOT = os.geteuid() == 0 and not os.environ.get("ZEPIX_TEST_UNPRIVILEGED")
FIGURES_FILE = Path(__file__).with_name("figures.txt")
NOBODY = 65534

_FIGURES = pytest.StashKey[list[tuple[str, str]]]()
_SKIPPED_PRIVILEGED = pytest.StashKey[list[str]]()


def scaled(local: int, ci: int) -> int:
    """`ci` when CI=true, else the smaller local count."""
    return ci if CI else local


# --- checksums ----------------------------------------------------------------------------------------------------


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _order_by(conn: sqlite3.Connection, table: str) -> str:
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    pk = [f'"{r[1]}"' for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]
    return ", ".join(pk) if pk else "rowid"


def logical_checksum(path: Path) -> dict[str, str]:
    """Per table: sha256 over its rows in key order, each value tagged with its Python type (version-proof)."""
    conn = _ro(path)
    try:
        # zx_backup: a backup's record of what it is a backup of, not data (restore drops it)
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND name <> 'zx_backup' "
            "ORDER BY name")]
        sums = {}
        for table in tables:
            digest = hashlib.sha256()
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY {_order_by(conn, table)}'):
                digest.update(repr(tuple((type(v).__name__, repr(v)) for v in row)).encode())
                digest.update(b"\n")
            sums[table] = digest.hexdigest()
        return sums
    finally:
        conn.close()


def schema_checksum(path: Path) -> str:
    """sha256 over sqlite_master (type, name, sql) and user_version."""
    conn = _ro(path)
    try:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    return hashlib.sha256(repr((rows, version)).encode()).hexdigest()


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


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` (relative) with its mode and size; symlinks are not followed."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            found[os.path.relpath(full, root)] = (st.st_mode, 0 if name in dirnames else st.st_size)
    return found


# --- processes ----------------------------------------------------------------------------------------------------


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


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


def run_cli(args: Sequence[str], timeout: float = 60, **kwargs: object) -> Result:
    """`python -m zepix_store <args>` with a timeout (a hang fails the test)."""
    return run([sys.executable, "-m", "zepix_store", *map(str, args)], timeout, **kwargs)


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


# --- privileged wrappers (root only; see module doc) -------------------------------------------------------------

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="privileged: needs euid 0 (mount namespaces, setpriv)")
    for item in items:
        if item.get_closest_marker("privileged"):
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if getattr(report, "skipped", False) and item.get_closest_marker("privileged"):
        item.config.stash.setdefault(_SKIPPED_PRIVILEGED, []).append(item.nodeid)
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    skipped = session.config.stash.get(_SKIPPED_PRIVILEGED, [])
    if CI and skipped and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- figures ------------------------------------------------------------------------------------------------------


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """`figures(test_id, line)` records one of the plan's figure lines for the summary and figures.txt."""
    lines = request.config.stash.setdefault(_FIGURES, [])

    def record(test_id: str, line: str) -> None:
        lines.append((test_id, line))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    skipped = config.stash.get(_SKIPPED_PRIVILEGED, [])
    if skipped and CI:
        terminalreporter.section("privileged tests skipped under CI=true (run failed)", red=True)
        for nodeid in skipped:
            terminalreporter.line(f"SKIPPED-PRIVILEGED {nodeid}")
    lines = config.stash.get(_FIGURES, [])
    if not lines:
        return
    terminalreporter.section("fault figures")
    text = [f"{test_id}: {line}" for test_id, line in lines]
    for entry in text:
        terminalreporter.line(entry)
    # A partial run replaces only its own tests' lines; sorted by id, the file follows the plan's order.
    ran = {test_id for test_id, _ in lines}
    old = FIGURES_FILE.read_text().splitlines() if FIGURES_FILE.exists() else []
    kept = [entry for entry in old if entry and not entry.startswith("#") and entry.split(": ", 1)[0] not in ran]
    merged = sorted(kept + text, key=lambda entry: entry.split(": ", 1)[0])
    header = f"# tests/fault figures (last run {time.strftime('%Y-%m-%d %H:%M:%S')}, CI={'true' if CI else 'unset'})"
    FIGURES_FILE.write_text("\n".join([header, *merged]) + "\n")
