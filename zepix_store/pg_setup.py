"""Prepare a PostgreSQL server for the store: the schemas and tables of the shared file and of every isolated file
the plugin configs name, one login role per plugin, row-level security so each role sees only its own plugin's
rows, and the grants (its isolated schema, never another's). Run it again after adding a plugin or a file: it
keeps every name it gave, adds what is missing and says "nothing changed" when all was in place.

store.yaml must say `backend: postgresql` and `postgresql: {dsn: ...}` (no password in the file: PGPASSWORD,
~/.pgpass, or `dsn_env`). The DSN's user needs the right to create roles and own the store's schemas (CREATEROLE,
or a superuser). Prints per plugin its role and the DSN its bot connects with (never a password: give each role
one with ALTER ROLE ... PASSWORD, or a pg_hba.conf rule, and put it in the bot host's ~/.pgpass).

--dry-run prints the plan (schema and role names, what exists) with every transaction read-only: nothing is
created.

examples:
  zepix-store pg-setup --dry-run      # the schemas and roles it would create
  zepix-store pg-setup                # create them; safe to run again
  zepix-store pg-setup --json         # each plugin's role and DSN as JSON

exit codes: 0 done, 2 bad input or config (backend not postgresql, a password in store.yaml, psycopg missing:
pip install 'zepix-store[postgresql]', the server refused the login or a right), 5 a schema from a newer
zepix_store, 7 the server cannot be reached or the connection was lost.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ._output import format_table, print_json
from .cli import command_main
from .config import load_config
from .ops.pg_setup import PgSetupReport, pg_setup
from .words import count

__all__ = ["main", "print_report"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (schemas, roles) with read-only transactions; create nothing")


def run(args: argparse.Namespace) -> int:
    report = pg_setup(load_config(args.config), dry_run=args.dry_run)
    if args.json:
        print_json(report.to_json())
    else:
        print_report(report)
    return 0


def print_report(report: PgSetupReport) -> None:
    print(f"server: {report.dsn} (schema prefix {report.schema_prefix})")
    print(format_table(("schema", "file", "kind", "state"),
                       [(s.schema, s.file, s.kind, s.state) for s in report.schemas]))
    print()
    print(format_table(("plugin", "role", "state", "bot DSN (password from PGPASSWORD or ~/.pgpass)"),
                       [(p.plugin_id, p.role, p.state, p.dsn) for p in report.plugins]))
    print()
    if report.dry_run:
        print("dry run: nothing was created; run without --dry-run to set it up")
    elif not report.changed:
        print("already set up: nothing changed")
    else:
        schemas = sum(s.state == "created" for s in report.schemas)
        roles = sum(p.state == "created" for p in report.plugins)
        print(f"set up: {count(schemas, 'schema')} and {count(roles, 'role')} created; row-level security, policies "
              "and grants in place")


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("pg-setup", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
