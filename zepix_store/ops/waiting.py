"""Trades that wait in the shared file for an isolated plugin whose own file is not made yet (no split ran).

After `migrate` with plugins routed isolated, stats reads each of them from a file that does not exist yet and
shows zeros: their trades are still in the shared file. This counts them there, read-only, so stats can say so
and name the command that moves them. A migrated file is counted by its plugin_id; an unmigrated one has no
owners yet, so only its trades are counted (split --dry-run shows where each would go).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import attribution
from ..backend.sqlite_file import translated_errors
from ..config import StoreConfig
from ..readonly import open_reader
from ..words import count

__all__ = ["Waiting", "waiting_trades"]


@dataclass
class Waiting:
    """Trades in the shared file of isolated plugins that have no file yet."""

    shared_db: Path
    migrated: bool  # False: the file has no plugin_id yet, `trades` is all of its trades, none attributed
    trades: int
    by_plugin: dict[str, int] = field(default_factory=dict)

    def note(self, shown: str) -> str:
        """The note stats prints, with the shared file written as `shown`."""
        if not self.migrated:
            return (f"{shown} holds {count(self.trades, 'trade')} not yet attributed to a plugin, and the "
                    "isolated plugins above have no file yet: run `zepix-store split --dry-run` to see where each "
                    "would go, then `zepix-store split`")
        return (f"{count(self.trades, 'trade')} of {count(len(self.by_plugin), 'plugin')} wait in {shown} "
                f"({', '.join(f'{p} {n:,}' for p, n in self.by_plugin.items())}): run `zepix-store split`")

    def to_json(self) -> dict[str, Any]:
        command = "zepix-store split" if self.migrated else "zepix-store split --dry-run"
        return {"shared_db": str(self.shared_db), "migrated": self.migrated, "trades": self.trades,
                "by_plugin": self.by_plugin, "command": command}


def waiting_trades(config: StoreConfig, missing: Sequence[str]) -> Waiting | None:
    """Trades waiting in the shared file for the plugins of `missing` (those read from no file) routed isolated.

    None when no such plugin exists or the shared file holds none of their trades.
    """
    isolated = [p for p in missing if p in config.plugins and config.plugins[p].db_path != config.shared_db]
    if not isolated or not config.shared_db.is_file():
        return None
    conn = open_reader(config.shared_db)
    try:
        with translated_errors(config.shared_db):
            columns = attribution.source_columns(conn, "main", "trades")
            if not columns:
                return None
            if "plugin_id" not in columns:
                total = int(conn.execute("SELECT count(*) FROM main.trades").fetchone()[0])
                return Waiting(config.shared_db, False, total) if total else None
            marks = ", ".join("?" * len(isolated))
            rows = conn.execute(f"SELECT plugin_id, count(*) FROM main.trades WHERE plugin_id IN ({marks}) "
                                "GROUP BY plugin_id ORDER BY plugin_id", isolated).fetchall()
    finally:
        conn.close()
    by_plugin = {str(p): int(n) for p, n in rows}
    return Waiting(config.shared_db, True, sum(by_plugin.values()), by_plugin) if by_plugin else None
