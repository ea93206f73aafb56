"""words: a count agrees with its noun, a size reads in KB/MB/GB."""

from __future__ import annotations

import pytest

from zepix_store.words import count, size, verb


@pytest.mark.parametrize(("n", "noun", "expected"), [
    (1, "check", "1 check"), (0, "check", "0 checks"), (2, "check", "2 checks"), (1234, "row", "1,234 rows"),
    (1, "copy", "1 copy"), (3, "copy", "3 copies"), (2, "index", "2 indexes"), (5, "closed trade", "5 closed trades"),
    (2, "trade_id", "2 trade_ids"), (2, "entry", "2 entries"), (2, "day", "2 days"), (2, "box", "2 boxes"),
])
def test_a_count_agrees_with_its_noun(n: int, noun: str, expected: str) -> None:
    assert count(n, noun) == expected


def test_a_verb_agrees_with_its_count() -> None:
    assert [verb(n, "differs", "differ") for n in (0, 1, 2)] == ["differ", "differs", "differ"]


@pytest.mark.parametrize(("n_bytes", "expected"), [
    (0, "0 bytes"), (1, "1 byte"), (999, "999 bytes"), (1000, "1.0 KB"), (1500, "1.5 KB"), (99_950, "100 KB"),
    (999_999, "1.0 MB"), (123_456_789, "123 MB"), (84_521_627_648, "84.5 GB"), (3 * 10**12, "3.0 TB"),
])
def test_a_size_reads_in_decimal_units(n_bytes: int, expected: str) -> None:
    assert size(n_bytes) == expected
