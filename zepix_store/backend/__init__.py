"""The engines the runtime core runs on: base.py is the interface the core needs, sqlite.py the embedded default,
postgresql/ the store on a PostgreSQL server (names, tables, values, roles, operations, store; SPEC 9).

The core (registry, plugin_store, compat, queries) imports base.py's types and asks a `Backend` for everything
engine-specific; only registry.backend_for names a concrete backend (from store.yaml's `backend`), and it imports
the PostgreSQL one (psycopg) only when store.yaml names it.
"""

__all__: list[str] = []
