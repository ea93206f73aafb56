"""A throwaway PostgreSQL server for the tests: initdb into a temporary folder, a unix socket there, no TCP.

The server refuses to run as root, so as root every server binary runs as `postgres` through setpriv (runuser
is in /usr/sbin, often off PATH). `pg_ctl -l` keeps the server's output in a log file: a server holding a
captured pipe open would hang subprocess.run. ZEPIX_TEST_PG_BINDIR names the folder of the binaries instead of
looking for them (empty or missing: no server), so the CI guard can be tested on a machine that has one.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PgServer", "find_bin_dir", "start_server"]

SERVER_USER = "zx"  # the superuser initdb creates; trust auth on the socket, so no password
_SETPRIV = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups"]
_SETTINGS = "-c listen_addresses='' -k {dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: ZEPIX_TEST_PG_BINDIR, else Debian's newest, else PATH."""
    if "ZEPIX_TEST_PG_BINDIR" in os.environ:
        chosen = os.environ["ZEPIX_TEST_PG_BINDIR"]
        return Path(chosen) if chosen and (Path(chosen) / "initdb").is_file() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


@dataclass
class PgServer:
    """A running server; `dsn(db)` connects to database `db` on its socket."""

    bin_dir: Path
    base: Path  # holds the data folder, the log and the socket
    as_postgres: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def dsn(self, dbname: str = "postgres", user: str = SERVER_USER) -> str:
        return f"host={self.base} port=5432 dbname={dbname} user={user}"

    def run(self, *args: str, timeout: float = 60) -> None:
        """Run a server binary as the server's user; its output goes to the log on failure."""
        cmd = [*self.as_postgres, str(self.bin_dir / args[0]), *args[1:]]
        proc = subprocess.run(cmd, cwd=self.base, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if proc.returncode:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:1])} failed ({proc.returncode}): {proc.stderr.strip()} {log}")

    def stop(self) -> None:
        """Stop the server (fast: rolls back open transactions) and remove its folder; safe to call twice."""
        if not self.base.exists():
            return
        try:
            if (self.data / "postmaster.pid").exists():
                self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def start_server(bin_dir: Path) -> PgServer:
    """initdb a fresh cluster in a short temporary folder and start it on a unix socket there."""
    # The socket path must stay under 107 bytes: a short folder under /tmp, not pytest's tmp_path.
    base = Path(tempfile.mkdtemp(prefix="zxpg", dir="/tmp"))
    server = PgServer(bin_dir, base)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(base, entry.pw_uid, entry.pw_gid)
        server.as_postgres = list(_SETPRIV)
    try:
        server.run("initdb", "-D", str(server.data), "-U", SERVER_USER, "--auth=trust", "-E", "UTF8",
                   "--locale=C", "--no-sync")
        server.run("pg_ctl", "-D", str(server.data), "-l", str(server.log), "-w", "-o",
                   _SETTINGS.format(dir=base), "start")
    except BaseException:
        server.stop()
        raise
    return server
