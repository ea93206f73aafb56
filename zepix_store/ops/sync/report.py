"""What a synchronisation did, per plugin and table, in numbers and in names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ['PluginSync', 'SyncReport', 'TableSync']


@dataclass
class TableSync:
    source_rows: int = 0   # rows of the plugin in the source
    copied: int = 0        # new in the destination (re-copies of a pruned or deleted row included)
    updated: int = 0       # the source changed since the last sync: written over the destination row
    kept: int = 0          # the destination changed since the last sync (the bot's newer write): kept
    unchanged: int = 0     # pairs equal on both sides, untouched
    paired: int = 0        # equal rows recognised as one (a crash between two commits, a restored backup)
    renumbered: int = 0    # copies given a new id because theirs was taken in the destination
    source_gone: int = 0   # pairs whose source row is gone (pruned): the destination row stays
    conflicts: int = 0     # changed on both sides, or one key on two unpaired rows
    resolved: int = 0      # conflicts resolved by --prefer


@dataclass
class PluginSync:
    plugin_id: str
    file: str
    status: str = "pending"  # synchronised | up to date | refused | failed | would synchronise
    tables: dict[str, TableSync] = field(default_factory=dict)
    money: dict[str, list[float]] = field(default_factory=dict)  # column -> [source, copy] of this run's writes
    conflicts: list[str] = field(default_factory=list)       # table: key: what differs
    other_side: list[str] = field(default_factory=list)      # rows written on the side the plugin was not on
    unsettled: list[str] = field(default_factory=list)       # still changing at the end (flip's last round)
    problems: list[str] = field(default_factory=list)

    def table(self, name: str) -> TableSync:
        return self.tables.setdefault(name, TableSync())

    @property
    def writes(self) -> int:
        return sum(t.copied + t.updated + t.paired for t in self.tables.values())


@dataclass(kw_only=True)
class SyncReport:
    """What split, merge and flip report alike: each plugin's result and the problems found (ok when none)."""

    direction: str
    plugins: dict[str, PluginSync] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    longest_hold_ms: float = 0.0   # the longest write transaction held on a file the bot may use

    @property
    def ok(self) -> bool:
        return not self.problems

    def rows_copied(self) -> int:
        return sum(t.copied for p in self.plugins.values() for t in p.tables.values())

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}
