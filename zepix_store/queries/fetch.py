"""Rows of a statement as dicts of column name to value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..backend.base import Connection

__all__ = ['Row', 'fetch_all', 'fetch_one']

Row = dict[str, Any]


def fetch_all(conn: Connection, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur]


def fetch_one(conn: Connection, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Row | None:
    rows = fetch_all(conn, sql, params)
    return rows[0] if rows else None
