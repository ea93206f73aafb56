"""One synchronisation per plugin at a time, across processes: an OS lock per plugin, released with the process.

Two syncs of one plugin that both plan before either commits copy the same rows twice, so split, merge, flip and
prune hold the plugin's lock from their first read to their last write. The lock is `flock` on
`<data_dir>/.zepix-locks/<plugin_id>.lock`: the kernel drops it when the holder exits, kill -9 included, so a
crashed command never leaves a stale lock (at worst a file the next holder takes, then removes). The file's text
names the holder (pid, command, since) for the error a waiter raises; it is only a label, the lock is the flock.

Plugins that share an isolated file (a group file) are locked together (`with_file_mates`): a run building or
writing that file must not meet another one there (a new file is built as `<name>.tmp`, and a run clears the
leftovers of a killed one before it starts), whichever plugin of the group each was asked for.

A thread that holds a plugin's lock may take it again (flip runs split or merge inside its own hold); another
thread of the same process waits like another process would (flock locks belong to the open file, not the process).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ._fs import ensure_private_dir
from .config import StoreConfig
from .errors import StoreBusyError, StoreIOError

__all__ = ["DEFAULT_LOCK_WAIT_S", "LOCK_DIR", "plugin_locks", "with_file_mates"]

LOCK_DIR = ".zepix-locks"
DEFAULT_LOCK_WAIT_S = 10.0
_POLL_S = 0.05

_held: dict[tuple[int, str], int] = {}  # (thread id, lock path) -> depth, for re-entry by the holding thread
_held_guard = threading.Lock()


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _acquire(path: Path, plugin_id: str, wait_s: float) -> int:
    """A descriptor holding the flock of `path`, the file still under that name (a releaser unlinks it)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            ensure_private_dir(path.parent)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            continue  # a releaser removed the empty folder between our mkdir and open
        except OSError as exc:
            raise StoreIOError(f"{path.parent}: cannot create the lock of plugin {plugin_id} there: {exc.strerror} "
                               "(a synchronisation writes in the data folder); nothing was changed",
                               path=path, plugin=plugin_id) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            os.close(fd)
            if time.monotonic() >= deadline:
                raise StoreBusyError(
                    f"plugin {plugin_id} is being synchronised by {holder}; waited {wait_s:g} s for it to finish "
                    f"(lock {path}); nothing was changed, run again when it is done",
                    path=path, plugin=plugin_id) from None
            time.sleep(_POLL_S)
            continue
        if _same_file(fd, path):
            return fd
        os.close(fd)  # we locked a file its holder had just unlinked: the lock is the new file under the name


def _release(fd: int, path: Path) -> None:
    # Unlinked while still held, so no file or folder outlives the command; a waiter that opened the old
    # file sees it is no longer under the name (_same_file) and takes the new one.
    try:
        path.unlink()
        path.parent.rmdir()
    except OSError:
        pass  # another plugin's lock is in the folder
    finally:
        os.close(fd)


@contextmanager
def _one_lock(path: Path, plugin_id: str, command: str, wait_s: float) -> Iterator[None]:
    key = (threading.get_ident(), str(path))
    with _held_guard:
        reentered = key in _held
        _held[key] = _held.get(key, 0) + 1
    try:
        if reentered:
            yield
            return
        try:
            fd = _acquire(path, plugin_id, wait_s)
        except BaseException:
            with _held_guard:
                del _held[key]
            raise
        since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)  # a killed holder's label may still be there
        os.pwrite(fd, f"pid {os.getpid()} ({command}) since {since}\n".encode(), 0)
        try:
            yield
        finally:
            _release(fd, path)
    finally:
        with _held_guard:
            if key in _held:
                _held[key] -= 1
                if not _held[key]:
                    del _held[key]


def with_file_mates(config: StoreConfig, plugin_ids: Sequence[str]) -> list[str]:
    """`plugin_ids` and every plugin whose isolated file is one of theirs, sorted."""
    files = {config.plugin(p).isolated_db for p in plugin_ids} - {None}
    mates = {p for p, plugin in config.plugins.items() if plugin.isolated_db in files}
    return sorted(set(plugin_ids) | mates)


@contextmanager
def plugin_locks(data_dir: Path, plugin_ids: Sequence[str], command: str,
                 wait_s: float = DEFAULT_LOCK_WAIT_S) -> Iterator[None]:
    """Hold the synchronisation lock of every plugin in `plugin_ids` (taken in sorted order: no deadlock).

    Raises:
        StoreBusyError: another synchronisation of one of them did not finish within `wait_s` seconds.
    """
    folder = data_dir / LOCK_DIR
    with ExitStack() as stack:
        for plugin_id in sorted(set(plugin_ids)):
            stack.enter_context(_one_lock(folder / f"{plugin_id}.lock", plugin_id, command, wait_s))
        yield
