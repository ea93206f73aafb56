"""store.yaml's `backend` and `postgresql` block: which backend holds the store, and how to reach the server.

    backend: postgresql            # or sqlite (the default: nothing changes for a file without these keys)
    postgresql:
      dsn: host=db1 port=5432 dbname=zepix user=zepix   # or a URI; never a password
      schema_prefix: zx_           # optional, default zx_
      # dsn_env: ZEPIX_PG_DSN      # instead of dsn: the environment variable that holds the whole DSN

A password never stands in the file: it comes from PGPASSWORD, ~/.pgpass, or the DSN in the `dsn_env` variable,
so a DSN in the file that holds one is refused. The DSN is parsed with psycopg's own parser (libpq's rules), so a
password hidden in a URI's user part or query string is found as surely as `password=...`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zepix_store._config_io import _describe, _error, _key, _show
from zepix_store.errors import ConfigError

__all__ = ["BACKENDS", "DEFAULT_SCHEMA_PREFIX", "PostgresConfig", "SCHEMA_PREFIX_PATTERN", "backend_of"]

BACKENDS = ("sqlite", "postgresql")
DEFAULT_SCHEMA_PREFIX = "zx_"
# short enough that `<prefix>p_<plugin id>` keeps most of the id within PostgreSQL's 63 bytes; lowercase so the
# names need no quoting in hand-written SQL
SCHEMA_PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,15}")
_KEYS = ("dsn", "dsn_env", "schema_prefix")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INSTALL_HINT = "pip install 'zepix-store[postgresql]'"
# used only when psycopg is absent and the block is not in use: key=value `password`, or a URI's `user:secret@`
_PASSWORD_TEXT = re.compile(r"(^|[\s?&])password\s*=|^[a-z]+://[^/@?#]*:[^/@?#]*@", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PostgresConfig:
    """How to reach the PostgreSQL server: store.yaml's `postgresql` block, its DSN resolved at load.

    `dsn` is the DSN in the file, or the one the `dsn_env` variable held at load (that one may carry a password,
    so `dsn` is left out of repr).
    """

    dsn: str = field(repr=False)
    schema_prefix: str = DEFAULT_SCHEMA_PREFIX
    dsn_env: str | None = None

    @property
    def source(self) -> str:
        """Where the DSN came from, for messages: `postgresql.dsn` or `$VAR (postgresql.dsn_env)`."""
        return f"${self.dsn_env} (postgresql.dsn_env)" if self.dsn_env else "postgresql.dsn"


def backend_of(path: Path, raw: dict[object, object]) -> tuple[str, PostgresConfig | None]:
    """The backend store.yaml names and, for postgresql, its checked `postgresql` block.

    With backend sqlite a `postgresql` block is still checked for its shape and for a password in the file
    (a secret in a config file is a leak whichever backend runs), but its DSN is not resolved: a bot on SQLite
    needs no `dsn_env` variable set.
    """
    backend = raw.get("backend", "sqlite")
    if not isinstance(backend, str) or backend not in BACKENDS:
        got = _show(backend) if isinstance(backend, str) else _describe(backend)
        raise _error(path, "backend", f"unknown backend {got} (expected {' or '.join(BACKENDS)})")
    if "postgresql" not in raw:
        if backend == "postgresql":
            raise _error(path, "postgresql", "missing: backend is postgresql, so add a postgresql block, e.g. "
                                             "postgresql: {dsn: 'host=HOST dbname=DB user=USER'}")
        return backend, None
    block = raw["postgresql"]
    if not isinstance(block, dict):
        raise _error(path, "postgresql", f"must be a mapping (dsn, schema_prefix, dsn_env), got {_describe(block)}")
    for key in block:
        if key not in _KEYS:
            raise _error(path, f"postgresql.{_key(key)}", f"unknown key (expected {', '.join(_KEYS)})")
    prefix = _schema_prefix(path, block.get("schema_prefix", DEFAULT_SCHEMA_PREFIX))
    if ("dsn" in block) == ("dsn_env" in block):
        raise _error(path, "postgresql.dsn", "give exactly one of dsn (the DSN itself, without a password) and "
                                             "dsn_env (the environment variable that holds the whole DSN)")
    if "dsn" in block:
        dsn = _text(path, "postgresql.dsn", block["dsn"])
        _check_dsn(path, "postgresql.dsn", dsn, in_file=True, required=backend == "postgresql")
        return backend, PostgresConfig(dsn, prefix) if backend == "postgresql" else None
    variable = _text(path, "postgresql.dsn_env", block["dsn_env"])
    if _ENV_NAME.fullmatch(variable) is None:
        raise _error(path, "postgresql.dsn_env", f"{_show(variable)} is not an environment variable name")
    if backend != "postgresql":
        return backend, None
    dsn = os.environ.get(variable, "")
    if not dsn.strip():
        raise _error(path, "postgresql.dsn_env", f"the environment variable {variable} is not set or empty: set it "
                                                 "to the DSN (it may hold the password)")
    _check_dsn(path, f"postgresql.dsn_env: ${variable}", dsn, in_file=False, required=True)
    return backend, PostgresConfig(dsn, prefix, variable)


def _text(path: Path, field_name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _error(path, field_name, f"must be a non-empty string, got {_describe(value)}")
    if "\x00" in value:
        raise _error(path, field_name, "contains a NUL byte")
    return value


def _schema_prefix(path: Path, value: object) -> str:
    if not isinstance(value, str) or SCHEMA_PREFIX_PATTERN.fullmatch(value) is None or value.startswith("pg_"):
        got = _show(value) if isinstance(value, str) else _describe(value)
        raise _error(path, "postgresql.schema_prefix", f"{got} must be 1-16 of a-z 0-9 _, starting with a-z, and "
                                                       "not pg_ (PostgreSQL reserves it)")
    return value


def _check_dsn(path: Path, where: str, dsn: str, *, in_file: bool, required: bool) -> None:
    """Refuse a password in the file, a DSN libpq cannot parse, and one that leaves host, database or user out.

    A DSN from the environment is never quoted back: it may hold a password.
    """
    driver = _conninfo_parser()
    if driver is None:
        if required:
            raise _error(path, where, f"backend postgresql needs the psycopg driver: {_INSTALL_HINT}")
        if _PASSWORD_TEXT.search(dsn):
            raise _password_error(path, where)
        return
    parse, parse_error = driver
    try:
        parts = parse(dsn)
    except parse_error as exc:
        detail = f" ({' '.join(str(exc).split())})" if in_file else ""
        raise _error(path, where, f"not a valid DSN (key=value pairs or a postgresql:// URI){detail}") from None
    if in_file and "password" in parts:
        raise _password_error(path, where)
    if not required:
        return
    missing = [what for what, keys in (("host (or a unix socket folder)", ("host", "hostaddr")),
                                       ("database (dbname)", ("dbname",)), ("user", ("user",)))
               if not any(str(parts.get(k) or "").strip() for k in keys)]
    if missing:
        raise _error(path, where, f"names no {' and no '.join(missing)}: the DSN must name host, database and "
                                  "user (libpq's defaults would pick them from whoever runs the bot)")


def _conninfo_parser() -> tuple[Callable[[str], dict[str, Any]], type[Exception]] | None:
    """psycopg's DSN parser and the error it raises, or None without psycopg (the extra is optional)."""
    try:
        from psycopg import Error
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return None
    return conninfo_to_dict, Error


def _password_error(path: Path, where: str) -> ConfigError:
    return _error(path, where, "holds a password: a password never stands in store.yaml; remove it and give it "
                               "through PGPASSWORD, ~/.pgpass, or dsn_env naming an environment variable that holds "
                               "the whole DSN")
