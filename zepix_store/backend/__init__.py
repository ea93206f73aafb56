"""The engines the runtime core runs on: base.py is the interface the core needs, sqlite.py the embedded default,
postgresql/ the pieces of the PostgreSQL store built so far (names, tables, values, roles; SPEC 9).

The core (registry, plugin_store, compat, queries) imports base.py's types and asks a `Backend` for everything
engine-specific; only the Store and the compat facade name a concrete backend (SQLite today).
"""

__all__: list[str] = []
