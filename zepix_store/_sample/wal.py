"""Rows committed only to a database's `-wal` file, by a child process that exits without a checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["write_wal_only_trades"]

# ---------------------------------------------------------------------------------------------------------------
# Rows committed only to the -wal file.

_WAL_CHILD = r"""
import os, random, sqlite3, sys
from datetime import datetime, timedelta, timezone
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conn = sqlite3.connect(path, isolation_level=None, timeout=30)
conn.execute("PRAGMA wal_autocheckpoint=0")
if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
    os._exit(3)
present = {r[1] for r in conn.execute("PRAGMA table_info(trades)")}
wanted = ("trade_id", "symbol", "direction", "entry_price", "exit_price", "lot_size", "pnl", "commission", "swap",
          "status", "open_time", "close_time", "logic_type")
cols = [c for c in wanted if c in present]
conn.execute("BEGIN IMMEDIATE")
start = conn.execute("SELECT coalesce(max(CAST(substr(trade_id, 5) AS INTEGER)), 0) FROM trades "
                     "WHERE trade_id LIKE 'WAL-%'").fetchone()[0]
rng, now = random.Random(seed), datetime.now(timezone.utc)
def rows():
    for k in range(start + 1, start + n + 1):
        entry, win = round(rng.uniform(1.05, 1.12), 5), rng.random() < 0.6
        pnl = round(rng.uniform(5, 40) if win else -rng.uniform(5, 30), 2)
        closed = now - timedelta(minutes=k)
        row = {"trade_id": f"WAL-{k:06d}", "symbol": "EURUSD", "direction": rng.choice(("buy", "sell")),
               "entry_price": entry, "exit_price": round(entry + pnl / 100000, 5), "lot_size": 0.1, "pnl": pnl,
               "commission": -0.7, "swap": 0.0, "status": "closed",
               "open_time": (closed - timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M:%S"),
               "close_time": closed.strftime("%Y-%m-%d %H:%M:%S"), "logic_type": "LOGIC1"}
        yield tuple(row[c] for c in cols)
conn.executemany(f"INSERT INTO trades ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows())
conn.execute("COMMIT")
os._exit(0)  # no close: the last connection's close would checkpoint the rows into the main file
"""


def write_wal_only_trades(path: str | os.PathLike[str], n: int, *, seed: int = 1) -> None:
    """Commit ``n`` LOGIC1 trades ('WAL-...') that exist only in the ``-wal`` file of the WAL database ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RuntimeError: the writer failed or left no ``-wal`` content.
    """
    db = Path(path)
    if not db.exists():
        raise FileNotFoundError(db)
    done = subprocess.run(
        [sys.executable, "-c", _WAL_CHILD, str(db), str(n), str(seed)], capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"{db}: WAL writer exited {done.returncode}: {done.stderr.strip()[-500:]}")
    wal = Path(f"{db}-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        raise RuntimeError(f"{db}: the writer left no -wal content")

