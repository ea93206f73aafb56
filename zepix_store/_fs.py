"""File-system helpers every module uses: fsync of closed files and folders, owner-only folders."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import StoreIOError

__all__ = ["ensure_private_dir", "fsync_path", "make_private_dir"]


def fsync_path(path: Path, directory: bool = False) -> None:
    """fsync the file (or with `directory`, the folder) at `path`."""
    # Only for our own closed temp files and folders: never a live database (closing drops SQLite locks).
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(path: Path, *, tighten: bool = False, role: str = "") -> None:
    """Create `path` and any missing parents 0700 whatever the umask (mkdir(parents=True) would give 0755).

    A folder that exists already is left as it is (it may be the bot's, or shared on purpose), unless
    `tighten`: then `path` itself loses its group and other bits when this user owns it, and a folder another
    process creates between our check and our mkdir is made 0700 too. `role` names the setting `path` comes
    from: with it, a file in the way raises StoreIOError naming it; without it, the FileExistsError.
    """
    missing = []
    current = path
    while not current.is_dir() and current.parent != current:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            if not folder.is_dir():
                if role:
                    raise StoreIOError(f"{folder}: {role} is not a folder", path=folder) from None
                raise
            if not tighten:
                continue  # made by someone else meanwhile: theirs to set
        os.chmod(folder, 0o700)
    if tighten:
        st = os.stat(path)
        if st.st_mode & 0o077 and st.st_uid == os.geteuid() and stat.S_ISDIR(st.st_mode):
            os.chmod(path, 0o700)


def ensure_private_dir(path: Path) -> None:
    """Create `path` and any missing parents owner-only; never change an existing folder."""
    make_private_dir(path)
