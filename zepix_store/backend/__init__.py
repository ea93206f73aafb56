"""Database backends: what differs between SQLite files and a PostgreSQL server (SPEC 9)."""

__all__: list[str] = []
