"""Isolation the server enforces (SPEC 9): a login role per plugin, row-level security, grants. `pg-setup`'s SQL.

- Each plugin gets a LOGIN role `<prefix>p_<id>` that is a member of nothing, so `SET ROLE` to another plugin is
  refused; the store's own user is made a member of each plugin role (never the reverse) to run a plugin's
  calls under it.
- The tables belong to a NOLOGIN owner role `<prefix>owner`, so no plugin role ever owns a table (an owner could
  turn row-level security off).
- Every store table has ENABLE and FORCE ROW LEVEL SECURITY and one policy: a row is visible and writable when
  its plugin_id is the one `<prefix>shared.zx_plugin_roles` maps the current user to. The lookup is a subquery,
  evaluated once per statement, so `plugin_id = $0` stays an index condition; a policy on a session setting would
  be no boundary (the plugin can SET it) and one on current_user alone is no index condition.
- Privileges: every plugin role may use the shared tables (its rows only, by the policy) and the tables of the
  schema of the isolated file its config names; others' isolated schemas stay closed to it. A plugin that
  shares its isolated file with others shares the schema, and the policy keeps their rows apart there too.

All of it is idempotent and runs in one transaction: run it again after adding a plugin or changing a file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import ConfigError
from ...schema import TABLES
from . import require_driver
from .ddl import ensure_schemas
from .names import (
    PLUGIN_ROLES_TABLE,
    REGISTRY_TABLE,
    Layout,
    name_candidates,
    role_base,
    shared_schema,
    store_lock_key,
)

if TYPE_CHECKING:
    from psycopg import Connection, Cursor, sql
    from psycopg.rows import Row, TupleRow

__all__ = ["POLICY", "PluginRole", "owner_role", "setup_isolation"]

POLICY = "zx_plugin_rows"
_TABLE_RIGHTS = "SELECT, INSERT, UPDATE, DELETE"


@dataclass(frozen=True, slots=True)
class PluginRole:
    """A plugin's login role and the schemas it may use."""

    plugin_id: str
    role: str
    schemas: tuple[str, ...]


def owner_role(prefix: str) -> str:
    return f"{prefix}owner"


def setup_isolation(conn: Connection[Row], layout: Layout) -> list[PluginRole]:
    """Create the schemas, one role per plugin, row-level security and grants (`pg-setup`); idempotent.

    The connecting user needs the right to create roles and to own the store's tables (a superuser, or
    CREATEROLE with membership in the owner role); it becomes a member of every plugin role.

    Raises:
        ConfigError: a plugin's role name belongs to a role this store did not create (another store on the same
            server with the same schema_prefix: give one of them another prefix).
    """
    require_driver()
    from psycopg.rows import tuple_row

    cur = conn.cursor(row_factory=tuple_row)  # the caller's row factory may be any
    with conn.transaction():
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [store_lock_key(layout.prefix)])
        names = ensure_schemas(conn, layout)
        shared = shared_schema(layout.prefix)
        owner = owner_role(layout.prefix)
        _ensure_role(cur, owner, login=False)
        _grant_membership(cur, owner)
        _ensure_role_table(cur, shared, owner)
        roles = _ensure_plugin_roles(cur, layout, names)
        for schema in names.values():
            _protect(cur, schema, shared, owner)
        _grant(cur, names, roles, shared)
    return roles



def _exists(cur: Cursor[TupleRow], role: str) -> bool:
    return cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is not None


def _ensure_role(cur: Cursor[TupleRow], role: str, *, login: bool) -> None:
    from psycopg import sql

    if not _exists(cur, role):
        cur.execute(sql.SQL("CREATE ROLE {} " + ("LOGIN" if login else "NOLOGIN")).format(sql.Identifier(role)))
    dangerous = cur.execute(
        "SELECT rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication OR rolcanlogin <> %s "
        "FROM pg_roles WHERE rolname = %s", [login, role]).fetchone()
    if dangerous and dangerous[0]:
        cur.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION "
                             + ("LOGIN" if login else "NOLOGIN")).format(sql.Identifier(role)))
    # a member of another role could SET ROLE to it: a plugin role belongs to nothing
    for (group,) in cur.execute("SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                                 "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s", [role]).fetchall():
        cur.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(str(group)), sql.Identifier(role)))


def _grant_membership(cur: Cursor[TupleRow], role: str) -> None:
    """Make the connecting user a member of `role` (to own tables as it, or SET ROLE to a plugin)."""
    from psycopg import sql

    if cur.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')", [role]).fetchone() != (True,):
        cur.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))


def _ensure_role_table(cur: Cursor[TupleRow], shared: str, owner: str) -> None:
    from psycopg import sql

    table = sql.Identifier(shared, PLUGIN_ROLES_TABLE)
    cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (role_name name PRIMARY KEY, plugin_id text NOT NULL "
                         "UNIQUE)").format(table))
    cur.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(table, sql.Identifier(owner)))
    # each role may read its own mapping only: no plugin can list the others
    cur.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))
    cur.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(table))
    cur.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(POLICY), table))
    cur.execute(sql.SQL("CREATE POLICY {} ON {} FOR SELECT USING (role_name = current_user)").format(
        sql.Identifier(POLICY), table))
    registry = sql.Identifier(shared, REGISTRY_TABLE)
    cur.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(registry, sql.Identifier(owner)))


def _role_names(cur: Cursor[TupleRow], layout: Layout, table: sql.Identifier) -> dict[str, str]:
    """plugin id -> role name: recorded ones kept, new ones fitted within 63 bytes and checked for clashes."""
    from psycopg import sql

    recorded = {str(p): str(r) for r, p in cur.execute(
        sql.SQL("SELECT role_name::text, plugin_id FROM {}").format(table)).fetchall()}
    taken = set(recorded.values())
    roles: dict[str, str] = {}
    for plugin_id in sorted(layout.plugin_files):
        if plugin_id in recorded:
            roles[plugin_id] = recorded[plugin_id]
            continue
        role = next(n for n in name_candidates(role_base(layout.prefix, plugin_id), plugin_id) if n not in taken)
        if _exists(cur, role):
            raise ConfigError(f"plugin {plugin_id}: role {role} already exists on the server and is not this "
                              "store's (another store with the same postgresql.schema_prefix?): choose another "
                              "schema_prefix", plugin=plugin_id)
        roles[plugin_id] = role
        taken.add(role)
    return roles


def _ensure_plugin_roles(cur: Cursor[TupleRow], layout: Layout, names: dict[str, str]) -> list[PluginRole]:
    from psycopg import sql

    shared = shared_schema(layout.prefix)
    table = sql.Identifier(shared, PLUGIN_ROLES_TABLE)
    result = []
    for plugin_id, role in _role_names(cur, layout, table).items():
        _ensure_role(cur, role, login=True)
        _grant_membership(cur, role)
        cur.execute(sql.SQL("INSERT INTO {} (role_name, plugin_id) VALUES (%s, %s) ON CONFLICT DO NOTHING").format(
            table), [role, plugin_id])
        own = layout.plugin_files[plugin_id]
        result.append(PluginRole(plugin_id, role, (shared, names[own]) if own else (shared,)))
    gone = cur.execute(sql.SQL("SELECT role_name::text FROM {} WHERE NOT plugin_id = ANY(%s)").format(table),
                        [list(layout.plugin_files)]).fetchall()
    for (role,) in gone:  # a plugin no longer configured: its role stays recorded but can no longer log in
        cur.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(str(role))))
    return result


def _protect(cur: Cursor[TupleRow], schema: str, shared: str, owner: str) -> None:
    """Hand `schema` and its tables to the owner role, with forced row-level security on every table."""
    from psycopg import sql

    who = sql.Identifier(owner)
    cur.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema), who))
    cur.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))
    mine = sql.SQL("plugin_id = (SELECT r.plugin_id FROM {} r WHERE r.role_name = current_user)").format(
        sql.Identifier(shared, PLUGIN_ROLES_TABLE))
    for table in TABLES:
        name = sql.Identifier(schema, table.name)
        cur.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(name, who))
        cur.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(name))
        cur.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(name))
        cur.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(POLICY), name))
        cur.execute(sql.SQL("CREATE POLICY {} ON {} USING ({}) WITH CHECK ({})").format(
            sql.Identifier(POLICY), name, mine, mine))


def _grant(cur: Cursor[TupleRow], names: dict[str, str], roles: Iterable[PluginRole], shared: str) -> None:
    """Each role: the shared schema and its own isolated schema; every other isolated schema revoked."""
    from psycopg import sql

    for role in roles:
        who = sql.Identifier(role.role)
        cur.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(shared, PLUGIN_ROLES_TABLE), who))
        for schema in names.values():
            allowed = schema in role.schemas
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}" if allowed else
                                  "REVOKE ALL ON SCHEMA {} FROM {}").format(sql.Identifier(schema), who))
            tables = sql.SQL(", ").join(sql.Identifier(schema, t.name) for t in TABLES)
            cur.execute(sql.SQL(f"GRANT {_TABLE_RIGHTS} ON {{}} TO {{}}" if allowed else
                                 "REVOKE ALL ON {} FROM {}").format(tables, who))
