"""A stored value written as an SQL literal: how reports name a value (commands print it, ops/ builds reports).

Neutral ground: the tooling's reports and the printing helpers (_output.py) both use it, so ops/ never imports
the printing layer.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ['show_value', 'value_counts']


def show_value(value: object) -> str:
    """A stored value as every command prints it: NULL, numbers as they are, text and blobs as SQL literals."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bytes):
        return f"X'{value.hex().upper()}'"
    return str(value)


def value_counts(pairs: Sequence[tuple[object, int]]) -> str:
    """`NULL x20, '' x1, 'LOGIC1 ' x1`: values with how many rows hold them, the same in every command."""
    return ", ".join(f"{show_value(v)} x{n:,}" for v, n in pairs)
