"""The files a synchronisation reads and writes: one scratch connection with `sh` and `iso` attached.

A new isolated file is built as `<name>.tmp` and linked under its final name only once verified, never over an
existing file; a killed run's `.tmp` was never verified and is removed by the next run.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ... import fault, upgrade
from ..._fs import fsync_path
from ...backend.sqlite_backup import backup_connection
from ...backend.sqlite_file import check_inside, check_wal_pairing, connect_sync, ensure_private_dir, translated_errors
from ...backup_identity import identity_of
from ...config import StoreConfig
from ...errors import StoreIOError
from ...readonly import WriteGuard, attach_uri, remove_unused_side_files

__all__ = [
    'READ',
    'SCHEMAS',
    'ScratchConnection',
    'Target',
    'attach',
    'attach_isolated',
    'check_regular_file',
    'detach',
    'file_uri',
    'has_table',
    'link_new_file',
    'open_scratch',
    'release',
    'tmp_path',
    'upgrade_if_needed',
]

READ = "read"  # attach mode: read only, leaving no -wal/-shm behind (see readonly.py)
SCHEMAS = ("sh", "iso")


def file_uri(path: Path, mode: str) -> str:
    """A SQLite URI for `path`; mode `ro`, `rw` or `rwc`."""
    return f"file:{urllib.parse.quote(str(path.absolute()))}?mode={mode}"


class ScratchConnection(sqlite3.Connection):
    """The in-memory connection files are attached to; `guard` keeps the ones attached to read unwritten.

    Files whose `-wal`/`-shm` only our read created are tidied when it closes (see readonly.attach_uri).
    """

    guard: WriteGuard
    read_files: list[Path]

    def close(self) -> None:
        super().close()
        read, self.read_files = self.read_files, []
        for path in dict.fromkeys(read):
            remove_unused_side_files(path)


def open_scratch(busy_timeout_ms: int) -> ScratchConnection:
    """An in-memory main database to attach files to; temp tables hold the attribution and the plan."""
    conn = sqlite3.connect(":memory:", uri=True, isolation_level=None, check_same_thread=False,
                           factory=ScratchConnection)
    conn.guard, conn.read_files = WriteGuard(allow_attach=True), []
    conn.set_authorizer(conn.guard)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    # Copies mirror their source, dangling references included (they are reported, not repaired).
    conn.execute("PRAGMA foreign_keys = OFF")
    return conn


def attach(conn: sqlite3.Connection, path: Path, schema: str, mode: str) -> None:
    """ATTACH `path` as `schema`: mode `ro`, `rw`, `rwc` or READ."""
    assert schema in SCHEMAS
    check_wal_pairing(path)
    if mode == READ:
        assert isinstance(conn, ScratchConnection)
        conn.guard.read_only.add(schema)
        uri, creates_side_files = attach_uri(path)
        if creates_side_files:
            conn.read_files.append(path)
    else:
        if isinstance(conn, ScratchConnection):
            conn.guard.read_only.discard(schema)
        uri = file_uri(path, mode)
    conn.execute(f"ATTACH DATABASE ? AS {schema}", (uri,))


def detach(conn: sqlite3.Connection, schema: str) -> None:
    assert schema in SCHEMAS
    if any(row[1] == schema for row in conn.execute("PRAGMA database_list")):
        conn.execute(f"DETACH DATABASE {schema}")


def has_table(conn: sqlite3.Connection, schema: str, name: str) -> bool:
    assert schema in SCHEMAS
    row = conn.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return row.fetchone() is not None


def check_regular_file(path: Path) -> bool:
    """Whether `path` exists; refuse what is not a regular file (directory, FIFO, dangling symlink)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise StoreIOError(f"{path}: dangling symlink") from None
        return False
    if not stat.S_ISREG(st.st_mode):
        raise StoreIOError(f"{path}: is not a regular file, not a database")
    return True


def tmp_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


@dataclass
class Target:
    """An isolated file being written: the final path, and the file actually written (`<name>.tmp` while new)."""

    path: Path
    file: Path
    created: bool
    attached: bool = False
    linked: bool = False

    @property
    def side_files(self) -> list[Path]:
        return [self.file, *(Path(f"{self.file}{s}") for s in ("-journal", "-wal", "-shm"))]


def attach_isolated(conn: sqlite3.Connection, config: StoreConfig, path: Path, create: bool) -> Target:
    """Attach `path` as `iso` for writing: a new file is built as `<name>.tmp`, an old one upgraded if needed."""
    check_inside(path, config.data_dir)
    stale = Target(path, tmp_path(path), created=True)
    for leftover in stale.side_files:  # from a run killed before linking: never verified, never used
        leftover.unlink(missing_ok=True)
    created = not check_regular_file(path)
    if created and not create:
        raise StoreIOError(f"{path}: isolated file not found")
    target = Target(path, stale.file if created else path, created)
    try:
        with translated_errors(target.file):
            if created:
                ensure_private_dir(path.parent)
                os.close(os.open(target.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            else:
                upgrade_if_needed(config, path)
            attach(conn, target.file, "iso", "rw")
            target.attached = True
            conn.execute("PRAGMA iso.synchronous = FULL")
    except BaseException:
        release(conn, target)
        raise
    return target


def upgrade_if_needed(config: StoreConfig, path: Path) -> None:
    """A file of an older version is upgraded in place after a backup (as the Store would)."""
    own = connect_sync(path, data_dir=config.data_dir)
    try:
        if upgrade.needs_upgrade(own, path):
            backup_connection(own, path, config.backup_dir, "pre-upgrade", identity=identity_of(config, path))
            upgrade.upgrade(own, path, config.rules)
    finally:
        own.close()


def link_new_file(conn: sqlite3.Connection, target: Target) -> None:
    """After the last commit: put a new file under its final name (durably), never over an existing one."""
    if not target.created:
        return
    detach(conn, "iso")
    target.attached = False
    with translated_errors(target.path):
        fsync_path(target.file)
        fault.point(f"before_link:{target.path.name}")
        try:
            os.link(target.file, target.path)
        except FileExistsError:
            raise StoreIOError(f"{target.path}: appeared while splitting (is the bot running?); run split again") \
                from None
        target.linked = True
        target.file.unlink()
        fsync_path(target.path.parent, directory=True)
        fault.point(f"after_link:{target.path.name}")


def release(conn: sqlite3.Connection, target: Target) -> None:
    """Detach; a new file that was not linked into place is removed (it was never verified)."""
    if target.attached:
        detach(conn, "iso")
        target.attached = False
    if target.created and not target.linked:
        for leftover in target.side_files:
            leftover.unlink(missing_ok=True)
