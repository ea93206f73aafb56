"""Bounded write transactions: how many rows one chunk writes, and how long the longest one held its lock."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ['BATCH_TABLES', 'ChunkClock', 'plan_as_small']

BATCH_TABLES = ("zx_chunk", "zx_batch")  # the temp tables a chunk's rowids are put in


class ChunkClock:
    """Sizes chunks so that each write transaction holds its lock about `target_ms`, never growing past 4x a step.

    After each transaction it sleeps briefly: a writer waiting in SQLite's busy handler polls at intervals, and
    without a gap this process could take the lock again before the waiter wakes.
    """

    def __init__(self, max_hold_ms: float, bounded: bool = True, first: int = 500) -> None:
        self.target_ms = max_hold_ms / 2
        self.bounded = bounded
        self.size = first if bounded else 1 << 62
        self.longest_ms = 0.0

    @contextmanager
    def held(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = (time.perf_counter() - start) * 1000
            if self.bounded:
                self.longest_ms = max(self.longest_ms, elapsed)

    def chunk_done(self, rows: int, elapsed_ms: float) -> None:
        """Adapt the size to the time a chunk of `rows` took; then give waiting writers their turn."""
        if not self.bounded:
            return
        if rows >= self.size and elapsed_ms > 0:
            wanted = int(self.size * self.target_ms / elapsed_ms)
            self.size = max(50, min(self.size * 4, wanted, 50_000))
        elif elapsed_ms > self.target_ms:
            self.size = max(50, int(self.size * self.target_ms / elapsed_ms))
        time.sleep(min(0.02, max(0.002, elapsed_ms / 2000)))


def plan_as_small(conn: sqlite3.Connection, table: str) -> None:
    """Give a filled temp batch table its row count in sqlite_stat1, so joins from it look rows up one by one.

    A temp table has no statistics, and SQLite then takes it for a million rows: each join from a chunk built a
    Bloom filter over the whole table it joins (a full scan per chunk, so a chunk's hold grew with the file).
    """
    assert table in BATCH_TABLES
    conn.execute(f"ANALYZE temp.{table}")
