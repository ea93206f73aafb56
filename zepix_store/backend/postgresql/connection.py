"""Connecting to the server named by store.yaml, DSNs safe to print, and psycopg's errors as the store's own.

A DSN is only ever shown without its password (one from a `dsn_env` variable may carry one). A server that cannot
be reached, or a connection lost on the way, is StoreUnavailableError (exit 7); a server that refuses who we are
(authentication, an unknown database or role) or what we ask (a missing privilege) is a ConfigError (exit 2): the
DSN or the server's setup needs fixing, not a retry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...config import PostgresConfig
from ...errors import ConfigError, StoreError, StoreUnavailableError
from . import require_driver

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.rows import TupleRow

__all__ = ["connect", "public_dsn", "role_dsn", "translate_pg_error"]

_ORDER = ("host", "hostaddr", "port", "dbname", "user")
CONNECT_TIMEOUT = 10  # seconds: an unreachable host is reported, not waited on for the OS's minutes
# libpq's words for a server that refuses the DSN itself: fix the DSN, do not retry
_REFUSED_LOGIN = ("authentication failed", "no password supplied", "does not exist", "not permitted to log in",
                  "no pg_hba.conf entry", "password is required", "peer authentication")


def public_dsn(dsn: str, **changes: str) -> str:
    """`dsn` as key=value pairs with `changes` applied and no password, fit to print."""
    require_driver()
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    parts = {k: v for k, v in conninfo_to_dict(dsn).items() if k != "password" and v is not None}
    parts.update(changes)
    first = [k for k in _ORDER if k in parts]  # the order people write a DSN in
    return make_conninfo("", **{k: parts[k] for k in [*first, *sorted(set(parts) - set(first))]})


def role_dsn(dsn: str, role: str) -> str:
    """The DSN a plugin's bot connects with: the store's DSN as `role`, no password (PGPASSWORD or ~/.pgpass)."""
    return public_dsn(dsn, user=role)


def connect(config: PostgresConfig, *, read_only: bool = False) -> Connection[TupleRow]:
    """An autocommit connection to the store's server (each step opens its own transaction).

    Raises:
        ConfigError: psycopg is missing, or the server refuses the DSN (login, database, role).
        StoreUnavailableError: the server cannot be reached.
    """
    require_driver()
    import psycopg

    try:
        conn = psycopg.connect(config.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.Error as exc:
        raise translate_pg_error(exc, config, connecting=True) from None
    if read_only:
        conn.read_only = True
    return conn


def translate_pg_error(exc: BaseException, config: PostgresConfig, *, connecting: bool = False) -> StoreError:
    """The store's typed error for a psycopg error, naming the server (never the password)."""
    require_driver()
    import psycopg
    from psycopg import errors

    text = " ".join(str(exc).split()) or type(exc).__name__
    where = f"postgresql {public_dsn(config.dsn)} ({config.source})"
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, errors.InsufficientPrivilege):
        return ConfigError(f"{where}: the DSN's user lacks a right this needs ({text}): connect as a user with "
                           "CREATEROLE that may own the store's schemas (or a superuser)")
    if connecting and isinstance(exc, psycopg.OperationalError) and any(w in text for w in _REFUSED_LOGIN):
        return ConfigError(f"{where}: the server refused the login: {text}")
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        verb = "cannot reach the server" if connecting else "lost the connection to the server"
        return StoreUnavailableError(f"{where}: {verb}: {text}")
    return StoreError(f"{where}: {text}")
