"""Counts and sizes as people read them: `1 check`, `2 checks`, `1,234 rows`, `84.5 GB`.

Every report, human or not, names a count through `count` so that `1 checks failed` cannot be written; sizes go
through `size` (decimal units, as disks are sold and `df -H` shows them).
"""

from __future__ import annotations

__all__ = ["count", "size", "verb"]

_IRREGULAR = {"index": "indexes", "copy": "copies", "entry": "entries", "was": "were", "is": "are", "has": "have"}
_UNITS = ("bytes", "KB", "MB", "GB", "TB", "PB")


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`1 row`, `0 rows`, `1,234 rows`: the number with thousands separators and the noun agreeing with it."""
    if n == 1:
        return f"1 {noun}"
    return f"{n:,} {plural or _plural(noun)}"


def verb(n: int, one: str, many: str) -> str:
    """The verb that agrees with a count: `verb(1, "differs", "differ")`."""
    return one if n == 1 else many


def size(n_bytes: float) -> str:
    """`512 bytes`, `84.5 KB`, `1.2 MB`, `84.5 GB`: three significant figures at most, decimal units."""
    value, unit = float(n_bytes), 0
    while abs(value) >= 999.5 and unit < len(_UNITS) - 1:
        value, unit = value / 1000, unit + 1
    if unit == 0:
        return count(int(n_bytes), "byte")
    return f"{value:.{0 if value >= 99.95 else 1}f} {_UNITS[unit]}"


def _plural(noun: str) -> str:
    head, _, last = noun.rpartition(" ")  # `closed trade` -> `closed trades`
    word = _IRREGULAR.get(last) or (last[:-1] + "ies" if last.endswith("y") and last[-2:-1] not in "aeiou"
                                    else last + "es" if last.endswith(("s", "x", "ch", "sh")) else last + "s")
    return f"{head} {word}" if head else word
