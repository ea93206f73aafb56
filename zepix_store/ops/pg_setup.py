"""Prepare the PostgreSQL server for the store (`pg-setup`): schemas, tables, one role per plugin, row-level security.

The work is backend/postgresql's (ddl.ensure_schemas through roles.setup_isolation, one transaction, idempotent);
this module decides what to run, reports per schema and per plugin whether it was created or already there, and
tells a run that changed something from one that found everything in place: a fingerprint of the store's
catalog entries (schemas, tables, owners, row-level security, policies, privileges, roles, memberships, the
registry) is taken before and after. A dry run connects with every transaction read-only and only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..backend.postgresql import require_driver
from ..backend.postgresql.connection import connect, public_dsn, role_dsn, translate_pg_error
from ..backend.postgresql.names import (
    ISOLATED,
    PLUGIN_ROLES_TABLE,
    SHARED,
    Layout,
    isolated_schema_base,
    layout_of,
    name_candidates,
    read_registry,
    role_base,
    shared_schema,
)
from ..backend.postgresql.roles import setup_isolation
from ..config import STORE_FILE, PostgresConfig, StoreConfig
from ..errors import ConfigError

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.rows import TupleRow

__all__ = ["PgSetupReport", "PluginSetup", "SchemaSetup", "pg_setup", "postgres_config"]

CREATED, EXISTS, TO_CREATE = "created", "exists", "to create"

# Every catalog entry of the store (names beginning with the prefix), as text rows to compare before and after.
_FINGERPRINT = """
SELECT 'schema', nspname::text, pg_get_userbyid(nspowner)::text, coalesce(nspacl::text, '')
  FROM pg_namespace WHERE starts_with(nspname::text, %(p)s)
UNION ALL
SELECT 'relation', n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner)::text,
       concat_ws(' ', c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relacl::text)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE starts_with(n.nspname::text, %(p)s)
UNION ALL
SELECT 'policy', schemaname || '.' || tablename || '.' || policyname, array_to_string(roles, ','),
       concat_ws(' ', permissive, cmd, qual, with_check)
  FROM pg_policies WHERE starts_with(schemaname::text, %(p)s)
UNION ALL
SELECT 'role', rolname::text, '',
       concat_ws(' ', rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication, rolcanlogin, rolinherit)
  FROM pg_roles WHERE starts_with(rolname::text, %(p)s)
UNION ALL
SELECT 'member', r.rolname || ' in ' || g.rolname, '', ''
  FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid
 WHERE starts_with(r.rolname::text, %(p)s) OR starts_with(g.rolname::text, %(p)s)
ORDER BY 1, 2
"""


@dataclass(frozen=True, slots=True)
class SchemaSetup:
    """One schema of the store: the file it stands for and whether this run created it."""

    schema: str
    file: str
    kind: str  # shared or isolated
    state: str  # created, exists, or (dry run) to create


@dataclass(frozen=True, slots=True)
class PluginSetup:
    """One plugin's login role, the schemas it may use and the DSN its bot connects with (no password)."""

    plugin_id: str
    role: str
    schemas: tuple[str, ...]
    dsn: str
    state: str


@dataclass(frozen=True, slots=True)
class PgSetupReport:
    dsn: str  # the store's own DSN, without a password
    schema_prefix: str
    dry_run: bool
    changed: bool
    schemas: tuple[SchemaSetup, ...]
    plugins: tuple[PluginSetup, ...]

    def to_json(self) -> dict[str, Any]:
        return {"command": "pg-setup", "dry_run": self.dry_run, "changed": self.changed, "dsn": self.dsn,
                "schema_prefix": self.schema_prefix,
                "schemas": [{"schema": s.schema, "file": s.file, "kind": s.kind, "state": s.state}
                            for s in self.schemas],
                "plugins": [{"plugin_id": p.plugin_id, "role": p.role, "schemas": list(p.schemas), "dsn": p.dsn,
                             "state": p.state} for p in self.plugins]}


def postgres_config(config: StoreConfig) -> PostgresConfig:
    """The `postgresql` block of a store on PostgreSQL, or the ConfigError saying store.yaml must choose it."""
    if config.backend != "postgresql" or config.postgresql is None:
        raise ConfigError(f"{config.config_dir / STORE_FILE}: backend: is {config.backend}; pg-setup prepares a "
                          "PostgreSQL server: set backend: postgresql and postgresql: {dsn: ...} first")
    return config.postgresql


def pg_setup(config: StoreConfig, *, dry_run: bool = False) -> PgSetupReport:
    """Create (or, with `dry_run`, plan) the store's schemas, tables, roles, policies and grants; idempotent.

    Raises:
        ConfigError: store.yaml does not choose PostgreSQL, psycopg is missing, or the server refuses the DSN's
            user (login, rights) or a role name belongs to another store.
        StoreUnavailableError: the server cannot be reached or the connection was lost (nothing half-made:
            the setup is one transaction).
    """
    pg = postgres_config(config)
    require_driver()
    import psycopg

    layout = layout_of(config, pg.schema_prefix)
    with connect(pg, read_only=dry_run) as conn:
        try:
            if dry_run:
                conn.execute("SET default_transaction_read_only = on")
            before = _fingerprint(conn, layout.prefix)
            schemas_before = {name for kind, name, *_ in before if kind == "schema"}
            roles_before = {name for kind, name, *_ in before if kind == "role"}
            if dry_run:
                names, roles = _planned_names(conn, layout, schemas_before)
                after = before
            else:
                made = setup_isolation(conn, layout)
                recorded = {r.file_name: r.schema for r in read_registry(conn, layout.prefix).values()}
                names = {f: recorded[f] for f in [layout.shared_file, *layout.isolated_files]}
                roles = {r.plugin_id: (r.role, r.schemas) for r in made}
                after = _fingerprint(conn, layout.prefix)
        except psycopg.Error as exc:
            raise translate_pg_error(exc, pg) from None
    new = TO_CREATE if dry_run else CREATED
    schemas = tuple(SchemaSetup(schema, file, SHARED if file == layout.shared_file else ISOLATED,
                                EXISTS if schema in schemas_before else new) for file, schema in names.items())
    plugins = tuple(PluginSetup(pid, role, tuple(allowed), role_dsn(pg.dsn, role),
                                EXISTS if role in roles_before else new)
                    for pid, (role, allowed) in sorted(roles.items()))
    return PgSetupReport(public_dsn(pg.dsn), layout.prefix, dry_run, before != after, schemas, plugins)


def _fingerprint(conn: Connection[TupleRow], prefix: str) -> list[tuple[str, ...]]:
    from psycopg import sql

    rows = [tuple(str(v) for v in row) for row in conn.execute(_FINGERPRINT, {"p": prefix}).fetchall()]
    registry = read_registry(conn, prefix)
    rows += [("registry", r.schema, r.file_name, f"{r.kind} {r.version}") for r in registry.values()]
    if _has_table(conn, shared_schema(prefix), PLUGIN_ROLES_TABLE):
        table = sql.Identifier(shared_schema(prefix), PLUGIN_ROLES_TABLE)
        rows += [("plugin role", str(r), str(p), "") for r, p in conn.execute(
            sql.SQL("SELECT role_name::text, plugin_id FROM {}").format(table)).fetchall()]
    return sorted(rows)  # the registry's rows come in storage order, which an unchanged upsert moves


def _has_table(conn: Connection[TupleRow], schema: str, table: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
                        [schema, table]).fetchone() is not None


Planned = dict[str, tuple[str, tuple[str, ...]]]  # plugin id -> (role, schemas it may use)


def _planned_names(conn: Connection[TupleRow], layout: Layout, schemas: set[str]) -> tuple[dict[str, str], Planned]:
    """The names a run would give, read without writing: recorded ones kept, new ones as names.py would fit them.

    (A role name taken by another store is not flagged here: the real run refuses it, naming it.)
    """
    from psycopg import sql

    shared = shared_schema(layout.prefix)
    recorded = {r.file_name: r.schema for r in read_registry(conn, layout.prefix).values()}
    taken = set(recorded.values()) | schemas | {shared}
    names = {layout.shared_file: shared}
    for file_name in layout.isolated_files:
        if file_name not in recorded:
            base = isolated_schema_base(layout.prefix, file_name)
            recorded[file_name] = next(n for n in name_candidates(base, file_name) if n not in taken)
            taken.add(recorded[file_name])
        names[file_name] = recorded[file_name]
    known: dict[str, str] = {}
    if _has_table(conn, shared, PLUGIN_ROLES_TABLE):
        known = {str(p): str(r) for r, p in conn.execute(sql.SQL("SELECT role_name::text, plugin_id FROM {}").format(
            sql.Identifier(shared, PLUGIN_ROLES_TABLE))).fetchall()}
    taken_roles = set(known.values())
    planned: Planned = {}
    for plugin_id in sorted(layout.plugin_files):
        role = known.get(plugin_id) or next(
            n for n in name_candidates(role_base(layout.prefix, plugin_id), plugin_id) if n not in taken_roles)
        taken_roles.add(role)
        own = layout.plugin_files[plugin_id]
        planned[plugin_id] = (role, (shared, names[own]) if own else (shared,))
    return names, planned
