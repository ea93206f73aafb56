"""The triggers a synchronised isolated file carries: the bot's UPDATEs and DELETEs keep each row's last synced state.

They live in the file, so every write the bot makes there fires them: they are part of the file format, not of
the synchronisation that reads what they kept. `zx_sync_base_<table>` holds, for a row changed or deleted since
the last synchronisation, the row as it was then; the first change keeps it, later ones leave it alone.

The "first change" test is the trigger's WHEN clause, never a conflict clause in its body: SQLite runs a trigger's
`INSERT OR IGNORE` under the conflict policy of the statement that fired it, so an upsert (`ON CONFLICT DO UPDATE`)
turned the IGNORE into an abort from a key's third write on, and an `INSERT OR REPLACE` overwrote the kept row.
"""

from __future__ import annotations

import sqlite3

from .schema import TABLES, Table

__all__ = ["SUSPENDED", "base_columns", "base_table", "replace_tracking_triggers", "tracked_tables", "tracking_ddl"]

EVENTS = ("UPDATE", "DELETE")
# A row in this table (only ever inside the prune's own write transaction) silences the DELETE triggers: a prune
# is not the bot's delete, and keeping then dropping a base row per pruned row cost more than the delete itself.
SUSPENDED = "zx_sync_suspended"


def base_table(table: Table) -> str:
    return f"zx_sync_base_{table.name}"


def base_columns(table: Table) -> list[str]:
    """The legacy columns a base row keeps: all but the rowid alias (the base row's key is the rowid)."""
    return [c.name for c in table.columns if not c.decl.upper().startswith("INTEGER PRIMARY KEY")]


def _trigger_name(table: Table, event: str) -> str:
    return f"zx_sync_{event.lower()}_{table.name}"


def _create_trigger(schema: str, table: Table, event: str, if_missing: bool = False) -> str:
    cols, base = base_columns(table), base_table(table)
    old = ", ".join(f"OLD.{c}" for c in cols)
    pruning = f" AND NOT EXISTS (SELECT 1 FROM {SUSPENDED})" if event == "DELETE" else ""
    return (f"CREATE TRIGGER {'IF NOT EXISTS ' if if_missing else ''}{schema}.{_trigger_name(table, event)} "
            f"AFTER {event} ON {table.name} "
            f"WHEN NOT EXISTS (SELECT 1 FROM {base} WHERE zx_rowid = OLD.rowid){pruning} "
            f"BEGIN INSERT INTO {base} (zx_rowid, {', '.join(cols)}) VALUES (OLD.rowid, {old}); END")


def tracking_ddl(schema: str) -> list[str]:
    """Statements that create the base tables and triggers in `schema` where missing.

    A file synchronised by an older version has its triggers rewritten by the schema upgrade (upgrade.py), which
    runs before any synchronisation opens it; a rerun that finds everything in place writes nothing.
    """
    assert schema in ("iso", "main")
    ddl = [f"CREATE TABLE IF NOT EXISTS {schema}.{SUSPENDED} (one INTEGER PRIMARY KEY)"]
    for table in TABLES:
        ddl.append(f"CREATE TABLE IF NOT EXISTS {schema}.{base_table(table)} (zx_rowid INTEGER PRIMARY KEY, "
                   f"{', '.join(base_columns(table))})")
        ddl.extend(_create_trigger(schema, table, event, if_missing=True) for event in EVENTS)
    return ddl


def tracked_tables(conn: sqlite3.Connection) -> list[Table]:
    """The tables of the main file that carry change tracking (it was synchronised)."""
    names = {r[0] for r in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")}
    return [t for t in TABLES if base_table(t) in names and t.name in names]


def replace_tracking_triggers(conn: sqlite3.Connection) -> list[str]:
    """Rewrite the triggers of a synchronised file (caller holds the write transaction); return the tables done."""
    done = tracked_tables(conn)
    if done:
        conn.execute(f"CREATE TABLE IF NOT EXISTS main.{SUSPENDED} (one INTEGER PRIMARY KEY)")
    for table in done:
        for event in EVENTS:
            conn.execute(f"DROP TRIGGER IF EXISTS main.{_trigger_name(table, event)}")
            conn.execute(_create_trigger("main", table, event))
    return [t.name for t in done]
