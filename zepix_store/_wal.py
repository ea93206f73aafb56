"""Refusing a `-wal` file that no connection to its database left there (an unpaired, possibly foreign log)."""

from __future__ import annotations

import struct
from pathlib import Path

from .errors import CorruptDatabaseError

__all__ = ["check_wal_pairing"]

_WAL_MAGIC = (0x377F0682, 0x377F0683)  # checksums of little-endian / big-endian words
_WAL_HEADER, _FRAME_HEADER = 32, 24


def check_wal_pairing(path: Path) -> None:
    """Refuse a `-wal` beside `path` that holds frames while no `-shm` sits beside it (an unpaired log).

    SQLite replays any `-wal` it finds beside a database: the log records no identity of its database, so a log
    copied from another file (or from an older copy of this one) is merged into it silently, and a read-write
    connection then checkpoints the foreign pages into the file. A log SQLite itself leaves behind, crashed or
    running, always has its `-shm` beside it: SQLite creates the `-shm` before the first frame is written and,
    on a clean close, deletes it only after checkpointing the log. So a `-wal` with a valid first frame and no
    `-shm` did not come from a connection to this file and is refused, unread and unreplayed. A foreign log
    copied together with a `-shm` cannot be told apart from a crash leftover this way; the integrity checks
    (quick_check before migrate and backup) catch one whose pages do not fit the file.

    The `-wal` is read with plain file I/O on purpose: SQLite keeps its locks on the database and the `-shm`,
    never on the `-wal`, so closing this handle cannot drop a lock of this process.
    """
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    if shm.exists() or not wal.is_file():
        return
    with open(wal, "rb") as f:
        header = f.read(_WAL_HEADER + _FRAME_HEADER)
        page_size = struct.unpack(">I", header[8:12])[0] if len(header) >= 12 else 0
        page = f.read(page_size) if 512 <= page_size <= 65536 else b""
    if _first_frame_valid(header, page):
        raise CorruptDatabaseError(
            f"{wal}: unpaired write-ahead log: it holds frames but no {shm.name} sits beside it, so no SQLite "
            f"connection to {path.name} left it (copied from another database?); nothing was read or replayed. "
            f"Move it aside; only if it is this file's own log, open the file once with sqlite3 to replay it", path=wal)


def _first_frame_valid(header: bytes, page: bytes) -> bool:
    """Whether the log header is valid and its first frame one SQLite would read (salts and checksums match)."""
    if len(header) < _WAL_HEADER + _FRAME_HEADER or len(page) < 512:
        return False
    magic, _version, page_size, _seq, salt1, salt2, sum1, sum2 = struct.unpack(">8I", header[:_WAL_HEADER])
    if magic not in _WAL_MAGIC or len(page) != page_size:
        return False
    order = ">" if magic & 1 else "<"
    s = _wal_checksum(header[:24], order, (0, 0))
    if s != (sum1, sum2):
        return False
    frame = header[_WAL_HEADER:]
    f_salt1, f_salt2, f_sum1, f_sum2 = struct.unpack(">4I", frame[8:24])
    if (f_salt1, f_salt2) != (salt1, salt2):
        return False
    return _wal_checksum(frame[:8] + page, order, s) == (f_sum1, f_sum2)


def _wal_checksum(data: bytes, order: str, seed: tuple[int, int]) -> tuple[int, int]:
    """SQLite's WAL checksum (wal.c walChecksumBytes) over `data`, continuing from `seed`."""
    s1, s2 = seed
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s1 = (s1 + words[i] + s2) & 0xFFFFFFFF
        s2 = (s2 + words[i + 1] + s1) & 0xFFFFFFFF
    return s1, s2
