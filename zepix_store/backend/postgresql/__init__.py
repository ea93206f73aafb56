"""The store on a PostgreSQL server (SPEC 9), driven by psycopg 3: names.py (schema and role names, the registry),
ddl.py (the tables), values.py (lossless values), roles.py (pg-setup's isolation), connection.py (connecting, errors),
operations.py (the SQL spellings and the connection queries/ runs on), store.py (the backend: pool, schemas, roles).

psycopg is an optional extra: nothing imports it until a PostgreSQL function runs, and then require_driver()
turns its absence into a ConfigError that says how to install it.
"""

from __future__ import annotations

from ...errors import ConfigError

__all__ = ["INSTALL_HINT", "require_driver"]

INSTALL_HINT = "pip install 'zepix-store[postgresql]'"


def require_driver() -> None:
    """Import psycopg, or raise the ConfigError naming the extra that installs it."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"backend postgresql: the psycopg driver is not installed ({INSTALL_HINT})") from exc
