"""The writers' lock of a plugin, across processes: writers hold it shared per transaction, a move exclusively.

A flip's last round (its final synchronisation and the config rewrite) must see no write of the plugin it
moves, or a write committed in the old place after that round is left behind. So every handle writing a plugin
(Store's and the compat facade's, in any process) holds `flock(LOCK_SH)` on `<data_dir>/.zepix-locks/<id>.writers`
for each write transaction, and flip holds it `LOCK_EX` for its last round only: writers wait about one round,
and the round always converges. It is not plugin_lock's lock: that one is held for a whole command, to serialise
two commands, and a writer waiting on it would wait for the whole copy.

Starvation: a blocking `LOCK_EX` is granted only in a moment when no shared holder is left, which writers that
overlap without pause never leave. So flip does not wait on the file writers use: it locks a new file
exclusively, renames it over the name (writers that arrive now find it and wait), then waits for the writers in
flight on the old file. A writer checks after each lock that its file is still the one under the name, and if not
opens the name again: the old file only ever drains. At the end flip unlinks its file while it holds it, as
plugin_lock does; waiters find their file gone and take a fresh one (created by the first writer to need it).
"Still under the name" costs a one-byte `pread`, not a `stat`: flip marks a file (its first byte) before it takes
it off the name, so an unmarked file is current; only a marked one is stat'ed (a killed flip may leave one marked).

A handle keeps its descriptor open between calls (an `open()` per write would cost more than the lock); calls
in flight at once share one hold (a count), as one flock on one open file is one hold. Where the lock file cannot
be created (a read-only data folder) writes go on unlocked: nothing can move a plugin there either.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ._fs import ensure_private_dir
from .errors import StoreBusyError, StoreIOError
from .plugin_lock import LOCK_DIR

__all__ = ["WRITER_WAIT_S", "SharedWriterLock", "writers_excluded", "writers_lock_path"]

WRITER_WAIT_S = 30.0  # how long a write waits for a move's last round before it raises StoreBusyError
_POLL_S = 0.002
log = logging.getLogger("zepix_store")


def writers_lock_path(data_dir: Path, plugin_id: str) -> Path:
    return data_dir / LOCK_DIR / f"{plugin_id}.writers"


def _named(fd: int, path: Path) -> bool:
    """Whether the file open as `fd` is still the one under `path` (a move replaces or unlinks it)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[1:].strip() or "a move"  # after the state byte
    except OSError:
        return "a move"


class _Hold:
    """One open of the lock file and how many calls of this handle hold it shared now."""

    __slots__ = ("dev", "fd", "holders", "ino", "retired")

    def __init__(self, fd: int) -> None:
        st = os.fstat(fd)
        self.fd, self.dev, self.ino = fd, st.st_dev, st.st_ino
        self.holders = 0
        self.retired = False

    def named(self, path: str) -> bool:
        """Whether this file is still the one under `path`: it is when not marked retired (cheap, no stat)."""
        if os.pread(self.fd, 1, 0) != _RETIRED:
            return True
        try:  # marked: a move took its place, or was killed after marking it (then it is still the one)
            st = os.stat(path)
        except FileNotFoundError:
            return False
        return st.st_ino == self.ino and st.st_dev == self.dev


# The first byte of a lock file says whether it may have left its name: a move marks a file `_RETIRED` before it
# renames another over it or unlinks it, so a file not marked is still under the name (checked without a stat).
_RETIRED = b"x"
_LIVE = b"="
_UNLOCKED = object()  # the token of a write that could not create the lock file (see the module doc)


class SharedWriterLock:
    """A handle's side of its plugin's writers' lock: `hold()` (threads) or `hold_async()` around each write."""

    def __init__(self, path: Path, plugin_id: str, data_dir: Path) -> None:
        self.path = path
        self._name = os.fspath(path)
        self.plugin_id = plugin_id
        self._data_dir = str(data_dir)
        self._current: _Hold | None = None
        self._guard = threading.Lock()
        self._warned = False

    def close(self) -> None:
        """Drop the descriptor (a hold still running keeps its own until it ends)."""
        with self._guard:
            if self._current is not None:
                self._retire(self._current)

    def try_hold(self) -> object | None:
        """A token for `release`, or None while a move holds the lock exclusively."""
        with self._guard:
            while True:
                hold = self._current
                if hold is None:
                    opened = self._open()
                    if opened is None:
                        return _UNLOCKED
                    hold = self._current = opened
                if hold.holders:
                    if hold.named(self._name):  # held shared already: a move cannot be past its wait
                        hold.holders += 1
                        return hold
                else:
                    try:
                        fcntl.flock(hold.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    except BlockingIOError:
                        return None
                    if hold.named(self._name):
                        hold.holders = 1
                        return hold
                    fcntl.flock(hold.fd, fcntl.LOCK_UN)
                self._retire(hold)  # a move put its own file under the name, or removed it: open the name again

    def release(self, token: object) -> None:
        if not isinstance(token, _Hold):
            return
        with self._guard:
            token.holders -= 1
            if not token.holders:
                if token.retired:
                    os.close(token.fd)
                else:
                    fcntl.flock(token.fd, fcntl.LOCK_UN)

    def _retire(self, hold: _Hold) -> None:
        if self._current is hold:
            self._current = None
        hold.retired = True
        if not hold.holders:
            os.close(hold.fd)

    def _open(self) -> _Hold | None:
        if os.path.commonpath([os.path.realpath(self.path.parent), self._data_dir]) != self._data_dir:
            return None  # the data folder was swapped for a symlink: create nothing there (the open refuses it)
        for _ in range(20):
            try:
                ensure_private_dir(self.path.parent)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                continue  # a releaser removed the empty folder between our mkdir and open
            except (OSError, StoreIOError) as exc:
                if not self._warned:
                    self._warned = True
                    log.warning("zepix_store: %s: cannot create the writers' lock of plugin %s (%s); its writes "
                                "go on without it", self.path, self.plugin_id, exc)
                return None
            return _Hold(fd)
        return None

    def _busy(self, wait_s: float) -> StoreBusyError:
        return StoreBusyError(f"plugin {self.plugin_id} is being moved by {_holder(self.path)}; this write waited "
                              f"{wait_s:g} s for its last round (lock {self.path}); nothing was written",
                              path=self.path, plugin=self.plugin_id)

    def hold(self, wait_s: float = WRITER_WAIT_S) -> _Held:
        """Hold the lock shared for one write (`with`), waiting (this thread) while a move's last round runs."""
        return _Held(self, wait_s)

    def hold_async(self, wait_s: float = WRITER_WAIT_S) -> _Held:
        """`hold` for the event loop (`async with`): the wait never blocks the loop (other plugins' calls go on)."""
        return _Held(self, wait_s)

    def wait(self, wait_s: float) -> object:
        token = self.try_hold()
        if token is None:
            deadline = time.monotonic() + wait_s
            while (token := self.try_hold()) is None:
                if time.monotonic() >= deadline:
                    raise self._busy(wait_s)
                time.sleep(_POLL_S)
        return token

    async def wait_async(self, wait_s: float) -> object:
        token = self.try_hold()
        if token is None:
            deadline = time.monotonic() + wait_s
            while (token := self.try_hold()) is None:
                if time.monotonic() >= deadline:
                    raise self._busy(wait_s)
                await asyncio.sleep(_POLL_S)
        return token


class _Held:
    """One write's shared hold, as a (sync or async) context manager: a class, as it is on every write's path."""

    __slots__ = ("_lock", "_token", "_wait_s")

    def __init__(self, lock: SharedWriterLock, wait_s: float) -> None:
        self._lock, self._wait_s = lock, wait_s
        self._token: object = None

    def __enter__(self) -> None:
        self._token = self._lock.wait(self._wait_s)

    def __exit__(self, *exc: object) -> None:
        self._lock.release(self._token)

    async def __aenter__(self) -> None:
        self._token = await self._lock.wait_async(self._wait_s)

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release(self._token)


@contextmanager
def writers_excluded(data_dir: Path, plugin_id: str, command: str, wait_s: float) -> Iterator[None]:
    """Hold `plugin_id`'s writers' lock exclusively: its writes in flight finish, the next ones wait.

    The caller holds the plugin's command lock (plugin_lock), so no other move of it runs here at once.

    Raises:
        StoreBusyError: a write in flight did not finish within `wait_s` seconds (nothing is held then).
    """
    path = writers_lock_path(data_dir, plugin_id)
    ensure_private_dir(path.parent)
    old = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # what writers hold now, or a new file
    try:
        os.pwrite(old, _RETIRED, 0)  # before it leaves the name (see _RETIRED)
        # `.next` is only ever opened here, under the command lock: a killed move's leftover is simply reused
        nxt = path.with_name(f"{path.name}.next")
        new = os.open(nxt, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(new, fcntl.LOCK_EX | fcntl.LOCK_NB)
            since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            os.pwrite(new, _LIVE + f"pid {os.getpid()} ({command}) since {since}\n".encode(), 0)
            os.rename(nxt, path)  # writers arriving from now on wait on `new`
            _drain(old, path, plugin_id, wait_s)
        except BaseException:
            _unlink_held(new, path)
            raise
    finally:
        os.close(old)
    try:
        yield
    finally:
        _unlink_held(new, path)


def _drain(fd: int, path: Path, plugin_id: str, wait_s: float) -> None:
    """Wait until no writer holds the old file (those that lock it from now on find it replaced and move on)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise StoreBusyError(f"plugin {plugin_id}: a write of it did not finish within {wait_s:g} s (lock "
                                     f"{path}); nothing was moved, run again", path=path, plugin=plugin_id) from None
            time.sleep(_POLL_S)


def _unlink_held(fd: int, path: Path) -> None:
    # Unlinked while held: waiters see their file is no longer under the name and take a fresh one.
    try:
        os.pwrite(fd, _RETIRED, 0)
        if _named(fd, path):
            path.unlink()
    except OSError:
        pass
    finally:
        os.close(fd)
