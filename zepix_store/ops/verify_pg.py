"""verify on a store whose store.yaml names PostgreSQL: the checks the server makes possible (SPEC 9), read-only.

The server answers, each schema of the layout is at the version this zepix_store writes, pg-setup has given
every configured plugin its role (else the server does not enforce isolation yet: a warning, as a store on the
server works without it), and each plugin's route names the schema it maps to. Nothing is created or upgraded:
a schema not made yet is a warning (the store makes it at first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..backend.postgresql import require_driver
from ..backend.postgresql.connection import connect, public_dsn, translate_pg_error
from ..backend.postgresql.ddl import PG_SCHEMA_VERSION
from ..backend.postgresql.names import (
    RegisteredSchema,
    find_plugin_role,
    isolated_schema_base,
    layout_of,
    read_registry,
    shared_schema,
)
from ..config import STORE_FILE, StoreConfig
from ..errors import ConfigError
from ..progress import NO_PROGRESS, ProgressSink
from ..words import count
from .verify import FAIL, OK, WARN, VerifyReport, listed

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.rows import TupleRow

__all__ = ["NOT_ENFORCED", "verify_pg"]

NOT_ENFORCED = "the server does not enforce isolation yet: run `zepix-store pg-setup`"


def verify_pg(config: StoreConfig, progress: ProgressSink = NO_PROGRESS) -> VerifyReport:
    """Run the server's checks read-only; the report lists each one (never raises for a failed check).

    Raises:
        ConfigError: store.yaml has no `postgresql` block, psycopg is missing, or the server refuses the login.
        StoreUnavailableError: the server cannot be reached (or the connection was lost while checking).
    """
    pg = config.postgresql
    if pg is None:
        raise ConfigError(f"{config.config_dir / STORE_FILE}: backend: postgresql needs a postgresql block")
    require_driver()
    import psycopg

    layout = layout_of(config, pg.schema_prefix)
    report = VerifyReport(progress=progress)
    progress.start("verify", 2 + len(layout.isolated_files) + 1 + len(config.plugins) + len(config.disabled),
                   "checks")
    try:
        with connect(pg, read_only=True) as conn:
            try:
                version = conn.execute("SHOW server_version").fetchone()
                report.add("server", OK, f"{public_dsn(pg.dsn)}: PostgreSQL {version[0] if version else '?'}")
                schemas = _check_schemas(conn, config, report)
                _check_isolation(conn, config, report)
            except psycopg.Error as exc:
                raise translate_pg_error(exc, pg) from None
        _check_configs(config, schemas, report)
    finally:
        progress.done()
    return report


def _check_schemas(conn: Connection[TupleRow], config: StoreConfig, report: VerifyReport) -> dict[str, str]:
    """`schema:<name>` per file of the layout, at the current version; returns file name -> schema name."""
    prefix = config.postgresql.schema_prefix if config.postgresql else ""
    layout = layout_of(config, prefix)
    registry = read_registry(conn, prefix)
    present = {str(n) for (n,) in conn.execute("SELECT nspname::text FROM pg_namespace").fetchall()}
    names: dict[str, str] = {}
    for file_name in [layout.shared_file, *layout.isolated_files]:
        record: RegisteredSchema | None = registry.get(file_name)
        shared = file_name == layout.shared_file
        schema = record.schema if record else (shared_schema(prefix) if shared else
                                               isolated_schema_base(prefix, file_name))
        names[file_name] = schema
        if record is None or record.version == 0:
            report.add(f"schema:{schema}", WARN, f"{file_name}: not created yet: the store creates it at first "
                       "use or run pg-setup")
        elif record.version > PG_SCHEMA_VERSION:
            report.add(f"schema:{schema}", FAIL, f"{file_name}: version {record.version}, newer than this "
                       f"zepix_store knows ({PG_SCHEMA_VERSION}): upgrade zepix_store")
        elif schema not in present:
            report.add(f"schema:{schema}", FAIL, f"{file_name}: recorded at version {record.version}, but the "
                       "schema is missing from the server")
        elif record.version < PG_SCHEMA_VERSION:
            report.add(f"schema:{schema}", WARN, f"{file_name}: version {record.version}: the store upgrades it "
                       f"to {PG_SCHEMA_VERSION} at first use")
        else:
            report.add(f"schema:{schema}", OK, f"{file_name}: version {record.version}")
    return names


def _check_isolation(conn: Connection[TupleRow], config: StoreConfig, report: VerifyReport) -> None:
    """`isolation`: every configured plugin has the login role pg-setup records for it."""
    prefix = config.postgresql.schema_prefix if config.postgresql else ""
    found = {pid: find_plugin_role(conn, prefix, pid) for pid in config.plugins}  # as the store finds it
    roles = {pid: role for pid, role in found.items() if role is not None}
    missing = sorted(p for p in config.plugins if p not in roles)
    if missing:
        report.add("isolation", WARN, f"{NOT_ENFORCED} (no role for {count(len(missing), 'plugin')}: "
                   f"{listed(missing, ', ')})")
    else:
        report.add("isolation", OK, "each plugin its own role: "
                   + listed([roles[p] for p in sorted(config.plugins)], ", "))


def _check_configs(config: StoreConfig, schemas: dict[str, str], report: VerifyReport) -> None:
    """`config:<plugin>`: the schema each plugin's route maps to; a plugin left out for its config fails."""
    for name, problem in sorted(config.disabled.items()):
        report.add(f"config:{name}", FAIL, f"left out: {problem}")
    for pid, plugin in sorted(config.plugins.items()):
        file_name = plugin.db_path.resolve().relative_to(config.data_dir.resolve()).as_posix()
        kind = "the shared schema" if plugin.db_path == config.shared_db else "isolated in schema"
        report.add(f"config:{pid}", OK, f"{kind} {schemas.get(file_name, '?')} ({file_name})")
