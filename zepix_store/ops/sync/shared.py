"""Opening the shared file for a synchronisation: attached as `sh`, checked to be a store we can read."""

from __future__ import annotations

from pathlib import Path

from ...backend.sqlite_file import BUSY_TIMEOUT_MS, translated_errors
from ...errors import ConfigError, CorruptDatabaseError, SchemaError
from ...schema import SCHEMA_VERSION
from .files import READ, ScratchConnection, attach, check_regular_file, open_scratch

__all__ = ['open_shared']


def open_shared(path: Path, mode: str = READ, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> ScratchConnection:
    """A scratch connection with the shared file attached as `sh` (READ: never written; "rw" for a merge)."""
    if not check_regular_file(path):
        raise ConfigError(f"{path}: shared database not found (shared_db in store.yaml)")
    conn = open_scratch(busy_timeout_ms)
    try:
        with translated_errors(path):
            attach(conn, path, "sh", mode)
            tables = conn.execute("SELECT count(*) FROM sh.sqlite_master WHERE type = 'table'").fetchone()[0]
            version = conn.execute("PRAGMA sh.user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaError(f"{path}: schema version {version} is newer than this zepix_store knows "
                              f"({SCHEMA_VERSION}); upgrade zepix_store")
        if not tables:
            raise CorruptDatabaseError(f"{path}: source has no tables (empty or not the bot's database)")
        if mode != READ:
            conn.execute("PRAGMA sh.synchronous = FULL")
    except BaseException:
        conn.close()
        raise
    return conn
