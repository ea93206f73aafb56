"""The writers' lock (writer_lock.py): writes hold it shared, a move's last round exclusively.

Each handle is its own open file, as a process is: flock locks belong to the open file, so two handles in one
process meet the same way two processes do.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from zepix_store.errors import StoreBusyError
from zepix_store.writer_lock import SharedWriterLock, writers_excluded, writers_lock_path

P = "v6-logic-01-1min"


def handle(data: Path) -> SharedWriterLock:
    return SharedWriterLock(writers_lock_path(data, P), P, data)


def test_a_write_waits_while_a_move_holds_it_and_goes_on_after(tmp_path: Path) -> None:
    writer = handle(tmp_path)
    with writer.hold():
        pass  # the handle has its file open now
    with writers_excluded(tmp_path, P, "flip", wait_s=5):
        assert writer.try_hold() is None  # its old file was replaced under the name: it waits on the new one
        with pytest.raises(StoreBusyError, match=r"being moved by pid \d+ \(flip\)"), writer.hold(wait_s=0.05):
            pass
    token = writer.try_hold()
    assert token is not None
    writer.release(token)
    writer.close()


def test_a_move_waits_for_a_write_in_flight_and_gives_up_holding_nothing(tmp_path: Path) -> None:
    writer, other = handle(tmp_path), handle(tmp_path)
    token = writer.try_hold()
    assert token is not None
    with pytest.raises(StoreBusyError, match="did not finish"), writers_excluded(tmp_path, P, "flip", wait_s=0.1):
        pass
    second = other.try_hold()  # the move gave up: writes go on
    assert second is not None
    other.release(second)
    writer.release(token)
    with writers_excluded(tmp_path, P, "flip", wait_s=1):
        assert other.try_hold() is None
    assert not writers_lock_path(tmp_path, P).exists()  # removed at the end, as plugin_lock's lock is
    writer.close()
    other.close()


def test_writers_that_never_leave_the_lock_free_do_not_starve_a_move(tmp_path: Path) -> None:
    """Two writers overlapping without pause: a move waiting on their file would wait forever."""
    stop = threading.Event()
    waited: list[float] = []

    def write(offset: float) -> None:
        lock = handle(tmp_path)
        time.sleep(offset)
        while not stop.is_set():
            with lock.hold():
                time.sleep(0.01)  # a transaction; the other writer's overlaps its start and its end
        lock.close()

    threads = [threading.Thread(target=write, args=(o,)) for o in (0.0, 0.005)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    try:
        start = time.monotonic()
        with writers_excluded(tmp_path, P, "flip", wait_s=5):
            waited.append(time.monotonic() - start)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert waited and waited[0] < 1.0, waited


def test_a_move_killed_after_marking_the_current_file_leaves_it_usable(tmp_path: Path) -> None:
    """A flip marks a file retired just before it leaves the name; killed in between, the file is still current."""
    writer = handle(tmp_path)
    with writer.hold():
        pass
    path = writers_lock_path(tmp_path, P)
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, b"x", 0)  # the mark, the name left as it is
    finally:
        os.close(fd)
    with writer.hold(wait_s=0.5):
        pass
    with writers_excluded(tmp_path, P, "flip", wait_s=1):  # and the next move still holds writers out
        assert writer.try_hold() is None
    writer.close()
