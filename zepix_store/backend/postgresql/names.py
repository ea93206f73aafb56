"""Schema and role names on the server (SPEC 9 "Layout"), derived within 63 bytes and recorded.

The shared file is the schema `<prefix>shared`; each isolated file gets a schema named from its file name
(`data/zepix_v3_logic_combined.db` -> `zx_v3_logic_combined`). PostgreSQL cuts a longer identifier to 63 bytes
with only a NOTICE, so two long names could silently become one: a name that does not fit is cut here and given
a short hash of the full file name, and the registry table `<prefix>shared.zx_registry` records which file owns
which schema, so a second file that would get a taken name gets another one, and a name once given never changes.
Role names (`<prefix>p_<plugin id>`) follow the same rule; they are per server, not per database, so two stores
on one server need two prefixes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ...config import StoreConfig
from ...errors import ConfigError, SchemaError
from . import require_driver

if TYPE_CHECKING:
    from psycopg import Connection, Cursor, sql
    from psycopg.rows import Row, TupleRow

__all__ = [
    "DEFAULT_PREFIX",
    "ISOLATED",
    "Layout",
    "MAX_NAME_BYTES",
    "PLUGIN_ROLES_TABLE",
    "REGISTRY_TABLE",
    "RegisteredSchema",
    "SHARED",
    "check_prefix",
    "find_plugin_role",
    "fit_name",
    "isolated_schema_base",
    "layout_of",
    "name_candidates",
    "read_registry",
    "register_schemas",
    "role_base",
    "shared_schema",
    "store_lock_key",
]

MAX_NAME_BYTES = 63  # NAMEDATALEN - 1
DEFAULT_PREFIX = "zx_"
SHARED, ISOLATED = "shared", "isolated"
REGISTRY_TABLE = "zx_registry"
PLUGIN_ROLES_TABLE = "zx_plugin_roles"
_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,19}\Z")
_HASH_LENGTHS = (8, 12, 16, 24, 32)


def check_prefix(prefix: str) -> str:
    """The `schema_prefix` of store.yaml, or a ConfigError: short, lowercase, not PostgreSQL's reserved `pg_`."""
    if not _PREFIX.match(prefix) or prefix.startswith("pg_"):
        raise ConfigError(f"postgresql.schema_prefix: {prefix!r} must match [a-z][a-z0-9_]{{0,19}} and not start "
                          "with pg_")
    return prefix


def shared_schema(prefix: str) -> str:
    return f"{prefix}shared"


def isolated_schema_base(prefix: str, file_name: str) -> str:
    """The schema name an isolated file asks for, before fitting: its stem without `zepix_`, in [a-z0-9_]."""
    stem = PurePosixPath(file_name).name
    stem = stem.rsplit(".", 1)[0] if "." in stem.lstrip(".") else stem
    stem = re.sub(r"[^a-z0-9_]", "_", stem.lower().removeprefix("zepix_"))
    return prefix + (stem or "file")


def role_base(prefix: str, plugin_id: str) -> str:
    """The role name a plugin asks for, before fitting (the id kept as it is: roles are quoted identifiers)."""
    return f"{prefix}p_{plugin_id}"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def fit_name(base: str, key: str, hash_length: int = 8) -> str:
    """`base` cut to leave room for `_<hash of key>`, so the result is at most MAX_NAME_BYTES bytes."""
    keep = MAX_NAME_BYTES - hash_length - 1
    cut = base.encode("utf-8")[:keep].decode("utf-8", "ignore")
    return f"{cut}_{_digest(key)[:hash_length]}"


def name_candidates(base: str, key: str) -> Iterator[str]:
    """The names to try in order: `base` itself when it fits, then `base` with ever longer hashes of `key`."""
    if len(base.encode("utf-8")) <= MAX_NAME_BYTES:
        yield base
    for length in _HASH_LENGTHS:
        yield fit_name(base, key, length)


def _first_free(base: str, key: str, taken: set[str]) -> str:
    for name in name_candidates(base, key):
        if name not in taken:
            return name
    raise SchemaError(f"no free name for {key!r}: every candidate from {base!r} is taken")


@dataclass(frozen=True, slots=True)
class Layout:
    """Which schemas a store needs: the shared file and each plugin's isolated file (relative to data_dir)."""

    prefix: str
    shared_file: str
    plugin_files: Mapping[str, str | None] = field(default_factory=dict)  # plugin id -> its isolated file

    @property
    def isolated_files(self) -> list[str]:
        return sorted({f for f in self.plugin_files.values() if f is not None})


def layout_of(config: StoreConfig, prefix: str = DEFAULT_PREFIX) -> Layout:
    """The Layout of a loaded store config: files named relative to its data_dir, as the registry records them."""

    def relative(path: Path) -> str:
        return path.resolve().relative_to(config.data_dir.resolve()).as_posix()

    files = {pid: (relative(p.isolated_db) if p.isolated_db else None) for pid, p in config.plugins.items()}
    return Layout(check_prefix(prefix), relative(config.shared_db), files)


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    schema: str
    kind: str
    file_name: str
    version: int


def _sql_registry(prefix: str) -> tuple[sql.Identifier, sql.Identifier]:
    require_driver()
    from psycopg import sql

    return sql.Identifier(shared_schema(prefix)), sql.Identifier(shared_schema(prefix), REGISTRY_TABLE)


def read_registry(conn: Connection[Row], prefix: str) -> dict[str, RegisteredSchema]:
    """The registry by file name; empty when the store was never created in this database."""
    _, table = _sql_registry(prefix)
    from psycopg import sql
    from psycopg.rows import tuple_row

    cur = conn.cursor(row_factory=tuple_row)  # the caller's row factory may be any
    if cur.execute("SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
                   [shared_schema(prefix), REGISTRY_TABLE]).fetchone() is None:
        return {}
    rows = cur.execute(sql.SQL("SELECT schema_name, kind, file_name, schema_version FROM {}").format(table))
    return {str(f): RegisteredSchema(str(s), str(k), str(f), int(str(v))) for s, k, f, v in rows.fetchall()}


def register_schemas(conn: Connection[Row], layout: Layout) -> dict[str, str]:
    """Give every file of `layout` its schema name, recording new ones; returns file name -> schema name.

    One transaction under an advisory lock, so two processes opening one store at once agree on the names.
    A taken name is one in the registry or any schema already in the database.
    """
    schema, table = _sql_registry(check_prefix(layout.prefix))
    from psycopg import sql
    from psycopg.rows import tuple_row

    shared = shared_schema(layout.prefix)
    cur = conn.cursor(row_factory=tuple_row)  # the caller's row factory may be any
    with conn.transaction():
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [store_lock_key(layout.prefix)])
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        cur.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (schema_name text PRIMARY KEY, kind text NOT NULL CHECK (kind IN "
            "('shared', 'isolated')), file_name text NOT NULL UNIQUE, schema_version bigint NOT NULL DEFAULT 0)"
        ).format(table))
        known = read_registry(conn, layout.prefix)
        names = {r.file_name: r.schema for r in known.values()}
        taken = {r.schema for r in known.values()} | {str(n) for (n,) in cur.execute(
            "SELECT nspname::text FROM pg_namespace").fetchall()}
        _register_shared(cur, table, known, layout.shared_file, shared)
        names[layout.shared_file] = shared
        for file_name in layout.isolated_files:
            if file_name == layout.shared_file:
                raise ConfigError(f"{file_name}: named as an isolated file and as the shared file")
            if file_name in names:
                continue
            name = _first_free(isolated_schema_base(layout.prefix, file_name), file_name, taken | {shared})
            cur.execute(sql.SQL("INSERT INTO {} (schema_name, kind, file_name) VALUES (%s, %s, %s)").format(table),
                         [name, ISOLATED, file_name])
            names[file_name] = name
            taken.add(name)
    return {f: names[f] for f in [layout.shared_file, *layout.isolated_files]}


def _register_shared(cur: Cursor[TupleRow], table: sql.Identifier,
                     known: Mapping[str, RegisteredSchema], shared_file: str, shared: str) -> None:
    """Record the shared schema under the shared file's current name (store.yaml may rename the file)."""
    from psycopg import sql

    for record in known.values():
        if record.schema != shared and record.file_name == shared_file:
            raise ConfigError(f"{shared_file}: recorded as the isolated file of schema {record.schema}, now named "
                              "as the shared file")
    cur.execute(sql.SQL(
        "INSERT INTO {} (schema_name, kind, file_name) VALUES (%s, %s, %s) "
        "ON CONFLICT (schema_name) DO UPDATE SET file_name = excluded.file_name"
    ).format(table), [shared, SHARED, shared_file])


def store_lock_key(prefix: str) -> int:
    """The advisory lock key that serialises creating one store's names, schemas and roles (one per prefix).

    Transaction-level advisory locks stack within a session, so nested steps take it again freely.
    """
    return int.from_bytes(hashlib.sha256(f"zepix_store:{prefix}".encode()).digest()[:8], "big", signed=True)


def find_plugin_role(conn: Connection[Row], prefix: str, plugin_id: str) -> str | None:
    """The login role pg-setup made for `plugin_id` (one the connecting user may take), or None before it ran.

    The role table's row, else (its rows are hidden from a user that is not a superuser) the first name of the
    naming rule that exists and that the user is a member of.
    """
    require_driver()
    from psycopg import sql
    from psycopg.rows import tuple_row

    cur = conn.cursor(row_factory=tuple_row)  # the caller's row factory may be any
    table = sql.Identifier(shared_schema(prefix), PLUGIN_ROLES_TABLE)
    if cur.execute("SELECT to_regclass(%s)", [table.as_string(conn)]).fetchone() in (None, (None,)):
        return None
    found = cur.execute(sql.SQL(
        "SELECT coalesce((SELECT role_name::text FROM {} WHERE plugin_id = %s), (SELECT r.rolname::text "
        "FROM unnest(%s::text[]) WITH ORDINALITY c(name, i) JOIN pg_roles r ON r.rolname = c.name "
        "WHERE pg_has_role(current_user, r.oid, 'MEMBER') ORDER BY c.i LIMIT 1))").format(table),
        [plugin_id, list(name_candidates(role_base(prefix, plugin_id), plugin_id))]).fetchone()
    return str(found[0]) if found and found[0] is not None else None
