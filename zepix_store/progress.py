"""How long work reports its progress: the library calls a ProgressSink, the commands print it (_output.Progress).

A unit of work is `start(label, total, unit)`, any number of `advance(n)`, then `done()`. The library never
prints: it is handed a sink (NO_PROGRESS when nobody listens), so the bot's own calls stay silent.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

__all__ = ["NO_PROGRESS", "ProgressSink", "file_growth"]


class ProgressSink(Protocol):
    """Receives the progress of one unit of work at a time."""

    def start(self, label: str, total: int | None = None, unit: str = "rows") -> None:
        """A unit of work begins: `total` units are expected (None: unknown)."""

    def advance(self, n: int = 1) -> None:
        """`n` more units are done (may be called from any thread)."""

    def done(self) -> None:
        """The unit of work begun by the last `start` is finished."""


class _NoProgress:
    def start(self, label: str, total: int | None = None, unit: str = "rows") -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def done(self) -> None:
        pass


NO_PROGRESS: ProgressSink = _NoProgress()


@contextmanager
def file_growth(sink: ProgressSink, path: Path, interval: float = 0.25) -> Iterator[None]:
    """Report the growth of `path` (bytes) to `sink` while the block runs, from a helper thread.

    For one SQLite call that gives no callback of its own (a one-step backup into our private `.tmp`). The
    file is only stat()ed, never opened, so no lock of this process can be dropped.
    """
    stop = threading.Event()
    seen = [0]

    def poll() -> None:
        while not stop.wait(interval):
            _report_size(sink, path, seen)

    watcher = threading.Thread(target=poll, name="zepix-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        _report_size(sink, path, seen)


def _report_size(sink: ProgressSink, path: Path, seen: list[int]) -> None:
    try:
        size = os.stat(path).st_size
    except OSError:
        return
    if size > seen[0]:
        sink.advance(size - seen[0])
        seen[0] = size
