"""What a backup is a backup of, recorded in its name and inside it, so restore can refuse the wrong target.

An identity is the file's role (`shared`, `isolated`, or `other` for a file no config names), its path relative
to data_dir, the plugins routed to it and its schema version. It is written twice:
- in the name, `<path>-<role>-v<version>-<UTC stamp>[-label].db`, the path with `/` written as `~` (and `%`,
  `~` and anything outside `A-Z a-z 0-9 . _ -` percent-encoded): `a/store.db` and `b/store.db` get different
  names, so retention of one file never counts or deletes the other's backups;
- inside the backup, as the table `zx_backup` (key, value). Inside, not in a sidecar file, so that a backup
  copied or moved on its own still knows what it is. restore drops that table from the file it restores into,
  so what it puts back is the source as it was.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .config import StoreConfig

__all__ = [
    "FileIdentity",
    "IDENTITY_TABLE",
    "NAME_PATTERN",
    "ROLES",
    "STAMP",
    "backup_name",
    "backups_pattern",
    "encode_path",
    "fallback_identity",
    "identity_of",
    "name_prefix",
    "read_identity",
    "strip_identity",
    "write_identity",
]

IDENTITY_TABLE = "zx_backup"
SHARED, ISOLATED, OTHER, UNKNOWN = "shared", "isolated", "other", "unknown"
ROLES = (SHARED, ISOLATED, OTHER, UNKNOWN)
STAMP = r"\d{8}T\d{12}Z"
_SAFE = re.compile(r"[A-Za-z0-9._-]")
NAME_PATTERN = re.compile(
    rf"(?P<path>.+)-(?P<role>{'|'.join(ROLES)})-v(?P<version>\d+)-(?P<stamp>{STAMP})(?:-(?P<label>[a-z0-9-]+))?\.db")


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """A database file as its config sees it: role, path inside data_dir, the plugins routed to it."""

    role: str
    path: str  # relative to data_dir, with `/` separators; the bare file name when unknown
    plugins: tuple[str, ...] = ()
    schema_version: int | None = None

    def same_file(self, other: FileIdentity) -> bool:
        """Whether both name the same file in the same role (plugins and version may have changed since)."""
        return self.role == other.role and self.path == other.path and self.role != UNKNOWN

    def describe(self) -> str:
        """`the isolated file zepix_a.db (plugins: a; schema version 1)`, for messages."""
        what = {SHARED: "the shared file", ISOLATED: "the isolated file", OTHER: "the file"}.get(self.role)
        if what is None:
            return f"a file of unknown role named {self.path} (made without a config)"
        facts = [f"plugins: {', '.join(self.plugins)}" if self.plugins else "no plugin routed to it"]
        if self.schema_version is not None:
            facts.append(f"schema version {self.schema_version}")
        return f"{what} {self.path} ({'; '.join(facts)})"

    def with_version(self, version: int) -> FileIdentity:
        return FileIdentity(self.role, self.path, self.plugins, version)


def identity_of(config: StoreConfig, path: Path) -> FileIdentity:
    """The identity `config` gives the database file `path`."""
    if path == config.shared_db:
        role = SHARED
        plugins = [p.plugin_id for p in config.plugins.values() if p.use_shared]
    else:
        plugins = [p.plugin_id for p in config.plugins.values() if p.isolated_db == path]
        role = ISOLATED if plugins else OTHER
    return FileIdentity(role, _relative(path, config.data_dir), tuple(sorted(plugins)))


def fallback_identity(path: Path) -> FileIdentity:
    """For a backup taken without a config (library callers that pass none): restore then needs --force."""
    return FileIdentity(UNKNOWN, path.name)


def _relative(path: Path, data_dir: Path) -> str:
    try:
        return path.relative_to(data_dir).as_posix()
    except ValueError:
        return path.as_posix()


# --- the name -------------------------------------------------------------------------------------------------


def encode_path(path: str) -> str:
    """`a/store.db` -> `a~store.db`: reversible, one file name part, distinct for distinct paths."""
    def char(c: str) -> str:
        if c == "/":
            return "~"
        return c if _SAFE.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
    return "".join(char(c) for c in path)


def name_prefix(identity: FileIdentity) -> str:
    """What every backup name of this file starts with (before `-v<version>-`)."""
    return f"{encode_path(identity.path)}-{identity.role}"


def backup_name(identity: FileIdentity, version: int, stamp: str, label: str = "") -> str:
    return f"{name_prefix(identity)}-v{version}-{stamp}{'-' + label if label else ''}.db"


def backups_pattern(identity: FileIdentity, label: str | None = "") -> re.Pattern[str]:
    """Names of this file's backups with exactly `label` ('' plain ones, None any); group 1 is the stamp."""
    tail = r"(?:-[a-z0-9-]+)?" if label is None else (f"-{re.escape(label)}" if label else "")
    return re.compile(f"{re.escape(name_prefix(identity))}-v\\d+-({STAMP}){tail}\\.db")


# --- inside the backup ----------------------------------------------------------------------------------------


def write_identity(conn: sqlite3.Connection, identity: FileIdentity, facts: dict[str, str]) -> None:
    """Record `identity` (and `facts`: source, label, time) in the copy open on `conn` (ours alone)."""
    conn.execute(f"DROP TABLE IF EXISTS main.{IDENTITY_TABLE}")  # a restored file may still carry one
    conn.execute(f"CREATE TABLE main.{IDENTITY_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    values = {"role": identity.role, "path": identity.path, "plugins": json.dumps(list(identity.plugins)),
              "schema_version": str(identity.schema_version), **facts}
    conn.executemany(f"INSERT INTO main.{IDENTITY_TABLE} (key, value) VALUES (?, ?)", values.items())


def read_identity(conn: sqlite3.Connection) -> FileIdentity | None:
    """The identity recorded in the backup open on `conn`, or None when it records none (an older backup)."""
    try:
        rows = dict(conn.execute(f"SELECT key, value FROM main.{IDENTITY_TABLE}").fetchall())
    except sqlite3.OperationalError:
        return None
    try:
        plugins = tuple(str(p) for p in json.loads(rows.get("plugins", "[]")))
        version = rows.get("schema_version")
        return FileIdentity(str(rows["role"]), str(rows["path"]), plugins,
                            int(version) if version not in (None, "None") else None)
    except (KeyError, ValueError, TypeError):
        return None


def strip_identity(conn: sqlite3.Connection) -> None:
    """Drop the identity table from a file just restored: what is put back is the source as it was."""
    conn.execute(f"DROP TABLE IF EXISTS main.{IDENTITY_TABLE}")
